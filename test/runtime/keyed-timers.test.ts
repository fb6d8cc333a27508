/**
 * Timers in keyed snapshots: rescaling 2 -> 3 -> 1 restores every timer exactly once, with its
 * key's state, and the timers then fire once each in (at, key, tag) order; a job without timers
 * writes today's `[keyGroup, entries]` form; the watermark round-trips and `restoredWatermark`
 * takes the least of the old instances', a missing one counting as START_OF_TIME.
 */
import t from "tap"
import { START_OF_TIME } from "../../lib/api/Watermark.ts"
import type { Key } from "../../lib/core/KeyGroups.ts"
import { keyGroupOf } from "../../lib/core/KeyGroups.ts"
import {
  KeyedStateStore,
  type KeyedSnapshot,
  MaxParallelismChanged,
  restoredWatermark
} from "../../lib/runtime/KeyedStateStore.ts"
import type { Timer, TimerDomain } from "../../lib/runtime/TimerService.ts"
import { mulberry32 } from "../oracle/windowInput.ts"

const maxP = 128

const stores = (parallelism: number): Array<KeyedStateStore<number>> => {
  const out: Array<KeyedStateStore<number>> = []
  for (let i = 0; i < parallelism; i++) out.push(new KeyedStateStore<number>(maxP, parallelism, i, () => 0))
  return out
}

const owner = (ss: ReadonlyArray<KeyedStateStore<number>>, key: Key): KeyedStateStore<number> => {
  const g = keyGroupOf(key, maxP)
  return ss.find((s) => g >= s.start && g <= s.end)!
}

const timerString = (x: Timer): string =>
  `${x.domain}|${x.at}|${typeof x.key}:${x.key}|${typeof x.tag}:${x.tag}`

const allTimers = (ss: ReadonlyArray<KeyedStateStore<number>>): Array<string> => {
  const out: Array<string> = []
  for (const s of ss)
    for (const g of s.timers.groups())
      for (const [d, at, key, tag] of s.timers.entries(g))
        out.push(timerString({ domain: d === 0 ? "event" : "processing", at, key, tag }))
  return out.sort()
}

t.test("rescaling 2 -> 3 -> 1 keeps every timer exactly once; they fire once and in order", async (t) => {
  const seed = Number(process.env.EXACTOR_TIMER_SEED ?? Math.floor(Math.random() * 2 ** 31))
  t.comment(`seed ${seed} (repeat with EXACTOR_TIMER_SEED=${seed})`)
  const rnd = mulberry32(seed)
  const two = stores(2)
  const registered = new Set<string>()
  const states = new Map<Key, number>()
  for (let i = 0; i < 3000; i++) {
    const k = Math.floor(rnd() * 400)
    const key: Key = k % 2 === 0 ? k : `key-${k}`
    const domain: TimerDomain = rnd() < 0.7 ? "event" : "processing"
    const at = Math.floor(rnd() * 1000)
    const tag = rnd() < 0.5 ? 0 : `w${Math.floor(rnd() * 3)}`
    const s = owner(two, key)
    s.timers.register(domain, at, key, tag)
    registered.add(timerString({ domain, at, key, tag }))
    if (k % 3 === 0) {
      s.set(key, k)
      states.set(key, k)
    }
  }
  t.same(allTimers(two), [...registered].sort(), "the two instances hold every registered timer")

  const snaps2 = two.map((s, i) => s.snapshot(100 + i))
  const three = stores(3)
  for (const s of three) {
    s.timers.register("event", -1, "stale")
    t.equal(s.restore(snaps2), undefined)
  }
  t.same(allTimers(three), [...registered].sort(), "after 2 -> 3 each timer is in exactly one instance")
  let foreign = 0
  for (const s of three) for (const g of s.timers.groups()) if (g < s.start || g > s.end) foreign++
  t.equal(foreign, 0, "each instance holds timers of its own key groups only")

  const snaps3 = three.map((s) => s.snapshot(restoredWatermark(snaps2)))
  const [one] = stores(1)
  t.equal(one!.restore(snaps3), undefined)
  t.equal(one!.timers.count(), registered.size, "after 3 -> 1 the instance holds every timer once")
  t.same(allTimers([one!]), [...registered].sort())
  let stateOk = 0
  for (const [key, v] of states) if (one!.get(key) === v) stateOk++
  t.equal(stateOk, states.size, "every key's state came along")

  const fired: Array<Timer> = []
  for (const domain of ["event", "processing"] as const)
    for (let x = one!.timers.pollDue(domain, 1000); x !== undefined; x = one!.timers.pollDue(domain, 1000))
      fired.push(x)
  t.equal(fired.length, registered.size, "each timer fired")
  t.equal(new Set(fired.map(timerString)).size, registered.size, "and fired once")
  // the reference order: domain, at, then key and tag with numbers before strings
  const scalar = (x: Key, y: Key): number =>
    typeof x !== typeof y ? (typeof x === "number" ? -1 : 1) : x < y ? -1 : x > y ? 1 : 0
  const expected = [...fired].sort(
    (a, b) =>
      (a.domain === b.domain ? 0 : a.domain === "event" ? -1 : 1) ||
      a.at - b.at ||
      scalar(a.key, b.key) ||
      scalar(a.tag, b.tag)
  )
  t.same(fired.map(timerString), expected.map(timerString), "in (domain, at, key, tag) order")
  t.equal(one!.timers.count(), 0)
})

t.test("a snapshot without timers is today's two-element group form", async (t) => {
  const [s] = stores(1)
  s!.set("a", 1)
  s!.set(7, 2)
  s!.get("never-set")
  const snap = s!.snapshot()
  const expected = new Map<number, Array<[Key, number]>>()
  for (const [k, v] of [
    ["a", 1],
    [7, 2]
  ] as const) {
    const g = keyGroupOf(k, maxP)
    expected.set(g, [...(expected.get(g) ?? []), [k, v]])
  }
  const groups = [...expected.entries()].sort((a, b) => a[0] - b[0]).map(([g, es]) => [g, es])
  t.same(snap, { maxParallelism: maxP, groups })
  t.notOk("watermark" in snap, "no watermark field unless one is given")
  t.ok(
    snap.groups.every((g) => g.length === 2),
    "no group carries a timers element"
  )
})

t.test("a group with timers but no state is in the snapshot with empty entries", async (t) => {
  const [s] = stores(1)
  s!.set("a", 1)
  s!.timers.register("event", 5, "b", "w")
  s!.set("b", 2)
  s!.delete("b")
  t.equal(s!.get("b"), 0, "a deleted key reads as initial")
  const snap = s!.snapshot()
  const gb = keyGroupOf("b", maxP)
  const withTimers = snap.groups.filter((g) => g[2] !== undefined)
  t.same(withTimers, [[gb, keyGroupOf("a", maxP) === gb ? [["a", 1]] : [], [[0, 5, "b", "w"]]]])
  const [copy] = stores(1)
  copy!.restore([snap])
  t.same(copy!.snapshot(), snap, "restore then snapshot is the identity")
  t.same(copy!.timers.pollDue("event", 5), { domain: "event", at: 5, key: "b", tag: "w" })
})

t.test(
  "the watermark round-trips; restoredWatermark takes the least, missing as START_OF_TIME",
  async (t) => {
    const [s] = stores(1)
    s!.set("a", 1)
    const snap = s!.snapshot(42)
    t.equal(snap.watermark, 42)
    const [copy] = stores(1)
    copy!.restore([snap])
    t.equal(copy!.snapshot(restoredWatermark([snap])).watermark, 42)
    const other: KeyedSnapshot = { maxParallelism: maxP, watermark: 7, groups: [] }
    t.equal(restoredWatermark([snap, other]), 7)
    t.equal(restoredWatermark([snap, s!.snapshot()]), START_OF_TIME, "a snapshot without a watermark")
    t.equal(restoredWatermark([snap, undefined]), START_OF_TIME, "a missing snapshot")
    t.equal(restoredWatermark([]), START_OF_TIME, "no snapshots")
  }
)

t.test("a maxParallelism mismatch is refused and changes nothing", async (t) => {
  const [s] = stores(1)
  s!.set("a", 1)
  s!.timers.register("event", 3, "a")
  const err = s!.restore([{ maxParallelism: 64, groups: [] }])
  t.ok(err instanceof MaxParallelismChanged)
  t.equal(err?.snapshot, 64)
  t.equal(s!.get("a"), 1)
  t.equal(s!.timers.count(), 1)
})
