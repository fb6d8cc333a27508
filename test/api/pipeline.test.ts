import t from "tap"
import { double, even, out, src, total } from "../fixtures/numberOperators.ts"
import { type Pipeline, PipelineInvalid, validatePipeline } from "../../lib/api/Pipeline.ts"
import { pipeline } from "../../lib/api/Stream.ts"

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
