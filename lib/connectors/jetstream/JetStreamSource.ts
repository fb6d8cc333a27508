/**
 * lib/connectors/jetstream/ — NATS JetStream in and out of a job: the replayable source (this
 * file) with its options, errors, reader contract and bounded end, and the producer that writes an
 * input stream. Imports runtime/, api/, core/, internal/ and broker URLs; never the coordinator or the CLI.
 *
 * A replayable JetStream source: each instance reads a stream from a recorded position with
 * ordered consumers (`StreamCursor`), each pulling fetches into a bounded buffer that `read` drains.
 * Invariant: `read` returns each consumer's records in stream-sequence order, none twice and none
 * skipped, and `position()` records the last one of each; a reader opened with it continues after it.
 *
 * Two ways to split a stream over parallel instances:
 * - **Partitioned** (`partitions: P`): the producer put each record on `<subject>.<k>`, k =
 *   murmur3(key) mod P. Instance i of p owns the partitions of its contiguous range (as key groups
 *   are assigned) and opens one consumer per partition with that filter subject, so no instance
 *   reads another's records (one filter subject per consumer: works on nats-server 2.9). Positions
 *   are kept per partition, so the parallelism can change on restore (`mergePartitionedPositions`).
 * - **By sequence** (no `partitions`): instance i of p takes the messages with `(seq - 1) % p === i`.
 *   Deterministic and independent of subjects, but every instance fetches the whole stream and
 *   drops (p - 1)/p of it, and a position belongs to one (index, parallelism): no rescale.
 *
 * Bounded sources fix their end sequence once per job and operator, in the KV bucket
 * `boundsBucket` (create-if-absent, so every instance of the job agrees on it even if messages
 * arrive between their opens), and carry it in the position, so a restored reader stops at the
 * same place. `clearBoundedEnd` forgets it, for a job started afresh under the same name.
 */
import { type JetStreamManager, jetstreamManager, type StreamInfo } from "@nats-io/jetstream"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { keyGroupRange } from "../../core/KeyGroups.ts"
import { agreeOnEnd, agreeOnPartitionEnds } from "./BoundedEnd.ts"
import { isPositiveInt } from "../../internal/isPositiveInt.ts"
import { type JetStreamSourceOptions, resolveJetStreamSourceOptions } from "./JetStreamSourceOptions.ts"
import { type NatsConnection, natsConnection } from "../../runtime/Nats.ts"
import {
  DecodeFailure,
  MalformedRecord,
  type SourceError,
  SourceOptionsInvalid,
  SourcePositionInvalid,
  SourceReadFailed
} from "./SourceError.ts"
import type {
  JetStreamPosition,
  PartitionedPosition,
  SourceContext,
  SourcePosition,
  SourceReader,
  UndecodedRecord
} from "./SourceReader.ts"
import { openCursor, type Raw, type StreamCursor } from "./StreamCursor.ts"
import { Signal } from "../BufferSignal.ts"

export { fetchRetrySchedule } from "./StreamCursor.ts"
import { causeMessage } from "../../internal/causeMessage.ts"

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
  if ("partitions" in position)
    return bad("recorded by a partitioned source; this one splits the stream by sequence")
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

/** The partitions instance `index` of `parallelism` owns: a contiguous range, as key groups are assigned. */
export const ownedPartitions = (partitions: number, parallelism: number, index: number): Array<number> => {
  const { start, end } = keyGroupRange(partitions, parallelism, index)
  return Array.from({ length: Math.max(0, end - start + 1) }, (_, i) => start + i)
}

const isSeq = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 0

/** A recorded partitioned position's problem, if it has one. */
const partitionedProblem = (p: unknown, partitions: number): string | undefined => {
  if (typeof p !== "object" || p === null) return "not an object"
  if (!("partitions" in p)) return "recorded by a source that splits the stream by sequence, not by partition"
  const q = p as Partial<Record<keyof PartitionedPosition, unknown>>
  if (q.partitions !== partitions)
    return `recorded for ${String(q.partitions)} partitions, the source reads ${partitions}`
  if (
    !Array.isArray(q.at) ||
    !q.at.every((e) => Array.isArray(e) && e.length === 2 && isSeq(e[0]) && isSeq(e[1]))
  )
    return "at must be a list of [partition, sequence] pairs"
  if (q.at.some(([k]) => k >= partitions)) return "a partition is out of range"
  if (
    q.ends !== undefined &&
    (!Array.isArray(q.ends) || q.ends.length !== partitions || !q.ends.every(isSeq))
  )
    return `ends must list ${partitions} sequences`
  return undefined
}

/**
 * The position instance `ctx.index` of `ctx.parallelism` opens with, from the positions of every
 * instance of a restored checkpoint (any parallelism): each owned partition's last sequence, and
 * the job-wide ends. A position that is not a partitioned one of `partitions` is passed on as it
 * is, so that `open` names the problem.
 */
export const mergePartitionedPositions = (
  partitions: number,
  ctx: { readonly index: number; readonly parallelism: number },
  positions: ReadonlyArray<unknown>
): unknown => {
  const invalid = positions.find((p) => p !== undefined && partitionedProblem(p, partitions) !== undefined)
  if (invalid !== undefined) return invalid
  const seqs = new Map<number, number>()
  let ends: ReadonlyArray<number> | undefined
  for (const p of positions as ReadonlyArray<PartitionedPosition | undefined>) {
    if (p === undefined) continue
    for (const [k, seq] of p.at) seqs.set(k, Math.max(seq, seqs.get(k) ?? 0))
    ends ??= p.ends
  }
  const at = ownedPartitions(partitions, ctx.parallelism, ctx.index).map(
    (k) => [k, seqs.get(k) ?? 0] as const
  )
  return ends === undefined ? { partitions, at } : { partitions, at, ends }
}

/** A payload as text for a dead letter: invalid UTF-8 becomes U+FFFD rather than failing. */
const lossy = new TextDecoder("utf-8")

export interface JetStreamSourceReader<A> extends SourceReader<A> {
  /** Malformed payloads skipped or dead-lettered since this reader opened (`onMalformed` not `"fail"`). */
  readonly malformed: () => number
}

type Resolved<A> = Exclude<ReturnType<typeof resolveJetStreamSourceOptions<A>>, SourceOptionsInvalid>

/** Every subject holding messages in `stream` is a partition subject `<subject>.<k>` with k < partitions. */
const checkPartitionSubjects = (info: StreamInfo, cfg: Resolved<unknown>, partitions: number) => {
  const prefix = `${cfg.subject}.`
  for (const subject of Object.keys(info.state.subjects ?? {})) {
    const k = subject.startsWith(prefix) ? subject.slice(prefix.length) : undefined
    if (k === undefined || !/^(0|[1-9][0-9]*)$/.test(k))
      return new SourceOptionsInvalid({
        field: "partitions",
        value: partitions,
        reason: `are read from ${prefix}<k>, but stream ${cfg.stream} holds messages on ${subject} (produce it with --partitions ${partitions} --key <field>, or read it without partitions)`
      })
    if (Number(k) >= partitions)
      return new SourceOptionsInvalid({
        field: "partitions",
        value: partitions,
        reason: `are fewer than the stream's: it holds messages on ${subject}`
      })
  }
  return undefined
}

/** The last sequence of `subject` in `stream` (0 when it holds nothing: nats.js answers null). */
const lastSequenceOf = (jsm: JetStreamManager, stream: string, subject: string) =>
  jsm.streams.getMessage(stream, { last_by_subj: subject }).then((m) => m?.seq ?? 0)

/** The cursors of a partitioned source instance, and how to record its position. */
const openPartitioned = (
  nc: NatsConnection,
  jsm: JetStreamManager,
  info: StreamInfo,
  cfg: Resolved<unknown>,
  partitions: number,
  ctx: SourceContext,
  position: unknown,
  data: Signal
) =>
  Effect.gen(function* () {
    const { stream } = cfg
    if (partitions < ctx.parallelism)
      return yield* new SourceOptionsInvalid({
        field: "partitions",
        value: partitions,
        reason: `must be at least the source's parallelism (${ctx.parallelism}): an instance without a partition reads nothing`
      })
    const wrongSubjects = checkPartitionSubjects(info, cfg, partitions)
    if (wrongSubjects !== undefined) return yield* wrongSubjects
    const owned = ownedPartitions(partitions, ctx.parallelism, ctx.index)
    const merged =
      position === undefined || position === null
        ? { partitions, at: owned.map((k) => [k, 0] as const) }
        : mergePartitionedPositions(partitions, ctx, [position])
    const problem = partitionedProblem(merged, partitions)
    if (problem !== undefined) return yield* new SourcePositionInvalid({ stream, position, reason: problem })
    const start = merged as PartitionedPosition
    const ends =
      start.ends ??
      (cfg.bounded === undefined
        ? undefined
        : yield* agreeOnPartitionEnds(nc, ctx, { ...cfg, partitions }, (k) =>
            lastSequenceOf(jsm, stream, `${cfg.subject}.${k}`)
          ))
    const cursors: Array<StreamCursor> = []
    for (const [k, seq] of start.at)
      cursors.push(
        yield* openCursor(
          nc,
          {
            stream,
            filterSubject: `${cfg.subject}.${k}`,
            partition: k,
            startSeq: seq,
            end: ends?.[k],
            // exact ends per partition; filtered consumers' pending counts are not relied on
            endWhenNothingPending: false,
            fetchSize: cfg.fetchSize,
            maxBuffered: cfg.maxBuffered,
            fetchExpiresMs: cfg.fetchExpiresMs
          },
          data
        )
      )
    const positionNow = (): PartitionedPosition => {
      const at = cursors.map((c) => [c.partition!, c.lastSeq()] as const)
      return ends === undefined ? { partitions, at } : { partitions, at, ends }
    }
    return { cursors, positionNow }
  })

/** The one cursor of an instance that splits the stream by sequence, and how to record its position. */
const openBySequence = (
  nc: NatsConnection,
  info: StreamInfo,
  cfg: Resolved<unknown>,
  ctx: SourceContext,
  position: unknown,
  data: Signal
) =>
  Effect.gen(function* () {
    const start = checkPosition(cfg.stream, ctx, position)
    if (start instanceof SourcePositionInvalid) return yield* start
    const { index, parallelism } = ctx
    const end =
      cfg.bounded === undefined
        ? undefined
        : (start.end ?? (yield* agreeOnEnd(nc, ctx, cfg, cfg.bounded, info)))
    const cursor = yield* openCursor(
      nc,
      {
        stream: cfg.stream,
        ...(parallelism === 1 ? {} : { keep: (seq: number) => (seq - 1) % parallelism === index }),
        startSeq: start.seq,
        end,
        endWhenNothingPending: cfg.bounded === "atStart",
        fetchSize: cfg.fetchSize,
        maxBuffered: cfg.maxBuffered,
        fetchExpiresMs: cfg.fetchExpiresMs
      },
      data
    )
    const positionNow = (): JetStreamPosition => {
      const seq = cursor.lastSeq()
      return end === undefined ? { seq, index, parallelism } : { seq, end, index, parallelism }
    }
    return { cursors: [cursor], positionNow }
  })

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
    const { stream, skipMalformed, deadLetterMalformed } = cfg

    const nc = yield* natsConnection(ctx.natsUrl, {
      name: `${ctx.job}/${ctx.operator}#${ctx.index}/source`,
      job: ctx.job
    })
    const js = (operation: string) => (cause: unknown) => new SourceReadFailed({ stream, operation, cause })
    const jsm = yield* Effect.tryPromise({ try: () => jetstreamManager(nc), catch: js("reach JetStream") })
    const info = yield* Effect.tryPromise({
      try: () =>
        cfg.partitions === undefined
          ? jsm.streams.info(stream)
          : jsm.streams.info(stream, { subjects_filter: ">" }),
      catch: js("look up the stream")
    })
    const data = new Signal()
    const { cursors, positionNow } =
      cfg.partitions === undefined
        ? yield* openBySequence(nc, info, cfg as Resolved<unknown>, ctx, position, data)
        : yield* openPartitioned(nc, jsm, info, cfg as Resolved<unknown>, cfg.partitions, ctx, position, data)
    let malformed = 0
    /** the cursor `take` starts at, so that no partition starves the others */
    let next = 0

    const decodeOne = (raw: Raw): A | DecodeFailure => {
      try {
        return cfg.decode(raw.data, raw.seq)
      } catch (e) {
        return new DecodeFailure({ reason: `decoder threw: ${causeMessage(e)}` })
      }
    }

    const buffered = () => {
      let n = 0
      for (const c of cursors) n += c.buffer.length
      return n
    }

    /**
     * Takes up to `max` buffered records over the cursors, in a plain loop; a malformed record is
     * returned as the error only when nothing was taken before it (the next read then fails on it).
     */
    const take = (max: number) =>
      Effect.suspend(() => {
        const records: Array<A> = []
        let undecoded: Array<UndecodedRecord> | undefined
        for (let i = 0; i < cursors.length && records.length < max; i++) {
          const c = cursors[(next + i) % cursors.length]!
          const buffer = c.buffer
          const n = Math.min(max - records.length, buffer.length)
          let used = 0
          let stopped = false
          for (; used < n; used++) {
            const raw = buffer[used]!
            const r = decodeOne(raw)
            if (r instanceof DecodeFailure) {
              if (skipMalformed) {
                malformed++
                continue
              }
              if (deadLetterMalformed) {
                malformed++
                if (undecoded === undefined) undecoded = []
                undecoded.push({
                  record: lossy.decode(raw.data),
                  reason: r.reason,
                  input: `jetstream:${stream}`,
                  position:
                    c.partition === undefined ? { seq: raw.seq } : { seq: raw.seq, partition: c.partition }
                })
                continue
              }
              if (used === 0 && records.length === 0)
                return Effect.fail(
                  new MalformedRecord({
                    stream,
                    seq: raw.seq,
                    reason: r.reason,
                    ...(c.partition === undefined ? {} : { partition: c.partition })
                  })
                )
              stopped = true
              break
            }
            records.push(r)
          }
          c.consume(used)
          if (stopped) break
        }
        next = (next + 1) % cursors.length
        const empty = buffered() === 0
        const failed = cursors.find((c) => c.failure() !== undefined)?.failure()
        if (empty && failed !== undefined && records.length === 0) return Effect.fail(failed)
        const end = empty && failed === undefined && cursors.every((c) => c.exhausted())
        return Effect.succeed(undecoded === undefined ? { records, end } : { records, end, undecoded })
      })

    const read = (max: number) =>
      Effect.suspend(() =>
        buffered() === 0 && !cursors.every((c) => c.exhausted())
          ? data.wait(cfg.idleMs).pipe(Effect.andThen(take(max)))
          : take(max)
      )

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
