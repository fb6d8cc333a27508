/**
 * The PostgreSQL sink's options, their defaults (written once, here) and their validation at start-up.
 * Invariant: `resolveOptions` yields a complete `Resolved` (every default applied, the gid prefix
 * derived and short enough for PostgreSQL's 200-byte gids) or fails with `PgSinkOptionsInvalid`
 * naming the first bad field.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { redactUrl } from "../../internal/redactUrl.ts"
import { PgSinkOptionsInvalid } from "./PostgresSinkErrors.ts"

/** A user-supplied statement run once per record (e.g. an upsert), `$1..$n` bound from `params(record)`. */
export interface PostgresStatement<A> {
  readonly sql: string
  readonly params: (record: A) => ReadonlyArray<unknown>
}

export interface PostgresSinkOptions<A = unknown> {
  /** `postgres://` URL. Required. */
  readonly url: string
  /** Job name; part of gids and of the commit-log key. Required. */
  readonly job: string
  /** Sink operator name; part of gids and of the commit-log key. Required. */
  readonly sink: string
  /** Index of this sink instance (integer >= 0). Required. */
  readonly instance: number
  /** Target table (may be schema-qualified, `schema.table`): records are inserted with multi-row INSERTs of `columns`. Either this or `write`. */
  readonly table?: string
  /** Columns of `table`, filled from the record's fields of the same name. Required with `table`. */
  readonly columns?: ReadonlyArray<string>
  /** A statement per record instead of `table` (an upsert, several tables). */
  readonly write?: PostgresStatement<A>
  /** SQL run once when the sink opens, outside any transaction (e.g. `CREATE TABLE IF NOT EXISTS ...`). Default none. */
  readonly setup?: string
  /** `"prepared"` (default): PREPARE TRANSACTION at the barrier, the snapshot keeps the gid. `"local"`: for servers without prepared transactions, records kept in the snapshot and written in one local transaction at `complete n`. */
  readonly mode?: "prepared" | "local"
  /** The commit-log table (created if missing). Default `exactor_commit_log`. */
  readonly commitLog?: string
  /** Records per transaction. Default 100,000 in prepared mode, 10,000 in local mode (they are in the snapshot); at least 1. */
  readonly maxTransactionRecords?: number
  /** Rows per multi-row INSERT. Default 1,000 (at most 65,535 parameters per statement). */
  readonly insertBatchRows?: number
  /** Pre-committed transactions beyond which input waits while a commit is in flight. Default 2; at least 1. */
  readonly maxPendingTransactions?: number
  /** How long to keep trying to take the instance's advisory lock. Default 30 seconds. */
  readonly lockTimeout?: Duration.Input
}

export interface Resolved<A = unknown> {
  readonly url: string
  readonly job: string
  readonly sink: string
  readonly instance: number
  /** `<job>/<sink>/<instance>`: in errors, logs and `application_name` */
  readonly id: string
  /** `<job>/<sink>/<instance>/`: every gid of this instance starts with it */
  readonly gidPrefix: string
  readonly table: string | undefined
  readonly columns: ReadonlyArray<string>
  readonly write: PostgresStatement<A> | undefined
  readonly setup: string | undefined
  readonly mode: "prepared" | "local"
  readonly commitLog: string
  readonly maxRecords: number
  readonly insertBatchRows: number
  readonly maxPendingTransactions: number
  readonly lockTimeoutMs: number
}

/** The gid of this instance's transaction pending under `checkpoint`. */
export const gidOf = (o: Pick<Resolved, "gidPrefix">, checkpoint: number): string =>
  `${o.gidPrefix}${checkpoint}`

/** `name` or `schema.name`, each part an SQL identifier: quoted for use in a statement. */
export const quoteQualified = (name: string): string =>
  name
    .split(".")
    .map((p) => `"${p.replace(/"/g, '""')}"`)
    .join(".")

const identifier = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/
const qualified = (s: unknown): s is string =>
  typeof s === "string" && s.split(".").length <= 2 && s.split(".").every((p) => identifier.test(p))

const millisOf = (field: string, input: Duration.Input | undefined, fallback: number) => {
  if (input === undefined) return Effect.succeed(fallback)
  const d = Duration.fromInput(input)
  if (Option.isNone(d) || !Duration.isFinite(d.value) || Duration.toMillis(d.value) <= 0)
    return Effect.fail(
      new PgSinkOptionsInvalid({ field, value: input, reason: "must be a finite positive duration" })
    )
  return Effect.succeed(Duration.toMillis(d.value))
}

/** Applies defaults and checks every option, failing with the first bad field. */
export const resolveOptions = <A>(
  o: PostgresSinkOptions<A>
): Effect.Effect<Resolved<A>, PgSinkOptionsInvalid> =>
  Effect.gen(function* () {
    const bad = (field: string, value: unknown, reason: string) =>
      Effect.fail(new PgSinkOptionsInvalid({ field, value, reason }))
    const url = typeof o.url === "string" && URL.canParse(o.url) ? new URL(o.url) : undefined
    if (!url || (url.protocol !== "postgres:" && url.protocol !== "postgresql:"))
      return yield* bad(
        "url",
        typeof o.url === "string" ? redactUrl(o.url) : o.url,
        "must be a postgres:// or postgresql:// URL"
      )
    const token = /^[^/\s]{1,100}$/
    if (typeof o.job !== "string" || !token.test(o.job))
      return yield* bad("job", o.job, "must be 1-100 chars without / or whitespace")
    if (typeof o.sink !== "string" || !token.test(o.sink))
      return yield* bad("sink", o.sink, "must be 1-100 chars without / or whitespace")
    if (!Number.isSafeInteger(o.instance) || o.instance < 0)
      return yield* bad("instance", o.instance, "must be an integer >= 0")
    const gidPrefix = `${o.job}/${o.sink}/${o.instance}/`
    // 16 digits of checkpoint id must still fit into PostgreSQL's 200-byte gid
    if (Buffer.byteLength(gidPrefix) + 16 > 200)
      return yield* bad("job", o.job, "and sink together are too long for a 200-byte transaction id")
    if (o.table === undefined && o.write === undefined)
      return yield* bad("table", o.table, "or write is required")
    if (o.table !== undefined && o.write !== undefined)
      return yield* bad("write", "(statement)", "cannot be given together with table")
    if (o.table !== undefined && !qualified(o.table))
      return yield* bad("table", o.table, "must be an identifier or schema.identifier")
    const columns = o.columns ?? []
    if (
      o.table !== undefined &&
      (!Array.isArray(columns) ||
        columns.length === 0 ||
        !columns.every((c) => typeof c === "string" && identifier.test(c)))
    )
      return yield* bad("columns", o.columns, "must be a non-empty list of column names with table")
    if (
      o.write !== undefined &&
      (typeof o.write !== "object" || typeof o.write.sql !== "string" || typeof o.write.params !== "function")
    )
      return yield* bad("write", o.write, "must be { sql: string, params: (record) => values }")
    if (o.setup !== undefined && typeof o.setup !== "string")
      return yield* bad("setup", o.setup, "must be SQL text")
    const mode = o.mode ?? "prepared"
    if (mode !== "prepared" && mode !== "local")
      return yield* bad("mode", o.mode, 'must be "prepared" or "local"')
    const commitLog = o.commitLog ?? "exactor_commit_log"
    if (!qualified(commitLog))
      return yield* bad("commitLog", o.commitLog, "must be an identifier or schema.identifier")
    const maxRecords = o.maxTransactionRecords ?? (mode === "prepared" ? 100_000 : 10_000)
    if (!Number.isSafeInteger(maxRecords) || maxRecords < 1)
      return yield* bad("maxTransactionRecords", o.maxTransactionRecords, "must be an integer >= 1")
    const insertBatchRows = o.insertBatchRows ?? 1000
    if (
      !Number.isSafeInteger(insertBatchRows) ||
      insertBatchRows < 1 ||
      insertBatchRows * columns.length > 65_535
    )
      return yield* bad(
        "insertBatchRows",
        o.insertBatchRows,
        "must be an integer >= 1 with rows x columns <= 65535"
      )
    const maxPendingTransactions = o.maxPendingTransactions ?? 2
    if (!Number.isSafeInteger(maxPendingTransactions) || maxPendingTransactions < 1)
      return yield* bad("maxPendingTransactions", o.maxPendingTransactions, "must be an integer >= 1")
    const lockTimeoutMs = yield* millisOf("lockTimeout", o.lockTimeout, 30_000)
    return {
      url: o.url,
      job: o.job,
      sink: o.sink,
      instance: o.instance,
      id: `${o.job}/${o.sink}/${o.instance}`,
      gidPrefix,
      table: o.table,
      columns,
      write: o.write,
      setup: o.setup,
      mode,
      commitLog,
      maxRecords,
      insertBatchRows,
      maxPendingTransactions,
      lockTimeoutMs
    }
  })
