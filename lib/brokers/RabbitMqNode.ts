/**
 * A private, killable RabbitMQ node (with the stream plugin) for fault tests and
 * `exactor chaos --rabbitmq-crashes`: free loopback ports (AMQP, stream, distribution), its own data
 * directory, node name, Erlang cookie and enabled-plugins file, killable with SIGKILL and restartable
 * on the same ports and data; optionally with TLS listeners (AMQP and stream) next to the plain ones,
 * and `rabbitmqctl` against it (`ctl`) for vhosts and users. Invariant: it never touches the shared node or its files
 * (/etc/rabbitmq/enabled_plugins included); `stop()` leaves no process and no directory behind.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { accessSync, constants, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { rm } from "node:fs/promises"
import { connect as tcpConnect, createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import * as Data from "effect/Data"

export class RabbitMqNodeError extends Data.TaggedError("RabbitMqNodeError")<{
  readonly reason: string
  /** the last lines of the node's log */
  readonly log: string
}> {
  override get message(): string {
    return this.log === ""
      ? `private RabbitMQ node: ${this.reason}`
      : `private RabbitMQ node: ${this.reason}\n${this.log}`
  }
}

/** TLS listeners for AMQP (`amqps://`) and streams (`rabbitmq-stream+tls://`), with these PEM files. */
export interface RabbitMqNodeTls {
  readonly caFile: string
  readonly certFile: string
  readonly keyFile: string
  /** require a client certificate signed by the CA (verify_peer, fail_if_no_peer_cert). Default false. */
  readonly verifyPeer?: boolean
}

export interface RabbitMqNodeOptions {
  readonly tls?: RabbitMqNodeTls
}

export interface PrivateRabbitMqNode {
  /** `amqp://guest:guest@127.0.0.1:<port>`; the same after `restart()` */
  readonly amqpUrl: string
  readonly amqpPort: number
  /** the stream protocol port (advertised as 127.0.0.1:<port>) */
  readonly streamPort: number
  /** the AMQP TLS port (`amqps://`), when started with `tls` */
  readonly amqpsPort: number | undefined
  /** the stream TLS port (advertised as 127.0.0.1:<port>), when started with `tls` */
  readonly streamTlsPort: number | undefined
  /** Runs `rabbitmqctl <args>` against this node (add_vhost, add_user, set_permissions, ...); rejects with its output. */
  ctl(args: ReadonlyArray<string>): Promise<string>
  /** the node's own data directory (streams live under `<dataDir>/stream/`) */
  readonly dataDir: string
  /** pid of the node's beam.smp, undefined while it is down */
  readonly pid: number | undefined
  /** SIGKILL the beam (a crash: nothing flushed), wait until it is gone. */
  kill(): Promise<void>
  /** SIGSTOP / SIGCONT the beam (a hung node). */
  pause(): void
  resume(): void
  /** Starts again on the same ports and data (SIGKILLs a running one first), once AMQP and stream ports accept. */
  restart(): Promise<void>
  /** SIGKILL, remove the data directory. Cannot be restarted afterwards. */
  stop(): Promise<void>
}

/** How long a (re)start may take: 6-15 s measured on a loaded 2-core machine, so a wide margin. */
const startTimeoutMs = 60_000
const serverBinary = "/usr/lib/rabbitmq/bin/rabbitmq-server"
const live = new Set<number>()
const tempDirs = new Set<string>()
let exitHookInstalled = false

const installExitHook = () => {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.once("exit", () => {
    for (const pid of live) {
      try {
        process.kill(pid, "SIGKILL")
      } catch {
        // already gone
      }
    }
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true })
  })
}

/** Whether this machine can run a private node (Debian's rabbitmq-server package). */
export const rabbitMqNodeAvailable = (): boolean => {
  try {
    accessSync(serverBinary, constants.X_OK)
    return true
  } catch {
    return false
  }
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once("error", reject)
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address()
      const port = typeof addr === "object" && addr !== null ? addr.port : 0
      srv.close(() => resolve(port))
    })
  })

const accepts = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = tcpConnect({ host: "127.0.0.1", port })
    socket.once("connect", () => {
      socket.destroy()
      resolve(true)
    })
    socket.once("error", () => resolve(false))
  })

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

class RabbitMqNodeProcess implements PrivateRabbitMqNode {
  readonly dir: string
  readonly amqpPort: number
  readonly streamPort: number
  readonly distPort: number
  readonly nodeName: string
  readonly amqpsPort: number | undefined
  readonly streamTlsPort: number | undefined
  #wrapper: ChildProcess | undefined
  #beam: number | undefined
  #stopped = false

  constructor(
    dir: string,
    ports: readonly [number, number, number],
    tls?: { readonly options: RabbitMqNodeTls; readonly ports: readonly [number, number] }
  ) {
    this.dir = dir
    ;[this.amqpPort, this.streamPort, this.distPort] = ports
    ;[this.amqpsPort, this.streamTlsPort] = tls?.ports ?? [undefined, undefined]
    this.nodeName = `exactor${process.pid}x${this.amqpPort}@localhost`
    mkdirSync(join(dir, "home"), { recursive: true })
    writeFileSync(join(dir, "rabbitmq-env.conf"), "")
    writeFileSync(join(dir, "enabled_plugins"), "[rabbitmq_stream].\n")
    const t = tls?.options
    const tlsLines =
      t === undefined
        ? []
        : [
            `listeners.ssl.default = 127.0.0.1:${this.amqpsPort}`,
            `ssl_options.cacertfile = ${t.caFile}`,
            `ssl_options.certfile = ${t.certFile}`,
            `ssl_options.keyfile = ${t.keyFile}`,
            `ssl_options.verify = ${t.verifyPeer === true ? "verify_peer" : "verify_none"}`,
            `ssl_options.fail_if_no_peer_cert = ${t.verifyPeer === true}`,
            `stream.listeners.ssl.1 = 127.0.0.1:${this.streamTlsPort}`,
            "stream.advertised_tls_host = 127.0.0.1",
            `stream.advertised_tls_port = ${this.streamTlsPort}`
          ]
    writeFileSync(
      join(dir, "rabbitmq.conf"),
      [
        `stream.listeners.tcp.1 = 127.0.0.1:${this.streamPort}`,
        "stream.advertised_host = 127.0.0.1",
        `stream.advertised_port = ${this.streamPort}`,
        ...tlsLines,
        ""
      ].join("\n")
    )
  }

  ctl(args: ReadonlyArray<string>): Promise<string> {
    return new Promise((resolve, reject) =>
      execFile(
        "/usr/lib/rabbitmq/bin/rabbitmqctl",
        ["-n", this.nodeName, ...args],
        {
          env: {
            PATH: process.env.PATH ?? "/usr/bin:/bin",
            HOME: join(this.dir, "home"),
            RABBITMQ_CONF_ENV_FILE: join(this.dir, "rabbitmq-env.conf")
          },
          timeout: 60_000
        },
        (error, stdout, stderr) =>
          error === null
            ? resolve(stdout)
            : reject(
                this.#failed(`rabbitmqctl ${args[0] ?? ""} failed: ${stderr || stdout || error.message}`)
              )
      )
    )
  }

  get amqpUrl(): string {
    return `amqp://guest:guest@127.0.0.1:${this.amqpPort}`
  }

  get pid(): number | undefined {
    return this.#beam
  }

  get dataDir(): string {
    return join(this.dir, "mnesia", this.nodeName)
  }

  #log(): string {
    try {
      const text = readFileSync(join(this.dir, "log", `${this.nodeName}.log`), "utf8")
      return text.split("\n").slice(-20).join("\n")
    } catch {
      return ""
    }
  }

  #failed(reason: string): RabbitMqNodeError {
    return new RabbitMqNodeError({ reason, log: this.#log() })
  }

  async launch(): Promise<void> {
    const d = this.dir
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: join(d, "home"),
      RABBITMQ_NODENAME: this.nodeName,
      RABBITMQ_CONF_ENV_FILE: join(d, "rabbitmq-env.conf"),
      RABBITMQ_NODE_PORT: String(this.amqpPort),
      RABBITMQ_NODE_IP_ADDRESS: "127.0.0.1",
      RABBITMQ_DIST_PORT: String(this.distPort),
      RABBITMQ_CONFIG_FILE: join(d, "rabbitmq.conf"),
      RABBITMQ_MNESIA_BASE: join(d, "mnesia"),
      RABBITMQ_LOG_BASE: join(d, "log"),
      RABBITMQ_PID_FILE: join(d, "beam.pid"),
      RABBITMQ_ENABLED_PLUGINS_FILE: join(d, "enabled_plugins"),
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: "-kernel inet_dist_use_interface {127,0,0,1}"
    }
    rmSync(join(d, "beam.pid"), { force: true })
    const child = spawn(serverBinary, [], { env, stdio: "ignore", detached: false })
    this.#wrapper = child
    if (child.pid !== undefined) live.add(child.pid)
    child.once("exit", () => {
      if (child.pid !== undefined) live.delete(child.pid)
    })
    const deadline = Date.now() + startTimeoutMs
    for (;;) {
      if (this.#beam === undefined) {
        try {
          const pid = Number(readFileSync(join(d, "beam.pid"), "utf8").trim())
          if (Number.isSafeInteger(pid) && pid > 0) {
            this.#beam = pid
            live.add(pid)
          }
        } catch {
          // not written yet
        }
      }
      if (
        this.#beam !== undefined &&
        (await accepts(this.amqpPort)) &&
        (await accepts(this.streamPort)) &&
        (this.amqpsPort === undefined || (await accepts(this.amqpsPort))) &&
        (this.streamTlsPort === undefined || (await accepts(this.streamTlsPort)))
      )
        return
      if (child.exitCode !== null && this.#beam === undefined)
        throw this.#failed(`rabbitmq-server exited (${child.exitCode}) while starting`)
      if (Date.now() > deadline) {
        await this.kill()
        throw this.#failed(
          `did not accept on ${this.amqpPort}/${this.streamPort} within ${startTimeoutMs} ms`
        )
      }
      await sleep(100)
    }
  }

  async kill(): Promise<void> {
    const pid = this.#beam
    this.#beam = undefined
    const wrapper = this.#wrapper
    this.#wrapper = undefined
    for (const p of [pid, wrapper?.pid]) {
      if (p === undefined) continue
      try {
        process.kill(p, "SIGKILL")
      } catch {
        // already gone
      }
    }
    while (pid !== undefined && alive(pid)) await sleep(20)
    if (pid !== undefined) live.delete(pid)
    // the node's helpers (epmd stays: it is shared; erl_child_setup dies with the beam)
  }

  pause(): void {
    if (this.#beam !== undefined) process.kill(this.#beam, "SIGSTOP")
  }

  resume(): void {
    if (this.#beam !== undefined) process.kill(this.#beam, "SIGCONT")
  }

  async restart(): Promise<void> {
    if (this.#stopped) throw this.#failed("restart() after stop()")
    await this.kill()
    await this.launch()
  }

  async stop(): Promise<void> {
    this.#stopped = true
    if (this.#beam !== undefined) {
      try {
        process.kill(this.#beam, "SIGCONT")
      } catch {
        // gone
      }
    }
    await this.kill()
    await rm(this.dir, { recursive: true, force: true })
    tempDirs.delete(this.dir)
  }
}

/** Starts a private RabbitMQ node with the stream plugin on free loopback ports (and TLS listeners with `tls`). */
export const startRabbitMqNode = async (options: RabbitMqNodeOptions = {}): Promise<PrivateRabbitMqNode> => {
  if (!rabbitMqNodeAvailable())
    throw new RabbitMqNodeError({
      reason: `${serverBinary} is not installed (apt-get install rabbitmq-server)`,
      log: ""
    })
  installExitHook()
  const dir = mkdtempSync(join(tmpdir(), "exactor-rabbitmq-"))
  tempDirs.add(dir)
  const ports = [await freePort(), await freePort(), await freePort()] as const
  const node = new RabbitMqNodeProcess(
    dir,
    ports,
    options.tls === undefined
      ? undefined
      : { options: options.tls, ports: [await freePort(), await freePort()] as const }
  )
  try {
    await node.launch()
  } catch (error) {
    await node.stop()
    throw error
  }
  return node
}
