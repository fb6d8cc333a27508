/**
 * lib/connectors/postgres/ — PostgreSQL out of a job: the two-phase-commit sink (this file) over
 * runtime/TwoPhaseCommitSink in two modes, its options, errors, connections and row writer.
 * Imports runtime/, api/, core/, internal/; never another connector, the coordinator or the CLI.
 *
 * Prepared mode (a true 2PC participant, as Flink's XA sink): records go into the open transaction
 * as they arrive; at barrier n it is `PREPARE TRANSACTION '<job>/<sink>/<i>/<n>'` with a commit-log
 * row inside, and the snapshot keeps only the gid; `complete n` is `COMMIT PREPARED`. Local mode
 * (servers without prepared transactions): records stay in the snapshot and are written at
 * `complete n` in one local transaction with the commit-log row. Invariants: a commit is idempotent
 * (a gid no longer prepared is committed iff its commit-log row exists); a restore rolls back every
 * prepared transaction of this instance newer than the restored checkpoint, so none lingers.
 */
import * as Effect from "effect/Effect"
import * as Semaphore from "effect/Semaphore"
import type * as Scope from "effect/Scope"
import { pgUrlFromEnv } from "../../brokers/PostgresUrl.ts"
import { makeRowWriter } from "./PostgresRows.ts"
import { isUnavailable, literal, makeSession, type Conn, type Session } from "./PostgresSession.ts"
import { type PostgresSinkError, PgSinkQueryFailed, PgSinkTransactionMissing } from "./PostgresSinkErrors.ts"
import { gidOf, type PostgresSinkOptions, type Resolved, resolveOptions } from "./PostgresSinkOptions.ts"
import {
  checkPendingRecords,
  makeTwoPhaseCommitSink,
  type PendingRecords,
  type PendingTransaction,
  type SinkSnapshot,
  type TransactionalResource,
  TransactionInDoubt,
  type TwoPhaseCommitError,
  type TwoPhaseCommitWriter
} from "../../runtime/TwoPhaseCommitSink.ts"

export { pgUrlFromEnv }

/** Everything the PostgreSQL sink fails with: its own errors and the two-phase-commit protocol's. */
export type PostgresSinkFailure = TwoPhaseCommitError | PostgresSinkError

/** What a pending transaction keeps in the snapshot in prepared mode: its global transaction id. */
export interface PreparedGid {
  readonly gid: string
}

export type PostgresSinkWriter<A> = TwoPhaseCommitWriter<
  A,
  PostgresSinkFailure,
  PreparedGid | PendingRecords<A>
>

const isRecord = (u: unknown): u is never => u !== undefined

const inDoubt = (sink: string, checkpoint: number) => (e: PostgresSinkError) =>
  isUnavailable(e) ? new TransactionInDoubt({ sink, checkpoint, cause: e }) : e

// ---------------------------------------------------------------------------------------------
// Prepared mode

interface PreparedTxn<A> {
  readonly conn: Conn
  readonly n: number
  gid: string | undefined
  checkpoint: number | undefined
  /** table mode: records not yet sent, fewer than `insertBatchRows` (sent at the latest at preCommit) */
  buffer: Array<A>
}

const preparedResource = <A>(o: Resolved<A>, s: Session) => {
  const sink = o.id
  const writeRows = makeRowWriter(o)
  let txConn: Conn | undefined

  /** COMMIT PREPARED; a gid no longer prepared is success iff its commit-log row exists. */
  const commitGid = (gid: string, checkpoint: number) =>
    Effect.gen(function* () {
      const c = yield* s.session
      const done = yield* s.query(c, "COMMIT PREPARED", checkpoint, `COMMIT PREPARED ${literal(gid)}`).pipe(
        Effect.as(true),
        Effect.catchIf(
          (e) => e._tag === "PgSinkQueryFailed" && e.sqlstate === "42704",
          () => Effect.succeed(false)
        )
      )
      if (done) return
      if (yield* s.committed(c, checkpoint))
        return yield* Effect.logDebug(`${sink}: ${gid} already committed`)
      return yield* new PgSinkTransactionMissing({ sink, checkpoint, gid })
    })

  const resource: TransactionalResource<PreparedTxn<A>, A, PostgresSinkError, PreparedGid> = {
    beginTransaction: (n) =>
      Effect.gen(function* () {
        if (txConn === undefined || txConn.dead !== undefined) {
          if (txConn) yield* s.close(txConn)
          txConn = undefined
          txConn = yield* s.transactionConnection(n)
        }
        const conn = txConn
        yield* s.query(conn, "BEGIN", n, "BEGIN")
        return { conn, n, gid: undefined, checkpoint: undefined, buffer: [] }
      }),
    // table mode sends full multi-row INSERTs only; the rest waits in the buffer
    write: (t, records) =>
      Effect.suspend(() => {
        if (o.table === undefined) return writeRows(t.conn, t.n, records)
        for (const r of records) t.buffer.push(r)
        if (t.buffer.length < o.insertBatchRows) return Effect.void
        const full = t.buffer.length - (t.buffer.length % o.insertBatchRows)
        const ready = t.buffer.slice(0, full)
        t.buffer = t.buffer.slice(full)
        return writeRows(t.conn, t.n, ready)
      }),
    preCommit: (t, n) =>
      Effect.gen(function* () {
        const gid = gidOf(o, n)
        const rest = t.buffer
        t.buffer = []
        yield* writeRows(t.conn, n, rest)
        yield* s.logRow(t.conn, n)
        const r = yield* s.query(t.conn, "PREPARE TRANSACTION", n, `PREPARE TRANSACTION ${literal(gid)}`)
        // PREPARE in a transaction that already failed rolls it back and answers ROLLBACK
        if (r.command !== "PREPARE")
          return yield* new PgSinkQueryFailed({
            sink,
            operation: "PREPARE TRANSACTION",
            checkpoint: n,
            sqlstate: undefined,
            cause: `the server answered ${r.command}: the transaction had failed and was rolled back`
          })
        t.gid = gid
        t.checkpoint = n
        return { gid }
      }),
    commit: (t) =>
      commitGid(t.gid ?? gidOf(o, t.n), t.checkpoint ?? t.n).pipe(
        Effect.mapError(inDoubt(sink, t.checkpoint ?? t.n))
      ),
    recoverAndCommit: (p: PendingTransaction<PreparedGid>) => commitGid(p.gid, p.checkpoint),
    // a prepared transaction is never rolled back here: its gid is in a snapshot, and a restore
    // either commits it (checkpoint kept) or rolls it back (newer than the restored checkpoint)
    abort: (t) =>
      Effect.suspend(() => {
        if (t.gid !== undefined || t.conn.dead !== undefined) return Effect.void
        return s.query(t.conn, "ROLLBACK", t.n, "ROLLBACK").pipe(
          Effect.asVoid,
          Effect.catch(() => s.close(t.conn))
        )
      }),
    forgetCommitted: () => Effect.flatMap(s.session, (c) => Effect.asVoid(s.forgetCommitted(c))),
    isRecord,
    checkPending: (entry) =>
      typeof entry.gid === "string" && entry.gid.startsWith(o.gidPrefix)
        ? undefined
        : `gid is not a transaction id of ${sink}`
  }

  /** ROLLBACK PREPARED of this instance's gids newer than `checkpoint` (left by a crash between prepare and the checkpoint). */
  const rollbackNewer = (checkpoint: number) =>
    Effect.gen(function* () {
      const c = yield* s.session
      const r = yield* s.query<{ gid: string }>(
        c,
        "listing prepared transactions",
        checkpoint,
        "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND left(gid, $1) = $2",
        [o.gidPrefix.length, o.gidPrefix]
      )
      for (const { gid } of r.rows) {
        const n = Number(gid.slice(o.gidPrefix.length))
        if (!Number.isSafeInteger(n) || n <= checkpoint) continue
        yield* s.query(c, "ROLLBACK PREPARED", n, `ROLLBACK PREPARED ${literal(gid)}`).pipe(
          Effect.catchIf(
            (e) => e._tag === "PgSinkQueryFailed" && e.sqlstate === "42704",
            () => Effect.void
          )
        )
        yield* Effect.logInfo(`${sink}: rolled back ${gid}, newer than the restored checkpoint ${checkpoint}`)
      }
    })

  const close = Effect.suspend(() => (txConn ? s.close(txConn) : Effect.void))
  return { resource, rollbackNewer, close }
}

// ---------------------------------------------------------------------------------------------
// Local mode (no prepared transactions)

interface LocalTxn<A> {
  readonly n: number
  checkpoint: number | undefined
  records: ReadonlyArray<A>
}

const localResource = <A>(o: Resolved<A>, s: Session, lock: Semaphore.Semaphore) => {
  const sink = o.id
  const writeRows = makeRowWriter(o)

  /** One local transaction: the records and the commit-log row, unless the row is there already. */
  const commitLocal = (checkpoint: number, records: ReadonlyArray<A>) =>
    // uninterruptible: BEGIN ... COMMIT on the control session is never left half done by an interrupt
    Effect.uninterruptible(
      lock.withPermits(1)(
        Effect.gen(function* () {
          const c = yield* s.session
          if (yield* s.committed(c, checkpoint))
            return yield* Effect.logDebug(`${sink}: checkpoint ${checkpoint} already committed`)
          yield* s.query(c, "BEGIN", checkpoint, "BEGIN")
          const outcome = yield* Effect.gen(function* () {
            yield* s.logRow(c, checkpoint)
            yield* writeRows(c, checkpoint, records)
            yield* s.query(c, "COMMIT", checkpoint, "COMMIT")
          }).pipe(
            Effect.as("committed" as const),
            // someone else (a fenced zombie, a second restore) wrote the row first
            Effect.catchIf(
              (e) => e._tag === "PgSinkQueryFailed" && e.sqlstate === "23505",
              () => Effect.succeed("already" as const)
            ),
            Effect.onError(() =>
              c.dead === undefined
                ? s.query(c, "ROLLBACK", checkpoint, "ROLLBACK").pipe(Effect.catch(() => s.close(c)))
                : Effect.void
            )
          )
          if (outcome === "already") yield* s.query(c, "ROLLBACK", checkpoint, "ROLLBACK")
        })
      )
    )

  const resource: TransactionalResource<LocalTxn<A>, A, PostgresSinkError, PendingRecords<A>> = {
    beginTransaction: (n) => Effect.succeed({ n, checkpoint: undefined, records: [] }),
    write: () => Effect.void,
    preCommit: (t, n, records) =>
      Effect.sync(() => {
        t.checkpoint = n
        t.records = records
        return { records }
      }),
    commit: (t) =>
      commitLocal(t.checkpoint ?? t.n, t.records).pipe(Effect.mapError(inDoubt(sink, t.checkpoint ?? t.n))),
    recoverAndCommit: (p: PendingTransaction<PendingRecords<A>>) => commitLocal(p.checkpoint, p.records),
    abort: () => Effect.void,
    forgetCommitted: () => Effect.flatMap(s.session, (c) => Effect.asVoid(s.forgetCommitted(c))),
    isRecord,
    checkPending: checkPendingRecords(isRecord)
  }
  return { resource }
}

// ---------------------------------------------------------------------------------------------

/**
 * Opens the sink instance: connects, fences out older sessions of the instance and takes its
 * advisory lock, creates the commit log, runs `setup`, and (prepared mode) fails with
 * PgSinkPreparedTransactionsDisabled on a server with `max_prepared_transactions = 0`. The runtime
 * then calls `restore` before writing. Closing the scope closes the connections, which rolls back
 * the open transaction (prepared ones stay, for the next restore).
 */
export const makePostgresSink = <A>(
  options: PostgresSinkOptions<A>
): Effect.Effect<PostgresSinkWriter<A>, PostgresSinkFailure, Scope.Scope> =>
  Effect.gen(function* () {
    const o = yield* resolveOptions(options)
    const s = yield* Effect.acquireRelease(
      Effect.sync(() => makeSession(o as Resolved<unknown>)),
      (s) => s.closeAll
    )
    yield* s.session
    const sinkOptions = {
      sink: o.id,
      maxTransactionRecords: o.maxRecords,
      maxPendingTransactions: o.maxPendingTransactions
    }
    if (o.mode === "local") {
      const lock = yield* Semaphore.make(1)
      const { resource } = localResource(o, s, lock)
      return (yield* makeTwoPhaseCommitSink(resource, sinkOptions)) as PostgresSinkWriter<A>
    }
    const p = yield* Effect.acquireRelease(
      Effect.sync(() => preparedResource(o, s)),
      (p) => p.close
    )
    const inner = yield* makeTwoPhaseCommitSink(p.resource, sinkOptions)
    const writer: TwoPhaseCommitWriter<A, PostgresSinkFailure, PreparedGid> = {
      ...inner,
      restore: (snapshot: SinkSnapshot<PreparedGid> | undefined) => {
        const c: unknown = snapshot === undefined ? 0 : snapshot.checkpoint
        // an invalid snapshot is left to inner.restore to name; nothing is rolled back for it
        const cleanup = typeof c === "number" && Number.isSafeInteger(c) ? p.rollbackNewer(c) : Effect.void
        return Effect.andThen(cleanup, inner.restore(snapshot))
      }
    }
    return writer as PostgresSinkWriter<A>
  })
