import t from "tap"
import { checkJoin } from "./joinOracle.ts"
import {
  generateOrders,
  type InputOrder,
  type Intended,
  interleaveSplits,
  mulberry32,
  splitEvents,
  watermarksAfter
} from "./windowInput.ts"
import {
  type Assigner,
  assignWindows,
  checkWindows,
  fnv1a32,
  idHash,
  type LateRow,
  simulateEvents,
  simulateWindows,
  verdictTable,
  type WindowConfig,
  type WindowResultRow,
  type WindowVerdict
} from "./windowOracle.ts"

const order = (id: string, customer: string, at: number, intended: Intended = "onTime"): InputOrder => ({
  id,
  customer,
  amount: 100,
  at,
  split: 0,
  intended
})
const counters = (v: WindowVerdict) => ({
  lost: v.lost,
  duplicated: v.duplicated,
  unexpected: v.unexpected,
  lateWrong: v.lateWrong,
  brokenChains: v.brokenChains,
  mismatch: v.mismatch
})
const zero = { lost: 0, duplicated: 0, unexpected: 0, lateWrong: 0, brokenChains: 0, mismatch: 0 }
const short = (rows: ReadonlyArray<WindowResultRow>) =>
  rows.map((r) => [r.key, r.window.start, r.window.end, r.firing, r.value.count, r.final])

t.test("fnv1a32 has the reference values and idHash is an order-free sum mod 2^32", async (t) => {
  t.equal(fnv1a32(""), 0x811c9dc5)
  t.equal(fnv1a32("a"), 0xe40c292c)
  t.equal(fnv1a32("foobar"), 0xbf9cf968)
  t.equal(idHash(["a", "foobar"]), (0xe40c292c + 0xbf9cf968) % 2 ** 32, "wraps at 2^32")
  t.equal(idHash(["0-1", "0-2", "1-7"]), idHash(["1-7", "0-1", "0-2"]))
  t.equal(idHash([]), 0)
})

t.test("watermarks follow boundedOutOfOrderness: maxTs − B − 1, every emitEvery, END last", async (t) => {
  t.same(watermarksAfter([100, 103, 104, 90, 106, 120], 10, 5), [
    89,
    undefined,
    undefined,
    undefined,
    95,
    109
  ])
  const events = splitEvents([order("0-0", "a", 5), order("0-1", "a", 3)], { maxDelay: 0, emitEvery: 1 })
  t.same(events.slice(1), [
    { watermark: 4 },
    { record: order("0-1", "a", 3) },
    { watermark: Number.MAX_SAFE_INTEGER }
  ])
})

t.test("window boundaries are aligned to epoch 0 + offset, negative timestamps too", async (t) => {
  const rows: Array<[Assigner, number, Array<[number, number]>]> = [
    [{ kind: "tumbling", size: 10 }, -1, [[-10, 0]]],
    [{ kind: "tumbling", size: 10 }, -10, [[-10, 0]]],
    [{ kind: "tumbling", size: 10 }, -11, [[-20, -10]]],
    [{ kind: "tumbling", size: 10 }, 9, [[0, 10]]],
    [{ kind: "tumbling", size: 10 }, 10, [[10, 20]]],
    [{ kind: "tumbling", size: 10, offset: 3 }, 2, [[-7, 3]]],
    [{ kind: "tumbling", size: 10, offset: 3 }, 3, [[3, 13]]],
    [
      { kind: "sliding", size: 10, slide: 5 },
      -1,
      [
        [-10, 0],
        [-5, 5]
      ]
    ],
    [
      { kind: "sliding", size: 10, slide: 5 },
      5,
      [
        [0, 10],
        [5, 15]
      ]
    ],
    [{ kind: "sliding", size: 10, slide: 10, offset: -4 }, 5, [[-4, 6]]],
    [{ kind: "session", gap: 7 }, -3, [[-3, 4]]]
  ]
  for (const [assigner, ts, want] of rows)
    t.same(
      assignWindows(assigner, ts).map((w) => [w.start, w.end]),
      want,
      `${JSON.stringify(assigner)} ts ${ts}`
    )
})

t.test("ts = end − 1 fires at wm = end − 1; a record is late when end − 1 + L = wm", async (t) => {
  const base = { assigner: { kind: "tumbling", size: 10 }, maxDelay: 0, emitEvery: 1 } as const
  const noLateness = simulateWindows([order("0-0", "a", 9), order("0-1", "b", 10), order("0-2", "a", 9)], {
    ...base,
    lateness: 0
  })
  t.same(short(noLateness.results), [
    ["a", 0, 10, 1, 1, true],
    ["b", 10, 20, 1, 1, true]
  ])
  t.same(
    noLateness.late.map((l) => [l.record.id, l.windows]),
    [["0-2", [{ start: 0, end: 10 }]]]
  )

  const input = [order("0-0", "a", 9), order("0-1", "b", 10), order("0-2", "a", 9), order("0-3", "b", 15)]
  const withLateness = simulateWindows([...input, order("0-4", "a", 9)], { ...base, lateness: 5 })
  t.same(
    short(withLateness.results),
    [
      ["a", 0, 10, 1, 1, false],
      ["a", 0, 10, 2, 2, false],
      ["b", 10, 20, 1, 2, true]
    ],
    "the allowed-late record re-fires at once; at wm 14 the window is gone"
  )
  t.same(
    withLateness.late.map((l) => l.record.id),
    ["0-4"]
  )

  const negative = simulateWindows([order("0-0", "a", -15), order("0-1", "a", -5), order("0-2", "a", 3)], {
    ...base,
    lateness: 0
  })
  t.same(short(negative.results), [
    ["a", -20, -10, 1, 1, true],
    ["a", -10, 0, 1, 1, true],
    ["a", 0, 10, 1, 1, true]
  ])
})

t.test("a late record bridging two fired sessions merges them and fires again", async (t) => {
  const config: WindowConfig = {
    assigner: { kind: "session", gap: 10 },
    lateness: 100,
    maxDelay: 0,
    emitEvery: 1
  }
  const input = [
    order("0-0", "a", 0),
    order("0-1", "a", 20),
    order("0-2", "b", 100),
    order("0-3", "a", 10, "allowedLate"),
    order("0-4", "a", -200, "tooLate")
  ]
  const sim = simulateWindows(input, config)
  t.same(short(sim.results), [
    ["a", 0, 10, 1, 1, false],
    ["a", 20, 30, 1, 1, false],
    ["a", 0, 30, 2, 3, false],
    ["b", 100, 110, 1, 1, true]
  ])
  t.same(
    sim.late.map((l) => [l.record.id, l.windows]),
    [["0-4", [{ start: -200, end: -190 }]]]
  )
  const v = checkWindows({ input, kind: "session", config, ...sim, singleSplit: true })
  t.same(counters(v), zero, verdictTable(v))
})

const options = {
  customers: 20,
  step: 10,
  start: -10_000,
  maxDelay: 500,
  lateness: 1000,
  size: 1000,
  emitEvery: 200
}
const configs: Array<WindowConfig> = [
  { assigner: { kind: "tumbling", size: 1000 }, lateness: 1000, maxDelay: 500, emitEvery: 200 },
  { assigner: { kind: "tumbling", size: 500, offset: 130 }, lateness: 1000, maxDelay: 500, emitEvery: 200 },
  { assigner: { kind: "sliding", size: 1000, slide: 250 }, lateness: 1000, maxDelay: 500, emitEvery: 200 },
  { assigner: { kind: "session", gap: 150 }, lateness: 1000, maxDelay: 500, emitEvery: 200 }
]
const single = generateOrders({ ...options, seed: 1, splits: 1, perSplit: 3000 })[0]!
const several = generateOrders({ ...options, seed: 2, splits: 3, perSplit: 1000 })

t.test(
  "the generator is seeded: ids s-i, the first records on time, about 2 % late of each kind",
  async (t) => {
    t.same(generateOrders({ ...options, seed: 1, splits: 1, perSplit: 3000 })[0], single)
    t.not(
      JSON.stringify(generateOrders({ ...options, seed: 3, splits: 1, perSplit: 3000 })[0]),
      JSON.stringify(single)
    )
    t.same(
      several.map((s) => s[999]!.id),
      ["0-999", "1-999", "2-999"]
    )
    t.ok(several.every((s) => s.slice(0, 10).every((r) => r.intended === "onTime")))
    for (const kind of ["allowedLate", "tooLate"] as const) {
      const n = single.filter((r) => r.intended === kind).length
      t.ok(n > 30 && n < 90, `${n} ${kind} of 3000`)
    }
    t.ok(
      single.every((r) => Number.isSafeInteger(r.amount) && r.amount > 0),
      "amounts are integer cents"
    )
  }
)

t.test("single split: the simulation checked against itself is exact", async (t) => {
  for (const config of configs) {
    const sim = simulateWindows(single, config)
    const v = checkWindows({ input: single, kind: config.assigner.kind, config, ...sim, singleSplit: true })
    const name = JSON.stringify(config.assigner)
    t.same(counters(v), zero, `${name}\n${verdictTable(v)}`)
    t.ok(v.ok && v.results === sim.results.length && v.lateRecords === sim.late.length)
    t.ok(
      sim.results.some((r) => r.firing > 1),
      `${name}: allowed-late records re-fire`
    )
    const lateIds = new Set(sim.late.map((l) => l.record.id))
    t.ok(
      single.every((r) => r.intended !== "onTime" || !lateIds.has(r.id)),
      `${name}: no on-time record is late`
    )
    if (config.assigner.kind !== "session")
      t.ok(
        single.every((r) => r.intended !== "tooLate" || lateIds.has(r.id)),
        `${name}: every too-late record is late`
      )
  }
})

t.test("several splits: an interleaved execution passes the conservation check", async (t) => {
  for (const config of configs) {
    for (const seed of [7, 8]) {
      const events = interleaveSplits(several, config, mulberry32(seed))
      const run = simulateEvents(events, config)
      const input = several.flat()
      const v = checkWindows({ input, kind: config.assigner.kind, config, ...run, singleSplit: false })
      t.same(counters(v), zero, `${JSON.stringify(config.assigner)} seed ${seed}\n${verdictTable(v)}`)
    }
  }
})

t.test("every counter catches its corruption", async (t) => {
  const check = (
    config: WindowConfig,
    results: Array<WindowResultRow>,
    late: Array<LateRow>,
    singleSplit = true
  ) =>
    counters(checkWindows({ input: single, kind: config.assigner.kind, config, results, late, singleSplit }))
  const tumbling = configs[0]!
  const sim = simulateWindows(single, tumbling)
  const last = sim.results.length - 1
  const onlyOnce = sim.results.findIndex(
    (r) => sim.results.filter((x) => x.key === r.key && x.window.start === r.window.start).length === 1
  )

  const dropped = sim.results.filter((_, i) => i !== onlyOnce)
  t.same(
    check(tumbling, dropped, sim.late),
    { ...zero, lost: sim.results[onlyOnce]!.value.count, mismatch: 1 },
    "drop a result"
  )
  t.same(
    check(tumbling, [...sim.results, sim.results[last]!], sim.late),
    { ...zero, duplicated: 1, mismatch: 1 },
    "duplicate a firing"
  )
  const onTime = single.find((r) => r.intended === "onTime" && r.at > 0)!
  const wrongLate = {
    record: { id: onTime.id, customer: onTime.customer, amount: onTime.amount, at: onTime.at },
    timestamp: onTime.at,
    windows: assignWindows(tumbling.assigner, onTime.at)
  }
  t.same(
    check(tumbling, sim.results, [...sim.late, wrongLate]),
    { ...zero, lateWrong: 1, duplicated: 1, mismatch: 1 },
    "an on-time record in the late output (and in its window)"
  )
  const top = sim.results[last]!
  const invented = { ...top, window: { start: top.window.start + 7, end: top.window.end + 7 } }
  t.same(
    check(tumbling, [...sim.results, invented], sim.late),
    { ...zero, unexpected: 1, mismatch: 1 },
    "invent a window"
  )
  const changed = sim.results.map((r, i) =>
    i === onlyOnce ? { ...r, value: { ...r.value, sum: r.value.sum + 1 } } : r
  )
  t.same(
    check(tumbling, changed, sim.late),
    { ...zero, lost: 1, duplicated: 1, mismatch: 2 },
    "change one value"
  )
  const renumbered = sim.results.map((r, i) => (i === onlyOnce ? { ...r, firing: 2 } : r))
  t.same(
    check(tumbling, renumbered, sim.late),
    { ...zero, brokenChains: 1, mismatch: 2 },
    "a chain that starts at firing 2"
  )
  t.same(
    check(tumbling, sim.results, sim.late.slice(1)),
    { ...zero, lost: sim.late[0]!.windows.length, mismatch: 1 },
    "drop a late row"
  )
  const stranger = { ...wrongLate, record: { ...wrongLate.record, id: "9-9" } }
  t.same(
    check(tumbling, sim.results, [...sim.late, stranger]),
    { ...zero, unexpected: 1, mismatch: 1 },
    "a late row of no input record"
  )
  t.same(
    check(tumbling, [...sim.results, sim.results[last]!], sim.late, false),
    { ...zero, duplicated: 1 },
    "multi-split mode: a duplicate is still caught, no mismatch is claimed"
  )

  const session = configs[3]!
  const sessions = simulateWindows(single, session)
  t.same(
    check(session, sessions.results, sessions.late.slice(1), false),
    { ...zero, lost: 1 },
    "sessions: drop a late row"
  )
  const widened = sessions.results.map((r, i) =>
    i === 0 ? { ...r, window: { start: r.window.start - 1, end: r.window.end } } : r
  )
  const v = checkWindows({
    input: single,
    kind: "session",
    config: session,
    results: widened,
    late: sessions.late,
    singleSplit: true
  })
  t.ok(v.unexpected >= 1 && v.mismatch === 2, `sessions: a session no record bounds\n${verdictTable(v)}`)
})

t.test(
  "the join oracle: exact output passes; a lost, a doubled and an out-of-bounds pair and an on-time late row are each caught",
  async (t) => {
    const [left, right] = generateOrders({
      seed: 5,
      splits: 2,
      perSplit: 400,
      customers: 10,
      step: 100,
      start: 0,
      maxDelay: 500,
      lateness: 0,
      size: 1000,
      emitEvery: 100
    })
    const late = [...left!, ...right!]
      .filter((r) => r.intended === "tooLate")
      .map((r) => ({ record: r, side: (r.split === 0 ? "left" : "right") as "left" | "right" }))
    const lateIds = new Set(late.map((l) => l.record.id))
    const pairs = left!.flatMap((a) =>
      right!
        .filter(
          (b) =>
            !lateIds.has(a.id) &&
            !lateIds.has(b.id) &&
            a.customer === b.customer &&
            Math.abs(b.at - a.at) <= 300
        )
        .map((b) => ({ customer: a.customer, a: a.id, b: b.id }))
    )
    const check = (results: typeof pairs, lateRows = late) =>
      checkJoin({ left: left!, right: right!, lower: -300, upper: 300, results, late: lateRows })
    const exact = check(pairs)
    t.ok(
      exact.ok && exact.attempted === pairs.length && pairs.length > 50,
      `${pairs.length} pairs, exact: ok`
    )
    t.equal(check(pairs.slice(1)).lost, 1, "a pair missing: lost")
    t.equal(check([...pairs, pairs[0]!]).duplicated, 1, "a pair twice: duplicated")
    const far = right!.find((b) => b.customer === left![0]!.customer && Math.abs(b.at - left![0]!.at) > 300)!
    t.equal(
      check([...pairs, { customer: far.customer, a: left![0]!.id, b: far.id }]).unexpected,
      1,
      "out of bounds: unexpected"
    )
    const onTime = left!.find((r) => r.intended === "onTime")!
    t.equal(
      check(pairs, [...late, { record: onTime, side: "left" }]).lateWrong,
      1,
      "an on-time record late: lateWrong"
    )
  }
)
