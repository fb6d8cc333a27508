/**
 * lib/connectors/rabbitmq/ — RabbitMQ out of a job: the two-phase-commit sink (this file) over
 * runtime/TwoPhaseCommitSink, its options, errors and wire names, AMQP transactions and socket
 * tuning. Imports runtime/, api/, core/, internal/; never the coordinator or the CLI.
 *
 * The RabbitMQ two-phase-commit sink (DESIGN §5): one AMQP transaction (its own tx-mode channel) per
 * checkpoint, committed together with a commit marker in the instance's last-value marker queue.
 * Invariants: nothing is published unless this connection holds the instance's exclusive lock queue;
 * a commit that fails or times out is in doubt and is resolved by reading the marker on a fresh
 * connection (never a blind republish); every record has the deterministic id `<job>/<sink>/<i>/<n>/<seq>`.
 */
import type { Channel, ChannelModel, Message } from "amqplib"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { batchSocketWrites, destroySocket } from "./AmqpSocket.ts"
import { txCommit, txSelect } from "./AmqpTx.ts"
import { amqpConnect } from "../../internal/AmqpConnectOptions.ts"
import { redactUrl } from "../../internal/redactUrl.ts"
import { causeMessage } from "../../internal/causeMessage.ts"
import {
  type RabbitMqSinkError,
  SinkChannelError,
  SinkConnectFailed,
  SinkConnectionLost,
  SinkFenced,
  SinkMarkerInvalid,
  SinkRecordUnencodable,
  SinkRecordUnroutable,
  SinkTimeout
} from "./RabbitMqSinkErrors.ts"
import { type RabbitMqSinkOptions, type Resolved, resolveOptions } from "./RabbitMqSinkOptions.ts"
import { type CommitMarker, parseMarker, recordProperties } from "./RabbitMqSinkWire.ts"
import {
  checkPendingRecords,
  makeTwoPhaseCommitSink,
  type PendingTransaction,
  type TransactionalResource,
  TransactionInDoubt,
  type TwoPhaseCommitError,
  type TwoPhaseCommitWriter
} from "../../runtime/TwoPhaseCommitSink.ts"

/** Everything the RabbitMQ sink fails with: its own errors and the two-phase-commit protocol's. */
export type RabbitMqSinkFailure = TwoPhaseCommitError | RabbitMqSinkError

/** What the RabbitMQ sink gives the runtime: pending transactions keep their records (RabbitMQ cannot prepare). */
export type RabbitMqSinkWriter<A> = TwoPhaseCommitWriter<A, RabbitMqSinkFailure>

// ---------------------------------------------------------------------------------------------
// Connections (sessions) and transactions

/** A connection; `dead` is set once it closed or was dropped. */
interface Conn {
  readonly conn: ChannelModel
  dead: unknown
  blocked: boolean
}
/** A connection that holds the lock, with its control channel (lock, declarations, marker reads). */
interface Session extends Conn {
  readonly control: Channel
}
interface RabbitTxn {
  readonly session: Session
  readonly channel: Channel
  /** the transaction id (record ids and headers use it) */
  readonly n: number
  /** the checkpoint it is pending under, set by preCommit */
  checkpoint: number | undefined
  seq: number
  committing: boolean
  closed: boolean
  failure: unknown
  readonly returned: Array<string>
}

/** Retries of taking the lock while another connection holds it (jittered 50-500 ms; bounded by `lockTimeout`). */
export const lockRetrySchedule: Schedule.Schedule<unknown> = Schedule.min([
  Schedule.exponential("50 millis", 1.5),
  Schedule.spaced("500 millis")
]).pipe(Schedule.jittered)

const replyCode = (e: unknown): number | undefined =>
  typeof e === "object" && e !== null && "code" in e && typeof e.code === "number" ? e.code : undefined

const makeResource = (o: Resolved) => {
  const sink = o.id
  let current: Session | undefined
  const chanErr = (checkpoint: number, operation: string) => (cause: unknown) =>
    new SinkChannelError({ sink, checkpoint, operation, replyCode: replyCode(cause), cause })
  const timedOut = (t: RabbitTxn, checkpoint: number, operation: "commit" | "publish") => () =>
    Effect.fail(
      new SinkTimeout({
        sink,
        checkpoint,
        operation,
        timeoutMs: o.commitTimeoutMs,
        blocked: t.session.blocked
      })
    )

  /** Closes a connection (destroying its socket if the close does not complete within 2 s). */
  const drop = (c: Conn, reason: string) =>
    Effect.gen(function* () {
      c.dead ??= new Error(reason)
      if (current === c) current = undefined
      const closed = yield* Effect.tryPromise(() => c.conn.close()).pipe(
        Effect.timeoutOption("2 seconds"),
        Effect.exit
      )
      if (closed._tag === "Failure" || Option.isNone(closed.value)) destroySocket(c.conn)
    })

  /** Declares the exclusive lock queue on a new channel, which then serves as the control channel. */
  const takeLock = (c: Conn) =>
    Effect.tryPromise({
      try: async () => {
        const ch = await c.conn.createChannel()
        ch.on("error", (e: Error) => (c.dead = c.dead ?? (replyCode(e) === 405 ? undefined : e)))
        await ch.assertQueue(o.lock, { exclusive: true, durable: false, autoDelete: false })
        return ch
      },
      catch: (cause) =>
        replyCode(cause) === 405
          ? new SinkFenced({ sink, lock: o.lock, lockTimeoutMs: o.lockTimeoutMs })
          : chanErr(0, "taking the lock")(cause)
    }).pipe(
      Effect.retry({
        schedule: lockRetrySchedule.pipe(Schedule.upTo({ duration: Duration.millis(o.lockTimeoutMs) })),
        while: (e) => e._tag === "SinkFenced"
      })
    )

  const declare = (ch: Channel) =>
    Effect.tryPromise({
      try: async () => {
        await ch.assertQueue(o.marker, { durable: true, arguments: { "x-max-length": 1 } })
        const args = o.quorum ? { arguments: { "x-queue-type": "quorum" } } : {}
        await ch.assertQueue(o.queue, { durable: true, ...args })
        if (o.exchange === "") return
        await ch.checkExchange(o.exchange)
        await ch.bindQueue(o.queue, o.exchange, o.routingKey)
      },
      catch: chanErr(0, "declaring the output and marker queues")
    })

  const connect = Effect.tryPromise({
    try: async () => {
      const conn = await amqpConnect(o.url, {
        clientProperties: { connection_name: `exactor sink ${sink}` }
      })
      batchSocketWrites(conn)
      return conn
    },
    catch: (cause) => new SinkConnectFailed({ sink, url: redactUrl(o.url), cause })
  })

  /** The live session, else a new connection that takes the lock before anything else. */
  const session: Effect.Effect<Session, RabbitMqSinkError> = Effect.suspend(() => {
    if (current && current.dead === undefined) return Effect.succeed(current)
    const previous = current
    return Effect.gen(function* () {
      if (previous) yield* drop(previous, "replaced")
      const conn = yield* connect
      const c: Conn = { conn, dead: undefined, blocked: false }
      conn.on("error", (e: Error) => (c.dead ??= e))
      conn.on("close", (e?: Error) => (c.dead ??= e ?? new Error("connection closed")))
      conn.on("blocked", () => (c.blocked = true))
      conn.on("unblocked", () => (c.blocked = false))
      return yield* Effect.gen(function* () {
        const s: Session = Object.assign(c, { control: yield* takeLock(c) })
        yield* declare(s.control)
        current = s
        return s
      }).pipe(Effect.onError(() => drop(c, "setup failed")))
    })
  })

  /** Fails unless t can take another method: connection and channel up, no commit outstanding. */
  const alive = (t: RabbitTxn, operation: string) =>
    Effect.suspend((): Effect.Effect<void, SinkConnectionLost | SinkChannelError> => {
      if (t.session.dead !== undefined)
        return Effect.fail(new SinkConnectionLost({ sink, checkpoint: t.n, cause: t.session.dead }))
      if (t.closed || t.failure !== undefined)
        return Effect.fail(chanErr(t.n, operation)(t.failure ?? new Error("channel closed")))
      if (t.committing)
        return Effect.fail(chanErr(t.n, operation)(new Error("commit outstanding on this channel")))
      return Effect.void
    })

  const waitDrain = (t: RabbitTxn) =>
    Effect.callback<void, SinkChannelError>((resume) => {
      const done = () =>
        resume(t.closed ? Effect.fail(chanErr(t.n, "publish")(t.failure ?? "channel closed")) : Effect.void)
      t.channel.once("drain", done)
      t.channel.once("close", done)
      return Effect.sync(() => {
        t.channel.off("drain", done)
        t.channel.off("close", done)
      })
    }).pipe(Effect.timeoutOrElse({ duration: o.commitTimeoutMs, orElse: timedOut(t, t.n, "publish") }))

  /** Publishes the next records of t (a plain loop; waits only under backpressure). */
  const publish = (t: RabbitTxn, bodies: ReadonlyArray<string>) =>
    Effect.gen(function* () {
      yield* alive(t, "publish")
      for (const body of bodies) {
        const p = recordProperties(o, t.n, t.seq)
        const ok = yield* Effect.try({
          try: () => t.channel.publish(o.exchange, o.routingKey, Buffer.from(body, "utf8"), p),
          catch: chanErr(t.n, "publish")
        })
        t.seq += 1
        if (!ok) yield* waitDrain(t)
      }
    })

  const begin = (n: number) =>
    Effect.gen(function* () {
      const s = yield* session
      const channel = yield* Effect.tryPromise({
        try: () => s.conn.createChannel(),
        catch: chanErr(n, "opening a channel")
      })
      const t: RabbitTxn = {
        session: s,
        channel,
        n,
        checkpoint: undefined,
        seq: 0,
        committing: false,
        closed: false,
        failure: undefined,
        returned: []
      }
      channel.on("error", (e: Error) => (t.failure ??= e))
      channel.on("close", () => (t.closed = true))
      channel.on("return", (m: Message) => t.returned.push(String(m.properties.messageId)))
      yield* txSelect(channel).pipe(Effect.mapError(chanErr(n, "tx.select")))
      return t
    })

  /**
   * Closes t's channel, which discards what it did not commit; succeeds when it is already gone. A
   * channel whose commit is outstanding (timed out, interrupted) cannot take another method: its
   * commit is in doubt, so the whole connection is dropped, and with it the lock.
   */
  const closeChannel = (t: RabbitTxn) =>
    Effect.suspend(() => {
      if (t.session.dead !== undefined) return Effect.void
      if (t.committing) return drop(t.session, `commit of transaction ${t.n} in doubt`)
      if (t.closed) return Effect.void
      return Effect.tryPromise({
        try: () => t.channel.close(),
        catch: chanErr(t.n, "closing the channel")
      }).pipe(Effect.catch((e) => (t.closed ? Effect.void : Effect.fail(e))))
    })

  /**
   * Publishes the marker of checkpoint n on t and commits. A failure or timeout leaves t committing
   * (in doubt): closing it then drops the connection, before anything reads the marker.
   */
  const commitWithMarker = (t: RabbitTxn, n: number) =>
    Effect.gen(function* () {
      yield* alive(t, "commit")
      // the output queue must still exist, or its records would come back unroutable after the marker
      // committed; checked here, right before the commit (commits are serial, so no other commit of
      // this sink is making the queue busy), not at preCommit, which is part of the checkpoint
      yield* Effect.tryPromise({
        try: () => t.channel.checkQueue(o.queue),
        catch: chanErr(n, "checking the output queue")
      })
      const marker: CommitMarker = { job: o.job, sink: o.sink, instance: o.instance, n }
      yield* Effect.try({
        try: () =>
          t.channel.publish("", o.marker, Buffer.from(JSON.stringify(marker)), {
            persistent: true,
            mandatory: true,
            messageId: `${sink}/${n}/marker`
          }),
        catch: chanErr(n, "publishing the marker")
      })
      t.committing = true
      yield* txCommit(t.channel).pipe(
        Effect.mapError(chanErr(n, "tx.commit")),
        Effect.timeoutOrElse({ duration: o.commitTimeoutMs, orElse: timedOut(t, n, "commit") })
      )
      t.committing = false
      yield* closeChannel(t)
      const { returned } = t
      if (returned.length > 0)
        return yield* new SinkRecordUnroutable({
          sink,
          checkpoint: n,
          count: returned.length,
          messageIds: returned
        })
    })

  /** The highest committed checkpoint per the marker queue: basic.get every ready marker, then requeue them. */
  const readMarker = (s: Session) =>
    Effect.tryPromise({
      try: async () => {
        let highest: number | undefined
        let invalid: string | undefined
        for (let msg = await s.control.get(o.marker); msg !== false; msg = await s.control.get(o.marker)) {
          const body = msg.content.toString("utf8")
          const m = parseMarker(body)
          const mine =
            typeof m === "object" && m !== null && "n" in m && "job" in m && "sink" in m && "instance" in m
          if (
            mine &&
            typeof m.n === "number" &&
            m.job === o.job &&
            m.sink === o.sink &&
            m.instance === o.instance
          )
            highest = Math.max(highest ?? m.n, m.n)
          else invalid = body
        }
        s.control.nackAll(true)
        return { highest, invalid }
      },
      catch: chanErr(0, "reading the marker")
    }).pipe(
      Effect.flatMap(({ highest, invalid }) =>
        invalid === undefined
          ? Effect.succeed(highest)
          : Effect.fail(new SinkMarkerInvalid({ sink, queue: o.marker, body: invalid }))
      )
    )

  const resource: TransactionalResource<RabbitTxn, string, RabbitMqSinkError> = {
    beginTransaction: begin,
    write: publish,
    // flush: a round trip on the channel, so that an earlier publish's channel error has arrived (and a
    // named exchange still exists); the output queue is checked at commit
    preCommit: (t, n, records) =>
      alive(t, "preCommit").pipe(
        Effect.andThen(
          Effect.tryPromise({
            // a method the channel process answers itself (exchange.declare passive, or basic.qos for
            // the default exchange): queue.declare would wait behind a commit the queue is busy with
            try: () => (o.exchange === "" ? t.channel.prefetch(0) : t.channel.checkExchange(o.exchange)),
            catch: chanErr(t.n, "preCommit")
          })
        ),
        Effect.andThen(alive(t, "preCommit")),
        Effect.andThen(Effect.sync(() => (t.checkpoint = n))),
        Effect.as({ records })
      ),
    commit: (t) =>
      commitWithMarker(t, t.checkpoint ?? t.n).pipe(
        Effect.catchIf(
          (e) => e._tag !== "SinkRecordUnroutable",
          (cause) => Effect.fail(new TransactionInDoubt({ sink, checkpoint: t.checkpoint ?? t.n, cause }))
        )
      ),
    recoverAndCommit: (p: PendingTransaction<{ readonly records: ReadonlyArray<string> }>) =>
      Effect.gen(function* () {
        const highest = yield* readMarker(yield* session)
        if (highest !== undefined && highest >= p.checkpoint)
          return yield* Effect.logInfo(
            `${sink}: checkpoint ${p.checkpoint} already committed (marker ${highest})`
          )
        const t = yield* begin(p.txn)
        yield* publish(t, p.records).pipe(
          Effect.andThen(commitWithMarker(t, p.checkpoint)),
          Effect.onError(() => closeChannel(t).pipe(Effect.catch((e) => Effect.logWarning(e.message))))
        )
      }),
    abort: closeChannel,
    forgetCommitted: () =>
      Effect.flatMap(session, (s) =>
        Effect.tryPromise({
          try: () => s.control.purgeQueue(o.marker),
          catch: chanErr(0, "purging the marker")
        })
      ),
    isRecord,
    checkPending: checkPendingRecords(isRecord)
  }
  const close = Effect.suspend(() => (current ? drop(current, "sink closed") : Effect.void))
  return { resource, session, close }
}

const isRecord = (u: unknown): u is string => typeof u === "string"

/** JSON of each record (the message body), or the index of the first record without one. */
const encode = (sink: string, records: ReadonlyArray<unknown>) =>
  Effect.suspend(() => {
    const out: Array<string> = new Array(records.length)
    for (let i = 0; i < records.length; i++) {
      let json: string | undefined
      try {
        json = JSON.stringify(records[i])
      } catch (e) {
        return Effect.fail(new SinkRecordUnencodable({ sink, index: i, reason: causeMessage(e) }))
      }
      if (json === undefined)
        return Effect.fail(new SinkRecordUnencodable({ sink, index: i, reason: "no JSON form" }))
      out[i] = json
    }
    return Effect.succeed(out)
  })

/**
 * Opens the sink instance: connects (heartbeat `heartbeatSeconds`), takes the lock, declares the
 * output and marker queues. The runtime then calls `restore` before writing. Closing the scope
 * closes the connection, which discards every uncommitted transaction and frees the lock.
 */
export const makeRabbitMqSink = <A>(
  options: RabbitMqSinkOptions
): Effect.Effect<RabbitMqSinkWriter<A>, RabbitMqSinkFailure, Scope.Scope> =>
  Effect.gen(function* () {
    const o = yield* resolveOptions(options)
    const r = yield* Effect.acquireRelease(
      Effect.sync(() => makeResource(o)),
      (r) => r.close
    )
    yield* r.session
    const inner = yield* makeTwoPhaseCommitSink(r.resource, {
      sink: o.id,
      maxTransactionRecords: o.maxRecords,
      maxPendingTransactions: o.maxPendingTransactions
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
