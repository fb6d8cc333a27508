/**
 * The graph builder (lib/api/Stream.ts) and the graph rules of validatePipeline: what edges each
 * method makes (ports, inputs, partitionings), and the error that names each bad graph.
 */
import t from "tap"
import { Effect } from "effect"
import {
  type Emit,
  keyedCoProcess,
  keyedProcess,
  map,
  outputTag,
  sink,
  source
} from "../../lib/api/Operator.ts"
import { type Pipeline, PipelineInvalid, validatePipeline } from "../../lib/api/Pipeline.ts"
import { pipeline } from "../../lib/api/Stream.ts"
import { double, out, src, total } from "../fixtures/numberOperators.ts"

const problemsOf = (p: Pipeline) => {
  const r = validatePipeline(p)
  return r instanceof PipelineInvalid ? r.problems.map((x) => `${x.operator}: ${x.rule}`) : []
}
const edgesOf = (p: Pipeline) =>
  p.edges.map(
    (e) =>
      `${e.from}${e.port ? `.${e.port}` : ""}->${e.to}${e.input ? `[${e.input}]` : ""}:${e.partitioning.kind}`
  )

const other = source<number>("other", () => Effect.die("not run in this test"))
const third = source<number>("third", () => Effect.die("not run in this test"))
const sum = keyedCoProcess("sum", {
  state: { name: "sum", initial: () => 0 },
  handle1: (n: number, s: number, emit: (o: number) => void) => {
    emit(s + n)
    return s + n
  },
  handle2: (n: number, s: number) => s - n
})
const big = outputTag<number>("big")
const flagBig = keyedProcess("flag", {
  state: { name: "none", initial: () => 0 },
  outputs: [big],
  handle: (n: number, s: number, emit: Emit<number>) => {
    if (n > 100) emit.side(big, n)
    else emit(n)
    return s
  }
})
const out2 = sink<number>("out2", () => Effect.die("not run in this test"))

t.test(
  "union, connect, split, side outputs, fan-out and partitionings make the edges they say",
  async (t) => {
    const p = pipeline("g")
    const a = p.source(src, { parallelism: 2 })
    const b = p.source(other)
    const c = p.source(third)
    const merged = a.union(b).map(double, { parallelism: 2 })
    const summed = merged
      .keyBy((n) => n % 7)
      .connect(c.keyBy((n) => n % 7))
      .process(sum, { parallelism: 3 })
    const flagged = summed.keyBy((n) => n).process(flagBig, { parallelism: 3 })
    const parts = flagged.split("parity", ["even", "odd"], (n) => (n % 2 === 0 ? "even" : ["odd", "even"]))
    parts.even.sink(out)
    parts.odd.broadcast().sink(out2, { parallelism: 2 })
    flagged.sideOutput(big).sink(sink<number>("bigs", () => Effect.die("not run")))
    merged
      .rebalance()
      .map(
        map("also", (n: number) => n),
        { parallelism: 1 }
      )
      .sink(sink<number>("alsoOut", () => Effect.die("x")))
    const g = p.build()
    t.same(edgesOf(g), [
      "numbers->double:forward",
      "other->double:rebalance",
      "double->sum:keyBy",
      "third->sum[1]:keyBy",
      "sum->flag:keyBy",
      "flag->parity:forward",
      "parity.even->out:forward",
      "parity.odd->out2:broadcast",
      "flag.big->bigs:forward",
      "double->also:rebalance",
      "also->alsoOut:forward"
    ])
    t.same(problemsOf(g), [], "the graph is valid")
    const plan = validatePipeline(g)
    if (!("instances" in plan)) return t.fail(String(plan))
    t.same(
      plan.inputs.get("sum")!.map((e) => e.from),
      ["double", "third"],
      "a co-process's inputs in plan order: input 0 then input 1"
    )
  }
)

t.test("today's linear one-liner still builds the same chain", async (t) => {
  const p = pipeline("orders")
    .source(src)
    .map(double)
    .keyBy((n) => n)
    .process(total)
    .sink(out)
  t.same(edgesOf(p), ["numbers->double:forward", "double->total:keyBy", "total->out:forward"])
  t.same(problemsOf(p), [])
})

t.test("each graph rule names the operator it concerns", async (t) => {
  const self = pipeline("g")
  const s = self.source(src)
  s.union(s).map(double).sink(out)
  t.ok(
    problemsOf(self.build()).some((x) => x.startsWith('double: takes numbers\'s port "main" twice')),
    "a stream unioned with itself"
  )

  const undeclared = pipeline("g")
  undeclared
    .source(src)
    .keyBy((n) => n)
    .process(total)
    .sideOutput(big)
    .sink(out)
  t.ok(
    problemsOf(undeclared.build()).some((x) =>
      x.startsWith('total: edge total -> out reads port "big", which total does not declare')
    ),
    "a side output the operator does not declare"
  )

  const two = pipeline("g")
  const flagged = two
    .source(src)
    .keyBy((n) => n)
    .process(flagBig)
  flagged.union(flagged.sideOutput(big)).map(double).sink(out)
  t.ok(
    problemsOf(two.build()).some((x) => x.startsWith("double: takes two edges from flag")),
    "two edges between the same operators"
  )

  const keyedOnce = pipeline("g")
  const k = keyedOnce
    .source(src)
    .keyBy((n) => n)
    .connect(keyedOnce.source(other).keyBy((n) => n))
    .process(sum)
  k.sink(out)
  const g = keyedOnce.build()
  const unkeyed: Pipeline = {
    ...g,
    edges: g.edges.map((e) => (e.input === 1 ? { ...e, partitioning: { kind: "rebalance" } } : e))
  }
  t.ok(
    problemsOf(unkeyed).some((x) => x.startsWith("sum: a co-process needs both inputs keyed")),
    "a co-process with an unkeyed input"
  )
  const oneSided: Pipeline = {
    ...g,
    edges: g.edges.filter((e) => e.input !== 1),
    operators: g.operators.filter((o) => o.name !== "other")
  }
  t.ok(
    problemsOf(oneSided).some((x) => x.startsWith("sum: a co-process needs both inputs")),
    "a co-process with one input"
  )

  const dangling = pipeline("g")
  const d = dangling.source(src)
  d.sink(out)
  d.map(double)
  t.ok(
    problemsOf(dangling.build()).some((x) => x === "double: has no output (only sinks may end a pipeline)"),
    "an operator that reaches no sink"
  )
  const island: Pipeline = {
    ...g,
    operators: [
      ...g.operators,
      { name: "a", declaration: double, parallelism: 1 },
      { name: "b", declaration: double, parallelism: 1 }
    ],
    edges: [
      ...g.edges,
      { from: "a", to: "b", partitioning: { kind: "forward" } },
      { from: "b", to: "a", partitioning: { kind: "forward" } },
      { from: "b", to: "out", partitioning: { kind: "rebalance" } }
    ]
  }
  const islandProblems = problemsOf(island)
  t.ok(islandProblems.includes("a: no path from a source reaches it"), "an operator no source reaches")
  t.ok(islandProblems.includes("a: is part of a cycle"), "a cycle")

  const badLabels = pipeline("g")
  const parts = badLabels.source(src).split("route", ["x", "x", "no.dots"], () => "x")
  parts.x.sink(out)
  const labelProblems = problemsOf(badLabels.build())
  t.ok(labelProblems.includes("route: a split's labels must be distinct"))
  t.ok(labelProblems.includes(`route: output port "no.dots" must be letters, digits, '-' or '_'`))

  const secondInput: Pipeline = {
    ...g,
    edges: g.edges.map((e) => (e.to === "out" ? { ...e, input: 1 as const } : e))
  }
  t.ok(
    problemsOf(secondInput).some((x) =>
      x.endsWith("feeds input 1, but only a co-process has a second input")
    ),
    "input 1 of a one-input operator"
  )
})

t.test("streams of two pipeline() calls do not mix", async (t) => {
  const a = pipeline("a").source(src)
  const b = pipeline("b").source(other)
  t.throws(() => a.union(b), /different pipeline\(\) calls/)
})
