/**
 * lib/process/ — process supervision: the launcher (this file) that starts and restarts actor
 * processes, the job runner behind `exactor run`, and the child-process entry points. Imports
 * checkpoint/ and everything below it, and broker URLs.
 *
 * The launcher (supervisor): starts actor processes on this host and restarts the ones that die,
 * with capped exponential backoff plus jitter and an Erlang-style intensity limit (more than R
 * restarts within T seconds fails the job). It tells the coordinator of every exit at once, and
 * on the coordinator's request (`kill` on the job's launcher subject) SIGKILLs a wedged instance of
 * its own, which is then restarted like any other that died.
 * Invariant: a process that exits with 0 (stopped by the coordinator) is never restarted, a kill
 * request only ever reaches a child this launcher started (the pid it names, when it names one), and when the launcher
 * stops, every child it started is gone.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { createWriteStream, type WriteStream } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as Effect from "effect/Effect"
import { Subjects } from "../core/Address.ts"
import type { ControlAuth } from "../runtime/ControlAuth.ts"
import { logFormatFromEnv } from "../runtime/LogFormat.ts"
import { decode, EnvelopeDecodeError, encode } from "../runtime/Envelope.ts"
import type { NatsConnection } from "../runtime/Nats.ts"

/** Exit codes of the coordinator process, which are the job's. */
export const ExitCode = { finished: 0, failed: 2, intensity: 3, cancelled: 4, usage: 64 } as const

export interface SupervisorOptions {
  /** R: restarts allowed within `restartWindowMs` before the job fails. Default 10. */
  readonly maxRestarts: number
  /** T, ms. Default 60 000. */
  readonly restartWindowMs: number
  /** first backoff delay, ms. Default 100. */
  readonly backoffInitialMs: number
  /** backoff cap, ms. Default 5 000. */
  readonly backoffMaxMs: number
}

export const defaultSupervisorOptions: SupervisorOptions = {
  maxRestarts: 10,
  restartWindowMs: 60_000,
  backoffInitialMs: 100,
  backoffMaxMs: 5_000
}

export interface ProcessSpec {
  /** `coordinator` or an instance id like `count#1` */
  readonly name: string
  readonly args: ReadonlyArray<string>
}

export type LauncherEvent =
  | { readonly kind: "started"; readonly name: string; readonly pid: number; readonly restarts: number }
  | {
      readonly kind: "exited"
      readonly name: string
      readonly code: number | null
      readonly signal: string | null
    }
  | { readonly kind: "restarting"; readonly name: string; readonly delayMs: number }
  | { readonly kind: "killed"; readonly name: string; readonly pid: number; readonly why: string }

export interface LauncherResult {
  readonly exitCode: number
  readonly reason?: string
  readonly restarts: ReadonlyMap<string, number>
}

export interface LauncherOptions {
  readonly job: string
  readonly nc: NatsConnection
  readonly specs: ReadonlyArray<ProcessSpec>
  readonly supervisor: SupervisorOptions
  readonly env: Readonly<Record<string, string>>
  /** the job's secret: tags the `exited` reports to the coordinator */
  readonly auth: ControlAuth
  /** where children's stdout/stderr go: this process's stderr (prefixed), or a log file */
  readonly logFile?: string
  readonly onEvent?: (event: LauncherEvent) => void
}

/** Tells a child which process supervises it; a child whose supervisor is gone stops (see `exitWithSupervisor`). */
export const supervisorPidVariable = "EXACTOR_SUPERVISOR_PID"

/**
 * In a supervised child: stop gracefully (SIGTERM to itself) once the supervisor is gone, as an
 * Erlang process linked to its supervisor would, so that no orphaned actor outlives its launcher.
 */
export const exitWithSupervisor = (): void => {
  const supervisor = Number(process.env[supervisorPidVariable])
  if (!supervisor) return
  setInterval(() => {
    if (process.ppid !== supervisor) process.kill(process.pid, "SIGTERM")
  }, 1000).unref()
}

/**
 * Node flags of every supervised child: `EXACTOR_ACTOR_NODE_FLAGS` (space-separated), else V8 set
 * for a flat footprint: 2 MB young-generation semi-spaces, and the old space grown by 20 % (not
 * V8's default factor) between major GCs. With V8's defaults (16 MB semi-spaces) an actor's RSS
 * climbed to 200-250 MB under load; with these it stays near 130 MB and flat. `--optimize-for-size`
 * held it at ~111 MB but cost the JetStream-fed job a third of its throughput (docs/performance.md).
 */
export const childNodeFlags = (env: NodeJS.ProcessEnv = process.env): ReadonlyArray<string> =>
  (env.EXACTOR_ACTOR_NODE_FLAGS ?? "--max-semi-space-size=2 --heap-growing-percent=20")
    .split(/\s+/)
    .filter((f) => f !== "")

/** The `exactor` CLI. */
export const cliEntry = fileURLToPath(new URL("../cli/exactor.ts", import.meta.url))
/** The lean entry every supervised child runs (`child.ts actor|coordinator …`), without the CLI's modules. */
export const childEntry = fileURLToPath(new URL("../cli/child.ts", import.meta.url))

const pipeLines = (child: ChildProcess, name: string, sink: WriteStream | NodeJS.WriteStream) => {
  // JSON log lines carry their instance and stay one object per line, unprefixed
  const prefix = logFormatFromEnv() === "json" ? "" : `[${name}] `
  for (const stream of [child.stdout, child.stderr]) {
    let rest = ""
    stream?.setEncoding("utf8")
    stream?.on("data", (chunk: string) => {
      const lines = (rest + chunk).split("\n")
      rest = lines.pop() ?? ""
      for (const line of lines) sink.write(`${prefix}${line}\n`)
    })
  }
}

/** Starts every spec and supervises until the coordinator ends the job (or all children stop). */
export const runLauncher = (o: LauncherOptions): Effect.Effect<LauncherResult> =>
  Effect.gen(function* () {
    const subjects = new Subjects(o.job)
    const children = new Map<string, ChildProcess>()
    const restarts = new Map<string, number>(o.specs.map((s) => [s.name, 0]))
    const restartTimes: Array<number> = []
    const out: WriteStream | NodeJS.WriteStream = o.logFile
      ? createWriteStream(o.logFile, { flags: "a" })
      : process.stderr
    let stopping = false
    let result: LauncherResult | undefined
    let resolveDone: (() => void) | undefined
    const done = new Promise<void>((r) => {
      resolveDone = r
    })
    const finish = (r: LauncherResult) => {
      if (result) return
      result = r
      stopping = true
      resolveDone?.()
    }

    const start = (spec: ProcessSpec, consecutive: number) => {
      if (stopping) return
      const child = spawn(process.execPath, [...childNodeFlags(), childEntry, ...spec.args], {
        stdio: ["ignore", "pipe", "pipe"],
        // Node's compile cache (code and stripped types) cuts a restarted actor's start-up time.
        env: {
          NODE_COMPILE_CACHE: join(tmpdir(), "exactor-compile-cache"),
          ...process.env,
          ...o.env,
          [supervisorPidVariable]: String(process.pid)
        }
      })
      children.set(spec.name, child)
      pipeLines(child, spec.name, out)
      const startedAt = Date.now()
      o.onEvent?.({
        kind: "started",
        name: spec.name,
        pid: child.pid ?? 0,
        restarts: restarts.get(spec.name) ?? 0
      })
      child.on("exit", (code, signal) => {
        children.delete(spec.name)
        o.onEvent?.({ kind: "exited", name: spec.name, code, signal })
        if (stopping) return
        if (
          spec.name === "coordinator" &&
          (code === ExitCode.finished || code === ExitCode.failed || code === ExitCode.cancelled)
        ) {
          finish({
            exitCode: code,
            ...(code === ExitCode.failed
              ? { reason: "the coordinator declared the job FAILED (see its log)" }
              : {}),
            restarts
          })
          return
        }
        if (code === 0) return // stopped by the coordinator
        const how = signal ? `killed by ${signal}` : `exit code ${code}`
        o.auth.publish(
          o.nc,
          subjects.coordinator,
          encode({ k: "exited", e: 0, c: spec.name, i: "launcher", b: { code, signal } })
        )
        const now = Date.now()
        restartTimes.push(now)
        while (restartTimes.length > 0 && now - restartTimes[0]! > o.supervisor.restartWindowMs)
          restartTimes.shift()
        if (restartTimes.length > o.supervisor.maxRestarts) {
          finish({
            exitCode: ExitCode.intensity,
            reason: `restart intensity exceeded: ${restartTimes.length} restarts within ${o.supervisor.restartWindowMs / 1000} s (limit ${o.supervisor.maxRestarts}); last: ${spec.name} ${how}`,
            restarts
          })
          return
        }
        restarts.set(spec.name, (restarts.get(spec.name) ?? 0) + 1)
        const k = now - startedAt > 10_000 ? 0 : consecutive
        const base = Math.min(o.supervisor.backoffMaxMs, o.supervisor.backoffInitialMs * 2 ** k)
        const delayMs = Math.round(base * (0.8 + 0.4 * Math.random()))
        o.onEvent?.({ kind: "restarting", name: spec.name, delayMs })
        out.write(`[launcher] ${spec.name} ${how}; restarting in ${delayMs} ms\n`)
        setTimeout(() => start(spec, k + 1), delayMs)
      })
    }

    const stopAll = Effect.promise(async () => {
      stopping = true
      const alive = [...children.values()]
      for (const c of alive) c.kill("SIGTERM")
      const deadline = Date.now() + 5000
      while (children.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
      for (const c of children.values()) c.kill("SIGKILL")
    })

    // A wedged instance (it stopped answering its coordinator) is killed and restarted as if it had
    // died. Only children of this launcher, by pid; another host's launcher kills its own. The request
    // carries the tag of the job's secret like every control command: an untagged one is ignored.
    const kills = o.nc.subscribe(subjects.launcher, {
      callback: (_err, msg) => {
        if (!o.auth.verifyMsg(msg)) return
        const r = decode(subjects.launcher, msg.data)
        if (r instanceof EnvelopeDecodeError || r.k !== "kill" || r.t === "coordinator" || stopping) return
        const child = children.get(r.t)
        if (child?.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
        if (r.pid !== undefined && r.pid !== child.pid) return // restarted since: not the wedged process
        const why = r.why ?? "no reason given"
        out.write(`[launcher] ${r.t} (pid ${child.pid}) killed at the coordinator's request: ${why}\n`)
        o.onEvent?.({ kind: "killed", name: r.t, pid: child.pid, why })
        child.kill("SIGKILL")
      }
    })

    for (const spec of o.specs) start(spec, 0)
    const hasCoordinator = o.specs.some((s) => s.name === "coordinator")
    const watcher = hasCoordinator
      ? undefined
      : setInterval(() => {
          if (children.size === 0) finish({ exitCode: 0, restarts })
        }, 200)
    yield* Effect.promise(() => done).pipe(
      Effect.onInterrupt(() =>
        Effect.sync(() => finish({ exitCode: 130, reason: "interrupted", restarts })).pipe(
          Effect.andThen(stopAll)
        )
      )
    )
    if (watcher) clearInterval(watcher)
    kills.unsubscribe()
    // give instances a moment to take the coordinator's stop, then make sure they are gone
    yield* Effect.promise(async () => {
      const deadline = Date.now() + 3000
      while (children.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    })
    yield* stopAll
    if (out !== process.stderr) (out as WriteStream).end()
    return result!
  })
