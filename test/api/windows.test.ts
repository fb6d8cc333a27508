/**
 * Windows (lib/api/Windows.ts): window arithmetic, declaration-time validation, and the compiled
 * keyed declarations played by the keyed driver (test/harness/keyedDriver.ts), which does what the
 * runtime does.
 */
import t from "tap"
import { Effect } from "effect"
import { declaredPorts, outputTag, type ProcessDeclaration, source } from "../../lib/api/Operator.ts"
import { pipeline } from "../../lib/api/Stream.ts"
import { Driver } from "../harness/keyedDriver.ts"
import { END_OF_TIME } from "../../lib/api/Watermark.ts"
import {
  type AggregateFunction,
  type Late,
  session,
  sliding,
  tumbling,
  type Window,
  type WindowAssigner,
  WindowInvalid,
  type WindowResult,
  type WindowSpec,
  windowAggregate,
  windowsOf
} from "../../lib/api/Windows.ts"

interface Rec {
  readonly k: string
  readonly v: number
}
const r = (k: string, v: number): Rec => ({ k, v })
const sum: AggregateFunction<Rec, number, number> = {
  create: () => 0,
  add: (acc, a) => acc + a.v,
  merge: (x, y) => x + y,
  result: (acc) => acc
}
const showResult = (o: WindowResult<string, number>, ts: number | undefined) =>
  `${o.key} [${o.window.start},${o.window.end}) ${o.value} #${o.firing}${o.final ? " final" : ""} @${ts}`
const lateTag = outputTag<Late<Rec>>("late")
const driver = (assigner: WindowAssigner, spec: WindowSpec<Rec>) =>
  new Driver(
    windowAggregate<Rec, string, number, number>("w", assigner, spec, sum) as ProcessDeclaration<
      Rec,
      unknown,
      WindowResult<string, number>,
      unknown
    >,
    (x) => x.k,
    showResult
  )
type WindowDriver = ReturnType<typeof driver>
/** records of key `k`, each value `v` at event time `v` */
const at = (d: WindowDriver, k: string, ...vs: ReadonlyArray<number>): WindowDriver => {
  for (const v of vs) d.record(r(k, v), v)
  return d
}
const spans = (ws: ReadonlyArray<Window>) => ws.map((w) => `[${w.start},${w.end})`)

t.test(
  "window arithmetic: epoch-aligned boundaries, negative timestamps, ts = end − 1, offsets",
  async (t) => {
    const ten = tumbling(10)
    const cases: ReadonlyArray<readonly [number, string]> = [
      [0, "[0,10)"],
      [9, "[0,10)"],
      [10, "[10,20)"],
      [-1, "[-10,0)"],
      [-10, "[-10,0)"],
      [-11, "[-20,-10)"]
    ]
    for (const [ts, w] of cases) t.same(spans(windowsOf(ten, ts)), [w], `tumbling(10) at ${ts}`)
    t.same(spans(windowsOf(tumbling(10, { offset: 3 }), 2)), ["[-7,3)"])
    t.same(spans(windowsOf(tumbling(10, { offset: 3 }), 3)), ["[3,13)"])
    t.same(spans(windowsOf(tumbling(10, { offset: -3 }), 6)), ["[-3,7)"])
    t.same(spans(windowsOf(tumbling(10, { offset: -3 }), 7)), ["[7,17)"])
    t.same(spans(windowsOf(sliding(10, 5), 7)), ["[0,10)", "[5,15)"], "earliest first")
    t.same(spans(windowsOf(sliding(10, 5), -1)), ["[-10,0)", "[-5,5)"])
    t.same(spans(windowsOf(sliding(10, 5), 4)), ["[-5,5)", "[0,10)"])
    t.same(
      spans(windowsOf(sliding(10, 4), 9)),
      ["[0,10)", "[4,14)", "[8,18)"],
      "size not a multiple of slide"
    )
    t.same(spans(windowsOf(sliding(10, 3, { offset: 1 }), 0)), ["[-8,2)", "[-5,5)", "[-2,8)"])
    t.equal(windowsOf(sliding(1000, 1), 12_345).length, 1000)
    t.same(spans(windowsOf(session(10), -5)), ["[-5,5)"], "a session assigner: the session a record opens")
  }
)

t.test("an invalid window fails at declaration, naming the operator and the field", async (t) => {
  const bad: ReadonlyArray<readonly [WindowAssigner, WindowSpec<Rec>, string]> = [
    [tumbling(0), { lateness: 0 }, "size"],
    [tumbling(2.5), { lateness: 0 }, "size"],
    [sliding(10, 0), { lateness: 0 }, "slide"],
    [sliding(10, 20), { lateness: 0 }, "slide"],
    [sliding(10_000, 9), { lateness: 0 }, "slide"],
    [session(0), { lateness: 0 }, "gap"],
    [tumbling(10), { lateness: -1 }, "lateness"],
    [tumbling(10), { lateness: 1.5 }, "lateness"],
    [tumbling(10), {} as WindowSpec<Rec>, "lateness"],
    [tumbling(10, { offset: 10 }), { lateness: 0 }, "offset"],
    [tumbling(10, { offset: -10 }), { lateness: 0 }, "offset"],
    [sliding(10, 5, { offset: 5 }), { lateness: 0 }, "offset"],
    [tumbling(10, { offset: 0.5 }), { lateness: 0 }, "offset"],
    [tumbling(10), { lateness: 0, emit: "never" as unknown as "final" }, "emit"]
  ]
  for (const [a, spec, field] of bad) {
    const e = t.throws(
      () => windowAggregate("perKey", a, spec, sum),
      `${JSON.stringify(a)} ${JSON.stringify(spec)}`
    )
    t.ok(e instanceof WindowInvalid && e.operator === "perKey" && e.field === field, `field ${field}`)
    t.match((e as Error).message, new RegExp(`^perKey: window ${field} `))
  }
  t.doesNotThrow(() => windowAggregate("ok", sliding(10_000, 10), { lateness: 0 }, sum), "size/slide = 1000")
  t.doesNotThrow(() => windowAggregate("ok", sliding(10, 5, { offset: -4 }), { lateness: 0 }, sum))
})

t.test("tumbling: one result per key and window at end − 1, before the watermark goes on", async (t) => {
  const d = driver(tumbling(10), { lateness: 0 })
  d.record(r("b", 2), 3).record(r("a", 1), 1).record(r("a", 3), 9).record(r("a", 4), 10)
  t.same(d.take(), [])
  d.wm(9)
  t.same(
    d.take(),
    ["a [0,10) 4 #1 final @9", "b [0,10) 2 #1 final @9", "wm 9"],
    "in (at, key) order, then the wm"
  )
  t.notOk(d.states.has("b"), "a key without windows keeps no state")
  d.wm(END_OF_TIME)
  t.same(d.take(), ["a [10,20) 4 #1 final @19", "wm END"])
  t.same([d.states.size, d.timers.length, d.lateRecords], [0, 0, 0], "nothing left at the end")
})

t.test("allowed lateness: each late record fires again (1..k); end − 1 + L = wm is late", async (t) => {
  const d = driver(tumbling(10), { lateness: 5, lateOutput: lateTag })
  at(d, "a", 1, 2)
  t.same(
    d.timers.map((x) => `${x.at}/${x.tag}`),
    ["9/0", "14/0"],
    "a firing and a cleanup timer, registered once"
  )
  d.wm(9)
  t.same(d.take(), ["a [0,10) 3 #1 @9", "wm 9"])
  at(d, "a", 3)
  t.same(d.take(), ["a [0,10) 6 #2 @9"], "fires again at once with the updated value")
  d.wm(13)
  at(d, "a", 4)
  t.same(d.take(), ["wm 13", "a [0,10) 10 #3 @9"], "wm 13 < 9 + 5: still allowed")
  d.wm(14)
  t.same(d.take(), ["wm 14"], "cleanup sends nothing in atEnd mode")
  t.notOk(d.states.has("a"), "cleanup cleared the key")
  at(d, "a", 5)
  t.same(d.take(), [], "9 + 5 = wm 14: late")
  t.same(d.side, [
    {
      tag: "late",
      value: { record: r("a", 5), timestamp: 5, windows: [{ start: 0, end: 10 }], operator: "w" }
    }
  ])
  t.equal(d.lateRecords, 1)
  t.notOk(d.states.has("a"), "a late record leaves no state behind")
  at(d, "a", 15)
  d.wm(END_OF_TIME)
  t.same(d.take(), ["a [10,20) 15 #1 final @19", "wm END"])
  t.same([d.states.size, d.timers.length], [0, 0])
})

t.test(
  "allowed lateness: a window's first record after its end − 1 fires it at once (firing 1)",
  async (t) => {
    const d = driver(tumbling(10), { lateness: 5 })
    d.wm(11)
    at(d, "a", 7)
    t.same(d.take(), ["wm 11", "a [0,10) 7 #1 @9"])
    t.same(
      d.timers.map((x) => x.at),
      [14],
      "only the cleanup timer: end − 1 has passed"
    )
    d.wm(END_OF_TIME)
    t.same(d.take(), ["wm END"])
    t.same([d.states.size, d.lateRecords], [0, 0])
  }
)

t.test("sliding: panes of gcd(size, slide), a result merges the panes of its window", async (t) => {
  const d = driver(sliding(10, 4), { lateness: 0 })
  at(d, "a", 9, 1, 8)
  t.same(
    d.states.get("a"),
    {
      panes: [
        [0, 1],
        [8, 17]
      ],
      fired: []
    },
    "2 ms panes: 8 and 9 share one"
  )
  t.equal(d.timers.length, 5, "one timer per window (lateness 0)")
  d.wm(END_OF_TIME)
  t.same(d.take(), [
    "a [-8,2) 1 #1 final @1",
    "a [-4,6) 1 #1 final @5",
    "a [0,10) 18 #1 final @9",
    "a [4,14) 17 #1 final @13",
    "a [8,18) 17 #1 final @17",
    "wm END"
  ])
  t.same([d.states.size, d.timers.length], [0, 0])

  const p = driver(sliding(10, 5), { lateness: 2 })
  at(p, "a", 1, 6, 12)
  p.wm(9)
  t.same(p.take(), ["a [-5,5) 1 #1 final @4", "a [0,10) 7 #1 @9", "wm 9"])
  t.same(
    (p.states.get("a") as { panes: unknown }).panes,
    [
      [0, 1],
      [5, 6],
      [10, 12]
    ],
    "cleanup of [-5,5) at 6 kept the panes [0,10) needs"
  )
  p.wm(11)
  t.same(
    (p.states.get("a") as { panes: unknown }).panes,
    [
      [5, 6],
      [10, 12]
    ],
    "cleanup of [0,10) at 11 dropped pane 0"
  )
})

t.test(
  "sliding with partial lateness: added to its live windows, the missed ones to the late output",
  async (t) => {
    const d = driver(sliding(10, 5), { lateness: 0, lateOutput: lateTag })
    at(d, "a", 1)
    d.wm(9)
    t.same(d.take(), ["a [-5,5) 1 #1 final @4", "a [0,10) 1 #1 final @9", "wm 9"])
    at(d, "a", 7)
    t.same(d.side, [
      {
        tag: "late",
        value: { record: r("a", 7), timestamp: 7, windows: [{ start: 0, end: 10 }], operator: "w" }
      }
    ])
    t.equal(d.lateRecords, 1, "counted")
    d.wm(14)
    t.same(d.take(), ["a [5,15) 7 #1 final @14", "wm 14"], "in [5,15) only")
    t.same([d.states.size, d.timers.length], [0, 0])
  }
)

t.test("session: merge, touch, a late record bridging two fired sessions fires once more", async (t) => {
  const d = driver(session(10), { lateness: 20, lateOutput: lateTag })
  at(d, "a", 0, 5, 22)
  t.same(
    (d.states.get("a") as { sessions: ReadonlyArray<{ start: number; end: number }> }).sessions.map(
      (s) => `[${s.start},${s.end})`
    ),
    ["[0,15)", "[22,32)"]
  )
  d.wm(31)
  t.same(d.take(), ["a [0,15) 5 #1 @14", "a [22,32) 22 #1 @31", "wm 31"])
  at(d, "a", 14)
  t.same(d.take(), ["a [0,32) 41 #2 @31"], "bridged: merged, then fired again (firing max + 1)")
  t.same(d.timers, [{ at: 51, key: "a", tag: 0 }], "the merged sessions' timers deleted, one cleanup set")
  t.same(d.side, [], "not late: it merged into a live session")
  d.wm(51)
  t.notOk(d.states.has("a"), "cleared after cleanup")
  at(d, "a", 5)
  t.same(d.side, [
    {
      tag: "late",
      value: { record: r("a", 5), timestamp: 5, windows: [{ start: 5, end: 15 }], operator: "w" }
    }
  ])
  t.equal(d.lateRecords, 1)

  const b = driver(session(10), { lateness: 20 })
  at(b, "b", 0, 30)
  b.wm(25)
  t.same(b.take(), ["b [0,10) 0 #1 @9", "wm 25"])
  at(b, "b", 10)
  t.same(
    b.take(),
    ["b [0,20) 10 #2 @19"],
    "[10,20) touches [0,10): extended to [0,20), whose end − 1 has passed: fired again"
  )
  at(b, "b", 20)
  t.same(b.take(), [], "[20,30) bridges [0,20) and [30,40); the merged end is ahead of the wm")
  b.wm(END_OF_TIME)
  t.same(b.take(), ["b [0,40) 60 #3 final @39", "wm END"], "firing continues from the merged sessions' max")
  t.same([b.states.size, b.timers.length, b.lateRecords], [0, 0, 0])
})

t.test('emit "final": one result at cleanup, end − 1 + lateness', async (t) => {
  const d = driver(tumbling(10), { lateness: 5, emit: "final", lateOutput: lateTag })
  at(d, "a", 1)
  d.wm(9)
  at(d, "a", 3)
  d.wm(13)
  t.same(d.take(), ["wm 9", "wm 13"], "nothing before cleanup")
  d.wm(14)
  t.same(d.take(), ["a [0,10) 4 #1 final @9", "wm 14"])
  at(d, "a", 2)
  t.equal(d.lateRecords, 1)
  t.same([d.states.size, d.timers.length], [0, 0])

  const s = driver(session(10), { lateness: 5, emit: "final" })
  at(s, "a", 0)
  s.wm(9)
  at(s, "a", 5)
  s.wm(END_OF_TIME)
  t.same(s.take(), ["wm 9", "a [0,15) 5 #1 final @14", "wm END"])
  t.same([s.states.size, s.timers.length], [0, 0])
})

t.test("a record without event time fails, naming the operator", async (t) => {
  const d = driver(tumbling(10), { lateness: 0 })
  t.throws(() => d.record(r("a", 1), undefined), {
    message: "w: record has no event time: give its source `watermarks`"
  })
})

t.test(
  "KeyedStream.window: validated at once; reduce and process compile to event-time keyed declarations",
  async (t) => {
    const src = source<Rec>("recs", () => Effect.die("not run in this test"))
    t.throws(
      () =>
        pipeline("g")
          .source(src)
          .keyBy((x) => x.k)
          .window(tumbling(0), { name: "perTen", lateness: 0 }),
      { name: "WindowInvalid", message: /^perTen: window size / }
    )
    const p = pipeline("g")
    const keyed = p.source(src).keyBy((x) => x.k)
    keyed
      .window(tumbling(10), { name: "sums", lateness: 5, lateOutput: lateTag })
      .reduce((x, y) => r(x.k, x.v + y.v))
    keyed
      .window(session(5), { name: "lists", lateness: 0 })
      .process((key, w, xs) => xs.map((x) => `${key}:${w.start}:${x.v}/${xs.length}`))
    const g = p.build()
    const sums = g.operators.find((o) => o.name === "sums")!.declaration
    const lists = g.operators.find((o) => o.name === "lists")!.declaration
    if (sums.kind !== "process" || lists.kind !== "process") return t.fail("not process declarations")
    t.same([sums.eventTime, lists.eventTime], [true, true])
    t.same(declaredPorts(sums), ["late"], "the late output is a port of the window operator")
    t.same(declaredPorts(lists), [])

    const s = new Driver(
      sums,
      (x) => (x as Rec).k,
      (o, ts) => `${JSON.stringify(o)} @${ts}`
    )
    s.record(r("a", 1), 1).record(r("a", 2), 2).wm(9).record(r("a", 4), 4).wm(END_OF_TIME)
    t.same(s.take(), [
      '{"key":"a","window":{"start":0,"end":10},"value":{"k":"a","v":3},"firing":1,"final":false} @9',
      "wm 9",
      '{"key":"a","window":{"start":0,"end":10},"value":{"k":"a","v":7},"firing":2,"final":false} @9',
      "wm END"
    ])
    const l = new Driver(
      lists,
      (x) => (x as Rec).k,
      (o, ts) => `${String(o)} @${ts}`
    )
    l.record(r("a", 1), 1).record(r("a", 3), 3).record(r("a", 20), 20).wm(END_OF_TIME)
    t.same(l.take(), ["a:1:1/2 @7", "a:1:3/2 @7", "a:20:20/1 @24", "wm END"])
    t.same([s.states.size, l.states.size, s.timers.length, l.timers.length], [0, 0, 0, 0])
  }
)
