import t from "tap"
import { double, even, out, src, total } from "../fixtures/numberOperators.ts"
import { type Pipeline, PipelineInvalid, validatePipeline } from "../../lib/api/Pipeline.ts"
import { pipeline, type Stream } from "../../lib/api/Stream.ts"
import { boundedOutOfOrderness } from "../../lib/api/Watermark.ts"
import { tumbling } from "../../lib/api/Windows.ts"

const problemsOf = (p: Pipeline) => {
  const r = validatePipeline(p)
  return r instanceof PipelineInvalid ? r.problems.map((x) => `${x.operator}: ${x.rule}`) : []
}

t.test("a valid chain gives a plan with every instance in topological order", async (t) => {
  const p = pipeline("orders")
    .source(src, { parallelism: 2 })
    .map(double)
    .keyBy((n) => n % 10)
    .process(total, { parallelism: 3 })
    .sink(out, { parallelism: 1 })
  const plan = validatePipeline(p)
  if (!("instances" in plan)) return t.fail(String(plan))
  t.same(plan.instances.map(String), [
    "numbers#0",
    "numbers#1",
    "double#0",
    "double#1",
    "total#0",
    "total#1",
    "total#2",
    "out#0"
  ])
  t.same(
    p.edges.map((e) => `${e.from}->${e.to}:${e.partitioning.kind}`),
    ["numbers->double:forward", "double->total:keyBy", "total->out:rebalance"]
  )
  t.equal(plan.options.maxParallelism, 128, "defaults filled in")
})

t.test("each rule names the operator it concerns", async (t) => {
  t.same(problemsOf({ job: "j", operators: [], edges: [], options: {} }), [
    "j: the pipeline has no source",
    "j: the pipeline has no sink"
  ])
  const dup = pipeline("j").source(src).map(double, { name: "x" }).map(double, { name: "x" }).sink(out)
  t.ok(problemsOf(dup).includes("x: duplicate operator name"))
  const tooWide = pipeline("j", { maxParallelism: 4 }).source(src).sink(out, { parallelism: 5 })
  t.ok(problemsOf(tooWide).includes("out: parallelism 5 is greater than maxParallelism 4"))
  // process() exists on keyed streams only; a hand-edited graph can still drop the keyBy
  const keyed = pipeline("j")
    .source(src)
    .keyBy((n) => n)
    .process(total)
    .sink(out)
  const unkeyed: Pipeline = {
    ...keyed,
    edges: keyed.edges.map((e) => (e.to === "total" ? { ...e, partitioning: { kind: "forward" } } : e))
  }
  t.ok(
    problemsOf(unkeyed).some((p) => p.startsWith("total: a keyed operator needs keyBy")),
    "keyed operator without keyBy"
  )
  const forward = pipeline("j")
    .source(src, { parallelism: 2 })
    .map(double, { parallelism: 3, partitioning: "forward" })
    .sink(out)
  t.ok(
    problemsOf(forward).some((p) => p.startsWith("double: forward edge from numbers needs equal parallelism"))
  )
  const base = pipeline("j").source(src).map(double).filter(even).sink(out)
  const cyclic: Pipeline = {
    ...base,
    edges: [...base.edges, { from: "even", to: "double", partitioning: { kind: "forward" } }]
  }
  t.ok(problemsOf(cyclic).includes("double: is part of a cycle"))
  t.ok(problemsOf(cyclic).includes("even: is part of a cycle"))
  const noSink = pipeline("j").source(src).map(double).build()
  t.ok(problemsOf(noSink).includes("j: the pipeline has no sink"))
  t.ok(problemsOf(noSink).includes("double: has no output (only sinks may end a pipeline)"))
  const badName = pipeline("my job").source(src).sink(out)
  t.ok(problemsOf(badName).some((p) => p.includes("job name")))
})

t.test("bad options name the field", async (t) => {
  const r = validatePipeline(
    pipeline("j", { checkpoint: { interval: -1 } })
      .source(src)
      .sink(out)
  )
  t.equal("_tag" in r ? r._tag : "plan", "InvalidJobOption")
  t.match(String((r as { message: string }).message), /checkpoint\.interval/)
  const hb = validatePipeline(
    pipeline("j", { heartbeatInterval: 1000, heartbeatTimeout: 500 }).source(src).sink(out)
  )
  t.match(String((hb as { message: string }).message), /heartbeatTimeout/)
})

t.test(
  "event time starts at a source's watermarks or at assignTimestamps; a window without it is refused",
  async (t) => {
    const strategy = boundedOutOfOrderness<number>({ timestamp: (n) => n, maxDelay: 10 })
    const perTen = (s: Stream<number>) =>
      s
        .keyBy((n) => n % 10)
        .window(tumbling(100), { name: "perTen", lateness: 0 })
        .reduce((a, b) => a + b)
        .sink(out as never) // a sink of numbers: only the graph is checked here
    const untimed = pipeline("j").source(src).map(double)
    perTen(untimed)
    const [problem] = problemsOf(untimed.graph.build())
    t.match(problem, /^perTen: needs event time, but its input from double has none: .*assignTimestamps/)
    const assigned = pipeline("j").source(src).map(double).assignTimestamps(strategy, { name: "stamp" })
    perTen(assigned)
    const p = assigned.graph.build()
    t.same(problemsOf(p), [], "valid with assignTimestamps after the map")
    t.equal(
      p.operators.find((o) => o.name === "stamp")?.watermarks,
      strategy,
      "the stamping operator carries the strategy"
    )
  }
)
