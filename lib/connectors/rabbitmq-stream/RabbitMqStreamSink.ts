/**
 * The exactly-once RabbitMQ stream sink: two-phase commit (runtime/TwoPhaseCommitSink) whose commit
 * publishes checkpoint n's records through the stream protocol under the instance's producer name,
 * with publishing ids assigned at preCommit and kept in the snapshot, and waits for every confirm.
 * Invariants: ids are deterministic and strictly increasing per (stream, producer name), starting at
 * 1, so a replay republishes the same ids and the broker drops what it already stored, even after its
 * own crash; nothing is published unless this process holds the instance's exclusive lock queue,
 * checked by a round trip right before every commit.
 */
import type { Channel, ChannelModel } from "amqplib"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { amqpConnect } from "../../internal/AmqpConnectOptions.ts"
import { causeMessage } from "../../internal/causeMessage.ts"
import {
  makeTwoPhaseCommitSink,
  type PendingRecords,
  type PendingTransaction,
  type TransactionalResource,
  TransactionInDoubt,
  type TwoPhaseCommitError,
  type TwoPhaseCommitWriter
} from "../../runtime/TwoPhaseCommitSink.ts"
import { ensureStream, type NamedProducer, openNamedProducer } from "./StreamClient.ts"
import {
  StreamCallFailed,
  StreamRecordUnencodable,
  type StreamSinkError,
  StreamSinkFenced,
  StreamSinkLockLost
} from "./StreamErrors.ts"
import {
  type RabbitMqStreamSinkOptions,
  type ResolvedStreamSink,
  resolveStreamSinkOptions
} from "./StreamSinkOptions.ts"

/** What a pending transaction keeps in the snapshot: its records and the publishing id of the first. */
export interface StreamPending extends PendingRecords<string> {
  readonly firstId: number
}

export type RabbitMqStreamSinkFailure = TwoPhaseCommitError | StreamSinkError

export type RabbitMqStreamSinkWriter<A> = TwoPhaseCommitWriter<A, RabbitMqStreamSinkFailure, StreamPending>

interface StreamTxn {
  readonly n: number
  checkpoint: number
  firstId: number
  records: ReadonlyArray<string>
}

/** The lock: an AMQP connection holding the exclusive queue, and the producer opened after it. */
interface Session {
  readonly conn: ChannelModel
  readonly control: Channel
  readonly producer: NamedProducer
  dead: unknown
}

/** Retries of taking the lock while another connection holds it (jittered 50-500 ms; bounded by `lockTimeout`). */
const lockRetrySchedule: Schedule.Schedule<unknown> = Schedule.min([
  Schedule.exponential("50 millis", 1.5),
  Schedule.spaced("500 millis")
]).pipe(Schedule.jittered)

/**
 * Retries of a commit in doubt: every 500 ms for up to `commitRetryTimeout` (default 90 s), so that a
 * RabbitMQ node restart (10-15 s measured after kill -9 here) is waited out inside one commit.
 */
export const streamCommitRetrySchedule = (timeoutMs: number): Schedule.Schedule<unknown, unknown> =>
  Schedule.spaced("500 millis").pipe(Schedule.upTo({ duration: Duration.millis(timeoutMs) }))

const replyCode = (e: unknown): number | undefined =>
  typeof e === "object" && e !== null && "code" in e && typeof e.code === "number" ? e.code : undefined

const isRecord = (u: unknown): u is string => typeof u === "string"

const checkPending = (entry: Readonly<Record<string, unknown>>): string | undefined => {
  if (!Array.isArray(entry.records) || !entry.records.every(isRecord)) return "records are not records"
  const f = entry.firstId
  return typeof f === "number" && Number.isSafeInteger(f) && f >= 1
    ? undefined
    : "firstId is not an integer >= 1"
}

const makeResource = (o: ResolvedStreamSink) => {
  const sink = o.id
  const owner = sink
  let current: Session | undefined
  /** the publishing id the next pre-committed record gets */
  let nextId = 1

  const fail = (operation: string) => (cause: unknown) =>
    new StreamCallFailed({ owner, stream: o.stream, operation, timeoutMs: undefined, cause })

  const drop = (s: Session) =>
    Effect.gen(function* () {
      s.dead ??= new Error("dropped")
      if (current === s) current = undefined
      yield* s.producer.close
      yield* Effect.tryPromise(() => s.conn.close()).pipe(Effect.timeoutOption("2 seconds"), Effect.ignore)
    })

  const connectLock = Effect.tryPromise({
    try: () =>
      amqpConnect(o.amqpUrl, { clientProperties: { connection_name: `exactor stream sink ${sink}` } }),
    catch: fail("connecting for the lock")
  }).pipe(
    Effect.timeoutOrElse({
      duration: o.timeoutMs,
      orElse: () =>
        Effect.fail(
          new StreamCallFailed({
            owner,
            stream: o.stream,
            operation: "connecting for the lock",
            timeoutMs: o.timeoutMs,
            cause: undefined
          })
        )
    })
  )

  const takeLock = (conn: ChannelModel) =>
    Effect.tryPromise({
      try: async () => {
        const ch = await conn.createChannel()
        ch.on("error", () => {})
        await ch.assertQueue(o.lock, { exclusive: true, durable: false, autoDelete: false })
        return ch
      },
      catch: (cause) =>
        replyCode(cause) === 405
          ? new StreamSinkFenced({ sink, lock: o.lock, lockTimeoutMs: o.lockTimeoutMs })
          : fail("taking the lock")(cause)
    })

  /** A new lock connection and lock, retried while another connection holds it, up to `lockTimeout`. */
  const lockedConnection = Effect.gen(function* () {
    const conn = yield* connectLock
    const control = yield* takeLock(conn).pipe(
      Effect.onError(() => Effect.tryPromise(() => conn.close()).pipe(Effect.ignore))
    )
    return { conn, control }
  }).pipe(
    Effect.retry({
      schedule: lockRetrySchedule.pipe(Schedule.upTo({ duration: Duration.millis(o.lockTimeoutMs) })),
      while: (e) => e._tag === "StreamSinkFenced"
    })
  )

  /** The live session, else: lock first, then the stream (created if missing), then the producer. */
  const session: Effect.Effect<Session, StreamSinkError> = Effect.suspend(() => {
    if (current && current.dead === undefined && !current.producer.dead()) return Effect.succeed(current)
    const previous = current
    return Effect.gen(function* () {
      if (previous) yield* drop(previous)
      const { conn, control } = yield* lockedConnection
      const s = yield* Effect.gen(function* () {
        yield* ensureStream(owner, o.stream, o.endpoint, o.timeoutMs)
        const producer = yield* openNamedProducer({
          owner,
          stream: o.stream,
          name: o.producerName,
          endpoint: o.endpoint,
          timeoutMs: o.timeoutMs,
          heartbeatSeconds: o.heartbeatSeconds
        })
        const session: Session = { conn, control, producer, dead: undefined }
        conn.on("error", (e: Error) => (session.dead ??= e))
        conn.on("close", (e?: Error) => (session.dead ??= e ?? new Error("lock connection closed")))
        return session
      }).pipe(Effect.onError(() => Effect.tryPromise(() => conn.close()).pipe(Effect.ignore)))
      current = s
      return s
    })
  })

  /** Fails unless `s` still holds the lock: its connection is up and answers a round trip on the lock queue. */
  const stillLocked = (s: Session) =>
    Effect.suspend(() =>
      s.dead !== undefined
        ? Effect.fail(new StreamSinkLockLost({ sink, lock: o.lock, cause: s.dead }))
        : Effect.tryPromise({
            try: () => s.control.checkQueue(o.lock),
            catch: (cause) => new StreamSinkLockLost({ sink, lock: o.lock, cause })
          })
    ).pipe(
      Effect.timeoutOrElse({
        duration: o.timeoutMs,
        orElse: () =>
          Effect.fail(new StreamSinkLockLost({ sink, lock: o.lock, cause: new Error("no answer") }))
      })
    )

  /** Publishes `records` with ids from `firstId` over a session that holds the lock, waiting for every confirm. */
  const publish = (checkpoint: number, firstId: number, records: ReadonlyArray<string>) =>
    Effect.gen(function* () {
      const s = yield* session
      yield* stillLocked(s).pipe(Effect.onError(() => drop(s)))
      const bodies = new Array<Buffer>(records.length)
      for (let i = 0; i < records.length; i++) bodies[i] = Buffer.from(records[i] as string, "utf8")
      yield* s.producer
        .publish(checkpoint, BigInt(firstId), bodies)
        .pipe(
          Effect.onError((cause) =>
            Effect.logWarning(
              `${sink}: publish of checkpoint ${checkpoint} failed; reconnecting`,
              cause
            ).pipe(Effect.andThen(drop(s)))
          )
        )
    })

  const resource: TransactionalResource<StreamTxn, string, StreamSinkError, StreamPending> = {
    beginTransaction: (n) => Effect.succeed({ n, checkpoint: n, firstId: 0, records: [] }),
    // records are published at commit (a stream has no transaction to hold them in meanwhile)
    write: () => Effect.void,
    preCommit: (t, checkpoint, records) =>
      Effect.sync(() => {
        t.checkpoint = checkpoint
        t.firstId = nextId
        t.records = records
        nextId += records.length
        return { records, firstId: t.firstId }
      }),
    commit: (t) =>
      publish(t.checkpoint, t.firstId, t.records).pipe(
        Effect.catchIf(
          (e) => e._tag !== "StreamPublishFailed",
          (cause) => Effect.fail(new TransactionInDoubt({ sink, checkpoint: t.checkpoint, cause }))
        )
      ),
    recoverAndCommit: (p: PendingTransaction<StreamPending>) =>
      Effect.suspend(() => {
        nextId = Math.max(nextId, p.firstId + p.records.length)
        return publish(p.checkpoint, p.firstId, p.records)
      }),
    abort: () => Effect.void,
    // a fresh start: continue after whatever this producer name stored before
    forgetCommitted: () =>
      Effect.gen(function* () {
        const s = yield* session
        const last = yield* s.producer.lastStored
        nextId = Number(last) + 1
      }),
    isRecord,
    checkPending
  }
  const close = Effect.suspend(() => (current ? drop(current) : Effect.void))
  return { resource, session, close }
}

/** JSON of each record (the message body), or the index of the first record without one. */
const encode = (sink: string, records: ReadonlyArray<unknown>) =>
  Effect.suspend(() => {
    const out: Array<string> = new Array(records.length)
    for (let i = 0; i < records.length; i++) {
      let json: string | undefined
      try {
        json = JSON.stringify(records[i])
      } catch (e) {
        return Effect.fail(new StreamRecordUnencodable({ sink, index: i, reason: causeMessage(e) }))
      }
      if (json === undefined)
        return Effect.fail(new StreamRecordUnencodable({ sink, index: i, reason: "no JSON form" }))
      out[i] = json
    }
    return Effect.succeed(out)
  })

/**
 * Opens the stream sink instance: takes the lock, creates the stream if missing, declares the named
 * producer. The runtime then calls `restore` before writing. Closing the scope closes both connections.
 */
export const makeRabbitMqStreamSink = <A>(
  options: RabbitMqStreamSinkOptions
): Effect.Effect<RabbitMqStreamSinkWriter<A>, RabbitMqStreamSinkFailure, Scope.Scope> =>
  Effect.gen(function* () {
    const o = yield* resolveStreamSinkOptions(options)
    const r = yield* Effect.acquireRelease(
      Effect.sync(() => makeResource(o)),
      (r) => r.close
    )
    // the node may still be starting (a restart takes 10-15 s here): retried like a commit in doubt
    yield* r.session.pipe(Effect.retry(streamCommitRetrySchedule(o.commitRetryTimeoutMs)))
    const inner = yield* makeTwoPhaseCommitSink(r.resource, {
      sink: o.id,
      maxTransactionRecords: o.maxRecords,
      commitRetry: streamCommitRetrySchedule(o.commitRetryTimeoutMs)
    })
    return {
      write: (records) => Effect.flatMap(encode(o.id, records), inner.write),
      snapshot: inner.snapshot,
      commit: inner.commit,
      restore: inner.restore,
      full: inner.full,
      commitsBesideInput: true
    }
  })
