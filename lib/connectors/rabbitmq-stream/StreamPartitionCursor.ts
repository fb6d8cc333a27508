/**
 * One stream-protocol consumer of one partition stream, delivering into a bounded buffer that the
 * source drains, and `lastOffsetOf`, the last offset of a stream on a broker without StreamStats
 * (3.10.8). Invariant: the buffer holds the stream's messages from `next` on in offset order, none
 * twice and none skipped; the consumer gets no more credit while the buffer is full (its handler
 * waits), and stops at a bounded end. A lost connection is the cursor's failure: the job recovers.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { Client, Consumer } from "rabbitmq-stream-js-client"
import { Offset } from "rabbitmq-stream-js-client"
import {
  ConsumerCreditPolicy,
  type CreditRequestWrapper
} from "rabbitmq-stream-js-client/dist/consumer_credit_policy.js"
import { Signal } from "../BufferSignal.ts"
import { call } from "./StreamClient.ts"
import type { StreamCallFailed } from "./StreamErrors.ts"

/** One message as delivered: its offset in the partition stream and its payload. */
export interface Raw {
  readonly offset: number
  readonly data: Uint8Array
}

export interface PartitionCursor {
  readonly partition: number
  readonly stream: string
  /** buffered messages, oldest first; `consume` removes from the front */
  readonly buffer: ReadonlyArray<Raw>
  /** Drops the first `n` buffered messages: they are read (or skipped as malformed). */
  consume(n: number): void
  /** the offset of the next message to read: the position of this partition */
  next(): number
  /** nothing more will come into the buffer: the end is reached (or the consumer failed) */
  exhausted(): boolean
  /** the error that stopped the consumer, if one did */
  failure(): StreamCallFailed | undefined
}

/** Calls `done` once the first chunk is handed over, and asks for no second one. */
class FirstChunkOnly extends ConsumerCreditPolicy {
  private readonly done: () => void
  constructor(done: () => void) {
    super(1)
    this.done = done
  }
  override async onChunkCompleted(_request: CreditRequestWrapper): Promise<void> {
    this.done()
  }
}

/**
 * The offset of the last message in `stream`, or -1 when it holds none. 3.10.8 has no StreamStats
 * and its message count is no count (it lags and includes non-messages), so this subscribes at
 * `last` (the last chunk) and takes the highest offset of that chunk; no chunk within `waitMs`
 * means the stream is empty.
 */
export const lastOffsetOf = (
  client: Client,
  owner: string,
  stream: string,
  timeoutMs: number,
  waitMs: number
): Effect.Effect<number, StreamCallFailed> =>
  Effect.gen(function* () {
    let last = -1
    let complete: () => void = () => {}
    const chunk = new Promise<void>((resolve) => {
      complete = resolve
    })
    const consumer = yield* call(owner, stream, "subscribe at the last chunk", timeoutMs, () =>
      client.declareConsumer(
        { stream, offset: Offset.last(), creditPolicy: new FirstChunkOnly(() => complete()) },
        (m) => {
          if (m.offset !== undefined && Number(m.offset) > last) last = Number(m.offset)
        }
      )
    )
    yield* Effect.promise(() => Promise.race([chunk, new Promise((r) => setTimeout(r, waitMs))]))
    yield* call(owner, stream, "close the last-chunk consumer", timeoutMs, () =>
      client.closeConsumer(consumer.extendedId)
    ).pipe(Effect.ignore)
    return last
  })

/**
 * Subscribes to `stream` from offset `next` (0: from its first message) in the current scope; the
 * consumer is closed at scope close. `end`: the last offset to read (inclusive), -1 for none.
 */
export const openPartitionCursor = (
  client: Client,
  cfg: {
    readonly owner: string
    readonly stream: string
    readonly partition: number
    readonly next: number
    readonly end: number | undefined
    readonly maxBuffered: number
    readonly timeoutMs: number
  },
  data: Signal,
  connectionLost: () => StreamCallFailed | undefined
): Effect.Effect<PartitionCursor, StreamCallFailed, Scope.Scope> =>
  Effect.gen(function* () {
    const { stream, end } = cfg
    let buffer: Array<Raw> = []
    let next = cfg.next
    /** the offset the consumer expects next (messages before it are ones already delivered) */
    let scanned = cfg.next
    let reachedEnd = end !== undefined && cfg.next > end
    let closing = false
    const room = new Signal()
    const handle = async (m: { readonly offset?: bigint; readonly content: Buffer }) => {
      if (reachedEnd || closing || m.offset === undefined) return
      const offset = Number(m.offset)
      if (offset < scanned) return
      if (end !== undefined && offset > end) {
        reachedEnd = true
        data.notify()
        return
      }
      scanned = offset + 1
      buffer.push({ offset, data: m.content })
      if (end !== undefined && offset >= end) reachedEnd = true
      data.notifySoon()
      // no credit for the next chunk until there is room: the handler holds the chunk open
      while (buffer.length >= cfg.maxBuffered && !closing) await room.next(1000)
    }
    let consumer: Consumer | undefined
    if (!reachedEnd) {
      consumer = yield* call(cfg.owner, stream, `subscribe from offset ${cfg.next}`, cfg.timeoutMs, () =>
        client.declareConsumer(
          { stream, offset: cfg.next === 0 ? Offset.first() : Offset.offset(BigInt(cfg.next)) },
          handle
        )
      )
      const subscribed = consumer
      yield* Effect.addFinalizer(() =>
        Effect.suspend(() => {
          closing = true
          room.notify()
          return connectionLost() === undefined
            ? call(cfg.owner, stream, "close the consumer", 2000, () =>
                client.closeConsumer(subscribed.extendedId)
              ).pipe(Effect.ignore)
            : Effect.void
        })
      )
    }
    return {
      partition: cfg.partition,
      stream,
      get buffer() {
        return buffer
      },
      consume: (n: number) => {
        if (n <= 0) return
        next = buffer[n - 1]!.offset + 1
        buffer = n >= buffer.length ? [] : buffer.slice(n)
        room.notify()
      },
      next: () => next,
      exhausted: () => reachedEnd || connectionLost() !== undefined,
      failure: () => connectionLost()
    } satisfies PartitionCursor
  })
