/**
 * One ordered consumer of a stream (optionally on one filter subject) pulling fetches of up to
 * `fetchSize` into a bounded buffer that the source drains. Invariant: the buffer holds messages in
 * stream-sequence order, none twice and none skipped (of those `keep` accepts); a consumer that
 * fails is recreated from the last sequence seen, so a retry neither repeats nor loses a message.
 */
import { type Consumer, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type { NatsConnection } from "../../runtime/Nats.ts"
import { type SourceError, SourceReadFailed } from "./SourceError.ts"
import { Signal } from "../BufferSignal.ts"

/** Fetch failures: the ordered consumer is recreated from the last sequence seen, 6 tries over ~3 s. */
export const fetchRetrySchedule = Schedule.exponential("100 millis", 2).pipe(Schedule.upTo({ times: 5 }))

/** One message as fetched: its stream sequence and payload. */
export interface Raw {
  readonly seq: number
  readonly data: Uint8Array
}

export interface CursorConfig {
  readonly stream: string
  /** the one subject this consumer reads (a partition); all of the stream when absent */
  readonly filterSubject?: string
  /** the partition this cursor reads, for error messages */
  readonly partition?: number
  /** which sequences go into the buffer (the sequence split); all when absent */
  readonly keep?: (seq: number) => boolean
  /** the last sequence already read (0 before the first) */
  readonly startSeq: number
  /** last sequence of a bounded read (inclusive); undefined when unbounded */
  readonly end: number | undefined
  /**
   * A bounded read of a whole stream ends early when the consumer reports nothing pending (the end
   * was "atStart" and the rest may have been deleted). A partition (a filtered consumer) does not
   * need it: its end is its exact last sequence, and a fetch that brings nothing ends it only when
   * the partition's newest message is one already seen.
   */
  readonly endWhenNothingPending: boolean
  readonly fetchSize: number
  readonly maxBuffered: number
  readonly fetchExpiresMs: number
}

export interface StreamCursor {
  readonly partition: number | undefined
  /** buffered messages, oldest first; `consume` removes from the front */
  readonly buffer: ReadonlyArray<Raw>
  /** Drops the first `n` buffered messages: they are read (or skipped as malformed). */
  consume(n: number): void
  /** the sequence of the last message consumed (or `startSeq`) */
  lastSeq(): number
  /** nothing more will come into the buffer: the end is reached (or the fetcher failed) */
  exhausted(): boolean
  /** the error that stopped the fetcher, if one did */
  failure(): SourceError | undefined
}

/**
 * Starts a fetcher in the current scope filling the cursor's buffer; `data` is notified whenever a
 * message arrives or the fetcher stops. Consumers are ephemeral and deleted at scope close.
 */
export const openCursor = (
  nc: NatsConnection,
  cfg: CursorConfig,
  data: Signal
): Effect.Effect<StreamCursor, never, Scope.Scope> =>
  Effect.gen(function* () {
    const { stream, end } = cfg
    const js = (operation: string) => (cause: unknown) =>
      new SourceReadFailed({
        stream,
        operation: cfg.partition === undefined ? operation : `${operation} (partition ${cfg.partition})`,
        cause
      })
    let buffer: Array<Raw> = []
    let scanned = cfg.startSeq // last stream sequence the fetcher has seen
    let lastSeq = cfg.startSeq
    let exhausted = end !== undefined && cfg.startSeq >= end
    let failure: SourceError | undefined
    const room = new Signal()
    const client = jetstream(nc)
    const manager = jetstreamManager(nc)
    /** the last sequence of `subject` now (0 when it holds nothing: nats.js answers null) */
    const lastOfSubject = (subject: string) =>
      manager
        .then((jsm) => jsm.streams.getMessage(stream, { last_by_subj: subject }))
        .then((m) => m?.seq ?? 0)
    // one subject as a string: nats.js sends it as `filter_subject`, which nats-server 2.9 understands
    const filter = cfg.filterSubject === undefined ? {} : { filter_subjects: cfg.filterSubject }

    const orderedFrom = (seq: number) =>
      Effect.tryPromise({
        try: () =>
          client.consumers.get(
            stream,
            seq <= 1
              ? { deliver_policy: DeliverPolicy.All, ...filter }
              : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: seq, ...filter }
          ),
        catch: js(`create an ordered consumer from sequence ${seq}`)
      })
    /** Ordered consumers are ephemeral and expire by themselves; deleting them is only tidiness. */
    const remove = (c: Consumer) =>
      Effect.tryPromise(() => c.delete()).pipe(
        Effect.catch((e) => Effect.logDebug("ordered consumer not deleted (it expires by itself)", e))
      )
    let consumer: Consumer | undefined
    // registered before the fetcher is forked, so it runs after the fetcher has stopped
    yield* Effect.addFinalizer(() => (consumer === undefined ? Effect.void : remove(consumer)))

    /** One fetch, drained into the buffer in a plain loop; returns how many messages came. */
    const fetchOnce = (c: Consumer) =>
      Effect.tryPromise({
        try: async (signal) => {
          const want = Math.min(cfg.fetchSize, cfg.maxBuffered - buffer.length)
          const iter = await c.fetch({ max_messages: want, expires: cfg.fetchExpiresMs })
          const stop = () => void iter.close()
          signal.addEventListener("abort", stop, { once: true })
          let got = 0
          try {
            for await (const m of iter) {
              got++
              const seq = m.info.streamSequence
              if (end !== undefined && seq > end) {
                exhausted = true
                break
              }
              scanned = seq
              if (cfg.keep === undefined || cfg.keep(seq)) {
                buffer.push({ seq, data: m.data })
                data.notifySoon()
              }
              // pending 0: nothing more in the stream now, and now is after the end was fixed
              if (end !== undefined && (seq >= end || (cfg.endWhenNothingPending && m.info.pending === 0))) {
                exhausted = true
                break
              }
            }
            if (got === 0 && end !== undefined && !signal.aborted) {
              // the rest up to `end` may have been deleted: nothing pending now means nothing more
              if (cfg.endWhenNothingPending && (await c.info()).num_pending === 0) exhausted = true
              // a partition whose newest message is one already seen has nothing more up to `end`
              if (cfg.filterSubject !== undefined && (await lastOfSubject(cfg.filterSubject)) <= scanned)
                exhausted = true
            }
          } finally {
            signal.removeEventListener("abort", stop)
          }
          return got
        },
        catch: js("fetch")
      })

    let recreate = true
    const fetchAttempt = Effect.gen(function* () {
      if (recreate || consumer === undefined) {
        if (consumer !== undefined) yield* remove(consumer)
        consumer = undefined
        consumer = yield* orderedFrom(scanned + 1)
        recreate = false
      }
      return yield* fetchOnce(consumer)
    }).pipe(
      Effect.tapError((e) =>
        Effect.sync(() => {
          recreate = true
        }).pipe(Effect.andThen(Effect.logWarning(`${e.message}; recreating the ordered consumer`)))
      ),
      Effect.retry(fetchRetrySchedule)
    )

    const fetcher = Effect.gen(function* () {
      while (!exhausted) {
        if (buffer.length >= cfg.maxBuffered) {
          yield* room.wait(1000)
          continue
        }
        yield* fetchAttempt
      }
    }).pipe(
      Effect.catch((e: SourceError) =>
        Effect.sync(() => {
          failure = e
        })
      ),
      Effect.ensuring(Effect.sync(() => data.notify()))
    )
    if (!exhausted) yield* Effect.forkScoped(fetcher)

    return {
      partition: cfg.partition,
      get buffer() {
        return buffer
      },
      consume: (n: number) => {
        if (n <= 0) return
        lastSeq = buffer[n - 1]!.seq
        buffer = n >= buffer.length ? [] : buffer.slice(n)
        room.notify()
      },
      lastSeq: () => lastSeq,
      exhausted: () => exhausted || failure !== undefined,
      failure: () => failure
    } satisfies StreamCursor
  })
