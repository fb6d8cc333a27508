/**
 * lib/api/ — what a user writes against: operator declarations (Operator), the graph builder
 * (Stream), the graph and its validation (Pipeline), job, channel and restart options, and loading
 * a pipeline module. Imports core/ and internal/ only; lib/index.ts re-exports it.
 *
 * Pipelines: a job composed from actor declarations as a graph of operators (each with a
 * parallelism) and edges (each from an output port, with a partitioning: forward, keyBy,
 * rebalance, broadcast). Invariant: a `Pipeline` that `validatePipeline` accepts has one or more
 * sources and sinks, unique operator names, no cycle, every operator on a path from a source to a
 * sink, edges only from ports their operator declares and at most one edge between two operators,
 * keyed operators fed only by keyBy edges (a co-process by both of its inputs), forward edges only
 * between equal parallelisms, and every parallelism within 1..maxParallelism.
 */
import * as Data from "effect/Data"
import { InstanceId, isToken } from "../core/Address.ts"
import { InvalidJobOption, type JobOptions, type JobOptionsInput, resolveJobOptions } from "./JobOptions.ts"
import type { Key } from "../core/KeyGroups.ts"
import { type Declaration, deadLetters, declaredPorts, hasDeadLetters } from "./Operator.ts"
import type { WatermarkStrategy } from "./Watermark.ts"

export type Partitioning =
  | { readonly kind: "forward" }
  | { readonly kind: "rebalance" }
  | { readonly kind: "broadcast" }
  | { readonly kind: "keyBy"; key(record: unknown): Key }

export interface OperatorNode {
  readonly name: string
  readonly declaration: Declaration
  readonly parallelism: number
  /** event time: a source's timestamps and watermarks per split, or an assignTimestamps operator's per instance (DESIGN-dataflow §2.2) */
  readonly watermarks?: WatermarkStrategy<unknown>
}

export interface Edge {
  readonly from: string
  readonly to: string
  readonly partitioning: Partitioning
  /** the output port of `from` the edge reads: absent or `main`, a side output's tag or a split's label */
  readonly port?: string
  /** the input of a two-input operator (co-process) the edge feeds: 0 (absent) or 1 */
  readonly input?: 0 | 1
}

/** The port an edge reads (`main` when absent). */
export const portOf = (e: Edge): string => e.port ?? "main"

export interface Pipeline {
  readonly job: string
  readonly operators: ReadonlyArray<OperatorNode>
  readonly edges: ReadonlyArray<Edge>
  readonly options: JobOptionsInput
}

export interface PipelineProblem {
  readonly operator: string
  readonly rule: string
}

export class PipelineInvalid extends Data.TaggedError("PipelineInvalid")<{
  readonly job: string
  readonly problems: ReadonlyArray<PipelineProblem>
}> {
  override get message(): string {
    return `pipeline "${this.job}" is invalid:\n${this.problems.map((p) => `  - ${p.operator}: ${p.rule}`).join("\n")}`
  }
}

/** A validated pipeline with its resolved options and the topology the runtime needs. */
export interface JobPlan {
  readonly pipeline: Pipeline
  readonly options: JobOptions
  readonly operator: ReadonlyMap<string, OperatorNode>
  readonly inputs: ReadonlyMap<string, ReadonlyArray<Edge>>
  readonly outputs: ReadonlyMap<string, ReadonlyArray<Edge>>
  /** every instance of the job, sources first, in topological order */
  readonly instances: ReadonlyArray<InstanceId>
}

/** Checks every rule and resolves options; returns the plan or every problem found. */
export const validatePipeline = (p: Pipeline): JobPlan | PipelineInvalid | InvalidJobOption => {
  const options = resolveJobOptions(p.options)
  if (options instanceof InvalidJobOption) return options
  const problems: Array<PipelineProblem> = []
  const add = (operator: string, rule: string) => problems.push({ operator, rule })
  if (!isToken(p.job)) add(p.job, "the job name must be letters, digits, '-' or '_'")
  const operator = new Map<string, OperatorNode>()
  for (const node of p.operators) {
    if (operator.has(node.name)) add(node.name, "duplicate operator name")
    operator.set(node.name, node)
    if (!isToken(node.name)) add(node.name, "an operator name must be letters, digits, '-' or '_'")
    if (!Number.isInteger(node.parallelism) || node.parallelism < 1)
      add(node.name, `parallelism ${node.parallelism} must be a whole number >= 1`)
    else if (node.parallelism > options.maxParallelism)
      add(
        node.name,
        `parallelism ${node.parallelism} is greater than maxParallelism ${options.maxParallelism}`
      )
  }
  const inputs = new Map<string, Array<Edge>>(p.operators.map((o) => [o.name, []]))
  const outputs = new Map<string, Array<Edge>>(p.operators.map((o) => [o.name, []]))
  for (const e of p.edges) {
    const from = operator.get(e.from)
    const to = operator.get(e.to)
    if (!from) add(e.from, `edge ${e.from} -> ${e.to} starts at an unknown operator`)
    if (!to) add(e.to, `edge ${e.from} -> ${e.to} ends at an unknown operator`)
    if (!from || !to) continue
    const port = portOf(e)
    if (port !== "main" || from.declaration.kind === "split") {
      const ports = declaredPorts(from.declaration)
      if (!ports.includes(port))
        add(
          e.from,
          `edge ${e.from} -> ${e.to} reads port "${port}", which ${e.from} does not declare (its ports: ${
            from.declaration.kind === "split" ? "" : "main, "
          }${ports.join(", ") || "none besides main"})`
        )
    }
    const twin = inputs.get(e.to)!.find((x) => x.from === e.from)
    if (twin !== undefined)
      add(
        e.to,
        portOf(twin) === port
          ? `takes ${e.from}'s port "${port}" twice (a stream unioned with itself, or a duplicate edge): every record would arrive twice`
          : `takes two edges from ${e.from} (ports "${portOf(twin)}" and "${port}"): one channel per pair of instances, so at most one edge between two operators (put a map on one of them)`
      )
    if (e.input !== undefined && e.input !== 0 && e.input !== 1)
      add(e.to, `edge ${e.from} -> ${e.to} feeds input ${String(e.input)}: inputs are 0 or 1`)
    if (e.input === 1 && to.declaration.kind !== "coProcess")
      add(e.to, `edge ${e.from} -> ${e.to} feeds input 1, but only a co-process has a second input`)
    inputs.get(e.to)!.push(e)
    outputs.get(e.from)!.push(e)
    if (e.partitioning.kind === "forward" && from.parallelism !== to.parallelism)
      add(
        e.to,
        `forward edge from ${e.from} needs equal parallelism (${from.parallelism} vs ${to.parallelism})`
      )
  }
  const sources = p.operators.filter((o) => o.declaration.kind === "source")
  if (sources.length === 0) add(p.job, "the pipeline has no source")
  if (!p.operators.some((o) => o.declaration.kind === "sink")) add(p.job, "the pipeline has no sink")
  for (const node of p.operators) {
    const kind = node.declaration.kind
    const ins = inputs.get(node.name)!
    const outs = outputs.get(node.name)!
    if (kind === "source" && ins.length > 0) add(node.name, "a source cannot have inputs")
    if (kind !== "source" && ins.length === 0) add(node.name, "has no input (only sources may)")
    if (kind === "sink" && outs.length > 0) add(node.name, "a sink cannot have outputs")
    if (kind !== "sink" && outs.length === 0) add(node.name, "has no output (only sinks may end a pipeline)")
    if (kind === "process" && ins.some((e) => e.partitioning.kind !== "keyBy"))
      add(node.name, "a keyed operator needs keyBy on every input (call .keyBy(...) before .process(...))")
    if (kind === "coProcess") {
      if (!ins.some((e) => (e.input ?? 0) === 0) || !ins.some((e) => e.input === 1))
        add(node.name, "a co-process needs both inputs: edges into input 0 and into input 1 (a.connect(b))")
      if (ins.some((e) => e.partitioning.kind !== "keyBy"))
        add(
          node.name,
          "a co-process needs both inputs keyed: keyBy on every edge into it (a.keyBy(..).connect(b.keyBy(..)))"
        )
    }
    if (kind === "split") {
      const labels = node.declaration.kind === "split" ? node.declaration.labels : []
      if (labels.length === 0) add(node.name, "a split needs at least one label")
      if (new Set(labels).size !== labels.length) add(node.name, "a split's labels must be distinct")
    }
    const d = node.declaration
    if ("onError" in d && d.onError !== undefined && d.onError !== "fail" && d.onError !== "deadLetter")
      add(node.name, `onError "${String(d.onError)}" must be "fail" or "deadLetter"`)
    if (hasDeadLetters(d) && !outs.some((e) => portOf(e) === deadLetters.name))
      add(
        node.name,
        `its policy is deadLetter, but nothing reads its "${deadLetters.name}" output: add .sideOutput(deadLetters) into a sink, or its rejected records would be lost`
      )
    const declared = declaredPorts(d)
    const labelsRepeat = d.kind === "split" && new Set(d.labels).size !== d.labels.length
    if (new Set(declared).size !== declared.length && !labelsRepeat)
      add(node.name, `its output ports must be distinct (${declared.join(", ")})`)
    for (const port of declared) {
      if (!isToken(port)) add(node.name, `output port "${port}" must be letters, digits, '-' or '_'`)
      if (port === "main" && kind !== "split") add(node.name, `a side output cannot be named "main"`)
    }
  }
  // every operator on a path from a source to a sink
  const reach = (starts: ReadonlyArray<string>, next: (name: string) => ReadonlyArray<string>) => {
    const seen = new Set(starts)
    const todo = [...starts]
    while (todo.length > 0)
      for (const n of next(todo.pop()!))
        if (!seen.has(n)) {
          seen.add(n)
          todo.push(n)
        }
    return seen
  }
  const fromSource = reach(
    p.operators.filter((o) => o.declaration.kind === "source").map((o) => o.name),
    (n) => (outputs.get(n) ?? []).map((e) => e.to)
  )
  const toSink = reach(
    p.operators.filter((o) => o.declaration.kind === "sink").map((o) => o.name),
    (n) => (inputs.get(n) ?? []).map((e) => e.from)
  )
  for (const o of p.operators) {
    if (!fromSource.has(o.name) && inputs.get(o.name)!.length > 0)
      add(o.name, "no path from a source reaches it")
    if (!toSink.has(o.name) && outputs.get(o.name)!.length > 0) add(o.name, "no path from it reaches a sink")
  }
  // Kahn's algorithm: what is left over sits on a cycle.
  const indegree = new Map(p.operators.map((o) => [o.name, inputs.get(o.name)!.length]))
  const order: Array<string> = []
  const ready = p.operators.filter((o) => indegree.get(o.name) === 0).map((o) => o.name)
  while (ready.length > 0) {
    const name = ready.shift()!
    order.push(name)
    for (const e of outputs.get(name) ?? []) {
      const d = indegree.get(e.to)! - 1
      indegree.set(e.to, d)
      if (d === 0) ready.push(e.to)
    }
  }
  for (const o of p.operators)
    if (!order.includes(o.name) && inputs.get(o.name)!.length > 0) add(o.name, "is part of a cycle")
  // event time: an operator that needs it (windows, joins) must get timestamps on every path (§1.2)
  const timed = new Map<string, boolean>()
  for (const name of order) {
    const node = operator.get(name)!
    const ins = inputs.get(name)!
    const d = node.declaration
    // a source's `watermarks` or an `assignTimestamps` operator starts event time
    timed.set(
      name,
      node.watermarks !== undefined || (d.kind !== "source" && ins.every((e) => timed.get(e.from)))
    )
    if ("eventTime" in d && d.eventTime === true && !timed.get(name)) {
      const untimed = ins.filter((e) => !timed.get(e.from)).map((e) => e.from)
      add(
        name,
        `needs event time, but its input from ${untimed.join(", ")} has none: give every source on the way \`watermarks\` (pipeline.source(decl, { watermarks: boundedOutOfOrderness(...) })) or assign timestamps after it (stream.assignTimestamps(boundedOutOfOrderness(...)))`
      )
    }
  }
  if (problems.length > 0) return new PipelineInvalid({ job: p.job, problems })
  const instances = order.flatMap((name) =>
    Array.from({ length: operator.get(name)!.parallelism }, (_, i) => InstanceId.make(name, i))
  )
  return { pipeline: p, options, operator, inputs, outputs, instances }
}
