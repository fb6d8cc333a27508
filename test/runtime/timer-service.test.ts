/**
 * TimerService, a pure unit: identity (domain, at, key, tag) dedups, delete and re-register work
 * through the lazy heap, firing order is (at, key, tag) with numbers before strings, and a seeded
 * random register/delete/poll sequence agrees with a plain reference list at every step.
 */
import t from "tap"
import type { TimerTag } from "../../lib/api/Operator.ts"
import type { Key } from "../../lib/core/KeyGroups.ts"
import {
  InvalidTimerTime,
  type Timer,
  type TimerDomain,
  TimerService
} from "../../lib/runtime/TimerService.ts"
import { mulberry32 } from "../oracle/windowInput.ts"

const maxP = 128

const drain = (ts: TimerService, domain: TimerDomain, upTo: number): Array<Timer> => {
  const out: Array<Timer> = []
  for (let timer = ts.pollDue(domain, upTo); timer !== undefined; timer = ts.pollDue(domain, upTo))
    out.push(timer)
  return out
}

t.test("registering the same timer twice keeps one; the tag defaults to 0", async (t) => {
  const ts = new TimerService(maxP)
  ts.register("event", 10, "k")
  ts.register("event", 10, "k", 0)
  ts.register("event", 10, "k")
  t.equal(ts.count("event"), 1)
  ts.register("event", 10, "k", 1)
  ts.register("event", 10, "k", "0")
  ts.register("event", 10, 0)
  ts.register("event", 10, "0")
  ts.register("processing", 10, "k")
  t.equal(ts.count("event"), 5, "tag 1, tag '0', key 0 and key '0' are other timers")
  t.equal(ts.count("processing"), 1, "the domain is part of the identity")
  t.equal(ts.count(), 6)
  t.same(drain(ts, "event", 10).length, 5)
  t.equal(ts.count(), 1)
})

t.test("delete removes one timer; deleting and registering again fires it once", async (t) => {
  const ts = new TimerService(maxP)
  ts.register("event", 5, "a")
  ts.register("event", 6, "a")
  ts.delete("event", 5, "a")
  ts.delete("event", 5, "a")
  ts.delete("event", 7, "nope")
  ts.delete("processing", 6, "a")
  t.equal(ts.count("event"), 1)
  t.equal(ts.nextAt("event"), 6, "a deleted timer is not the next one")
  ts.register("event", 5, "a")
  ts.delete("event", 5, "a")
  ts.register("event", 5, "a")
  t.equal(ts.count("event"), 2)
  t.same(drain(ts, "event", 100), [
    { domain: "event", at: 5, key: "a", tag: 0 },
    { domain: "event", at: 6, key: "a", tag: 0 }
  ])
  t.equal(ts.count(), 0)
  t.equal(ts.nextAt("event"), undefined)
  t.same(ts.groups(), [], "an emptied service holds no key group")
})

t.test("timers fire in (at, key, tag) order, numbers before strings", async (t) => {
  const ts = new TimerService(maxP)
  const timers: Array<[number, Key, TimerTag]> = [
    [2, "b", 0],
    [1, "z", 0],
    [2, 10, 0],
    [2, "a", "x"],
    [2, "a", 3],
    [2, 9, 0],
    [2, "10", 0],
    [2, "a", "w"],
    [2, -1, 0],
    [2, "B", 0],
    [3, 0, 0]
  ]
  for (const [at, key, tag] of timers) ts.register("event", at, key, tag)
  const fired = drain(ts, "event", 3).map((x) => [x.at, x.key, x.tag])
  t.same(fired, [
    [1, "z", 0],
    [2, -1, 0],
    [2, 9, 0],
    [2, 10, 0],
    [2, "10", 0],
    [2, "B", 0],
    [2, "a", 3],
    [2, "a", "w"],
    [2, "a", "x"],
    [2, "b", 0],
    [3, 0, 0]
  ])
})

t.test("pollDue returns only timers at or before upTo, and keeps the domains apart", async (t) => {
  const ts = new TimerService(maxP)
  ts.register("event", 10, "k")
  ts.register("event", 20, "k")
  ts.register("processing", 5, "k")
  t.equal(ts.pollDue("event", 9), undefined)
  t.equal(ts.nextAt("event"), 10)
  t.equal(ts.nextAt("processing"), 5)
  t.same(ts.pollDue("event", 10), { domain: "event", at: 10, key: "k", tag: 0 })
  t.equal(ts.pollDue("event", 19), undefined)
  t.equal(ts.pollDue("processing", 4), undefined)
  t.same(ts.pollDue("processing", 1000), { domain: "processing", at: 5, key: "k", tag: 0 })
  t.equal(ts.pollDue("processing", 1000), undefined)
  t.equal(ts.count(), 1)
  t.equal(ts.nextAt("event"), 20)
})

t.test("dropProcessing drops and counts the processing-time timers only", async (t) => {
  const ts = new TimerService(maxP)
  for (let i = 0; i < 10; i++) ts.register("processing", i, `k${i}`)
  for (let i = 0; i < 4; i++) ts.register("event", i, `k${i}`)
  ts.delete("processing", 3, "k3")
  t.equal(ts.dropProcessing(), 9)
  t.equal(ts.count("processing"), 0)
  t.equal(ts.nextAt("processing"), undefined)
  t.equal(ts.pollDue("processing", 1e9), undefined)
  t.equal(ts.count("event"), 4)
  t.equal(drain(ts, "event", 1e9).length, 4)
  t.equal(ts.dropProcessing(), 0)
})

t.test("entries of a key group are sorted and restore into another service", async (t) => {
  const ts = new TimerService(maxP)
  ts.register("processing", 1, "k", "p")
  ts.register("event", 7, "k", 2)
  ts.register("event", 7, "k", 1)
  ts.register("event", 3, "k")
  const groups = ts.groups()
  t.equal(groups.length, 1)
  const g = groups[0]!
  t.same(ts.entries(g), [
    [0, 3, "k", 0],
    [0, 7, "k", 1],
    [0, 7, "k", 2],
    [1, 1, "k", "p"]
  ])
  t.same(ts.entries(g + 1 === maxP ? 0 : g + 1), [])
  const copy = new TimerService(maxP)
  copy.restoreGroup(g, ts.entries(g))
  copy.restoreGroup(g, ts.entries(g))
  t.equal(copy.count(), 4, "restoring the same entries twice keeps one of each")
  t.same(copy.groups(), [g])
  t.same(copy.entries(g), ts.entries(g))
  copy.clear()
  t.equal(copy.count(), 0)
  t.same(copy.groups(), [])
})

t.test("a timer at NaN is refused", async (t) => {
  const ts = new TimerService(maxP)
  t.throws(() => ts.register("event", Number.NaN, "k"), InvalidTimerTime)
  t.equal(ts.count(), 0)
})

t.test("a seeded random register/delete/poll sequence matches a reference list", async (t) => {
  const seed = Number(process.env.EXACTOR_TIMER_SEED ?? Math.floor(Math.random() * 2 ** 31))
  t.comment(`seed ${seed} (repeat with EXACTOR_TIMER_SEED=${seed})`)
  const rnd = mulberry32(seed)
  const pick = (n: number): number => Math.floor(rnd() * n)
  const keys: ReadonlyArray<Key> = [0, 1, 2, 10, -3, "0", "1", "a", "b", "ab", "", "B"]
  const tags: ReadonlyArray<TimerTag> = [0, 1, "x", "y"]
  const domains: ReadonlyArray<TimerDomain> = ["event", "processing"]
  // the reference: a plain list, searched linearly, ordered by its own comparator
  const rank = (x: Key): [number, number | string] => (typeof x === "number" ? [0, x] : [1, x])
  const less = (a: Timer, b: Timer): boolean => {
    if (a.at !== b.at) return a.at < b.at
    const [ak, av] = rank(a.key)
    const [bk, bv] = rank(b.key)
    if (ak !== bk) return ak < bk
    if (av !== bv) return av < bv
    const [at, atv] = rank(a.tag)
    const [bt, btv] = rank(b.tag)
    if (at !== bt) return at < bt
    return atv < btv
  }
  const same = (a: Timer, b: Timer): boolean =>
    a.domain === b.domain && a.at === b.at && a.key === b.key && a.tag === b.tag
  let reference: Array<Timer> = []
  const ts = new TimerService(maxP)
  let mismatches = 0
  let fired = 0
  for (let step = 0; step < 20000; step++) {
    const domain = domains[pick(2)]!
    const timer: Timer = {
      domain,
      at: pick(40),
      key: keys[pick(keys.length)]!,
      tag: tags[pick(tags.length)]!
    }
    const op = rnd()
    if (op < 0.5) {
      ts.register(domain, timer.at, timer.key, timer.tag)
      if (!reference.some((x) => same(x, timer))) reference.push(timer)
    } else if (op < 0.85) {
      ts.delete(domain, timer.at, timer.key, timer.tag)
      reference = reference.filter((x) => !same(x, timer))
    } else {
      const upTo = pick(40)
      let expected: Timer | undefined
      for (const x of reference)
        if (x.domain === domain && x.at <= upTo && (!expected || less(x, expected))) expected = x
      const got = ts.pollDue(domain, upTo)
      if (expected !== undefined) reference = reference.filter((x) => !same(x, expected))
      if (got === undefined ? expected !== undefined : expected === undefined || !same(got, expected))
        mismatches++
      if (got !== undefined) fired++
    }
    let earliest: number | undefined
    for (const x of reference)
      if (x.domain === domain && (earliest === undefined || x.at < earliest)) earliest = x.at
    if (ts.nextAt(domain) !== earliest || ts.count() !== reference.length) mismatches++
  }
  t.equal(mismatches, 0, "every poll, nextAt and count agreed with the reference")
  t.ok(fired > 100, `the sequence fired timers (${fired})`)
  const fromGroups: Array<Timer> = []
  for (const g of ts.groups())
    for (const [d, at, key, tag] of ts.entries(g))
      fromGroups.push({ domain: d === 0 ? "event" : "processing", at, key, tag })
  t.equal(fromGroups.length, reference.length, "the key-group index holds every live timer")
  t.ok(
    reference.every((x) => fromGroups.some((y) => same(x, y))),
    "and exactly the reference's timers"
  )
  const drained = [...drain(ts, "event", 1e9), ...drain(ts, "processing", 1e9)]
  t.equal(drained.length, reference.length, "draining returns each live timer once")
  t.equal(ts.count(), 0)
})

t.test("many deletes (heap compaction) keep the live timers and their order", async (t) => {
  const ts = new TimerService(maxP)
  const live: Array<number> = []
  for (let round = 0; round < 10; round++) {
    for (let i = 0; i < 500; i++) ts.register("event", round * 1000 + i, `k${i}`)
    for (let i = 0; i < 500; i++) if (i % 50 !== 0) ts.delete("event", round * 1000 + i, `k${i}`)
    for (let i = 0; i < 500; i += 50) live.push(round * 1000 + i)
    ts.register("event", round * 1000 + 1, "k1")
    ts.delete("event", round * 1000 + 1, "k1")
  }
  t.equal(ts.count("event"), live.length)
  t.equal(ts.nextAt("event"), 0)
  t.same(
    drain(ts, "event", 1e9).map((x) => x.at),
    live
  )
})
