/**
 * The end of a bounded JetStream source, agreed job-wide in the KV bucket `boundsBucket` under one
 * key per (job, operator, stream): the stream's end sequence, or for a partitioned stream the last
 * sequence of every partition. Invariant: the first open records it (create-if-absent) and every
 * instance of the job takes that one, even if messages arrive between their opens.
 * `exactor delete` removes every end of a job (`clearJobBoundedEnds`), leaving no marker behind.
 */
import type { StreamInfo } from "@nats-io/jetstream"
import { jetstreamManager } from "@nats-io/jetstream"
import { Kvm } from "@nats-io/kv"
import * as Effect from "effect/Effect"
import { decodeJson } from "./JetStreamSourceOptions.ts"
import type { NatsConnection } from "../../runtime/Nats.ts"
import { DecodeFailure, SourceReadFailed } from "./SourceError.ts"
import type { SourceContext } from "./SourceReader.ts"

const keyPart = (s: string) => s.replace(/[^-\w=]/g, "_")
const boundsKey = (job: string, operator: string, stream: string) =>
  `${keyPart(job)}.${keyPart(operator)}.${keyPart(stream)}`
const partitionsKey = (job: string, operator: string, stream: string) =>
  `${boundsKey(job, operator, stream)}.partitions`

const endFromInfo = (bounded: "atStart" | { readonly records: number }, info: StreamInfo): number => {
  if (bounded === "atStart") return info.state.last_seq
  const first = info.state.messages > 0 ? info.state.first_seq : info.state.last_seq + 1
  return first + bounded.records - 1
}

const readEnd = (raw: Uint8Array): number | undefined => {
  const v = decodeJson<{ end?: unknown }>(raw)
  return v instanceof DecodeFailure || !Number.isInteger(v.end) ? undefined : (v.end as number)
}

const readEnds =
  (partitions: number) =>
  (raw: Uint8Array): ReadonlyArray<number> | undefined => {
    const v = decodeJson<{ ends?: unknown }>(raw)
    if (v instanceof DecodeFailure || !Array.isArray(v.ends) || v.ends.length !== partitions) return undefined
    return v.ends.every((e) => Number.isInteger(e) && e >= 0) ? (v.ends as ReadonlyArray<number>) : undefined
  }

/** The value under `key`: the one recorded, else `compute()`d now and recorded (create-if-absent). */
const agree = async <V>(
  nc: NatsConnection,
  bucket: string,
  key: string,
  read: (raw: Uint8Array) => V | undefined,
  compute: () => Promise<V>,
  encode: (v: V) => string
): Promise<V> => {
  const kv = await new Kvm(nc).create(bucket, { history: 1 })
  const recorded = async () => {
    const e = await kv.get(key)
    return e !== null && e.operation === "PUT" ? read(e.value) : undefined
  }
  const before = await recorded()
  if (before !== undefined) return before
  const value = await compute()
  try {
    await kv.create(key, encode(value))
    return value
  } catch (cause) {
    // another instance recorded it first: take theirs
    const theirs = await recorded()
    if (theirs !== undefined) return theirs
    throw cause
  }
}

/** The end sequence of a bounded source for (job, operator): the one recorded, else computed now and recorded. */
export const agreeOnEnd = (
  nc: NatsConnection,
  ctx: SourceContext,
  cfg: { readonly stream: string; readonly boundsBucket: string },
  bounded: "atStart" | { readonly records: number },
  info: StreamInfo
) =>
  Effect.tryPromise({
    try: () =>
      agree(
        nc,
        cfg.boundsBucket,
        boundsKey(ctx.job, ctx.operator, cfg.stream),
        readEnd,
        async () => endFromInfo(bounded, info),
        (end) => JSON.stringify({ end })
      ),
    catch: (cause) =>
      new SourceReadFailed({ stream: cfg.stream, operation: "agree on the bounded end", cause })
  })

/**
 * The last sequence of every partition of a bounded partitioned source for (job, operator), index =
 * partition (0: the partition was empty): the ones recorded, else `lastOf` each partition now.
 */
export const agreeOnPartitionEnds = (
  nc: NatsConnection,
  ctx: SourceContext,
  cfg: { readonly stream: string; readonly boundsBucket: string; readonly partitions: number },
  lastOf: (partition: number) => Promise<number>
) =>
  Effect.tryPromise({
    try: () =>
      agree(
        nc,
        cfg.boundsBucket,
        partitionsKey(ctx.job, ctx.operator, cfg.stream),
        readEnds(cfg.partitions),
        () => Promise.all(Array.from({ length: cfg.partitions }, (_, k) => lastOf(k))),
        (ends) => JSON.stringify({ ends })
      ),
    catch: (cause) =>
      new SourceReadFailed({ stream: cfg.stream, operation: "agree on the partitions' bounded ends", cause })
  })

/** Forgets the recorded end of a bounded source, so the next fresh open of (job, operator) fixes a new one. */
export const clearBoundedEnd = (
  nc: NatsConnection,
  ctx: { readonly job: string; readonly operator: string },
  options: { readonly stream: string; readonly boundsBucket?: string }
): Effect.Effect<void, SourceReadFailed> =>
  Effect.tryPromise({
    try: async () => {
      const kv = await new Kvm(nc).create(options.boundsBucket ?? "exactor-source-bounds", { history: 1 })
      await kv.purge(boundsKey(ctx.job, ctx.operator, options.stream))
      await kv.purge(partitionsKey(ctx.job, ctx.operator, options.stream))
    },
    catch: (cause) =>
      new SourceReadFailed({ stream: options.stream, operation: "clear the bounded end", cause })
  })

/** Removes every recorded end of `job` from `bucket` (the messages themselves: no purge markers); returns how many. */
export const clearJobBoundedEnds = (
  nc: NatsConnection,
  job: string,
  bucket = "exactor-source-bounds"
): Effect.Effect<number, SourceReadFailed> =>
  Effect.tryPromise({
    try: async () => {
      const jsm = await jetstreamManager(nc)
      const stream = `KV_${bucket}`
      const exists = await jsm.streams.info(stream).then(
        () => true,
        () => false
      )
      if (!exists) return 0
      const r = await jsm.streams.purge(stream, { filter: `$KV.${bucket}.${keyPart(job)}.>` })
      return r.purged
    },
    catch: (cause) =>
      new SourceReadFailed({ stream: bucket, operation: `clear the bounded ends of job ${job}`, cause })
  })
