/**
 * Channels: the ordered stream of batches, barriers and eos from one upstream instance to one
 * downstream instance over the downstream's mailbox subject, with credit-based backpressure.
 * Invariants: a sender numbers everything it sends per (epoch, channel) from 0 and never sends
 * a batch without credit; a receiver delivers a channel's messages only in `seq` order, and a gap
 * or repeat is a `ChannelBroken` error, never silent loss. Messages of an older epoch are dropped.
 */
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import type { ChannelOptions } from "../api/ChannelOptions.ts"
import { START_OF_TIME } from "../api/Watermark.ts"
import type { InstanceId, Subjects } from "../core/Address.ts"
import { ReceiverCredit, SenderCredit } from "./CreditWindow.ts"
import { decode, type DataEnvelope, encode, type Envelope, EnvelopeDecodeError, isData } from "./Envelope.ts"
import type { NatsConnection } from "./Nats.ts"

export class ChannelBroken extends Data.TaggedError("ChannelBroken")<{
  /** the receiving instance */
  readonly receiver: string
  /** the sending instance (the channel) */
  readonly channel: string
  readonly epoch: number
  readonly reason: string
  readonly expected?: number
  readonly got?: number
}> {
  override get message(): string {
    return `channel ${this.channel} -> ${this.receiver} broken in epoch ${this.epoch}: ${this.reason}`
  }
}

/** How often a mailbox repeats its grants, so that a lost grant cannot stall a channel. */
export const regrantSchedule = Schedule.spaced("250 millis")

/** The sending end of one channel. Driven by one fiber (the actor's loop); not shared. */
export class ChannelSender {
  readonly subject: string
  readonly channel: string
  readonly to: string
  readonly epoch: number
  readonly options: ChannelOptions
  private readonly nc: NatsConnection
  private seq = 0
  private buffer: Array<unknown> = []
  /** the buffered records' event times, once one of them has one (E4: absent on a stream without event time) */
  private times: Array<number> | undefined
  private firstAt = 0
  private readonly credit: SenderCredit
  private wake: (() => void) | undefined
  /** Records handed to this sender in this epoch (including those still buffered). */
  records = 0
  /** Time spent waiting for credit in this epoch, ms (backpressure from the receiver). */
  creditWaitMs = 0

  constructor(
    nc: NatsConnection,
    subjects: Subjects,
    from: InstanceId,
    to: InstanceId,
    epoch: number,
    options: ChannelOptions
  ) {
    this.nc = nc
    this.subject = subjects.mailbox(to)
    this.channel = from.toString()
    this.to = to.toString()
    this.epoch = epoch
    this.options = options
    this.credit = new SenderCredit(options.creditWindow)
  }

  /** Batches sent and the highest grant seen (for tests and status). */
  get sentBatches(): number {
    return this.credit.sent
  }
  get grantedBatches(): number {
    return this.credit.granted
  }
  get buffered(): number {
    return this.buffer.length
  }

  /** Adds one record without I/O; true when the batch is full and `sendBatch` must be run. */
  add(record: unknown): boolean {
    if (this.buffer.length === 0) this.firstAt = Date.now()
    this.buffer.push(record)
    // a record without event time in a batch that has some carries START_OF_TIME (as Flink's Long.MIN_VALUE)
    if (this.times !== undefined) this.times.push(START_OF_TIME)
    this.records++
    return this.buffer.length >= this.options.batchSize
  }

  /** `add` of a record with its event time. */
  addTimed(record: unknown, timestamp: number): boolean {
    if (this.times === undefined) this.times = new Array<number>(this.buffer.length).fill(START_OF_TIME)
    this.times.push(timestamp)
    if (this.buffer.length === 0) this.firstAt = Date.now()
    this.buffer.push(record)
    this.records++
    return this.buffer.length >= this.options.batchSize
  }

  /** Adds records, sending every batch that fills (suspending while out of credit). */
  push(records: ReadonlyArray<unknown>): Effect.Effect<void> {
    return Effect.suspend(() => {
      let full = false
      for (let i = 0; i < records.length; i++) {
        if (this.add(records[i])) {
          if (i + 1 < records.length)
            return this.sendBatch.pipe(Effect.andThen(this.push(records.slice(i + 1))))
          full = true
        }
      }
      return full ? this.sendBatch : Effect.void
    })
  }

  /** True when a partial batch has waited for `lingerMs`. */
  lingerDue(now: number): boolean {
    return this.buffer.length > 0 && now - this.firstAt >= this.options.lingerMs
  }

  /** Sends the buffered records as one batch, first waiting for credit. */
  get sendBatch(): Effect.Effect<void> {
    return this.sendBatchWith(undefined)
  }

  /** Sends the buffered records as one batch, closed by watermark `w` if given. */
  private sendBatchWith(w: number | undefined): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.buffer.length === 0) return Effect.void
      if (!this.credit.canSend()) return this.awaitCredit.pipe(Effect.andThen(this.sendBatchWith(w)))
      const r = this.buffer
      const t = this.times
      this.buffer = []
      this.times = undefined
      this.credit.onSent()
      this.publish({
        k: "batch",
        e: this.epoch,
        c: this.channel,
        s: this.seq++,
        r,
        ...(t === undefined ? {} : { t }),
        ...(w === undefined ? {} : { w })
      })
      return Effect.void
    })
  }

  /**
   * Sends watermark `w` after what is buffered (E1): it closes the open batch, or goes alone as a
   * `wm` message (no credit) when nothing is buffered.
   */
  watermark(w: number): Effect.Effect<void> {
    return Effect.suspend(() =>
      this.buffer.length > 0
        ? this.sendBatchWith(w)
        : Effect.sync(() => this.publish({ k: "wm", e: this.epoch, c: this.channel, s: this.seq++, w }))
    )
  }

  /** Flushes the partial batch, then sends the channel's watermark status. */
  idle(on: boolean): Effect.Effect<void> {
    return this.sendBatch.pipe(
      Effect.andThen(
        Effect.sync(() => this.publish({ k: "idle", e: this.epoch, c: this.channel, s: this.seq++, on }))
      )
    )
  }

  /** Flushes the partial batch, then sends `barrier n` (barriers need no credit). */
  barrier(n: number): Effect.Effect<void> {
    return this.sendBatch.pipe(
      Effect.andThen(
        Effect.sync(() => this.publish({ k: "barrier", e: this.epoch, c: this.channel, s: this.seq++, n }))
      )
    )
  }

  /** Flushes the partial batch, then sends end-of-stream. */
  get eos(): Effect.Effect<void> {
    return this.sendBatch.pipe(
      Effect.andThen(
        Effect.sync(() => this.publish({ k: "eos", e: this.epoch, c: this.channel, s: this.seq++ }))
      )
    )
  }

  /**
   * Whether a receiver can have sent this grant: it grants at most what it consumed plus one
   * window, and it cannot have consumed more than was sent.
   */
  grantPossible(grantedThrough: number): boolean {
    return grantedThrough <= this.credit.sent + this.options.creditWindow
  }

  /** Applies a grant from the receiver; wakes a suspended sender. */
  onGrant(grantedThrough: number): void {
    if (this.credit.onGrant(grantedThrough) && this.wake) {
      const wake = this.wake
      this.wake = undefined
      wake()
    }
  }

  private get awaitCredit(): Effect.Effect<void> {
    return Effect.callback<void>((resume) => {
      const started = performance.now()
      this.wake = () => {
        this.creditWaitMs += performance.now() - started
        resume(Effect.void)
      }
      return Effect.sync(() => {
        this.creditWaitMs += performance.now() - started
        this.wake = undefined
      })
    })
  }

  private publish(envelope: DataEnvelope): void {
    this.nc.publish(this.subject, encode(envelope))
  }
}

/** What a mailbox hands to the actor's loop: one validated data envelope and its channel. */
export interface Delivery {
  readonly channel: number
  readonly envelope: DataEnvelope
}

/** Something the actor posted into its own mailbox queue (a control command), in arrival order. */
export interface Posted<C> {
  readonly channel: -1
  readonly posted: C
}

/** What `take` yields: deliveries only, unless the mailbox carries commands of type C too. */
export type Inbound<C> = [C] extends [never] ? Delivery : Delivery | Posted<C>

/** Counters of a mailbox, for status and tests. */
export interface MailboxCounters {
  stale: number
  /** not an envelope, or a kind that does not belong on a mailbox */
  malformed: number
  /** a well-formed envelope from a sender that is not an input channel (dropped, not a break) */
  foreign: number
}

/**
 * The receiving ends of every input channel of one instance: subscribes the mailbox subject,
 * validates each message (decode, epoch, channel, seq) and queues it for the actor's loop.
 * Credit is granted when the loop reports a batch consumed (`consumed`), never on arrival.
 */
export class Mailbox<C = never> {
  readonly self: string
  readonly epoch: number
  readonly channels: ReadonlyArray<string>
  readonly counters: MailboxCounters = { stale: 0, malformed: 0, foreign: 0 }
  private readonly nc: NatsConnection
  private readonly subjects: Subjects
  private readonly upstreams: ReadonlyArray<InstanceId>
  private readonly index = new Map<string, number>()
  private readonly expected: Array<number>
  private readonly credits: Array<ReceiverCredit>
  private readonly queue: Queue.Queue<Inbound<C>, ChannelBroken | EnvelopeDecodeError>
  private readonly onMalformed: (error: EnvelopeDecodeError) => void

  private constructor(
    nc: NatsConnection,
    subjects: Subjects,
    self: InstanceId,
    upstreams: ReadonlyArray<InstanceId>,
    epoch: number,
    options: ChannelOptions,
    queue: Queue.Queue<Inbound<C>, ChannelBroken | EnvelopeDecodeError>,
    onMalformed: (error: EnvelopeDecodeError) => void
  ) {
    this.nc = nc
    this.subjects = subjects
    this.self = self.toString()
    this.upstreams = upstreams
    this.epoch = epoch
    this.queue = queue
    this.onMalformed = onMalformed
    this.channels = upstreams.map((u) => u.toString())
    for (const [i, c] of this.channels.entries()) this.index.set(c, i)
    this.expected = upstreams.map(() => 0)
    this.credits = upstreams.map(() => new ReceiverCredit(options.creditWindow))
  }

  /**
   * Subscribes `self`'s mailbox for the given upstream channels in `epoch` and flushes, so that
   * it is ready when this returns. The subscription ends with the scope.
   * `onMalformed` is told of every message that fails to decode, does not belong on a mailbox or
   * comes from a sender that is not an input channel (it is not delivered).
   */
  static open<C = never>(
    nc: NatsConnection,
    subjects: Subjects,
    self: InstanceId,
    upstreams: ReadonlyArray<InstanceId>,
    epoch: number,
    options: ChannelOptions,
    onMalformed: (error: EnvelopeDecodeError) => void = () => {}
  ) {
    return Effect.gen(function* () {
      const queue = yield* Queue.unbounded<Inbound<C>, ChannelBroken | EnvelopeDecodeError>()
      const mailbox = new Mailbox<C>(nc, subjects, self, upstreams, epoch, options, queue, onMalformed)
      const subject = subjects.mailbox(self)
      yield* Effect.acquireRelease(
        Effect.sync(() =>
          nc.subscribe(subject, { callback: (_err, msg) => mailbox.onMessage(subject, msg.data) })
        ),
        (sub) => Effect.sync(() => sub.unsubscribe())
      )
      yield* Effect.promise(() => nc.flush())
      yield* Effect.forkScoped(Effect.sync(() => mailbox.regrant()).pipe(Effect.repeat(regrantSchedule)))
      return mailbox
    })
  }

  /** The next delivery in arrival order; fails with `ChannelBroken` once a channel broke. */
  get take(): Effect.Effect<Inbound<C>, ChannelBroken | EnvelopeDecodeError> {
    return Queue.take(this.queue)
  }

  /** The next delivery if one is queued now, else undefined; never waits. */
  poll(): Inbound<C> | undefined {
    const next = Queue.takeUnsafe(this.queue)
    return next !== undefined && next._tag === "Success" ? next.value : undefined
  }

  /** Like `take`, but undefined when nothing arrives within `ms`. */
  takeWithin(ms: number): Effect.Effect<Inbound<C> | undefined, ChannelBroken | EnvelopeDecodeError> {
    const next = Queue.takeUnsafe(this.queue)
    if (next !== undefined) return next
    return Queue.take(this.queue).pipe(
      Effect.timeoutOption(ms),
      Effect.map((o) => (o._tag === "Some" ? o.value : undefined))
    )
  }

  /** Queues a command behind what has arrived so far; `take` yields it in turn. */
  post(command: C): void {
    Queue.offerUnsafe(this.queue, { channel: -1, posted: command } as Inbound<C>)
  }

  /** Reports one batch of `channel` consumed; sends a grant when half a window has drained. */
  consumed(channel: number): void {
    const credit = this.credits[channel]!
    credit.onConsumed()
    const grant = credit.nextGrant()
    if (grant !== undefined) this.sendGrant(channel, grant)
  }

  /** Repeats the current grant of every channel (a lost grant must not stall a channel). */
  regrant(): void {
    for (let i = 0; i < this.credits.length; i++) this.sendGrant(i, this.credits[i]!.granted)
  }

  private sendGrant(channel: number, g: number): void {
    this.nc.publish(
      this.subjects.credit(this.upstreams[channel]!),
      encode({ k: "credit", e: this.epoch, c: this.self, g })
    )
  }

  private onMessage(subject: string, bytes: Uint8Array): void {
    const envelope: Envelope | EnvelopeDecodeError = decode(subject, bytes)
    if (envelope instanceof EnvelopeDecodeError) {
      this.counters.malformed++
      this.onMalformed(envelope)
      return
    }
    if (!isData(envelope)) {
      this.counters.malformed++
      this.onMalformed(
        new EnvelopeDecodeError({ subject, reason: `kind ${envelope.k} does not belong on a mailbox` })
      )
      return
    }
    if (envelope.e < this.epoch) {
      this.counters.stale++
      return
    }
    const channel = this.index.get(envelope.c)
    if (channel === undefined) {
      // no channel's order depends on it, so dropping it loses nothing (a forged or zombie sender)
      this.counters.foreign++
      this.onMalformed(
        new EnvelopeDecodeError({
          subject,
          reason: `${envelope.k} from ${JSON.stringify(envelope.c)}, which is not an input channel of ${this.self}`
        })
      )
      return
    }
    if (envelope.e > this.epoch) {
      this.broken(envelope.c, `message of epoch ${envelope.e} while in epoch ${this.epoch}`)
      return
    }
    const expected = this.expected[channel]!
    if (envelope.s !== expected) {
      this.broken(
        envelope.c,
        envelope.s > expected ? "gap (messages lost)" : "repeated or reordered message",
        expected,
        envelope.s
      )
      return
    }
    this.expected[channel] = expected + 1
    Queue.offerUnsafe(this.queue, { channel, envelope } as Inbound<C>)
  }

  private broken(channel: string, reason: string, expected?: number, got?: number): void {
    Queue.failCauseUnsafe(
      this.queue,
      // A broken channel ends the epoch: the loop sees the error at its next take.
      Cause.fail(
        new ChannelBroken({
          receiver: this.self,
          channel,
          epoch: this.epoch,
          reason,
          ...(expected === undefined ? {} : { expected }),
          ...(got === undefined ? {} : { got })
        })
      )
    )
  }
}

/**
 * The credit subscription of an instance: routes each grant to the sender of the channel it is
 * for (the grant's `c` is the downstream instance). Grants of other epochs are ignored; `onRejected`
 * is told of anything else that is not a grant this instance's senders can take (garbage, another
 * kind, an unknown receiver, a grant beyond what was sent plus a window), which is dropped.
 */
export const subscribeCredits = (
  nc: NatsConnection,
  subjects: Subjects,
  self: InstanceId,
  epoch: number,
  senders: ReadonlyMap<string, ChannelSender>,
  onRejected: (error: EnvelopeDecodeError) => void = () => {}
) =>
  Effect.gen(function* () {
    const subject = subjects.credit(self)
    yield* Effect.acquireRelease(
      Effect.sync(() =>
        nc.subscribe(subject, {
          callback: (_err, msg) => {
            const env = decode(subject, msg.data)
            if (env instanceof EnvelopeDecodeError) return onRejected(env)
            const reject = (reason: string) => onRejected(new EnvelopeDecodeError({ subject, reason }))
            if (env.k !== "credit") return reject(`kind ${env.k} does not belong on a credit subject`)
            // a receiver of another epoch is legitimate for a moment around a recovery
            if (env.e !== epoch) return
            const sender = senders.get(env.c)
            if (sender === undefined)
              return reject(`grant from ${JSON.stringify(env.c)}, which is not a receiver of ${self}`)
            if (!sender.grantPossible(env.g))
              return reject(
                `grant ${env.g} from ${env.c} beyond the ${sender.sentBatches} batches sent plus one window`
              )
            sender.onGrant(env.g)
          }
        })
      ),
      (sub) => Effect.sync(() => sub.unsubscribe())
    )
    yield* Effect.promise(() => nc.flush())
  })
