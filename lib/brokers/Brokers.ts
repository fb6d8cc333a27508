/**
 * lib/brokers/ — broker management: broker URLs, start-up (this file), probes, local binaries and
 * throwaway nats-servers for fault tests. Imports internal/ only.
 *
 * Brokers that come up by themselves: `ensureBrokers` checks that NATS (with JetStream) and RabbitMQ
 * answer, and starts a missing one the way this machine does it (local binary, else docker compose).
 * Invariant: it never stops or restarts a broker that answers, never starts one for a URL that is
 * not this host, and fails with an error naming the broker, the URL and what to install or set.
 */
import { execFile, spawn } from "node:child_process"
import { existsSync, mkdirSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import {
  type BrokerError,
  type BrokerName,
  BrokerStartFailed,
  BrokerUnavailable,
  BrokerUrlInvalid,
  type StartMethod
} from "./BrokerError.ts"
import { type ProbeFailed, probeAmqp, probeNats } from "./BrokerProbe.ts"
import { brokerUrlsFromEnv, defaultAmqpUrl, defaultNatsUrl } from "./BrokerUrls.ts"
import { causeMessage } from "../internal/causeMessage.ts"
import { redactUrl } from "../internal/redactUrl.ts"
import {
  amqpPort,
  findExecutable,
  findLocalBinaries,
  isLocalHost,
  localStartMethod,
  natsPort,
  remedyFor,
  systemNatsServer,
  systemNatsStore
} from "./LocalBrokers.ts"

/** How a broker came to answer; the same words appear in the log line. */
export type BrokerPath =
  | "already running"
  | "started local nats-server"
  | "started local rabbitmq-server"
  | "started with docker compose"

export interface BrokerStatus {
  readonly broker: BrokerName
  readonly url: string
  readonly how: BrokerPath
  /** pid of a nats-server this call spawned itself (only for method `nats-server`). */
  readonly pid?: number
}

export interface BrokersOptions {
  /** Default: `EXACTOR_NATS_URL`, else `nats://127.0.0.1:4222`. */
  readonly natsUrl?: string
  /** Default: `EXACTOR_AMQP_URL`, else `amqp://guest:guest@127.0.0.1:5672`. */
  readonly amqpUrl?: string
  /** Start a broker that does not answer. Default `true`; with `false` this only checks. */
  readonly start?: boolean
  /** Store dir of a nats-server spawned here. Default: `EXACTOR_NATS_STORE`, else `<tmp>/exactor-nats-<port>`. */
  readonly natsStore?: string
  /** Compose file of the docker fallback. Default: `compose.yaml` at the repository root. */
  readonly composeFile?: string
}

/** Waits for a freshly started nats-server: every 250 ms for up to 20 s. */
export const natsBootSchedule = Schedule.spaced("250 millis").pipe(Schedule.upTo({ duration: "20 seconds" }))
/** Waits for a freshly started RabbitMQ, which is slow to boot: every second for up to 60 s. */
export const rabbitBootSchedule = Schedule.spaced("1 second").pipe(Schedule.upTo({ duration: "60 seconds" }))

/** Hides the password (or NATS token) of a URL in log lines and errors. */
const shown = (url: URL): string => redactUrl(url.href)

// --- starting ---------------------------------------------------------------------------------

interface RunOutcome {
  readonly ok: boolean
  readonly output: string
}

/** Runs a command to completion; a non-zero exit is an outcome, not an error. */
const run = (
  file: string,
  args: ReadonlyArray<string>,
  timeout: Duration.Input,
  env: Record<string, string> = {}
): Effect.Effect<RunOutcome> =>
  Effect.callback<RunOutcome>((resume) => {
    const child = execFile(
      file,
      [...args],
      { env: { ...process.env, ...env }, timeout: Duration.toMillis(timeout) },
      (error, stdout, stderr) => {
        const output = `${stderr}\n${stdout}`.trim() || (error ? error.message : "")
        resume(Effect.succeed({ ok: error === null, output }))
      }
    )
    return Effect.sync(() => child.kill())
  })

const tail = (text: string): string => text.split("\n").slice(-5).join(" | ")

const composeFileDefault = fileURLToPath(new URL("../../compose.yaml", import.meta.url))

/** `docker` is installed and its engine answers `docker info`. */
const dockerAvailable: Effect.Effect<boolean> = Effect.suspend(() => {
  const docker = findExecutable("docker")
  if (docker === undefined) return Effect.succeed(false)
  return run(docker, ["info"], "15 seconds").pipe(Effect.map((o) => o.ok))
})

interface Started {
  readonly how: BrokerPath
  readonly pid?: number
  /** fails when the started process dies before the broker answers; never succeeds */
  readonly died: Effect.Effect<never, BrokerStartFailed>
}

/** A started daemon whose death this process cannot observe. */
const neverDies: Effect.Effect<never, BrokerStartFailed> = Effect.never

const startBroker = (
  broker: BrokerName,
  url: URL,
  method: StartMethod,
  options: BrokersOptions
): Effect.Effect<Started, BrokerStartFailed> => {
  const failed = (detail: string) => new BrokerStartFailed({ broker, url: shown(url), method, detail })
  const runOrFail = (file: string, args: ReadonlyArray<string>, timeout: Duration.Input, env = {}) =>
    run(file, args, timeout, env).pipe(
      Effect.flatMap((o) =>
        o.ok ? Effect.void : Effect.fail(failed(`${file} ${args.join(" ")}: ${tail(o.output)}`))
      )
    )
  switch (method) {
    case "start-stop-daemon":
      return runOrFail(
        findExecutable("start-stop-daemon") ?? "start-stop-daemon",
        [
          "--start",
          "--oknodo",
          "--background",
          "--exec",
          systemNatsServer,
          "--",
          "-a",
          "127.0.0.1",
          "-p",
          "4222",
          "-js",
          "-sd",
          systemNatsStore,
          "-l",
          "/var/log/nats-server.log"
        ],
        "30 seconds"
      ).pipe(Effect.as({ how: "started local nats-server" as const, died: neverDies }))
    case "nats-server":
      return spawnNatsServer(url, options, failed)
    case "rabbitmq-server": {
      // It refuses to start while a node of the same name is still booting: then wait for that one.
      const bin = findExecutable("rabbitmq-server") ?? "rabbitmq-server"
      return run(bin, ["-detached"], "60 seconds").pipe(
        Effect.tap((o) =>
          o.ok ? Effect.void : Effect.logWarning(`${bin} -detached failed, waiting anyway: ${tail(o.output)}`)
        ),
        Effect.as({ how: "started local rabbitmq-server" as const, died: neverDies })
      )
    }
    case "docker compose": {
      const service = broker === "NATS" ? "nats" : "rabbitmq"
      const env =
        broker === "NATS"
          ? { EXACTOR_NATS_PORT: String(natsPort(url)) }
          : { EXACTOR_AMQP_PORT: String(amqpPort(url)) }
      const file = options.composeFile ?? composeFileDefault
      return runOrFail(
        findExecutable("docker") ?? "docker",
        ["compose", "-f", file, "up", "-d", "--wait", service],
        "5 minutes",
        env
      ).pipe(Effect.as({ how: "started with docker compose" as const, died: neverDies }))
    }
  }
}

/** Spawns a detached `nats-server -js` for `url`'s host and port that outlives this process. */
const spawnNatsServer = (
  url: URL,
  options: BrokersOptions,
  failed: (detail: string) => BrokerStartFailed
): Effect.Effect<Started, BrokerStartFailed> =>
  Effect.suspend(() => {
    const bin = existsSync(systemNatsServer)
      ? systemNatsServer
      : (findExecutable("nats-server") ?? "nats-server")
    const port = natsPort(url)
    const host = url.hostname.replace(/^\[|\]$/g, "")
    const store =
      options.natsStore ?? process.env.EXACTOR_NATS_STORE ?? join(tmpdir(), `exactor-nats-${port}`)
    const log = join(store, "nats-server.log")
    try {
      mkdirSync(store, { recursive: true })
    } catch (cause) {
      return Effect.fail(failed(`cannot create the store dir ${store}: ${causeMessage(cause)}`))
    }
    const args = ["-js", "-a", host, "-p", String(port), "-sd", store, "-l", log]
    const child = spawn(bin, args, { detached: true, stdio: "ignore" })
    child.unref()
    const died = Effect.callback<never, BrokerStartFailed>((resume) => {
      const onExit = (code: number | null, signal: NodeJS.Signals | null) =>
        resume(Effect.fail(failed(`${bin} exited (${code ?? signal}) before answering; see ${log}`)))
      const onError = (error: Error) => resume(Effect.fail(failed(`${bin}: ${error.message}`)))
      child.once("exit", onExit)
      child.once("error", onError)
      return Effect.sync(() => {
        child.off("exit", onExit)
        child.off("error", onError)
      })
    })
    const started: Started =
      child.pid === undefined
        ? { how: "started local nats-server", died }
        : { how: "started local nats-server", pid: child.pid, died }
    return Effect.succeed(started)
  })

// --- ensure -----------------------------------------------------------------------------------

interface BrokerSpec {
  readonly broker: BrokerName
  readonly envVar: string
  readonly defaultUrl: string
  readonly schemes: ReadonlyArray<string>
  readonly probe: (url: string) => Effect.Effect<void, ProbeFailed>
  readonly boot: Schedule.Schedule<unknown, unknown>
  readonly bootLimit: string
}

const natsSpec: BrokerSpec = {
  broker: "NATS",
  envVar: "EXACTOR_NATS_URL",
  defaultUrl: defaultNatsUrl,
  schemes: ["nats:", "tls:"],
  probe: probeNats,
  boot: natsBootSchedule,
  bootLimit: "20 s"
}

const rabbitSpec: BrokerSpec = {
  broker: "RabbitMQ",
  envVar: "EXACTOR_AMQP_URL",
  defaultUrl: defaultAmqpUrl,
  schemes: ["amqp:", "amqps:"],
  probe: probeAmqp,
  boot: rabbitBootSchedule,
  bootLimit: "60 s"
}

const parseUrl = (spec: BrokerSpec, raw: string): Effect.Effect<URL, BrokerUrlInvalid> => {
  const invalid = (reason: string) =>
    new BrokerUrlInvalid({ broker: spec.broker, option: spec.envVar, url: raw, reason })
  if (!URL.canParse(raw)) return Effect.fail(invalid("it does not parse as a URL"))
  const url = new URL(raw)
  if (!spec.schemes.includes(url.protocol))
    return Effect.fail(invalid(`the scheme must be one of ${spec.schemes.join(", ")}`))
  return Effect.succeed(url)
}

const ensureOne = (
  spec: BrokerSpec,
  rawUrl: string,
  options: BrokersOptions
): Effect.Effect<BrokerStatus, BrokerError> =>
  Effect.gen(function* () {
    const url = yield* parseUrl(spec, rawUrl)
    const printable = shown(url)
    const { broker } = spec
    const first = yield* Effect.result(spec.probe(rawUrl))
    if (first._tag === "Success") {
      yield* Effect.log(`${broker} at ${printable}: already running`)
      return { broker, url: printable, how: "already running" }
    }
    const unavailable = (remedy: string) =>
      new BrokerUnavailable({ broker, url: printable, reason: first.failure.reason, remedy })
    if (first.failure.unusable)
      return yield* unavailable(
        /JetStream/.test(first.failure.reason)
          ? `restart it with -js (JetStream), or set ${spec.envVar} to a nats-server that has JetStream`
          : `check the credentials and TLS settings of ${broker} (docs/security.md)`
      )
    if (options.start === false)
      return yield* unavailable(`start it (npm run brokers) or set ${spec.envVar} to a running one`)
    const bins = findLocalBinaries()
    if (!isLocalHost(url.hostname)) return yield* unavailable(remedyFor(broker, url, bins))
    const method: StartMethod | undefined =
      localStartMethod(broker, url, bins) ?? ((yield* dockerAvailable) ? "docker compose" : undefined)
    if (method === undefined) return yield* unavailable(remedyFor(broker, url, bins))

    yield* Effect.log(
      `${broker} at ${printable}: not running (${first.failure.reason}); starting it with ${method}`
    )
    const started = yield* startBroker(broker, url, method, options)
    yield* Effect.raceFirst(
      spec.probe(rawUrl).pipe(
        Effect.retry(spec.boot),
        Effect.mapError(
          (e) =>
            new BrokerStartFailed({
              broker,
              url: printable,
              method,
              detail: `it did not answer within ${spec.bootLimit} (${e.reason})`
            })
        )
      ),
      started.died
    )
    yield* Effect.log(`${broker} at ${printable}: ${started.how}`)
    const status: BrokerStatus =
      started.pid === undefined
        ? { broker, url: printable, how: started.how }
        : { broker, url: printable, how: started.how, pid: started.pid }
    return status
  })

/** Makes sure NATS with JetStream answers at `natsUrl` (see `ensureBrokers`). */
export const ensureNats = (options: BrokersOptions = {}): Effect.Effect<BrokerStatus, BrokerError> =>
  ensureOne(natsSpec, options.natsUrl ?? brokerUrlsFromEnv().natsUrl, options)

/** Makes sure RabbitMQ answers at `amqpUrl` (see `ensureBrokers`). */
export const ensureRabbitMq = (options: BrokersOptions = {}): Effect.Effect<BrokerStatus, BrokerError> =>
  ensureOne(rabbitSpec, options.amqpUrl ?? brokerUrlsFromEnv().amqpUrl, options)

/**
 * Makes sure both brokers answer: uses one that already does; else, for a URL on this host, starts
 * it with a local binary or `docker compose up -d --wait`, and waits for it (`natsBootSchedule`,
 * `rabbitBootSchedule`); else fails with the broker, the URL and what to install or set.
 */
export const ensureBrokers = (
  options: BrokersOptions = {}
): Effect.Effect<{ readonly nats: BrokerStatus; readonly rabbitmq: BrokerStatus }, BrokerError> =>
  Effect.all({ nats: ensureNats(options), rabbitmq: ensureRabbitMq(options) }, { concurrency: 2 })
