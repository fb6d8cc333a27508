/**
 * lib/connectors/jetstream/ — NATS JetStream in and out of a job: the replayable source (this
 * file) with its options, errors, reader contract and bounded end, and the producer that writes an
 * input stream. Imports runtime/, api/, core/, internal/ and broker URLs; never the coordinator or the CLI.
 *
 * A replayable JetStream source: each instance reads one stream from a recorded position with an
 * ordered consumer, pulling in fetches of up to `fetchSize` into a bounded buffer that `read` drains.
 * Invariant: `read` returns records in stream-sequence order, none twice and none skipped, and
 * `position()` is the sequence of the last one; a reader opened with that position continues after it.
 *
 * Parallel instances split the stream by sequence: instance i of p takes the messages with
 * `(seq - 1) % p === i`. That is deterministic, replayable and independent of subjects, and a restored
 * instance filters exactly as before. Its cost: every instance fetches the whole stream and drops
 * (p - 1)/p of it client-side, so the stream is read p times. Splitting by subject with
 * `filter_subjects` would avoid that, but the server here (2.9.10) has no multi-filter consumers,
 * so it is not offered. A position belongs to one (index, parallelism): it cannot be rescaled.
 *
 * Bounded sources fix their end sequence once per job and operator, in the KV bucket
 * `boundsBucket` (create-if-absent, so every instance of the job agrees on it even if messages
 * arrive between their opens), and carry it in the position, so a restored reader stops at the
 * same place. `clearBoundedEnd` forgets it, for a job started afresh under the same name.
 */
import { DeliverPolicy, type Consumer, jetstream, jetstreamManager } from "@nats-io/jetstream"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { agreeOnEnd } from "./BoundedEnd.ts"
import { isPositiveInt } from "../../internal/isPositiveInt.ts"
import { type JetStreamSourceOptions, resolveJetStreamSourceOptions } from "./JetStreamSourceOptions.ts"
import { natsConnection } from "../../runtime/Nats.ts"
import {
  DecodeFailure,
  MalformedRecord,
  type SourceError,
  SourceOptionsInvalid,
  SourcePositionInvalid,
  SourceReadFailed
} from "./SourceError.ts"
import type { JetStreamPosition, SourceContext, SourcePosition, SourceReader } from "./SourceReader.ts"
import { causeMessage } from "../../internal/causeMessage.ts"

/** Fetch failures: the ordered consumer is recreated from the last sequence seen, 6 tries over ~3 s. */
export const fetchRetrySchedule = Schedule.exponential("100 millis", 2).pipe(Schedule.upTo({ times: 5 }))

/** A wake-up for fibers that wait on the buffer (data for `read`, room for the fetcher). */
class Signal {
  private waiters: Array<() => void> = []
  notify(): void {
    if (this.waiters.length === 0) return
    const ws = this.waiters
    this.waiters = []
    for (const w of ws) w()
  }
  wait(ms: number): Effect.Effect<void> {
    return Effect.callback<void>((resume) => {
      let done = false
      const fire = () => {
        if (done) return
        done = true
        clearTimeout(timer)
        resume(Effect.void)
      }
      const timer = setTimeout(fire, ms)
      this.waiters.push(fire)
      return Effect.sync(() => {
        done = true
        clearTimeout(timer)
      })
    })
  }
}

interface Raw {
  readonly seq: number
  readonly data: Uint8Array
}

const checkContext = (ctx: SourceContext): SourceOptionsInvalid | undefined => {
  if (!isPositiveInt(ctx.parallelism))
    return new SourceOptionsInvalid({
      field: "ctx.parallelism",
      value: ctx.parallelism,
      reason: "must be >= 1"
    })
  if (!Number.isInteger(ctx.index) || ctx.index < 0 || ctx.index >= ctx.parallelism)
    return new SourceOptionsInvalid({
      field: "ctx.index",
      value: ctx.index,
      reason: `must be an integer in [0, ${ctx.parallelism})`
    })
  return undefined
}

const checkPosition = (
  stream: string,
  ctx: SourceContext,
  position: unknown
): { readonly seq: number; readonly end: number | undefined } | SourcePositionInvalid => {
  if (position === undefined || position === null) return { seq: 0, end: undefined }
  const bad = (reason: string) => new SourcePositionInvalid({ stream, position, reason })
  if (typeof position !== "object") return bad("not an object")
  const p = position as Partial<Record<keyof JetStreamPosition, unknown>>
  if (!Number.isInteger(p.seq) || (p.seq as number) < 0) return bad("seq must be an integer >= 0")
  if (p.end !== undefined && (!Number.isInteger(p.end) || (p.end as number) < 0))
    return bad("end must be an integer >= 0")
  if (p.index !== ctx.index || p.parallelism !== ctx.parallelism)
    return bad(
      `recorded by instance ${String(p.index)} of ${String(p.parallelism)}, opened as ${ctx.index} of ${ctx.parallelism}; the sequence split cannot be rescaled`
    )
  return { seq: p.seq as number, end: p.end as number | undefined }
}

export interface JetStreamSourceReader<A> extends SourceReader<A> {
  /** Malformed payloads skipped since this reader opened (`onMalformed: "skip-and-count"`). */
  readonly malformed: () => number
}

const open = <A>(
  options: JetStreamSourceOptions<A>,
  ctx: SourceContext,
  position: SourcePosition | undefined
): Effect.Effect<JetStreamSourceReader<A>, SourceError, Scope.Scope> =>
  Effect.gen(function* () {
    const cfg = resolveJetStreamSourceOptions(options)
    if (cfg instanceof SourceOptionsInvalid) return yield* cfg
    const ctxError = checkContext(ctx)
    if (ctxError !== undefined) return yield* ctxError
    const start = checkPosition(cfg.stream, ctx, position)
    if (start instanceof SourcePositionInvalid) return yield* start
    const { stream, skipMalformed } = cfg
    const { index, parallelism } = ctx

    const nc = yield* natsConnection(ctx.natsUrl, { name: `${ctx.job}/${ctx.operator}#${index}/source` })
    const js = (operation: string) => (cause: unknown) => new SourceReadFailed({ stream, operation, cause })
    const jsm = yield* Effect.tryPromise({ try: () => jetstreamManager(nc), catch: js("reach JetStream") })
    const info = yield* Effect.tryPromise({
      try: () => jsm.streams.info(stream),
      catch: js("look up the stream")
    })
    const end =
      cfg.bounded === undefined
        ? undefined
        : (start.end ?? (yield* agreeOnEnd(nc, ctx, cfg, cfg.bounded, info)))

    const buffer: Array<Raw> = []
    let scanned = start.seq // last stream sequence the fetcher has seen
    let lastSeq = start.seq // last sequence read returned or skipped
    let exhausted = end !== undefined && start.seq >= end
    let failure: SourceError | undefined
    let malformed = 0
    const data = new Signal()
    const room = new Signal()

    const client = jetstream(nc)
    const orderedFrom = (seq: number) =>
      Effect.tryPromise({
        try: () =>
          client.consumers.get(
            stream,
            seq <= 1
              ? { deliver_policy: DeliverPolicy.All }
              : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: seq }
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
              if ((seq - 1) % parallelism === index) {
                buffer.push({ seq, data: m.data })
                data.notify()
              }
              // pending 0: nothing more in the stream now, and now is after the end was fixed
              if (end !== undefined && (seq >= end || (cfg.bounded === "atStart" && m.info.pending === 0))) {
                exhausted = true
                break
              }
            }
            if (got === 0 && end !== undefined && cfg.bounded === "atStart" && !signal.aborted) {
              // the rest up to `end` may have been deleted: nothing pending now means nothing more
              if ((await c.info()).num_pending === 0) exhausted = true
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

    const decodeOne = (raw: Raw): A | DecodeFailure => {
      try {
        return cfg.decode(raw.data, raw.seq)
      } catch (e) {
        return new DecodeFailure({ reason: `decoder threw: ${causeMessage(e)}` })
      }
    }

    /** Takes up to `max` buffered records; a malformed one is returned as the error only when it comes first. */
    const take = (max: number) =>
      Effect.suspend(() => {
        const n = Math.min(Math.max(0, max), buffer.length)
        const records: Array<A> = []
        let used = 0
        for (; used < n; used++) {
          const raw = buffer[used]!
          const r = decodeOne(raw)
          if (r instanceof DecodeFailure) {
            if (skipMalformed) {
              malformed++
              continue
            }
            if (used === 0)
              return Effect.fail(new MalformedRecord({ stream, seq: raw.seq, reason: r.reason }))
            break
          }
          records.push(r)
        }
        if (used > 0) {
          lastSeq = buffer[used - 1]!.seq
          buffer.splice(0, used)
          room.notify()
        }
        if (buffer.length === 0 && failure !== undefined && records.length === 0 && used === 0)
          return Effect.fail(failure)
        return Effect.succeed({ records, end: exhausted && buffer.length === 0 && failure === undefined })
      })

    const read = (max: number) =>
      Effect.suspend(() =>
        buffer.length === 0 && !exhausted && failure === undefined
          ? data.wait(cfg.idleMs).pipe(Effect.andThen(take(max)))
          : take(max)
      )

    const positionNow = (): JetStreamPosition =>
      end === undefined ? { seq: lastSeq, index, parallelism } : { seq: lastSeq, end, index, parallelism }

    return { read, position: positionNow, malformed: () => malformed } satisfies JetStreamSourceReader<A>
  })

/**
 * A JetStream stream as a replayable, optionally bounded source. Options are checked at `open`
 * (and by `resolveJetStreamSourceOptions`, for start-up validation) with errors naming the field.
 */
export const jetStreamSource = <A>(options: JetStreamSourceOptions<A>) => ({
  open: (
    ctx: SourceContext,
    position: SourcePosition | undefined
  ): Effect.Effect<JetStreamSourceReader<A>, SourceError, Scope.Scope> => open(options, ctx, position)
})
