/**
 * OperatorTime, the event-time half of an operator's loop, against a router that records what goes
 * out: a watermark fires every timer it makes due and routes their results before the watermark
 * itself (DESIGN-dataflow §3.2: fire, send the results, then forward), so no result reaches a
 * downstream operator behind a watermark that passed its timestamp (a downstream window would
 * take it as late); a burst of more than one slice announces itself with a heartbeat.
 */
import { Effect } from "effect"
import t from "tap"
import { keyedProcess } from "../../lib/api/Operator.ts"
import { END_OF_TIME, START_OF_TIME } from "../../lib/api/Watermark.ts"
import { KeyedContext } from "../../lib/runtime/KeyedContext.ts"
import { KeyedStateStore } from "../../lib/runtime/KeyedStateStore.ts"
import { OperatorTime } from "../../lib/runtime/OperatorTime.ts"
import { PortOutputs } from "../../lib/runtime/PortOutputs.ts"
import type { Router } from "../../lib/runtime/Router.ts"
import { initialTaskStats } from "../../lib/runtime/TaskStats.ts"

interface Fired {
  readonly key: string
  readonly at: number
}

/** Each timer sends one result stamped with its time. */
const fireEach = keyedProcess<number, number, Fired>("fire", {
  state: { name: "fired", initial: () => 0 },
  eventTime: true,
  handle: (_record, state) => state,
  onTimer: (timer, state, ctx) => {
    ctx.emit({ key: String(ctx.key), at: timer.at }, timer.at)
    return state + 1
  }
})

type Sent =
  | { readonly kind: "record"; readonly ts: number }
  | { readonly kind: "watermark"; readonly w: number }

/** What a router would send downstream, in order: records with their timestamps, and watermarks. */
const recordingRouter = (sent: Array<Sent>): Router =>
  ({
    route: (_records: ReadonlyArray<unknown>, _port?: string, times?: ReadonlyArray<number>) =>
      Effect.sync(() => {
        for (const ts of times ?? []) sent.push({ kind: "record", ts })
      }),
    watermark: (w: number) => Effect.sync(() => sent.push({ kind: "watermark", w })),
    idle: () => Effect.void
  }) as unknown as Router

const setup = (slice: number) => {
  const sent: Array<Sent> = []
  const reports: Array<string> = []
  const store = new KeyedStateStore<unknown>(128, 1, 0, () => 0)
  const keyed = new KeyedContext("fire", store)
  const ports = new PortOutputs("fire#0", new Set<string>())
  const env = {
    instance: "fire#0",
    declaration: fireEach,
    channelEdges: [],
    stats: initialTaskStats(),
    router: recordingRouter(sent),
    sourceBatch: slice,
    report: (kind: string) => {
      reports.push(kind)
    }
  }
  const time = new OperatorTime(env, 1, START_OF_TIME, keyed, ports)
  return { sent, reports, store, time, stats: env.stats }
}

/** Every watermark comes after each result at or before it, and no result at or before a watermark follows it. */
const resultsBeforeTheirWatermark = (sent: ReadonlyArray<Sent>): string | undefined => {
  let wm = START_OF_TIME
  for (const [i, s] of sent.entries()) {
    if (s.kind === "watermark") wm = s.w
    else if (s.ts <= wm) return `result at ${s.ts} (item ${i}) sent after watermark ${wm}`
  }
  return undefined
}

t.test("a watermark goes out after the results of the timers it makes due", async (t) => {
  const { sent, store, time } = setup(256)
  for (const [at, key] of [
    [100, "a"],
    [200, "b"],
    [200, "a"],
    [300, "c"]
  ] as const)
    store.timers.register("event", at, key)
  await Effect.runPromise(time.onWatermark(0, 250))
  t.same(
    sent,
    [
      { kind: "record", ts: 100 },
      { kind: "record", ts: 200 },
      { kind: "record", ts: 200 },
      { kind: "watermark", w: 250 }
    ],
    "timers at 100 and 200 fired and routed, then watermark 250; the timer at 300 waits"
  )
  await Effect.runPromise(time.onWatermark(0, 300))
  t.same(sent.slice(4), [
    { kind: "record", ts: 300 },
    { kind: "watermark", w: 300 }
  ])
  t.equal(resultsBeforeTheirWatermark(sent), undefined, "no result behind its watermark")
})

t.test("a burst of several slices: results in slices, a heartbeat at the second, END last", async (t) => {
  const { sent, reports, store, time, stats } = setup(4)
  for (let i = 0; i < 10; i++) store.timers.register("event", 1000 + i, `k${i}`)
  await Effect.runPromise(time.onWatermark(0, END_OF_TIME))
  t.equal(sent.filter((s) => s.kind === "record").length, 10, "all 10 timers fired")
  t.same(sent.at(-1), { kind: "watermark", w: END_OF_TIME }, "END goes out after every result")
  t.equal(resultsBeforeTheirWatermark(sent), undefined, "no result behind its watermark")
  t.same(reports, ["heartbeat"], "one heartbeat for a burst of 3 slices")
  t.equal(stats.firing, false, "not firing once the burst is done")
})
