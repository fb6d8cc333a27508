/**
 * A replayable RabbitMQ stream source: each instance reads the partition streams it owns
 * (`<stream>-<k>`, or the one stream `<stream>`) over the stream protocol from the offsets recorded
 * in its position, one consumer per partition (`StreamPartitionCursor`), on one connection.
 * Invariant: `read` returns each partition's records in offset order, none twice and none skipped,
 * and `position()` records the offset of the next record of each; a reader opened with it continues there.
 *
 * Positions are kept per partition, so the parallelism can change on restore
 * (`mergeStreamPositions`, as the partitioned JetStream source). A bounded source (`"atStart"`)
 * fixes the last offset of every partition stream once per job and operator (`StreamBoundedEnd`)
 * and carries the ends in the position, so recoveries stop at the same place.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { keyGroupRange } from "../../core/KeyGroups.ts"
import { causeMessage } from "../../internal/causeMessage.ts"
import { isPositiveInt } from "../../internal/isPositiveInt.ts"
import { type NatsSettingInvalid, type NatsUnavailable, natsConnection } from "../../runtime/Nats.ts"
import { agreeOnStreamEnds } from "./StreamBoundedEnd.ts"
import { closeClient, connectClient } from "./StreamClient.ts"
import { StreamCallFailed, StreamOptionsInvalid } from "./StreamErrors.ts"
import { lastOffsetOf, openPartitionCursor, type PartitionCursor, type Raw } from "./StreamPartitionCursor.ts"
import { Signal } from "../BufferSignal.ts"
import { StreamDecodeFailure, StreamPositionInvalid, StreamRecordMalformed } from "./StreamSourceErrors.ts"
import { type RabbitMqStreamSourceOptions, resolveStreamSourceOptions } from "./StreamSourceOptions.ts"

/** Where an instance opens: job, operator, which of how many instances, and the NATS of the bounds bucket. */
export interface StreamSourceContext {
  readonly job: string
  readonly operator: string
  readonly index: number
  readonly parallelism: number
  readonly natsUrl: string
}

/** Where a stream source instance is; msgpack-able (numbers only, no undefined values). */
export interface StreamSourcePosition {
  /** the input's partition count (1: the one stream) */
  readonly partitions: number
  /** `[partition, offset of the next record to read]` for every partition this instance owns */
  readonly at: ReadonlyArray<readonly [number, number]>
  /** bounded: the last offset of every partition (index = partition, -1: empty), fixed job-wide at first open */
  readonly ends?: ReadonlyArray<number>
}

export type StreamSourceError =
  | StreamOptionsInvalid
  | StreamPositionInvalid
  | StreamRecordMalformed
  | StreamCallFailed
  | NatsUnavailable
  | NatsSettingInvalid

export interface RabbitMqStreamSourceReader<A> {
  readonly read: (
    max: number
  ) => Effect.Effect<{ readonly records: ReadonlyArray<A>; readonly end: boolean }, StreamSourceError>
  readonly position: () => StreamSourcePosition
  /** Malformed payloads skipped since this reader opened (`onMalformed: "skip-and-count"`). */
  readonly malformed: () => number
}

/** The partitions instance `index` of `parallelism` owns: a contiguous range, as key groups are assigned. */
export const ownedStreamPartitions = (
  partitions: number,
  parallelism: number,
  index: number
): Array<number> => {
  const { start, end } = keyGroupRange(partitions, parallelism, index)
  return Array.from({ length: Math.max(0, end - start + 1) }, (_, i) => start + i)
}

const isOffset = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0

/** A recorded position's problem, if it has one. */
const positionProblem = (p: unknown, partitions: number): string | undefined => {
  if (typeof p !== "object" || p === null) return "not an object"
  const q = p as Partial<Record<keyof StreamSourcePosition, unknown>>
  if (q.partitions !== partitions)
    return `recorded for ${String(q.partitions)} partitions, the source reads ${partitions}`
  if (
    !Array.isArray(q.at) ||
    !q.at.every((e) => Array.isArray(e) && e.length === 2 && isOffset(e[0]) && isOffset(e[1]))
  )
    return "at must be a list of [partition, offset] pairs"
  if (q.at.some(([k]) => k >= partitions)) return "a partition is out of range"
  if (
    q.ends !== undefined &&
    (!Array.isArray(q.ends) ||
      q.ends.length !== partitions ||
      !q.ends.every((e) => Number.isSafeInteger(e) && e >= -1))
  )
    return `ends must list ${partitions} offsets (-1: empty)`
  return undefined
}

/**
 * The position instance `ctx.index` of `ctx.parallelism` opens with, from the positions of every
 * instance of a restored checkpoint (any parallelism): each owned partition's next offset, and the
 * job-wide ends. A position that does not fit is passed on as it is, so that `open` names the problem.
 */
export const mergeStreamPositions = (
  partitions: number,
  ctx: { readonly index: number; readonly parallelism: number },
  positions: ReadonlyArray<unknown>
): unknown => {
  const invalid = positions.find((p) => p !== undefined && positionProblem(p, partitions) !== undefined)
  if (invalid !== undefined) return invalid
  const offsets = new Map<number, number>()
  let ends: ReadonlyArray<number> | undefined
  for (const p of positions as ReadonlyArray<StreamSourcePosition | undefined>) {
    if (p === undefined) continue
    for (const [k, next] of p.at) offsets.set(k, Math.max(next, offsets.get(k) ?? 0))
    ends ??= p.ends
  }
  const at = ownedStreamPartitions(partitions, ctx.parallelism, ctx.index).map(
    (k) => [k, offsets.get(k) ?? 0] as const
  )
  return ends === undefined ? { partitions, at } : { partitions, at, ends }
}

const checkContext = (ctx: StreamSourceContext, partitions: number): StreamOptionsInvalid | undefined => {
  if (!isPositiveInt(ctx.parallelism))
    return new StreamOptionsInvalid({
      field: "ctx.parallelism",
      value: ctx.parallelism,
      reason: "must be >= 1"
    })
  if (!Number.isInteger(ctx.index) || ctx.index < 0 || ctx.index >= ctx.parallelism)
    return new StreamOptionsInvalid({
      field: "ctx.index",
      value: ctx.index,
      reason: `must be an integer in [0, ${ctx.parallelism})`
    })
  if (partitions < ctx.parallelism)
    return new StreamOptionsInvalid({
      field: "partitions",
      value: partitions,
      reason: `must be at least the source's parallelism (${ctx.parallelism}): an instance without a partition reads nothing`
    })
  return undefined
}

const open = <A>(
  options: RabbitMqStreamSourceOptions<A>,
  ctx: StreamSourceContext,
  position: unknown
): Effect.Effect<RabbitMqStreamSourceReader<A>, StreamSourceError, Scope.Scope> =>
  Effect.gen(function* () {
    const cfg = resolveStreamSourceOptions(options)
    if (cfg instanceof StreamOptionsInvalid) return yield* cfg
    const { partitions, stream, timeoutMs } = cfg
    const ctxError = checkContext(ctx, partitions)
    if (ctxError !== undefined) return yield* ctxError
    const owner = `${ctx.job}/${ctx.operator}#${ctx.index}/source`

    const owned = ownedStreamPartitions(partitions, ctx.parallelism, ctx.index)
    const merged =
      position === undefined || position === null
        ? { partitions, at: owned.map((k) => [k, 0] as const) }
        : mergeStreamPositions(partitions, ctx, [position])
    const problem = positionProblem(merged, partitions)
    if (problem !== undefined) return yield* new StreamPositionInvalid({ stream, position, reason: problem })
    const start = merged as StreamSourcePosition

    let lost: StreamCallFailed | undefined
    const client = yield* Effect.acquireRelease(
      connectClient(owner, stream, cfg.endpoint, timeoutMs, 10, () => {
        lost ??= new StreamCallFailed({
          owner,
          stream,
          operation: "consume",
          timeoutMs: undefined,
          cause: new Error("connection closed")
        })
      }),
      closeClient
    )
    const ends =
      start.ends ??
      (cfg.bounded === undefined
        ? undefined
        : yield* Effect.gen(function* () {
            const nc = yield* natsConnection(ctx.natsUrl, { name: `${owner}/bounds`, job: ctx.job })
            return yield* agreeOnStreamEnds(
              nc,
              ctx,
              cfg,
              Effect.forEach(cfg.streams, (s) =>
                lastOffsetOf(client, owner, s, timeoutMs, cfg.lastOffsetWaitMs)
              )
            )
          }))
    const data = new Signal()
    const cursors: Array<PartitionCursor> = []
    for (const [k, next] of start.at)
      cursors.push(
        yield* openPartitionCursor(
          client,
          {
            owner,
            stream: cfg.streams[k]!,
            partition: k,
            next,
            end: ends?.[k],
            maxBuffered: cfg.maxBuffered,
            timeoutMs
          },
          data,
          () => lost
        )
      )

    const positionNow = (): StreamSourcePosition => {
      const at = cursors.map((c) => [c.partition, c.next()] as const)
      return ends === undefined ? { partitions, at } : { partitions, at, ends }
    }
    let malformed = 0
    /** the cursor `take` starts at, so that no partition starves the others */
    let first = 0

    const decodeOne = (raw: Raw): A | StreamDecodeFailure => {
      try {
        return cfg.decode(raw.data, raw.offset)
      } catch (e) {
        return new StreamDecodeFailure({ reason: `decoder threw: ${causeMessage(e)}` })
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
    const take = (
      max: number
    ): Effect.Effect<{ readonly records: ReadonlyArray<A>; readonly end: boolean }, StreamSourceError> =>
      Effect.suspend(
        (): Effect.Effect<
          { readonly records: ReadonlyArray<A>; readonly end: boolean },
          StreamSourceError
        > => {
          const records: Array<A> = []
          for (let i = 0; i < cursors.length && records.length < max; i++) {
            const c = cursors[(first + i) % cursors.length]!
            const buffer = c.buffer
            const n = Math.min(max - records.length, buffer.length)
            let used = 0
            let stopped = false
            for (; used < n; used++) {
              const raw = buffer[used]!
              const r = decodeOne(raw)
              if (r instanceof StreamDecodeFailure) {
                if (cfg.skipMalformed) {
                  malformed++
                  continue
                }
                if (used === 0 && records.length === 0)
                  return Effect.fail(
                    new StreamRecordMalformed({
                      stream: c.stream,
                      offset: raw.offset,
                      partition: c.partition,
                      reason: r.reason
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
          first = cursors.length === 0 ? 0 : (first + 1) % cursors.length
          const empty = buffered() === 0
          const failed = cursors.find((c) => c.failure() !== undefined)?.failure()
          if (empty && failed !== undefined && records.length === 0) return Effect.fail(failed)
          const end = empty && failed === undefined && cursors.every((c) => c.exhausted())
          return Effect.succeed({ records, end })
        }
      )

    const read = (max: number) =>
      Effect.suspend(() =>
        buffered() === 0 && !cursors.every((c) => c.exhausted())
          ? data.wait(cfg.idleMs).pipe(Effect.andThen(take(max)))
          : take(max)
      )

    return { read, position: positionNow, malformed: () => malformed } satisfies RabbitMqStreamSourceReader<A>
  })

/**
 * RabbitMQ streams as a replayable, optionally bounded source. Options are checked at `open` (and
 * by `resolveStreamSourceOptions`, for start-up validation) with errors naming the field.
 */
export const rabbitMqStreamSource = <A>(options: RabbitMqStreamSourceOptions<A>) => ({
  open: (
    ctx: StreamSourceContext,
    position: unknown
  ): Effect.Effect<RabbitMqStreamSourceReader<A>, StreamSourceError, Scope.Scope> =>
    open(options, ctx, position)
})
