/**
 * Keyed state and timers of one instance of a keyed operator: one value per key, grouped by key
 * group so that a snapshot can be split among instances of another parallelism (rescaling).
 * Invariant: the store holds only keys and timers of the key groups its instance owns; a restore
 * keeps exactly the groups of its range, from however many old snapshots, so each timer lands once.
 */
import * as Data from "effect/Data"
import { START_OF_TIME } from "../api/Watermark.ts"
import { type Key, keyGroupOf, keyGroupRange } from "../core/KeyGroups.ts"
import { type TimerEntries, TimerService } from "./TimerService.ts"

/**
 * The snapshot form: plain data, msgpack-able, groups ascending. A group's third element (its
 * timers) is present only when it has timers, and `watermark` only when one was given, so a job
 * without timers writes `[keyGroup, entries]` pairs.
 */
export interface KeyedSnapshot {
  readonly maxParallelism: number
  readonly watermark?: number
  readonly groups: ReadonlyArray<
    readonly [keyGroup: number, entries: ReadonlyArray<readonly [Key, unknown]>, timers?: TimerEntries]
  >
}

export class MaxParallelismChanged extends Data.TaggedError("MaxParallelismChanged")<{
  readonly snapshot: number
  readonly job: number
}> {
  override get message(): string {
    return `keyed state was saved with maxParallelism ${this.snapshot} but the job has ${this.job}; it cannot be restored (key groups would move)`
  }
}

/**
 * The watermark an instance resumes from: the least of its old snapshots' watermarks, where a
 * snapshot without one (or a missing snapshot) counts as START_OF_TIME; START_OF_TIME if there are none.
 */
export const restoredWatermark = (
  snapshots: ReadonlyArray<{ readonly watermark?: number } | undefined>
): number => {
  if (snapshots.length === 0) return START_OF_TIME
  let wm = Number.POSITIVE_INFINITY
  for (const snap of snapshots) {
    const w = snap?.watermark ?? START_OF_TIME
    if (w < wm) wm = w
  }
  return wm
}

export class KeyedStateStore<S> {
  private readonly groups = new Map<number, Map<Key, S>>()
  private readonly maxParallelism: number
  private readonly initial: () => S
  /** the timers of this instance's keys, snapshotted with the state */
  readonly timers: TimerService
  readonly start: number
  readonly end: number

  constructor(maxParallelism: number, parallelism: number, index: number, initial: () => S) {
    this.maxParallelism = maxParallelism
    this.initial = initial
    this.timers = new TimerService(maxParallelism)
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

  /** The key's state, or a fresh initial value if it has none. */
  get(key: Key): S {
    const v = this.groups.get(keyGroupOf(key, this.maxParallelism))?.get(key)
    return v === undefined ? this.initial() : v
  }

  set(key: Key, value: S): void {
    this.group(key).set(key, value)
  }

  /** Drops the key's state (not its timers); a later `get` sees the initial value. */
  delete(key: Key): void {
    const g = keyGroupOf(key, this.maxParallelism)
    const m = this.groups.get(g)
    if (m === undefined) return
    m.delete(key)
    if (m.size === 0) this.groups.delete(g)
  }

  get size(): number {
    let n = 0
    for (const m of this.groups.values()) n += m.size
    return n
  }

  /** Captures state and timers per key group; `watermark` is recorded only when given. */
  snapshot(watermark?: number): KeyedSnapshot {
    const keyGroups = new Set<number>()
    for (const [g, m] of this.groups) if (m.size > 0) keyGroups.add(g)
    for (const g of this.timers.groups()) keyGroups.add(g)
    const sorted = [...keyGroups]
    sorted.sort((a, b) => a - b)
    const groups: Array<KeyedSnapshot["groups"][number]> = []
    for (const g of sorted) {
      const m = this.groups.get(g)
      const entries: ReadonlyArray<readonly [Key, unknown]> = m === undefined ? [] : [...m.entries()]
      const timers = this.timers.entries(g)
      groups.push(timers.length > 0 ? [g, entries, timers] : [g, entries])
    }
    return watermark === undefined
      ? { maxParallelism: this.maxParallelism, groups }
      : { maxParallelism: this.maxParallelism, watermark, groups }
  }

  /**
   * Replaces state and timers with the groups of this instance's range found in `snapshots`
   * (missing snapshots are skipped). On a maxParallelism mismatch nothing is changed.
   */
  restore(snapshots: ReadonlyArray<KeyedSnapshot | undefined>): MaxParallelismChanged | undefined {
    for (const snap of snapshots) {
      if (snap !== undefined && snap.maxParallelism !== this.maxParallelism)
        return new MaxParallelismChanged({ snapshot: snap.maxParallelism, job: this.maxParallelism })
    }
    this.groups.clear()
    this.timers.clear()
    for (const snap of snapshots) {
      if (snap === undefined) continue
      for (const [g, entries, timers] of snap.groups) {
        if (g < this.start || g > this.end) continue
        if (entries.length > 0) this.groups.set(g, new Map(entries as ReadonlyArray<readonly [Key, S]>))
        if (timers !== undefined) this.timers.restoreGroup(g, timers)
      }
    }
    return undefined
  }
}
