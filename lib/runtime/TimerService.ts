/**
 * The timers of one instance of a keyed operator (DESIGN-dataflow §3): a min-heap per domain in
 * (at, key, tag) order, and an index per key group so that snapshots split like keyed state.
 * Invariant: the index holds each identity (domain, at, key, tag) at most once, and a timer leaves
 * the index before `pollDue` returns it, so every registered timer is returned at most once.
 */
import * as Data from "effect/Data"
import type { TimerTag } from "../api/Operator.ts"
import { type Key, keyGroupOf } from "../core/KeyGroups.ts"

/** Event time follows the instance's watermark; processing time follows the wall clock. */
export type TimerDomain = "event" | "processing"

/** One timer: due once its domain's clock reaches `at`. */
export interface Timer {
  readonly domain: TimerDomain
  readonly at: number
  readonly key: Key
  readonly tag: TimerTag
}

/** a key group's timers as plain msgpack-able data, sorted by (domain, at, key, tag): domain 0 = event, 1 = processing */
export type TimerEntries = ReadonlyArray<readonly [domain: 0 | 1, at: number, key: Key, tag: TimerTag]>

/** A timer was registered at NaN: it could never be due and would break the heap's order. */
export class InvalidTimerTime extends Data.TaggedError("InvalidTimerTime")<{
  readonly domain: TimerDomain
  readonly key: Key
  readonly tag: TimerTag
}> {
  override get message(): string {
    return `a ${this.domain}-time timer of key ${String(this.key)} (tag ${String(this.tag)}) was registered at NaN`
  }
}

/** A timer as the service keeps it: its canonical id and key group travel with it. */
interface Entry extends Timer {
  readonly id: string
  readonly keyGroup: number
}

/** Keys and tags: numbers before strings, numbers numerically (NaN last), strings by code units. */
const compareScalar = (a: Key, b: Key): number => {
  if (typeof a === "number") {
    if (typeof b !== "number") return -1
    if (a < b) return -1
    if (a > b) return 1
    if (a === b) return 0
    const aNaN = Number.isNaN(a)
    return aNaN === Number.isNaN(b) ? 0 : aNaN ? 1 : -1
  }
  if (typeof b === "number") return 1
  return a < b ? -1 : a > b ? 1 : 0
}

/** The heap order within one domain: (at, key, tag). */
const compareTimer = (a: Timer, b: Timer): number => {
  if (a.at !== b.at) return a.at < b.at ? -1 : 1
  const byKey = compareScalar(a.key, b.key)
  return byKey !== 0 ? byKey : compareScalar(a.tag, b.tag)
}

const domainCode = (domain: TimerDomain): 0 | 1 => (domain === "event" ? 0 : 1)

/** A self-delimiting form of a key or tag: `n<number>;` or `s<length>:<string>`. */
const encodeScalar = (x: Key): string => (typeof x === "number" ? `n${x};` : `s${x.length}:${x}`)

/** The canonical string of a timer's identity; equal identities (under `compareTimer`) give equal ids. */
const timerId = (domain: TimerDomain, at: number, key: Key, tag: TimerTag): string =>
  `${domainCode(domain)}:${at}:${encodeScalar(key)}${encodeScalar(tag)}`

/** A binary min-heap of entries in `compareTimer` order; may hold entries no longer in the index. */
class EntryHeap {
  private items: Array<Entry> = []

  get size(): number {
    return this.items.length
  }

  peek(): Entry | undefined {
    return this.items[0]
  }

  push(e: Entry): void {
    const items = this.items
    items.push(e)
    let i = items.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (compareTimer(items[parent]!, e) <= 0) break
      items[i] = items[parent]!
      i = parent
    }
    items[i] = e
  }

  pop(): Entry | undefined {
    const items = this.items
    const top = items[0]
    const last = items.pop()
    if (items.length > 0 && last !== undefined) {
      items[0] = last
      this.siftDown(0)
    }
    return top
  }

  /** Replaces the content with `entries`, in O(n). */
  rebuild(entries: Array<Entry>): void {
    this.items = entries
    for (let i = (entries.length >> 1) - 1; i >= 0; i--) this.siftDown(i)
  }

  private siftDown(start: number): void {
    const items = this.items
    const n = items.length
    const e = items[start]!
    let i = start
    for (;;) {
      let child = 2 * i + 1
      if (child >= n) break
      if (child + 1 < n && compareTimer(items[child + 1]!, items[child]!) < 0) child++
      if (compareTimer(items[child]!, e) >= 0) break
      items[i] = items[child]!
      i = child
    }
    items[i] = e
  }
}

/** Timers of one keyed operator instance, keyed by (domain, at, key, tag). */
export class TimerService {
  private readonly maxParallelism: number
  private readonly byId = new Map<string, Entry>()
  private readonly byGroup = new Map<number, Set<string>>()
  private readonly eventHeap = new EntryHeap()
  private readonly processingHeap = new EntryHeap()
  private eventCount = 0
  private processingCount = 0

  constructor(maxParallelism: number) {
    this.maxParallelism = maxParallelism
  }

  /** Adds a timer (tag defaults to 0); registering one that exists keeps one. Throws `InvalidTimerTime` on NaN. */
  register(domain: TimerDomain, at: number, key: Key, tag: TimerTag = 0): void {
    if (Number.isNaN(at)) throw new InvalidTimerTime({ domain, key, tag })
    this.add(domain, at, key, tag, keyGroupOf(key, this.maxParallelism))
  }

  /** Removes a timer if it exists (tag defaults to 0). */
  delete(domain: TimerDomain, at: number, key: Key, tag: TimerTag = 0): void {
    const e = this.byId.get(timerId(domain, at, key, tag))
    if (e === undefined) return
    this.remove(e)
    this.compact(domain)
  }

  /** removes and returns the first timer of `domain` with at <= upTo, in (at, key, tag) order; undefined if none is due */
  pollDue(domain: TimerDomain, upTo: number): Timer | undefined {
    const top = this.liveTop(domain)
    if (top === undefined || top.at > upTo) return undefined
    this.heap(domain).pop()
    this.remove(top)
    return { domain: top.domain, at: top.at, key: top.key, tag: top.tag }
  }

  /** the earliest `at` of the domain, if any */
  nextAt(domain: TimerDomain): number | undefined {
    return this.liveTop(domain)?.at
  }

  /** How many timers are registered, in one domain or in both. */
  count(domain?: TimerDomain): number {
    if (domain === "event") return this.eventCount
    if (domain === "processing") return this.processingCount
    return this.eventCount + this.processingCount
  }

  /** drops every processing-time timer (end of input); returns how many were dropped */
  dropProcessing(): number {
    const dropped = this.processingCount
    for (const e of this.byId.values()) if (e.domain === "processing") this.remove(e)
    this.processingHeap.rebuild([])
    return dropped
  }

  /** the key groups that hold timers, ascending */
  groups(): ReadonlyArray<number> {
    const gs = [...this.byGroup.keys()]
    gs.sort((a, b) => a - b)
    return gs
  }

  /** one key group's timers, sorted by (domain, at, key, tag); empty if it has none */
  entries(keyGroup: number): TimerEntries {
    const ids = this.byGroup.get(keyGroup)
    if (ids === undefined) return []
    const es: Array<Entry> = []
    for (const id of ids) es.push(this.byId.get(id)!)
    es.sort((a, b) => (a.domain !== b.domain ? (a.domain === "event" ? -1 : 1) : compareTimer(a, b)))
    const out: Array<readonly [0 | 1, number, Key, TimerTag]> = []
    for (const e of es) out.push([domainCode(e.domain), e.at, e.key, e.tag])
    return out
  }

  /** adds a snapshot's timers of one key group */
  restoreGroup(keyGroup: number, entries: TimerEntries): void {
    for (const [domain, at, key, tag] of entries)
      this.add(domain === 0 ? "event" : "processing", at, key, tag, keyGroup)
  }

  /** Drops every timer. */
  clear(): void {
    this.byId.clear()
    this.byGroup.clear()
    this.eventHeap.rebuild([])
    this.processingHeap.rebuild([])
    this.eventCount = 0
    this.processingCount = 0
  }

  private heap(domain: TimerDomain): EntryHeap {
    return domain === "event" ? this.eventHeap : this.processingHeap
  }

  private add(domain: TimerDomain, at: number, key: Key, tag: TimerTag, keyGroup: number): void {
    const id = timerId(domain, at, key, tag)
    if (this.byId.has(id)) return
    const e: Entry = { domain, at, key, tag, id, keyGroup }
    this.byId.set(id, e)
    let ids = this.byGroup.get(keyGroup)
    if (ids === undefined) {
      ids = new Set()
      this.byGroup.set(keyGroup, ids)
    }
    ids.add(id)
    this.heap(domain).push(e)
    if (domain === "event") this.eventCount++
    else this.processingCount++
  }

  /** Takes an entry out of the index; its heap slot, if any, becomes stale. */
  private remove(e: Entry): void {
    this.byId.delete(e.id)
    const ids = this.byGroup.get(e.keyGroup)
    if (ids !== undefined) {
      ids.delete(e.id)
      if (ids.size === 0) this.byGroup.delete(e.keyGroup)
    }
    if (e.domain === "event") this.eventCount--
    else this.processingCount--
  }

  /** The domain's earliest live entry, popping stale ones (deleted, or deleted and registered again). */
  private liveTop(domain: TimerDomain): Entry | undefined {
    const heap = this.heap(domain)
    for (;;) {
      const top = heap.peek()
      if (top === undefined || this.byId.get(top.id) === top) return top
      heap.pop()
    }
  }

  /** Rebuilds a heap whose stale entries outnumber its live ones by more than 64 (lazy deletion stays bounded). */
  private compact(domain: TimerDomain): void {
    const heap = this.heap(domain)
    const live = this.count(domain)
    if (heap.size <= 2 * live + 64) return
    const es: Array<Entry> = []
    for (const e of this.byId.values()) if (e.domain === domain) es.push(e)
    heap.rebuild(es)
  }
}
