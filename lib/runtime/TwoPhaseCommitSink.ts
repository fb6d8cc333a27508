/**
 * Flink's TwoPhaseCommitSinkFunction as an Effect API, independent of the transport: a sink keeps
 * one open transaction, pre-commits it at barrier n and keeps it pending under n, and commits the
 * pending ones when checkpoint n completes. Invariants: pending transactions commit in creation
 * order, each exactly once (a failed or unconfirmed commit goes through `recoverAndCommit`, retried
 * per `commitRetrySchedule`, and otherwise fails typed while staying pending); no transaction holds
 * more than `maxTransactionRecords` records (the rest waits in `carry`, which is part of the snapshot).
 * A commit waits for the broker without holding the sink: writes into the open transaction and
 * snapshots go on meanwhile, and a transaction stays pending (in every snapshot) until its commit is
 * confirmed. While a commit is in flight and `maxPendingTransactions` are pending, writes wait for it,
 * so a broker that commits slower than input arrives slows the input instead of growing every snapshot.
 * Generic as Flink's `TwoPhaseCommitSinkFunction<IN, TXN, CONTEXT>` is: the transport chooses its
 * error channel `E` and what a pending transaction keeps in the snapshot (`P`): its records, for a
 * transport that cannot prepare and so replays them (RabbitMQ), or only a prepared transaction's id,
 * for one that can prepare durably.
 */
import type { SinkWriter as RuntimeSinkWriter } from "../api/Operator.ts"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Semaphore from "effect/Semaphore"
import { causeMessage } from "../internal/causeMessage.ts"

// ---------------------------------------------------------------------------------------------
// Snapshot (plain, msgpack-able data)

/** The ids every pending transaction has, whatever the transport. */
export interface PendingIds {
  /** the checkpoint it is pending under; its commit marker says this id */
  readonly checkpoint: number
  /** the transaction id: the checkpoint it was opened for (<= checkpoint); record ids are built from it */
  readonly txn: number
}

/** The payload of a transport that cannot prepare: every record of the transaction, in publish order (index = seq). */
export interface PendingRecords<Rec = unknown> {
  readonly records: ReadonlyArray<Rec>
}

/** A pre-committed transaction as the checkpoint stores it: its ids and the transport's payload `P`. */
export type PendingTransaction<P extends object = PendingRecords> = PendingIds & P

/** The sink's part of checkpoint `checkpoint`. */
export interface SinkSnapshot<P extends object = PendingRecords> {
  readonly checkpoint: number
  /** pre-committed, not yet committed transactions, oldest first */
  readonly pending: ReadonlyArray<PendingTransaction<P>>
  /** records that arrived before the barrier but did not fit into the transaction: they open the next one */
  readonly carry: ReadonlyArray<unknown>
}

// ---------------------------------------------------------------------------------------------
// Errors

/** A commit whose outcome is unknown (error, timeout, or the transaction's channel is gone): resolve with recoverAndCommit. */
export class TransactionInDoubt extends Data.TaggedError("TransactionInDoubt")<{
  readonly sink: string
  readonly checkpoint: number
  readonly cause: unknown
}> {
  override get message(): string {
    const why = causeMessage(this.cause)
    return `${this.sink}: commit of checkpoint ${this.checkpoint} is in doubt (${why})`
  }
}

/** A pending transaction that could not be committed, even by recoverAndCommit within `commitRetrySchedule`; it stays pending. */
export class SinkCommitFailed extends Data.TaggedError("SinkCommitFailed")<{
  readonly sink: string
  readonly checkpoint: number
  readonly cause: unknown
}> {
  override get message(): string {
    const why = causeMessage(this.cause)
    return `${this.sink}: transaction of checkpoint ${this.checkpoint} could not be committed: ${why}`
  }
}

/** `restore` got something that is not a snapshot of this sink. */
export class SinkSnapshotInvalid extends Data.TaggedError("SinkSnapshotInvalid")<{
  readonly sink: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.sink}: invalid sink snapshot: ${this.reason}`
  }
}

/** `snapshot(n)` with n not above the last snapshotted checkpoint. */
export class SinkCheckpointOutOfOrder extends Data.TaggedError("SinkCheckpointOutOfOrder")<{
  readonly sink: string
  readonly checkpoint: number
  readonly last: number
}> {
  override get message(): string {
    return `${this.sink}: snapshot(${this.checkpoint}) after checkpoint ${this.last}; ids must increase`
  }
}

export type TwoPhaseCommitError = SinkCommitFailed | SinkSnapshotInvalid | SinkCheckpointOutOfOrder

// ---------------------------------------------------------------------------------------------
// Contracts

/**
 * What a transport provides; `Txn` is a live handle, `Rec` a record as written (and carried in the
 * snapshot), `P` what a pending transaction keeps in the snapshot, `E` the transport's errors.
 */
export interface TransactionalResource<Txn, Rec, E, P extends object = PendingRecords<Rec>> {
  /** Opens a transaction with id `checkpointHint` (the checkpoint it is expected to belong to). */
  readonly beginTransaction: (checkpointHint: number) => Effect.Effect<Txn, E>
  /** Adds records to `txn`; `seq` of the first is the number already written to it. */
  readonly write: (txn: Txn, records: ReadonlyArray<Rec>) => Effect.Effect<void, E>
  /**
   * Flushes (or prepares) `txn`, which from now on is pending under `checkpoint`; `records` are all
   * it holds. Returns what the snapshot keeps of it, enough for `recoverAndCommit` in another process.
   */
  readonly preCommit: (txn: Txn, checkpoint: number, records: ReadonlyArray<Rec>) => Effect.Effect<P, E>
  /** Commits a pre-committed `txn`; fails with TransactionInDoubt when the outcome is unknown. */
  readonly commit: (txn: Txn) => Effect.Effect<void, E | TransactionInDoubt>
  /** Commits `pending` from its payload unless it is already committed; idempotent. */
  readonly recoverAndCommit: (pending: PendingTransaction<P>) => Effect.Effect<void, E>
  /** Discards `txn`; succeeds when it is already gone. */
  readonly abort: (txn: Txn) => Effect.Effect<void, E>
  /** Called by `restore(undefined)` (a fresh start): forget what an earlier run committed. */
  readonly forgetCommitted?: () => Effect.Effect<void, E>
  /** Whether an unknown value (from a decoded snapshot) is a record. */
  readonly isRecord: (u: unknown) => u is Rec
  /** Whether a decoded pending entry (its ids already checked) carries a valid payload; the reason if not. */
  readonly checkPending: (entry: Readonly<Record<string, unknown>>) => string | undefined
}

/**
 * The runtime's sink contract (`SinkWriter` in Operator.ts: write, snapshot at a barrier, commit
 * on `complete n`, restore after a failure, full), with the snapshot typed.
 */
export interface TwoPhaseCommitWriter<A, E, P extends object = PendingRecords>
  extends RuntimeSinkWriter<A, E> {
  /** Barrier n aligned: preCommit the open transaction, keep it pending under n, begin the next one.
   *  Returns the sink's snapshot state (plain msgpack-able data) holding every pending transaction's payload. */
  snapshot(n: number): Effect.Effect<SinkSnapshot<P>, E>
  /** After a failure: recoverAndCommit the pending transactions of `snapshot` (undefined = fresh start), abort anything open, begin a new transaction. */
  restore(snapshot: SinkSnapshot<P> | undefined): Effect.Effect<void, E>
}

export interface TwoPhaseCommitOptions {
  /** names the sink instance in errors and logs */
  readonly sink: string
  /** records per transaction, at least 1 */
  readonly maxTransactionRecords: number
  /** retries of recoverAndCommit after a failed commit; default `commitRetrySchedule` */
  readonly commitRetry?: Schedule.Schedule<unknown, unknown>
  /** pre-committed transactions beyond which writes wait while a commit is in flight; default 2, at least 1 */
  readonly maxPendingTransactions?: number
}

/**
 * `checkPending` for a transport whose payload is `PendingRecords`: the entry's `records` is an array
 * of records.
 */
export const checkPendingRecords =
  <Rec>(isRecord: (u: unknown) => u is Rec) =>
  (entry: Readonly<Record<string, unknown>>): string | undefined =>
    Array.isArray(entry.records) && entry.records.every(isRecord) ? undefined : "records are not records"

/** Retries of a commit that failed or is in doubt: exponential from 200 ms, jittered, at most 6 retries (~13 s). */
export const commitRetrySchedule: Schedule.Schedule<unknown, unknown> = Schedule.exponential(
  "200 millis",
  2
).pipe(Schedule.jittered, Schedule.upTo({ times: 6 }))

// ---------------------------------------------------------------------------------------------
// The sink

interface Open<Txn, Rec> {
  readonly txn: Txn
  readonly id: number
  readonly records: Array<Rec>
}
interface Pending<Txn, P extends object> {
  /** the live handle; undefined once restored from a snapshot (only recoverAndCommit can commit it) */
  readonly txn: Txn | undefined
  readonly snapshot: PendingTransaction<P>
}

const isCheckpointId = (u: unknown): u is number => typeof u === "number" && Number.isSafeInteger(u) && u >= 0

/** Builds the two-phase-commit SinkWriter over `resource`. Nothing is opened until `restore` or `write`. */
export const makeTwoPhaseCommitSink = <Txn, Rec, E, P extends object = PendingRecords<Rec>>(
  resource: TransactionalResource<Txn, Rec, E, P>,
  options: TwoPhaseCommitOptions
): Effect.Effect<TwoPhaseCommitWriter<Rec, E | TwoPhaseCommitError, P>> =>
  Effect.gen(function* () {
    const { sink, maxTransactionRecords: max } = options
    const maxPending = Math.max(1, options.maxPendingTransactions ?? 2)
    const retry = options.commitRetry ?? commitRetrySchedule
    const lock = yield* Semaphore.make(1)
    /** one commit at a time, in order; held while the broker commits, when `lock` is free */
    const commitLock = yield* Semaphore.make(1)
    /** +1 at every restore: a commit that was in flight across one leaves the new state alone */
    let generation = 0
    /** a commit is waiting for the broker; `settled` resolves when it is done, either way */
    let inFlight = false
    let settled = Deferred.makeUnsafe<void>()
    const settle = () => {
      inFlight = false
      const d = settled
      settled = Deferred.makeUnsafe<void>()
      Deferred.doneUnsafe(d, Effect.void)
    }
    /** Waits while a commit is in flight and `maxPending` transactions are pending (input backpressure). */
    const room: Effect.Effect<void> = Effect.suspend(() =>
      inFlight && pending.length >= maxPending ? Effect.andThen(Deferred.await(settled), room) : Effect.void
    )
    let open: Open<Txn, Rec> | undefined
    let pending: Array<Pending<Txn, P>> = []
    let carry: Array<Rec> = []
    let last = 0
    const serial = lock.withPermits(1)

    /** Opens transaction `id` and moves as much of `carry` into it as fits. */
    const begin = (id: number) =>
      Effect.gen(function* () {
        const txn = yield* resource.beginTransaction(id)
        open = { txn, id, records: [] }
        if (carry.length > 0) {
          const moved = carry.length <= max ? carry : carry.slice(0, max)
          carry = carry.length <= max ? [] : carry.slice(max)
          yield* resource.write(txn, moved)
          open.records.push(...moved)
        }
        return open
      })

    const ensureOpen = Effect.suspend(() => (open ? Effect.succeed(open) : begin(last + 1)))

    /** Commits a pending transaction from its snapshot, unless already committed (recoverAndCommit, retried). */
    const recoverOne = (p: Pending<Txn, P>) =>
      resource.recoverAndCommit(p.snapshot).pipe(
        Effect.retry(retry),
        Effect.mapError((cause) => new SinkCommitFailed({ sink, checkpoint: p.snapshot.checkpoint, cause }))
      )

    const write = (records: ReadonlyArray<Rec>) =>
      Effect.gen(function* () {
        if (records.length === 0) return
        const o = yield* ensureOpen
        if (carry.length > 0) {
          carry.push(...records)
          return
        }
        const room = max - o.records.length
        const fits = records.length <= room ? records : records.slice(0, room)
        if (fits.length > 0) {
          yield* resource.write(o.txn, fits)
          o.records.push(...fits)
        }
        if (fits.length < records.length) carry.push(...records.slice(fits.length))
      })

    const snapshot = (n: number) =>
      Effect.gen(function* () {
        if (!isCheckpointId(n) || n <= last)
          return yield* new SinkCheckpointOutOfOrder({ sink, checkpoint: n, last })
        const o = yield* ensureOpen
        const payload = yield* resource.preCommit(o.txn, n, o.records)
        pending.push({ txn: o.txn, snapshot: { checkpoint: n, txn: o.id, ...payload } })
        open = undefined
        last = n
        const snap: SinkSnapshot<P> = {
          checkpoint: n,
          pending: pending.map((p) => p.snapshot),
          carry: [...carry]
        }
        yield* begin(n + 1)
        return snap
      })

    /**
     * After a recovery replaced the connection the live transactions were on: every pending one is
     * committed by recoverAndCommit from now on, and the open one is reopened with the same records
     * (never committed, so this is no republish of visible data).
     */
    const reopenAfterRecovery = Effect.gen(function* () {
      const stale = pending
      pending = stale.map((p) => ({ txn: undefined, snapshot: p.snapshot }))
      for (const p of stale) if (p.txn !== undefined) yield* resource.abort(p.txn)
      if (!open) return
      const o = open
      yield* resource.abort(o.txn)
      open = undefined
      const txn = yield* resource.beginTransaction(o.id)
      open = { txn, id: o.id, records: [] }
      yield* resource.write(txn, o.records)
      open.records.push(...o.records)
    })

    /**
     * Commits the oldest pending transaction if it is <= n; false when there is none. The broker's
     * part of a commit on the live handle runs outside the sink lock; what follows it (dropping the
     * transaction from `pending`, or recovering when in doubt) runs under it.
     */
    const commitNext = (n: number) =>
      Effect.gen(function* () {
        const p = pending[0]
        if (p === undefined || p.snapshot.checkpoint > n) return false
        const gen = generation
        const txn = p.txn
        const outcome =
          txn === undefined
            ? ("unknown" as const)
            : yield* Effect.sync(() => (inFlight = true)).pipe(
                Effect.andThen(resource.commit(txn)),
                Effect.as("committed" as const),
                Effect.catchIf(
                  (e): e is TransactionInDoubt => e instanceof TransactionInDoubt,
                  (e) => Effect.logWarning(`${e.message}; recovering`).pipe(Effect.as("in doubt" as const))
                ),
                Effect.ensuring(Effect.sync(settle))
              )
        return yield* serial(
          Effect.gen(function* () {
            // a restore in the meantime replaced everything (and resolved this transaction)
            if (gen !== generation || pending[0] !== p) return false
            if (outcome !== "committed") {
              if (txn !== undefined) yield* resource.abort(txn)
              yield* recoverOne(p)
              yield* reopenAfterRecovery
            }
            pending.shift()
            return true
          })
        )
      })

    const commit = (n: number) =>
      commitLock.withPermits(1)(
        Effect.gen(function* () {
          while (yield* commitNext(n)) {}
        })
      )

    const decode = (s: SinkSnapshot<P>) =>
      Effect.gen(function* () {
        const bad = (reason: string) => Effect.fail(new SinkSnapshotInvalid({ sink, reason }))
        if (typeof s !== "object" || s === null) return yield* bad("not an object")
        if (!isCheckpointId(s.checkpoint)) return yield* bad("checkpoint is not a non-negative integer")
        if (!Array.isArray(s.pending) || !Array.isArray(s.carry))
          return yield* bad("pending/carry not arrays")
        if (!s.carry.every(resource.isRecord)) return yield* bad("carry holds a value that is not a record")
        const out: Array<PendingTransaction<P>> = []
        for (const p of s.pending as ReadonlyArray<unknown>) {
          if (typeof p !== "object" || p === null) return yield* bad("a pending entry is not an object")
          const entry = p as Readonly<Record<string, unknown>>
          const { checkpoint, txn } = entry
          if (
            !isCheckpointId(checkpoint) ||
            !isCheckpointId(txn) ||
            txn > checkpoint ||
            checkpoint > s.checkpoint
          )
            return yield* bad(
              `pending ids out of range (checkpoint ${String(checkpoint)}, txn ${String(txn)})`
            )
          const invalid = resource.checkPending(entry)
          if (invalid !== undefined) return yield* bad(`pending ${checkpoint}: ${invalid}`)
          const prev = out[out.length - 1]
          if (prev && prev.checkpoint >= checkpoint) return yield* bad("pending not in increasing order")
          out.push(entry as PendingTransaction<P>)
        }
        return { checkpoint: s.checkpoint, pending: out, carry: s.carry as ReadonlyArray<Rec> }
      })

    const restore = (s: SinkSnapshot<P> | undefined) =>
      Effect.gen(function* () {
        const decoded = s === undefined ? undefined : yield* decode(s)
        const live = [
          ...(open ? [open.txn] : []),
          ...pending.flatMap((p) => (p.txn === undefined ? [] : [p.txn]))
        ]
        generation += 1
        open = undefined
        pending = []
        carry = []
        for (const txn of live) yield* resource.abort(txn)
        if (decoded === undefined) {
          if (resource.forgetCommitted) yield* resource.forgetCommitted()
          last = 0
        } else {
          for (const p of decoded.pending) yield* recoverOne({ txn: undefined, snapshot: p })
          last = decoded.checkpoint
          carry = [...decoded.carry]
        }
        yield* begin(last + 1)
      })

    return {
      write: (records) => Effect.andThen(room, serial(write(records))),
      snapshot: (n) => serial(snapshot(n)),
      commit,
      restore: (s) => serial(restore(s)),
      full: () => carry.length > 0 || (open !== undefined && open.records.length >= max),
      commitsBesideInput: true
    }
  })
