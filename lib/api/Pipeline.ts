/**
 * lib/api/ — what a user writes against: operator declarations (Operator), the pipeline builder
 * (Pipeline), job, channel and restart options, and loading a pipeline module. Imports core/ and
 * internal/ only; lib/index.ts re-exports it.
 *
 * Pipelines: a job composed from actor declarations as a graph of operators (each with a
 * parallelism) and edges (each with a partitioning: forward, keyBy, rebalance, broadcast).
 * Invariant: a `Pipeline` that `validatePipeline` accepts has one or more sources and sinks,
 * unique operator names, no cycle, keyed operators fed only by keyBy edges, forward edges only
 * between equal parallelisms, and every parallelism within 1..maxParallelism.
 */
import * as Data from "effect/Data"
import { InstanceId, isToken } from "../core/Address.ts"
import { InvalidJobOption, type JobOptions, type JobOptionsInput, resolveJobOptions } from "./JobOptions.ts"
import type { Key } from "../core/KeyGroups.ts"
import type {
  Declaration,
  FilterDeclaration,
  FlatMapDeclaration,
  MapDeclaration,
  ProcessDeclaration,
  SinkDeclaration,
  SourceDeclaration
} from "./Operator.ts"

export type Partitioning =
  | { readonly kind: "forward" }
  | { readonly kind: "rebalance" }
  | { readonly kind: "broadcast" }
  | { readonly kind: "keyBy"; key(record: unknown): Key }

export interface OperatorNode {
  readonly name: string
  readonly declaration: Declaration
  readonly parallelism: number
}

export interface Edge {
  readonly from: string
  readonly to: string
  readonly partitioning: Partitioning
}

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

/** Per-operator options in the builder. */
export interface StageOptions {
  /** instances of this operator; default: the previous operator's, 1 for sources. */
  readonly parallelism?: number
  /** operator name; default: the declaration's name. */
  readonly name?: string
  /** partitioning of the edge into this operator; default forward when parallelisms match, else rebalance. */
  readonly partitioning?: "forward" | "rebalance" | "broadcast"
}

interface Stage {
  readonly node: OperatorNode
  readonly partitioning: Partitioning | undefined
}

/** A linear chain under construction whose last operator emits `A`. */
export class PipelineBuilder<A> {
  readonly job: string
  readonly options: JobOptionsInput
  private readonly stages: ReadonlyArray<Stage>
  private readonly pendingKey: Partitioning | undefined

  constructor(
    job: string,
    options: JobOptionsInput,
    stages: ReadonlyArray<Stage>,
    pendingKey?: Partitioning
  ) {
    this.job = job
    this.options = options
    this.stages = stages
    this.pendingKey = pendingKey
  }

  private append<B>(declaration: Declaration, options: StageOptions | undefined): PipelineBuilder<B> {
    const last = this.stages.at(-1)
    const parallelism = options?.parallelism ?? (last ? last.node.parallelism : 1)
    const partitioning: Partitioning | undefined =
      this.pendingKey ??
      (options?.partitioning === undefined
        ? last && last.node.parallelism !== parallelism
          ? { kind: "rebalance" }
          : { kind: "forward" }
        : { kind: options.partitioning })
    const node: OperatorNode = { name: options?.name ?? declaration.name, declaration, parallelism }
    return new PipelineBuilder<B>(this.job, this.options, [...this.stages, { node, partitioning }])
  }

  source<B, E>(declaration: SourceDeclaration<B, E>, options?: StageOptions): PipelineBuilder<B> {
    return this.append<B>(declaration as SourceDeclaration<unknown>, options)
  }
  map<B, E>(declaration: MapDeclaration<A, B, E>, options?: StageOptions): PipelineBuilder<B> {
    return this.append<B>(declaration as MapDeclaration<unknown, unknown>, options)
  }
  flatMap<B, E>(declaration: FlatMapDeclaration<A, B, E>, options?: StageOptions): PipelineBuilder<B> {
    return this.append<B>(declaration as FlatMapDeclaration<unknown, unknown>, options)
  }
  filter<E>(declaration: FilterDeclaration<A, E>, options?: StageOptions): PipelineBuilder<A> {
    return this.append<A>(declaration as FilterDeclaration<unknown>, options)
  }
  /** Partitions the next edge by key: records of one key always reach the same instance. */
  keyBy(key: (record: A) => Key): PipelineBuilder<A> {
    return new PipelineBuilder<A>(this.job, this.options, this.stages, {
      kind: "keyBy",
      key: key as (record: unknown) => Key
    })
  }
  process<S, B, E>(declaration: ProcessDeclaration<A, S, B, E>, options?: StageOptions): PipelineBuilder<B> {
    return this.append<B>(declaration as ProcessDeclaration<unknown, unknown, unknown>, options)
  }
  sink<E>(declaration: SinkDeclaration<A, E>, options?: StageOptions): Pipeline {
    const built = this.append<never>(declaration as SinkDeclaration<unknown>, options)
    return built.build()
  }
  /** The graph so far (for graphs that are not a single chain, edit `operators`/`edges` of it). */
  build(): Pipeline {
    const edges: Array<Edge> = []
    for (let i = 1; i < this.stages.length; i++) {
      edges.push({
        from: this.stages[i - 1]!.node.name,
        to: this.stages[i]!.node.name,
        partitioning: this.stages[i]!.partitioning ?? { kind: "forward" }
      })
    }
    return { job: this.job, operators: this.stages.map((s) => s.node), edges, options: this.options }
  }
}

/** Starts a pipeline named `job` (a NATS subject token: letters, digits, `-`, `_`). */
export const pipeline = (job: string, options: JobOptionsInput = {}): PipelineBuilder<never> =>
  new PipelineBuilder<never>(job, options, [])

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
  if (problems.length > 0) return new PipelineInvalid({ job: p.job, problems })
  const instances = order.flatMap((name) =>
    Array.from({ length: operator.get(name)!.parallelism }, (_, i) => InstanceId.make(name, i))
  )
  return { pipeline: p, options, operator, inputs, outputs, instances }
}
