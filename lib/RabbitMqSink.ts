/**
 * The RabbitMQ two-phase-commit sink (DESIGN §5): one AMQP transaction (its own tx-mode channel) per
 * checkpoint, committed together with a commit marker in the instance's last-value marker queue.
 * Invariants: nothing is published unless this connection holds the instance's exclusive lock queue;
 * a commit that fails or times out is in doubt and is resolved by reading the marker on a fresh
 * connection (never a blind republish); every record has the deterministic id `<job>/<sink>/<i>/<n>/<seq>`.
 */
import amqp from "amqplib"
import type { Channel, ChannelModel } from "amqplib"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { batchSocketWrites, destroySocket } from "./AmqpSocket.ts"
import { txCommit, txSelect } from "./AmqpTx.ts"
import {
  makeTwoPhaseCommitSink,
  type PendingTransaction,
  type SinkError,
  type SinkWriter,
  type TransactionalResource,
  TransactionInDoubt
} from "./TwoPhaseCommitSink.ts"

export interface RabbitMqSinkOptions {
  /** AMQP URL (`amqp://` or `amqps://`). Required. */
  readonly url: string
  /** Job name; part of queue names and record ids (no `/`, no whitespace). Required. */
  readonly job: string
  /** Sink operator name; part of queue names and record ids (no `/`, no whitespace). Required. */
  readonly sink: string
  /** Index of this sink instance (integer >= 0). Required. */
  readonly instance: number
  /** Output queue, declared durable with no length limit. Required. */
  readonly queue: string
  /** Exchange records are published to. Default `""` (the default exchange). A named exchange must already exist; the queue is bound to it with `routingKey`. */
  readonly exchange?: string
  /** Routing key of every record. Default: `queue`. */
  readonly routingKey?: string
  /** Declare the output queue as a quorum queue (replicated; recommended in production). Default `false` (classic durable). */
  readonly quorum?: boolean
  /** Publishes per AMQP transaction, the commit marker included, so a transaction holds at most this minus 1 records. Default 10,000 (RabbitMQ's `channel_tx_message_max`); at least 2. */
  readonly maxTransactionMessages?: number
  /** How long `tx.commit` (and a publish waiting for `drain`) may take before it is in doubt. Default 10 seconds. */
  readonly commitTimeout?: Duration.Input
  /** AMQP heartbeat in seconds (1–60). Default 5: after a SIGSTOP'd holder, the broker frees the lock only after missed heartbeats (~2.5× this). */
  readonly heartbeatSeconds?: number
  /** How long to keep retrying to take the instance lock before failing with SinkFenced. Default 30 seconds. */
  readonly lockTimeout?: Duration.Input
  /** Pre-committed transactions beyond which input waits while a commit is in flight (the next transaction fills during a commit). Default 2; at least 1. */
  readonly maxPendingTransactions?: number
  /** `content_type` of every record (e.g. `"application/json"`). Default: none (see `recordProperties`). */
  readonly contentType?: string
  /** Also put the checkpoint id in header `x-exactor-checkpoint` (it is always the 4th part of `messageId`). Default `false` (see `recordProperties`). */
  readonly checkpointHeader?: boolean
}

/** `exactor.<job>.<sink>.<i>.lock`: the exclusive queue that fences one sink instance. */
export const lockQueueName = (job: string, sink: string, instance: number): string =>
  `exactor.${job}.${sink}.${instance}.lock`
/** `exactor.<job>.<sink>.<i>.marker`: the durable last-value queue holding the last committed checkpoint. */
export const markerQueueName = (job: string, sink: string, instance: number): string =>
  `exactor.${job}.${sink}.${instance}.marker`
/** `<job>/<sink>/<i>/<n>/<seq>`: the id of record `seq` of transaction `n`. */
export const recordMessageId = (
  job: string,
  sink: string,
  instance: number,
  n: number,
  seq: number
): string => `${job}/${sink}/${instance}/${n}/${seq}`

/**
 * The AMQP properties of record `seq` of transaction `n`: persistent, the deterministic message id,
 * and only what the options add. Lean on purpose: RabbitMQ (Erlang) keeps a message's encoded
 * properties in one binary, and above 64 bytes that becomes a reference-counted binary, which cost
 * the broker 1.4-1.8x the CPU per message here (45 vs 64-83 µs: raw publishes, ids of 16 vs 20-32 bytes); the defaults
 * stay under it for ids up to 60 bytes, `contentType: "application/json"` and the header take 45 more.
 */
export const recordProperties = (
  o: {
    readonly job: string
    readonly sink: string
    readonly instance: number
    readonly contentType?: string | undefined
    readonly checkpointHeader?: boolean | undefined
  },
  n: number,
  seq: number
) => ({
  persistent: true,
  mandatory: true,
  messageId: recordMessageId(o.job, o.sink, o.instance, n, seq),
  ...(o.contentType === undefined ? {} : { contentType: o.contentType }),
  ...(o.checkpointHeader === true ? { headers: { "x-exactor-checkpoint": n } } : {})
})

/** The commit marker's body. */
export interface CommitMarker {
  readonly job: string
  readonly sink: string
  readonly instance: number
  readonly n: number
}

// ---------------------------------------------------------------------------------------------
// Errors (`sink` is the instance id `<job>/<sink>/<i>`; `checkpoint` the transaction's id)

const why = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))

export class SinkOptionsInvalid extends Data.TaggedError("SinkOptionsInvalid")<{
  readonly field: string
  readonly value: unknown
  readonly reason: string
}> {
  override get message(): string {
    return `rabbitMqSink: ${this.field} ${this.reason} (got ${JSON.stringify(this.value) ?? String(this.value)})`
  }
}
export class SinkConnectFailed extends Data.TaggedError("SinkConnectFailed")<{
  readonly sink: string
  readonly url: string
  readonly cause: unknown
}> {
  override get message(): string {
    return `${this.sink}: cannot connect to ${this.url}: ${why(this.cause)}`
  }
}
/** Another connection holds the instance lock (RESOURCE_LOCKED) and did not free it within `lockTimeout`. */
export class SinkFenced extends Data.TaggedError("SinkFenced")<{
  readonly sink: string
  readonly lock: string
  readonly lockTimeoutMs: number
}> {
  override get message(): string {
    return `${this.sink}: lock queue ${this.lock} is held by another connection (waited ${this.lockTimeoutMs} ms)`
  }
}
export class SinkConnectionLost extends Data.TaggedError("SinkConnectionLost")<{
  readonly sink: string
  readonly checkpoint: number
  readonly cause: unknown
}> {
  override get message(): string {
    return `${this.sink}: connection lost (transaction ${this.checkpoint}): ${why(this.cause)}`
  }
}
/** A channel operation failed or the server closed the channel (e.g. 404 exchange gone, 406 precondition). */
export class SinkChannelError extends Data.TaggedError("SinkChannelError")<{
  readonly sink: string
  readonly checkpoint: number
  readonly operation: string
  readonly replyCode: number | undefined
  readonly cause: unknown
}> {
  override get message(): string {
    const code = this.replyCode === undefined ? "" : ` [${this.replyCode}]`
    return `${this.sink}: ${this.operation} failed (transaction ${this.checkpoint})${code}: ${why(this.cause)}`
  }
}
/** `tx.commit` or a publish waiting for `drain` took longer than `commitTimeout` (`blocked`: a resource alarm blocks the connection). */
export class SinkTimeout extends Data.TaggedError("SinkTimeout")<{
  readonly sink: string
  readonly checkpoint: number
  readonly operation: "commit" | "publish"
  readonly timeoutMs: number
  readonly blocked: boolean
}> {
  override get message(): string {
    const b = this.blocked ? " (connection blocked by the broker)" : ""
    return `${this.sink}: ${this.operation} of transaction ${this.checkpoint} took over ${this.timeoutMs} ms${b}`
  }
}
/**
 * Records came back unroutable (`basic.return`, mandatory): routing is decided at publish (e.g. the
 * exchange had no matching binding), the returns arrive only at commit. The routable part and the
 * marker are committed (AMQP cannot undo that), so this must fail the job loudly: a recovery would
 * see the marker and skip.
 */
export class SinkRecordUnroutable extends Data.TaggedError("SinkRecordUnroutable")<{
  readonly sink: string
  readonly checkpoint: number
  readonly count: number
  readonly messageIds: ReadonlyArray<string>
}> {
  override get message(): string {
    return `${this.sink}: ${this.count} record(s) of transaction ${this.checkpoint} unroutable, e.g. ${this.messageIds.slice(0, 3).join(", ")}`
  }
}
export class SinkRecordUnencodable extends Data.TaggedError("SinkRecordUnencodable")<{
  readonly sink: string
  readonly index: number
  readonly reason: string
}> {
  override get message(): string {
    return `${this.sink}: record ${this.index} of the batch has no JSON form: ${this.reason}`
  }
}
export class SinkMarkerInvalid extends Data.TaggedError("SinkMarkerInvalid")<{
  readonly sink: string
  readonly queue: string
  readonly body: string
}> {
  override get message(): string {
    return `${this.sink}: marker queue ${this.queue} holds something that is not this instance's marker: ${this.body.slice(0, 200)}`
  }
}

export type RabbitMqSinkError =
  | SinkOptionsInvalid
  | SinkConnectFailed
  | SinkFenced
  | SinkConnectionLost
  | SinkChannelError
  | SinkTimeout
  | SinkRecordUnroutable
  | SinkRecordUnencodable
  | SinkMarkerInvalid

// ---------------------------------------------------------------------------------------------
// Options

interface Resolved {
  readonly url: string
  readonly job: string
  readonly sink: string
  readonly instance: number
  readonly id: string
  readonly queue: string
  readonly exchange: string
  readonly routingKey: string
  readonly quorum: boolean
  readonly maxRecords: number
  readonly commitTimeoutMs: number
  readonly heartbeatSeconds: number
  readonly lockTimeoutMs: number
  readonly lock: string
  readonly marker: string
  readonly contentType: string | undefined
  readonly checkpointHeader: boolean
  readonly maxPendingTransactions: number
}

const millisOf = (field: string, input: Duration.Input | undefined, fallback: number) => {
  if (input === undefined) return Effect.succeed(fallback)
  const d = Duration.fromInput(input)
  if (Option.isNone(d) || !Duration.isFinite(d.value) || Duration.toMillis(d.value) <= 0)
    return Effect.fail(
      new SinkOptionsInvalid({ field, value: input, reason: "must be a finite positive duration" })
    )
  return Effect.succeed(Duration.toMillis(d.value))
}

/** Applies defaults and checks every option, failing with the first bad field. */
export const resolveOptions = (o: RabbitMqSinkOptions): Effect.Effect<Resolved, SinkOptionsInvalid> =>
  Effect.gen(function* () {
    const bad = (field: string, value: unknown, reason: string) =>
      Effect.fail(new SinkOptionsInvalid({ field, value, reason }))
    const url = typeof o.url === "string" && URL.canParse(o.url) ? new URL(o.url) : undefined
    if (!url || (url.protocol !== "amqp:" && url.protocol !== "amqps:"))
      return yield* bad("url", o.url, "must be an amqp:// or amqps:// URL")
    const token = /^[^/\s]{1,100}$/
    if (typeof o.job !== "string" || !token.test(o.job))
      return yield* bad("job", o.job, "must be 1-100 chars without / or whitespace")
    if (typeof o.sink !== "string" || !token.test(o.sink))
      return yield* bad("sink", o.sink, "must be 1-100 chars without / or whitespace")
    if (!Number.isSafeInteger(o.instance) || o.instance < 0)
      return yield* bad("instance", o.instance, "must be an integer >= 0")
    if (
      typeof o.queue !== "string" ||
      o.queue.length === 0 ||
      Buffer.byteLength(o.queue) > 255 ||
      o.queue.startsWith("amq.")
    )
      return yield* bad("queue", o.queue, "must be a queue name of 1-255 bytes not starting with amq.")
    const exchange = o.exchange ?? ""
    if (typeof exchange !== "string" || Buffer.byteLength(exchange) > 255)
      return yield* bad("exchange", o.exchange, "must be a string of at most 255 bytes")
    const routingKey = o.routingKey ?? o.queue
    if (typeof routingKey !== "string" || Buffer.byteLength(routingKey) > 255)
      return yield* bad("routingKey", o.routingKey, "must be a string of at most 255 bytes")
    const quorum = o.quorum ?? false
    if (typeof quorum !== "boolean") return yield* bad("quorum", o.quorum, "must be a boolean")
    const maxMessages = o.maxTransactionMessages ?? 10_000
    if (!Number.isSafeInteger(maxMessages) || maxMessages < 2)
      return yield* bad("maxTransactionMessages", o.maxTransactionMessages, "must be an integer >= 2")
    const heartbeatSeconds = o.heartbeatSeconds ?? 5
    if (!Number.isInteger(heartbeatSeconds) || heartbeatSeconds < 1 || heartbeatSeconds > 60)
      return yield* bad("heartbeatSeconds", o.heartbeatSeconds, "must be an integer from 1 to 60")
    const contentType = o.contentType
    if (
      contentType !== undefined &&
      (typeof contentType !== "string" || Buffer.byteLength(contentType) > 255)
    )
      return yield* bad("contentType", o.contentType, "must be a string of at most 255 bytes")
    const checkpointHeader = o.checkpointHeader ?? false
    if (typeof checkpointHeader !== "boolean")
      return yield* bad("checkpointHeader", o.checkpointHeader, "must be a boolean")
    const maxPendingTransactions = o.maxPendingTransactions ?? 2
    if (!Number.isSafeInteger(maxPendingTransactions) || maxPendingTransactions < 1)
      return yield* bad("maxPendingTransactions", o.maxPendingTransactions, "must be an integer >= 1")
    const commitTimeoutMs = yield* millisOf("commitTimeout", o.commitTimeout, 10_000)
    const lockTimeoutMs = yield* millisOf("lockTimeout", o.lockTimeout, 30_000)
    url.searchParams.set("heartbeat", String(heartbeatSeconds))
    return {
      url: url.toString(),
      job: o.job,
      sink: o.sink,
      instance: o.instance,
      id: `${o.job}/${o.sink}/${o.instance}`,
      queue: o.queue,
      exchange,
      routingKey,
      quorum,
      maxRecords: maxMessages - 1,
      commitTimeoutMs,
      heartbeatSeconds,
      lockTimeoutMs,
      lock: lockQueueName(o.job, o.sink, o.instance),
      marker: markerQueueName(o.job, o.sink, o.instance),
      contentType,
      checkpointHeader,
      maxPendingTransactions
    }
  })

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

const parseMarker = (body: string): unknown => {
  try {
    return JSON.parse(body)
  } catch {
    return undefined
  }
}

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
      const conn = await amqp.connect(o.url, {
        clientProperties: { connection_name: `exactor sink ${sink}` }
      })
      batchSocketWrites(conn)
      return conn
    },
    catch: (cause) => new SinkConnectFailed({ sink, url: o.url.replace(/\/\/[^@/]*@/, "//"), cause })
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
      channel.on("return", (m: amqp.Message) => t.returned.push(String(m.properties.messageId)))
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
    preCommit: (t, n) =>
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
        Effect.andThen(Effect.sync(() => (t.checkpoint = n)))
      ),
    commit: (t) =>
      commitWithMarker(t, t.checkpoint ?? t.n).pipe(
        Effect.catchIf(
          (e) => e._tag !== "SinkRecordUnroutable",
          (cause) => Effect.fail(new TransactionInDoubt({ sink, checkpoint: t.checkpoint ?? t.n, cause }))
        )
      ),
    recoverAndCommit: (p: PendingTransaction<string>) =>
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
    isRecord: (u): u is string => typeof u === "string"
  }
  const close = Effect.suspend(() => (current ? drop(current, "sink closed") : Effect.void))
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
        return Effect.fail(new SinkRecordUnencodable({ sink, index: i, reason: why(e) }))
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
): Effect.Effect<SinkWriter<A>, SinkError, Scope.Scope> =>
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
