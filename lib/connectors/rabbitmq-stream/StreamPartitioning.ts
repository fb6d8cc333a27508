/**
 * How records of a partitioned RabbitMQ stream input are spread: record r goes to the stream
 * `<stream>-<k>`, k = murmur3(r[key]) mod count, the hash key groups use (as the JetStream input's
 * partition subjects). Invariant: the partition of a record depends only on its key's value, so
 * every producer and reader agrees on it; an unpartitioned input is the one stream `<stream>`.
 */
import { hashKey } from "../../core/KeyGroups.ts"

/** Most partition streams an input may have: each owned partition is one consumer of its instance. */
export const maxStreamPartitions = 256

/** The stream of partition k of `stream` (`<stream>-<k>`). */
export const partitionStream = (stream: string, k: number): string => `${stream}-${k}`

/** Every stream of an input, index = partition: `[stream]` when unpartitioned. */
export const partitionStreams = (stream: string, partitions: number | undefined): ReadonlyArray<string> =>
  partitions === undefined
    ? [stream]
    : Array.from({ length: partitions }, (_, k) => partitionStream(stream, k))

/** The partition of a record: murmur3 of its `key` field's value; a string says why it has none. */
export const streamPartitionOf = (
  record: unknown,
  p: { readonly count: number; readonly key: string }
): number | string => {
  const v =
    typeof record === "object" && record !== null ? (record as Record<string, unknown>)[p.key] : undefined
  if (typeof v !== "string" && typeof v !== "number") return `has no string or number field "${p.key}"`
  return hashKey(v) % p.count
}
