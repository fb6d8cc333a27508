/**
 * Throwaway nats-server (with JetStream) for fault tests and `exactor chaos --nats-restarts`: a
 * random loopback port and a store in a fresh temp dir, killable and restartable on the SAME port
 * and store, so clients can reconnect. A config file text (TLS, authorization, ...) may be given;
 * its `port`, `host` and JetStream store are set by the command line.
 * Invariant: it never touches the machine's shared server on 4222; every process it starts is
 * killed when this process exits, and `stop()` leaves nothing behind (process or temp dir).
 */
import { type ChildProcess, spawn } from "node:child_process"
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { rm } from "node:fs/promises"
import { connect as tcpConnect } from "node:net"
import { tmpdir } from "node:os"
import { delimiter, join } from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { causeMessage } from "../internal/causeMessage.ts"

export class NatsServerError extends Data.TaggedError("NatsServerError")<{
  readonly reason: string
  /** the last lines the server wrote to stderr */
  readonly log: string
}> {
  override get message(): string {
    return this.log === ""
      ? `test nats-server: ${this.reason}`
      : `test nats-server: ${this.reason}\n${this.log}`
  }
}

export interface NatsServerOptions {
  /** nats-server config file text (e.g. `tls { ... }`, `authorization { ... }`), passed with `-c` */
  readonly config?: string
  /** the server requires TLS: `url` is `tls://<host>:<port>` */
  readonly tls?: boolean
  /** the host name in `url` (default 127.0.0.1; use one the server certificate names) */
  readonly urlHost?: string
}

export interface TestNatsServer {
  /** `nats://127.0.0.1:<port>` (`tls://…` for a TLS server); the same after `restart()` */
  readonly url: string
  readonly port: number
  /** the JetStream store dir (`-sd`), kept across `kill()` / `restart()` */
  readonly storeDir: string
  /** pid of the current process, undefined after `kill()` / `stop()` */
  readonly pid: number | undefined
  /** SIGTERM, wait for the exit, remove the temp dir. The server cannot be restarted afterwards. */
  stop(): Promise<void>
  /** SIGKILL (a crash: nothing flushed, nothing said to clients), wait for the exit. */
  kill(): Promise<void>
  /** Starts again on the same port and store (SIGKILLs the running one first), once it accepts connections. */
  restart(): Promise<void>
}

const startTimeoutMs = 10_000
const live = new Set<ChildProcess>()
const tempDirs = new Set<string>()
let exitHookInstalled = false

const installExitHook = () => {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.once("exit", () => {
    for (const child of live) child.kill("SIGKILL")
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true })
  })
}

/** `/usr/sbin/nats-server` (Debian), else the first `nats-server` on PATH. */
export const natsServerBinary = (): string | undefined => {
  for (const dir of ["/usr/sbin", ...(process.env.PATH ?? "").split(delimiter).filter((d) => d !== "")]) {
    const candidate = join(dir, "nats-server")
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      // not here: try the next dir
    }
  }
  return undefined
}

const exited = (child: ChildProcess): Promise<void> =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once("exit", () => resolve()))

const accepts = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = tcpConnect({ host: "127.0.0.1", port })
    socket.once("connect", () => {
      socket.destroy()
      resolve(true)
    })
    socket.once("error", () => resolve(false))
  })

class NatsServerProcess implements TestNatsServer {
  readonly dir: string
  readonly storeDir: string
  readonly binary: string
  readonly options: NatsServerOptions
  port = 0
  #child: ChildProcess | undefined
  #stderr: Array<string> = []
  #stopped = false

  constructor(dir: string, binary: string, options: NatsServerOptions) {
    this.dir = dir
    this.storeDir = join(dir, "js")
    this.binary = binary
    this.options = options
    if (options.config !== undefined) writeFileSync(join(dir, "server.conf"), options.config)
  }

  get url(): string {
    return `${this.options.tls === true ? "tls" : "nats"}://${this.options.urlHost ?? "127.0.0.1"}:${this.port}`
  }

  get pid(): number | undefined {
    return this.#child?.pid
  }

  #failed(reason: string): NatsServerError {
    return new NatsServerError({ reason, log: this.#stderr.slice(-20).join("\n") })
  }

  /** Spawns on `this.port` (0 = random) and resolves once it listens. */
  async launch(): Promise<void> {
    const port = this.port === 0 ? "-1" : String(this.port)
    const args = [
      ...(this.options.config === undefined ? [] : ["-c", join(this.dir, "server.conf")]),
      ...["-js", "-sd", this.storeDir, "-a", "127.0.0.1", "-p", port, "--ports_file_dir", this.dir]
    ]
    this.#stderr = []
    const child = spawn(this.binary, args, { stdio: ["ignore", "ignore", "pipe"] })
    this.#child = child
    live.add(child)
    child.once("exit", () => live.delete(child))
    child.stderr?.setEncoding("utf8")
    child.stderr?.on("data", (chunk: string) => {
      this.#stderr.push(...chunk.split("\n").filter((l) => l !== ""))
      if (this.#stderr.length > 200) this.#stderr.splice(0, this.#stderr.length - 200)
    })
    let spawnError: Error | undefined
    child.once("error", (e) => {
      spawnError = e
    })
    const deadline = Date.now() + startTimeoutMs
    for (;;) {
      if (spawnError !== undefined) throw this.#failed(`cannot run ${this.binary}: ${spawnError.message}`)
      if (child.exitCode !== null || child.signalCode !== null)
        throw this.#failed(`exited (${child.exitCode ?? child.signalCode}) while starting on port ${port}`)
      const listening = this.#readPortsFile(child.pid)
      if (listening !== undefined && (await accepts(listening))) {
        this.port = listening
        return
      }
      if (Date.now() > deadline) {
        child.kill("SIGKILL")
        await exited(child)
        throw this.#failed(`did not listen within ${startTimeoutMs} ms`)
      }
      await sleep(20)
    }
  }

  /** The port from `nats-server_<pid>.ports`, once the server has written it. */
  #readPortsFile(pid: number | undefined): number | undefined {
    if (pid === undefined) return undefined
    let ports: { readonly nats?: ReadonlyArray<string> }
    try {
      ports = JSON.parse(readFileSync(join(this.dir, `nats-server_${pid}.ports`), "utf8"))
    } catch {
      return undefined // not (completely) written yet
    }
    const first = ports.nats?.[0]
    return first === undefined ? undefined : Number(new URL(first).port)
  }

  async #signal(signal: NodeJS.Signals): Promise<void> {
    const child = this.#child
    if (child === undefined) return
    this.#child = undefined
    if (child.exitCode === null && child.signalCode === null) child.kill(signal)
    await exited(child)
  }

  kill(): Promise<void> {
    return this.#signal("SIGKILL")
  }

  async restart(): Promise<void> {
    if (this.#stopped) throw this.#failed("restart() after stop()")
    await this.#signal("SIGKILL")
    await this.launch()
  }

  async stop(): Promise<void> {
    this.#stopped = true
    await this.#signal("SIGTERM")
    await rm(this.dir, { recursive: true, force: true })
    tempDirs.delete(this.dir)
  }
}

/** Starts a throwaway JetStream-enabled nats-server on a random loopback port. */
export const startNatsServer = async (options: NatsServerOptions = {}): Promise<TestNatsServer> => {
  const binary = natsServerBinary()
  if (binary === undefined)
    throw new NatsServerError({
      reason: "nats-server is not installed (apt-get install nats-server, or put it on PATH)",
      log: ""
    })
  installExitHook()
  const dir = mkdtempSync(join(tmpdir(), "exactor-nats-test-"))
  tempDirs.add(dir)
  const server = new NatsServerProcess(dir, binary, options)
  try {
    await server.launch()
  } catch (error) {
    await server.stop()
    throw error
  }
  return server
}

/** The Effect flavour: a server that is stopped (and its temp dir removed) when the scope closes. */
export const NatsServer = {
  start: startNatsServer,
  scoped: Effect.acquireRelease(
    Effect.tryPromise({
      try: () => startNatsServer(),
      catch: (cause) =>
        cause instanceof NatsServerError
          ? cause
          : new NatsServerError({ reason: causeMessage(cause), log: "" })
    }),
    (server) => Effect.promise(() => server.stop())
  ) satisfies Effect.Effect<TestNatsServer, NatsServerError, Scope.Scope>
} as const
