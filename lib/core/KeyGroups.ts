/**
 * Key groups, as in Flink: keyed state is partitioned into `maxParallelism` key groups,
 * `keyGroup = murmur3(key) mod maxParallelism`, and instance i of p owns one contiguous range.
 * Invariant: every key group belongs to exactly one instance for any parallelism p <= maxParallelism,
 * and the hash is the same in every process (it depends only on the key's canonical string).
 */

export type Key = string | number

export const defaultMaxParallelism = 128

/** MurmurHash3 (x86, 32 bit) of the key's UTF-16 code units; stable across processes and hosts. */
export const hashKey = (key: Key): number => {
  const s = typeof key === "string" ? key : `#${key}`
  let h = 0x9747b28c
  for (let i = 0; i < s.length; i++) {
    let k = s.charCodeAt(i)
    k = Math.imul(k, 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    k = Math.imul(k, 0x1b873593)
    h ^= k
    h = (h << 13) | (h >>> 19)
    h = (Math.imul(h, 5) + 0xe6546b64) | 0
  }
  h ^= s.length
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

export const keyGroupOf = (key: Key, maxParallelism: number): number => hashKey(key) % maxParallelism

/** The key groups `[start, end]` (inclusive) that instance `index` of `parallelism` owns. */
export const keyGroupRange = (
  maxParallelism: number,
  parallelism: number,
  index: number
): { readonly start: number; readonly end: number } => ({
  start: Math.ceil((index * maxParallelism) / parallelism),
  end: Math.ceil(((index + 1) * maxParallelism) / parallelism) - 1
})

/** The instance that owns key group `keyGroup`; the inverse of `keyGroupRange`. */
export const instanceForKeyGroup = (maxParallelism: number, parallelism: number, keyGroup: number): number =>
  Math.floor((keyGroup * parallelism) / maxParallelism)
