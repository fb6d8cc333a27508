/**
 * PostgreSQL for `npm run brokers`: use the server at `EXACTOR_PG_URL` if it answers (saying its
 * `max_prepared_transactions`), else for a URL on this host start a local cluster of our own with
 * `max_prepared_transactions = 64` (kept in `EXACTOR_PG_DATA`, default `<tmp>/exactor-pg-<port>`),
 * else `docker compose up -d --wait postgres`. Invariant: a server that answers is never restarted
 * or reconfigured, and no server is started for a URL that is not this host.
 */
import { execFile } from "node:child_process"
import { chownSync, existsSync, mkdirSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import pg from "pg"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { causeMessage } from "../internal/causeMessage.ts"
import { postgresBinDir } from "./PostgresServer.ts"
import { pgUrlFromEnv } from "./PostgresUrl.ts"

const run = promisify(execFile)

export class PostgresUnavailable extends Data.TaggedError("PostgresUnavailable")<{
  readonly url: string
  readonly reason: string
  readonly remedy: string
}> {
  override get message(): string {
    return `PostgreSQL at ${this.url} is not reachable (${this.reason}); ${this.remedy}`
  }
}

export interface PostgresStatus {
  readonly url: string
  readonly how: "already running" | "started a local cluster" | "started with docker compose"
  /** 0 means the sink needs `mode: "local"` there */
  readonly maxPreparedTransactions: number
}

const probe = (url: string) =>
  Effect.tryPromise({
    try: async () => {
      const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 })
      c.on("error", () => undefined)
      await c.connect()
      try {
        const r = await c.query<{ max_prepared_transactions: string }>("SHOW max_prepared_transactions")
        return Number(r.rows[0]?.max_prepared_transactions ?? 0)
      } finally {
        await c.end().catch(() => undefined)
      }
    },
    catch: (e) => causeMessage(e)
  })

const localHosts = new Set(["127.0.0.1", "localhost", "::1", "[::1]"])

/** initdb (once) and pg_ctl start of a cluster of our own on the URL's port; as `postgres` when root. */
const startLocal = (url: URL, bin: string) =>
  Effect.tryPromise({
    try: async () => {
      const port = url.port === "" ? "5432" : url.port
      const dir = process.env.EXACTOR_PG_DATA ?? join(tmpdir(), `exactor-pg-${port}`)
      const root = process.getuid?.() === 0
      const as = (cmd: string, args: ReadonlyArray<string>) =>
        root
          ? run("runuser", ["-u", "postgres", "--", join(bin, cmd), ...args])
          : run(join(bin, cmd), [...args])
      mkdirSync(dir, { recursive: true })
      if (root) {
        const uid = Number((await run("id", ["-u", "postgres"])).stdout.trim())
        const gid = Number((await run("id", ["-g", "postgres"])).stdout.trim())
        chownSync(dir, uid, gid)
      }
      const data = join(dir, "data")
      const user = decodeURIComponent(url.username) || "postgres"
      if (!existsSync(join(data, "PG_VERSION"))) await as("initdb", ["-D", data, "-A", "trust", "-U", user])
      const o = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c max_prepared_transactions=64`
      await as("pg_ctl", ["-D", data, "-o", o, "-l", join(dir, "pg.log"), "-w", "start"])
      const db = url.pathname.slice(1)
      if (db !== "" && db !== "postgres")
        await as("createdb", ["-h", dir, "-p", port, "-U", user, db]).catch(() => undefined)
    },
    catch: (e) => causeMessage(e)
  })

const compose = Effect.tryPromise({
  try: () =>
    run("docker", [
      "compose",
      "-f",
      fileURLToPath(new URL("../../compose.yaml", import.meta.url)),
      "up",
      "-d",
      "--wait",
      "postgres"
    ]),
  catch: (e) => causeMessage(e)
})

/** Makes sure PostgreSQL answers at `url` (default `EXACTOR_PG_URL`), starting it if needed and possible. */
export const ensurePostgres = (
  url: string = pgUrlFromEnv()
): Effect.Effect<PostgresStatus, PostgresUnavailable> =>
  Effect.gen(function* () {
    const first = yield* Effect.result(probe(url))
    if (first._tag === "Success")
      return { url, how: "already running" as const, maxPreparedTransactions: first.success }
    const parsed = URL.canParse(url) ? new URL(url) : undefined
    const unavailable = (reason: string, remedy: string) => new PostgresUnavailable({ url, reason, remedy })
    if (!parsed || !localHosts.has(parsed.hostname))
      return yield* unavailable(first.failure, "start that server, or set EXACTOR_PG_URL to one that runs")
    const bin = postgresBinDir()
    const started = bin
      ? yield* Effect.result(startLocal(parsed, bin).pipe(Effect.as("started a local cluster" as const)))
      : yield* Effect.result(compose.pipe(Effect.as("started with docker compose" as const)))
    if (started._tag === "Failure")
      return yield* unavailable(
        `${first.failure}; starting it failed: ${started.failure}`,
        "install PostgreSQL (apt-get install postgresql) or Docker, or set EXACTOR_PG_URL"
      )
    const after = yield* Effect.result(probe(url))
    if (after._tag === "Failure") return yield* unavailable(after.failure, "see the server log")
    return { url, how: started.success, maxPreparedTransactions: after.success }
  })
