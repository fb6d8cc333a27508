/**
 * Keyed state of one instance of a keyed operator: one value per key, grouped by key group so
 * that a snapshot can be split among instances of another parallelism (rescaling).
 * Invariant: the store holds only keys of the key groups its instance owns; a restore keeps
 * exactly the groups of its range, from however many old snapshots.
 */
import * as Data from "effect/Data"
import { type Key, keyGroupOf, keyGroupRange } from "../core/KeyGroups.ts"

/** The snapshot form: plain data, msgpack-able. */
export interface KeyedSnapshot {
  readonly maxParallelism: number
  readonly groups: ReadonlyArray<readonly [keyGroup: number, entries: ReadonlyArray<readonly [Key, unknown]>]>
}

export class MaxParallelismChanged extends Data.TaggedError("MaxParallelismChanged")<{
  readonly snapshot: number
  readonly job: number
}> {
  override get message(): string {
    return `keyed state was saved with maxParallelism ${this.snapshot} but the job has ${this.job}; it cannot be restored (key groups would move)`
  }
}

export class KeyedStateStore<S> {
  private readonly groups = new Map<number, Map<Key, S>>()
  private readonly maxParallelism: number
  private readonly initial: () => S
  readonly start: number
  readonly end: number

  constructor(maxParallelism: number, parallelism: number, index: number, initial: () => S) {
    this.maxParallelism = maxParallelism
    this.initial = initial
    const range = keyGroupRange(maxParallelism, parallelism, index)
    this.start = range.start
    this.end = range.end
  }

  private group(key: Key): Map<Key, S> {
    const g = keyGroupOf(key, this.maxParallelism)
    let m = this.groups.get(g)
    if (m === undefined) {
      m = new Map()
      this.groups.set(g, m)
    }
    return m
  }

  get(key: Key): S {
    const v = this.group(key).get(key)
    return v === undefined ? this.initial() : v
  }

  set(key: Key, value: S): void {
    this.group(key).set(key, value)
  }

  get size(): number {
    let n = 0
    for (const m of this.groups.values()) n += m.size
    return n
  }

  snapshot(): KeyedSnapshot {
    const groups: Array<readonly [number, ReadonlyArray<readonly [Key, unknown]>]> = []
    for (const [g, m] of this.groups) groups.push([g, [...m.entries()]])
    groups.sort((a, b) => a[0] - b[0])
    return { maxParallelism: this.maxParallelism, groups }
  }

  /** Replaces the state with the groups of this instance's range found in `snapshots`. */
  restore(snapshots: ReadonlyArray<KeyedSnapshot>): MaxParallelismChanged | undefined {
    this.groups.clear()
    for (const snap of snapshots) {
      if (snap.maxParallelism !== this.maxParallelism)
        return new MaxParallelismChanged({ snapshot: snap.maxParallelism, job: this.maxParallelism })
      for (const [g, entries] of snap.groups) {
        if (g < this.start || g > this.end) continue
        this.groups.set(g, new Map(entries as ReadonlyArray<readonly [Key, S]>))
      }
    }
    return undefined
  }
}
