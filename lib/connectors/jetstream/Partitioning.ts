/**
 * How records of a partitioned stream are spread: record r goes to `<subject>.<k>`, k =
 * murmur3(r[key]) mod count, the hash key groups use. Invariant: the partition of a record depends
 * only on its key's value, so every producer and reader in every process agrees on it.
 */
import { hashKey } from "../../core/KeyGroups.ts"

/** How a producer spreads records over partition subjects: `count` of them, by the field `key`. */
export interface Partitioning {
  readonly count: number
  readonly key: string
}

/** Default partition count of the orders input (`EXACTOR_SOURCE_PARTITIONS`). */
export const defaultOrdersPartitions = 4

/**
 * The orders input's partitioning, shared by the orders example, `exactor example`, `exactor chaos`,
 * the tests and the bench so that producer and source agree: `EXACTOR_SOURCE_PARTITIONS` (default
 * 4) partitions by customer; `0` puts every order on one subject (the source splits by sequence).
 */
export const ordersPartitioning = (
  env: Readonly<Record<string, string | undefined>> = process.env
): Partitioning | undefined => {
  const count = Number(env.EXACTOR_SOURCE_PARTITIONS ?? defaultOrdersPartitions)
  return count === 0 ? undefined : { count, key: "customer" }
}

/** The subject of `record`: `<subject>.<k>` for its partition k when partitioned, else `subject`. */
export const recordSubject = (
  subject: string,
  record: unknown,
  partitions: Partitioning | undefined
): string => {
  if (partitions === undefined) return subject
  const k = partitionOf(record, partitions)
  if (typeof k === "string") throw new Error(`record ${k}`)
  return `${subject}.${k}`
}

/** The partition of a record: murmur3 of its `key` field's value, as key groups hash keys. */
export const partitionOf = (
  record: unknown,
  p: { readonly count: number; readonly key: string }
): number | string => {
  const v =
    typeof record === "object" && record !== null ? (record as Record<string, unknown>)[p.key] : undefined
  if (typeof v !== "string" && typeof v !== "number") return `has no string or number field "${p.key}"`
  return hashKey(v) % p.count
}
