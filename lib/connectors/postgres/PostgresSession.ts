/**
 * A PostgreSQL sink instance's connections: the control session that holds the instance's advisory
 * lock (zombie fencing), commits prepared transactions and reads the commit log, and the
 * transaction connection the open transaction writes on.
 * Invariants: nothing is written unless the control session holds the lock (a transaction
 * connection checks that it does when it opens); a process's first session terminates every other
 * backend of the same instance (a paused zombie), later reconnects of the same process never do.
 */
import { createHash } from "node:crypto"
import pg from "pg"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import {
  classify,
  PgSinkFenced,
  PgSinkPreparedTransactionsDisabled,
  type PgSinkUnavailable,
  type PostgresSinkError
} from "./PostgresSinkErrors.ts"
import { quoteQualified, type Resolved } from "./PostgresSinkOptions.ts"

/** A connection; `dead` is set once it errored or ended. */
export interface Conn {
  readonly client: pg.Client
  dead: unknown
}

export type QueryError = Exclude<PostgresSinkError, PgSinkFenced>

/** Retries of taking the advisory lock while another session holds it (jittered 50-500 ms). */
export const lockRetrySchedule: Schedule.Schedule<unknown> = Schedule.min([
  Schedule.exponential("50 millis", 1.5),
  Schedule.spaced("500 millis")
]).pipe(Schedule.jittered)

/** Two non-negative int4 keys for `pg_advisory_lock(k1, k2)` and a unique `application_name`, from the instance id. */
export const instanceKeys = (id: string) => {
  const h = createHash("sha256").update(id).digest()
  return {
    k1: h.readUInt32BE(0) & 0x7fffffff,
    k2: h.readUInt32BE(4) & 0x7fffffff,
    applicationName: `exactor ${h.toString("hex").slice(0, 12)} ${id}`.slice(0, 63)
  }
}

export const makeSession = (o: Resolved<unknown>) => {
  const sink = o.id
  const { k1, k2, applicationName } = instanceKeys(o.id)
  const log = quoteQualified(o.commitLog)
  let control: (Conn & { readonly backendPid: number }) | undefined
  let fencedOthers = false
  let setupDone = false

  const open = Effect.tryPromise({
    try: async () => {
      const client = new pg.Client({
        connectionString: o.url,
        application_name: applicationName,
        keepAlive: true,
        connectionTimeoutMillis: 5000
      })
      const c: Conn = { client, dead: undefined }
      client.on("error", (e) => (c.dead ??= e))
      client.on("end", () => (c.dead ??= new Error("connection ended")))
      try {
        await client.connect()
      } catch (e) {
        c.dead ??= e
        await client.end().catch(() => undefined)
        throw e
      }
      return c
    },
    catch: classify(sink, "connecting", 0)
  })

  /** Runs one statement on `c`, typed errors; `record` names the data if the server rejects it. */
  const query = <R extends pg.QueryResultRow = pg.QueryResultRow>(
    c: Conn,
    operation: string,
    checkpoint: number,
    text: string,
    values?: ReadonlyArray<unknown>,
    record?: unknown
  ) =>
    Effect.tryPromise({
      try: () => c.client.query<R>(text, values as Array<unknown> | undefined),
      catch: classify(sink, operation, checkpoint, record)
    })

  const close = (c: Conn) =>
    Effect.promise(async () => {
      c.dead ??= new Error("closed")
      await c.client.end().catch(() => undefined)
    })

  const createCommitLog = (c: Conn) =>
    query(
      c,
      "creating the commit log",
      0,
      `CREATE TABLE IF NOT EXISTS ${log} (job text NOT NULL, sink text NOT NULL, instance integer NOT NULL, checkpoint bigint NOT NULL, committed_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (job, sink, instance, checkpoint))`
    ).pipe(
      // two instances creating it at once: one of them sees a unique violation on the catalog
      Effect.catchIf(
        (e) => e._tag === "PgSinkQueryFailed" && (e.sqlstate === "23505" || e.sqlstate === "42P07"),
        () => Effect.void
      )
    )

  const checkPreparedEnabled = (c: Conn) =>
    Effect.gen(function* () {
      const r = yield* query<{ max_prepared_transactions: string }>(
        c,
        "reading max_prepared_transactions",
        0,
        "SHOW max_prepared_transactions"
      )
      if (Number(r.rows[0]?.max_prepared_transactions ?? 0) === 0)
        return yield* new PgSinkPreparedTransactionsDisabled({
          sink,
          needed: o.maxPendingTransactions + 1
        })
    })

  /** Takes the advisory lock on `c`, retrying while another session holds it, up to `lockTimeout`. */
  const takeLock = (c: Conn) =>
    query<{ locked: boolean }>(
      c,
      "taking the advisory lock",
      0,
      "SELECT pg_try_advisory_lock($1, $2) AS locked",
      [k1, k2]
    ).pipe(
      Effect.flatMap((r) =>
        r.rows[0]?.locked === true
          ? Effect.void
          : Effect.fail(new PgSinkFenced({ sink, lockTimeoutMs: o.lockTimeoutMs }))
      ),
      Effect.retry({
        schedule: lockRetrySchedule.pipe(Schedule.upTo({ duration: Duration.millis(o.lockTimeoutMs) })),
        while: (e) => e._tag === "PgSinkFenced"
      })
    )

  /** The live control session, else a new one that holds the lock (and, the first time, fences out other sessions). */
  const session: Effect.Effect<Conn, PostgresSinkError> = Effect.suspend(() => {
    if (control && control.dead === undefined) return Effect.succeed(control)
    const previous = control
    control = undefined
    return Effect.gen(function* () {
      if (previous) yield* close(previous)
      const c = yield* open
      return yield* Effect.gen(function* () {
        if (o.mode === "prepared") yield* checkPreparedEnabled(c)
        if (!fencedOthers) {
          // a paused zombie of this instance keeps its sessions (and the lock) open: end them
          yield* query(
            c,
            "terminating older sessions of this instance",
            0,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()",
            [applicationName]
          )
          fencedOthers = true
        }
        yield* takeLock(c)
        const pid = yield* query<{ pid: number }>(
          c,
          "reading the backend pid",
          0,
          "SELECT pg_backend_pid() AS pid"
        )
        if (!setupDone) {
          yield* createCommitLog(c)
          if (o.setup !== undefined) yield* query(c, "running setup", 0, o.setup)
          setupDone = true
        }
        const s = Object.assign(c, { backendPid: Number(pid.rows[0]?.pid) })
        control = s
        return s as Conn
      }).pipe(Effect.onError(() => close(c)))
    })
  })

  /** A new transaction connection, once it has checked that this process's control session holds the lock. */
  const transactionConnection = (checkpoint: number): Effect.Effect<Conn, PostgresSinkError> =>
    Effect.gen(function* () {
      yield* session
      const holder = control?.backendPid ?? -1
      const c = yield* open
      const r = yield* query<{ n: string }>(
        c,
        "checking the lock holder",
        checkpoint,
        "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND classid = $1 AND objid = $2 AND objsubid = 2 AND granted AND pid = $3",
        [k1, k2, holder]
      ).pipe(Effect.onError(() => close(c)))
      if (Number(r.rows[0]?.n) !== 1) {
        yield* close(c)
        return yield* new PgSinkFenced({ sink, lockTimeoutMs: 0 })
      }
      return c
    })

  /** Whether checkpoint `checkpoint` of this instance is in the commit log (its transaction committed). */
  const committed = (c: Conn, checkpoint: number) =>
    query(
      c,
      "reading the commit log",
      checkpoint,
      `SELECT 1 FROM ${log} WHERE job = $1 AND sink = $2 AND instance = $3 AND checkpoint = $4`,
      [o.job, o.sink, o.instance, checkpoint]
    ).pipe(Effect.map((r) => r.rows.length > 0))

  /** The statement (inside a transaction) that records the commit of `checkpoint`. */
  const logRow = (c: Conn, checkpoint: number) =>
    query(
      c,
      "writing the commit log",
      checkpoint,
      `INSERT INTO ${log} (job, sink, instance, checkpoint) VALUES ($1, $2, $3, $4)`,
      [o.job, o.sink, o.instance, checkpoint]
    )

  const forgetCommitted = (c: Conn) =>
    query(
      c,
      "clearing the commit log",
      0,
      `DELETE FROM ${log} WHERE job = $1 AND sink = $2 AND instance = $3`,
      [o.job, o.sink, o.instance]
    )

  const closeAll = Effect.suspend(() => (control ? close(control) : Effect.void))

  return { session, transactionConnection, query, close, committed, logRow, forgetCommitted, closeAll, open }
}

export type Session = ReturnType<typeof makeSession>

/** `'text'` as an SQL string literal (for PREPARE TRANSACTION and COMMIT PREPARED, which take no parameters). */
export const literal = (text: string): string => `'${text.replace(/'/g, "''")}'`

/** Whether a typed error means the server or connection went away (the outcome of a commit is then unknown). */
export const isUnavailable = (e: { readonly _tag: string }): e is PgSinkUnavailable =>
  e._tag === "PgSinkUnavailable"
