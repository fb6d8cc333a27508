/**
 * A private, killable PostgreSQL cluster for tests and `exactor chaos --postgres-crashes`: `initdb`
 * into a fresh temp dir, `pg_ctl start` on a free loopback port with `max_prepared_transactions`
 * set, SIGKILL of the postmaster and every backend (a crash), restart on the same port and data.
 * Invariant: it never touches the machine's shared server; `stop()` leaves no process and no dir.
 */
import { execFile } from "node:child_process"
import { accessSync, chownSync, constants, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { delimiter, join } from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { promisify } from "node:util"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { causeMessage } from "../internal/causeMessage.ts"

const run = promisify(execFile)

export class PostgresServerError extends Data.TaggedError("PostgresServerError")<{
  readonly step: string
  readonly cause: unknown
  /** the last lines of the server log */
  readonly log: string
}> {
  override get message(): string {
    const tail = this.log === "" ? "" : `\n${this.log}`
    return `private postgres: ${this.step} failed: ${causeMessage(this.cause)}${tail}`
  }
}

export interface PostgresServerOptions {
  /** `max_prepared_transactions` of the server; default 64. 0 = PostgreSQL's default (no PREPARE TRANSACTION). */
  readonly maxPreparedTransactions?: number
}

export interface TestPostgresServer {
  /** `postgres://postgres@127.0.0.1:<port>/postgres`; the same after `restart()` */
  readonly url: string
  readonly port: number
  /** pid of the running postmaster, undefined after `kill()` / `stop()` */
  readonly pid: number | undefined
  /** SIGKILL of the postmaster and its children (a crash), waits until the postmaster is gone. */
  kill(): Promise<void>
  /** Starts again on the same port and data (crash recovery included), killing a running one first. */
  restart(): Promise<void>
  /** Immediate shutdown, then removes the data dir. Cannot be restarted afterwards. */
  stop(): Promise<void>
}

const pgBinDirs = (): Array<string> => {
  const dirs = ["17", "16", "15", "14", "13"].map((v) => `/usr/lib/postgresql/${v}/bin`)
  return [...dirs, ...(process.env.PATH ?? "").split(delimiter).filter((d) => d !== "")]
}

/** The dir holding `initdb` and `pg_ctl` (Debian's /usr/lib/postgresql/<v>/bin, else PATH). */
export const postgresBinDir = (): string | undefined => {
  for (const dir of pgBinDirs()) {
    try {
      accessSync(join(dir, "initdb"), constants.X_OK)
      accessSync(join(dir, "pg_ctl"), constants.X_OK)
      return dir
    } catch {
      // not here: try the next dir
    }
  }
  return undefined
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = createServer()
    s.once("error", reject)
    s.listen(0, "127.0.0.1", () => {
      const a = s.address()
      const port = typeof a === "object" && a !== null ? a.port : 0
      s.close(() => resolve(port))
    })
  })

const alive = (pid: number): boolean => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    // a zombie (state Z) still has a /proc entry but holds nothing
    return !/^\d+ \(.*\) Z/.test(stat)
  } catch {
    return false
  }
}

const childrenOf = (pid: number): Array<number> => {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
      .trim()
      .split(/\s+/)
      .filter((s) => s !== "")
      .map(Number)
  } catch {
    return []
  }
}

const live = new Set<PostgresServerProcess>()
let exitHookInstalled = false
const installExitHook = () => {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.once("exit", () => {
    for (const s of live) s.killSync()
  })
}

class PostgresServerProcess implements TestPostgresServer {
  readonly dir: string
  readonly bin: string
  readonly maxPrepared: number
  port = 0
  #pid: number | undefined
  #stopped = false

  constructor(dir: string, bin: string, maxPrepared: number) {
    this.dir = dir
    this.bin = bin
    this.maxPrepared = maxPrepared
  }

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`
  }
  get pid(): number | undefined {
    return this.#pid
  }
  get data(): string {
    return join(this.dir, "data")
  }

  /** root cannot run initdb or the server: run them as the `postgres` user */
  #asPostgres(cmd: string, args: ReadonlyArray<string>) {
    const exe = join(this.bin, cmd)
    return process.getuid?.() === 0
      ? run("runuser", ["-u", "postgres", "--", exe, ...args])
      : run(exe, [...args])
  }

  #log(): string {
    try {
      return readFileSync(join(this.dir, "pg.log"), "utf8").trim().split("\n").slice(-15).join("\n")
    } catch {
      return ""
    }
  }

  #fail(step: string) {
    return (cause: unknown) => new PostgresServerError({ step, cause, log: this.#log() })
  }

  async init(): Promise<void> {
    if (process.getuid?.() === 0) {
      const { stdout } = await run("id", ["-u", "postgres"])
      const { stdout: gid } = await run("id", ["-g", "postgres"])
      chownSync(this.dir, Number(stdout.trim()), Number(gid.trim()))
    }
    await this.#asPostgres("initdb", ["-D", this.data, "-A", "trust", "-U", "postgres", "--no-sync"])
    this.port = await freePort()
  }

  async launch(): Promise<void> {
    const o = [
      `-p ${this.port}`,
      `-k ${this.dir}`,
      "-c listen_addresses=127.0.0.1",
      `-c max_prepared_transactions=${this.maxPrepared}`,
      "-c fsync=on"
    ].join(" ")
    await this.#asPostgres("pg_ctl", [
      "-D",
      this.data,
      "-o",
      o,
      "-l",
      join(this.dir, "pg.log"),
      "-w",
      "start"
    ])
    const first = readFileSync(join(this.data, "postmaster.pid"), "utf8").split("\n")[0]
    this.#pid = Number(first)
  }

  killSync(): void {
    const pid = this.#pid
    if (pid === undefined) return
    for (const p of [pid, ...childrenOf(pid)]) {
      try {
        process.kill(p, "SIGKILL")
      } catch {
        // gone already
      }
    }
    this.#pid = undefined
  }

  async kill(): Promise<void> {
    const pid = this.#pid
    this.killSync()
    if (pid === undefined) return
    const deadline = Date.now() + 15_000
    while (alive(pid) && Date.now() < deadline) await sleep(50)
  }

  async restart(): Promise<void> {
    if (this.#stopped) throw new Error("the server was stopped")
    await this.kill()
    // a start can still find the killed postmaster's lock file in use for a moment: retry
    for (let attempt = 0; ; attempt++) {
      try {
        await this.launch()
        return
      } catch (e) {
        if (attempt >= 20) throw e
        await sleep(250)
      }
    }
  }

  async stop(): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    live.delete(this)
    if (this.#pid !== undefined)
      await this.#asPostgres("pg_ctl", ["-D", this.data, "-m", "immediate", "-w", "stop"]).catch(() =>
        this.kill()
      )
    this.#pid = undefined
    rmSync(this.dir, { recursive: true, force: true })
  }

  start(): Effect.Effect<void, PostgresServerError> {
    return Effect.tryPromise({ try: () => this.init(), catch: this.#fail("initdb") }).pipe(
      Effect.andThen(Effect.tryPromise({ try: () => this.launch(), catch: this.#fail("pg_ctl start") }))
    )
  }
}

/** Starts a private cluster; the caller stops it. */
export const startPostgresServer = (
  options: PostgresServerOptions = {}
): Effect.Effect<TestPostgresServer, PostgresServerError> =>
  Effect.gen(function* () {
    const bin = postgresBinDir()
    if (bin === undefined)
      return yield* new PostgresServerError({
        step: "finding initdb and pg_ctl",
        cause: "not in /usr/lib/postgresql/<version>/bin nor on PATH (apt-get install postgresql)",
        log: ""
      })
    const parent = join(tmpdir(), "exactor-pg")
    mkdirSync(parent, { recursive: true })
    const dir = mkdtempSync(join(parent, "c-"))
    const server = new PostgresServerProcess(dir, bin, options.maxPreparedTransactions ?? 64)
    installExitHook()
    live.add(server)
    yield* server.start().pipe(Effect.onError(() => Effect.promise(() => server.stop())))
    return server
  })

/** A private cluster for the life of the scope. */
export const scopedPostgresServer = (
  options: PostgresServerOptions = {}
): Effect.Effect<TestPostgresServer, PostgresServerError, Scope.Scope> =>
  Effect.acquireRelease(startPostgresServer(options), (s) => Effect.promise(() => s.stop()))
