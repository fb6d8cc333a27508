/**
 * The graph builder (DESIGN-dataflow §1.1): `pipeline()` starts one mutable graph; `source()`
 * gives a `Stream`; each method appends operators and edges to the graph and returns a handle.
 * A `Stream` has one or more heads (operator, port): `union` adds heads, `split` and `sideOutput`
 * name a port, and using a stream twice fans it out (every record goes both ways). `sink()` and
 * `build()` return the whole graph, so a linear one-liner reads as it always did:
 * `pipeline("job").source(s).map(m).keyBy(k).process(p).sink(o)`.
 * Invariant: the builder only records; every rule is checked by `validatePipeline`, which names
 * the operator that breaks it.
 */
import { type IntervalJoinSpec, intervalJoin } from "./IntervalJoin.ts"
import type { JobOptionsInput } from "./JobOptions.ts"
import type { Key } from "../core/KeyGroups.ts"
import type {
  CoProcessDeclaration,
  Declaration,
  FilterDeclaration,
  FlatMapDeclaration,
  MapDeclaration,
  OutputTag,
  ProcessDeclaration,
  SinkDeclaration,
  SourceDeclaration,
  SplitDeclaration
} from "./Operator.ts"
import { map, split as splitDeclaration } from "./Operator.ts"
import type { Edge, OperatorNode, Partitioning, Pipeline } from "./Pipeline.ts"
import {
  type AggregateFunction,
  reducing,
  validateWindow,
  type Window,
  type WindowAssigner,
  type WindowResult,
  type WindowSpec,
  windowAggregate,
  windowProcess
} from "./Windows.ts"
import type { WatermarkStrategy } from "./Watermark.ts"

/** Per-operator options in the builder. */
export interface StageOptions {
  /** instances of this operator; default: the (first) input's, 1 for sources. */
  readonly parallelism?: number
  /** operator name; default: the declaration's name. */
  readonly name?: string
  /** partitioning of the edges into this operator; default forward when parallelisms match, else rebalance. */
  readonly partitioning?: "forward" | "rebalance" | "broadcast"
}

/** A source's options: a stage's, plus its event time (timestamps and watermarks per split). */
export interface SourceOptions<A> extends StageOptions {
  readonly watermarks?: WatermarkStrategy<A>
}

/** One output of the graph so far: an operator's port. */
interface Head {
  readonly operator: OperatorNode
  readonly port: string
}

/** The graph one `pipeline()` call builds. */
class Graph {
  readonly operators: Array<OperatorNode> = []
  readonly edges: Array<Edge> = []
  readonly job: string
  readonly options: JobOptionsInput
  constructor(job: string, options: JobOptionsInput) {
    this.job = job
    this.options = options
  }

  add(
    declaration: Declaration,
    parallelism: number,
    options: StageOptions | undefined,
    watermarks?: WatermarkStrategy<unknown>
  ): OperatorNode {
    const node: OperatorNode = {
      name: options?.name ?? declaration.name,
      declaration,
      parallelism,
      ...(watermarks === undefined ? {} : { watermarks })
    }
    this.operators.push(node)
    return node
  }

  /** Appends `declaration` fed by `inputs` (each a stream with the partitioning of its edges). */
  append(
    declaration: Declaration,
    options: StageOptions | undefined,
    inputs: ReadonlyArray<{
      readonly stream: Stream<unknown>
      readonly key?: Partitioning
      readonly input?: 1
    }>,
    watermarks?: WatermarkStrategy<unknown>
  ): OperatorNode {
    const first = inputs[0]!.stream.heads[0]
    const node = this.add(
      declaration,
      options?.parallelism ?? first?.operator.parallelism ?? 1,
      options,
      watermarks
    )
    for (const { stream, key, input } of inputs) {
      if (stream.graph !== this)
        throw new Error(`${node.name}: its inputs come from another pipeline() than its own`)
      for (const head of stream.heads) {
        const pending = options?.partitioning ?? stream.partitioning
        const partitioning: Partitioning =
          key ??
          (pending !== undefined
            ? { kind: pending }
            : head.operator.parallelism === node.parallelism
              ? { kind: "forward" }
              : { kind: "rebalance" })
        this.edges.push({
          from: head.operator.name,
          to: node.name,
          partitioning,
          ...(head.port === "main" ? {} : { port: head.port }),
          ...(input === undefined ? {} : { input })
        })
      }
    }
    return node
  }

  build(): Pipeline {
    return { job: this.job, operators: [...this.operators], edges: [...this.edges], options: this.options }
  }
}

/** Starts a graph for `job`: sources give streams, `build()` (or a stream's `sink()`) the pipeline. */
export class PipelineBuilder {
  private readonly graph: Graph

  constructor(job: string, options: JobOptionsInput = {}) {
    this.graph = new Graph(job, options)
  }

  get job(): string {
    return this.graph.job
  }

  source<A, E>(declaration: SourceDeclaration<A, E>, options?: SourceOptions<A>): Stream<A> {
    const node = this.graph.add(
      declaration as SourceDeclaration<unknown>,
      options?.parallelism ?? 1,
      options,
      options?.watermarks as WatermarkStrategy<unknown> | undefined
    )
    return new Stream<A>(this.graph, [{ operator: node, port: "main" }])
  }

  /** The whole graph. */
  build(): Pipeline {
    return this.graph.build()
  }
}

/** The records of one or more heads (operator ports) of a graph, of type `A`. */
export class Stream<A> {
  /** @internal the graph this stream belongs to */
  readonly graph: Graph
  /** @internal the operator ports whose records this stream is */
  readonly heads: ReadonlyArray<Head>
  /** @internal the partitioning asked for the next edges (rebalance(), broadcast(), forward()) */
  readonly partitioning: "forward" | "rebalance" | "broadcast" | undefined

  constructor(
    graph: Graph,
    heads: ReadonlyArray<Head>,
    partitioning?: "forward" | "rebalance" | "broadcast"
  ) {
    this.graph = graph
    this.heads = heads
    this.partitioning = partitioning
  }

  private next<B>(declaration: Declaration, options: StageOptions | undefined): Stream<B> {
    const node = this.graph.append(declaration, options, [{ stream: this as Stream<unknown> }])
    return new Stream<B>(this.graph, [{ operator: node, port: "main" }])
  }

  map<B, E>(declaration: MapDeclaration<A, B, E>, options?: StageOptions): Stream<B> {
    return this.next<B>(declaration as MapDeclaration<unknown, unknown>, options)
  }
  flatMap<B, E>(declaration: FlatMapDeclaration<A, B, E>, options?: StageOptions): Stream<B> {
    return this.next<B>(declaration as FlatMapDeclaration<unknown, unknown>, options)
  }
  filter<E>(declaration: FilterDeclaration<A, E>, options?: StageOptions): Stream<A> {
    return this.next<A>(declaration as FilterDeclaration<unknown>, options)
  }

  /**
   * Event time from here on (Flink's assignTimestampsAndWatermarks): an operator (name default
   * `assignTimestamps`) that passes every record on with `strategy.timestamp(record)` and sends the
   * watermarks of one generator per instance, in the order its records arrive; watermarks and
   * statuses from upstream are dropped, and END goes out once every input has ended. Its
   * generators are in its snapshots. Prefer a source's `watermarks` (one generator per split):
   * after a shuffle the arrival order, and so the watermarks, depend on timing.
   */
  assignTimestamps(strategy: WatermarkStrategy<A>, options?: StageOptions): Stream<A> {
    const node = this.graph.append(
      map<A, A>(options?.name ?? "assignTimestamps", (a) => a) as MapDeclaration<unknown, unknown>,
      options,
      [{ stream: this as Stream<unknown> }],
      strategy as WatermarkStrategy<unknown>
    )
    return new Stream<A>(this.graph, [{ operator: node, port: "main" }])
  }

  /**
   * Routes each record to one or more labels; each label is a stream of its own. `route` may return
   * a label or several (the record goes to each).
   */
  split<L extends string>(
    name: string,
    labels: ReadonlyArray<L>,
    route: (record: A) => L | ReadonlyArray<L>,
    options?: StageOptions
  ): Record<L, Stream<A>>
  split<L extends string, E>(
    declaration: SplitDeclaration<A, L, E>,
    options?: StageOptions
  ): Record<L, Stream<A>>
  split<L extends string, E>(
    nameOrDeclaration: string | SplitDeclaration<A, L, E>,
    labelsOrOptions?: ReadonlyArray<L> | StageOptions,
    route?: (record: A) => L | ReadonlyArray<L>,
    options?: StageOptions
  ): Record<L, Stream<A>> {
    const declaration =
      typeof nameOrDeclaration === "string"
        ? splitDeclaration<A, L>(nameOrDeclaration, labelsOrOptions as ReadonlyArray<L>, route!)
        : nameOrDeclaration
    const stage =
      typeof nameOrDeclaration === "string" ? options : (labelsOrOptions as StageOptions | undefined)
    const node = this.graph.append(declaration as SplitDeclaration<unknown>, stage, [
      { stream: this as Stream<unknown> }
    ])
    const out = {} as Record<L, Stream<A>>
    for (const label of declaration.labels)
      out[label] = new Stream<A>(this.graph, [{ operator: node, port: label }])
    return out
  }

  /** This stream and `others` as one: the next operator gets one edge per head (no operator of its own). */
  union<B = A>(...others: ReadonlyArray<Stream<B>>): Stream<A | B> {
    for (const o of others)
      if (o.graph !== this.graph) throw new Error("union: the streams come from different pipeline() calls")
    return new Stream<A | B>(
      this.graph,
      [...this.heads, ...others.flatMap((o) => o.heads)],
      this.partitioning
    )
  }

  /** Round robin over the next operator's instances. */
  rebalance(): Stream<A> {
    return new Stream<A>(this.graph, this.heads, "rebalance")
  }
  /** Every record to every instance of the next operator. */
  broadcast(): Stream<A> {
    return new Stream<A>(this.graph, this.heads, "broadcast")
  }
  /** Instance i to instance i (equal parallelism). */
  forward(): Stream<A> {
    return new Stream<A>(this.graph, this.heads, "forward")
  }

  /** Partitions the next edge by key: records of one key always reach the same instance. */
  keyBy<K extends Key>(key: (record: A) => K): KeyedStream<A, K> {
    return new KeyedStream<A, K>(this, key)
  }

  /** The side output `tag` of this stream's operator (its declaration lists the tag in `outputs`). */
  sideOutput<T>(tag: OutputTag<T>): Stream<T> {
    return new Stream<T>(
      this.graph,
      this.heads.map((h) => ({ operator: h.operator, port: tag.name }))
    )
  }

  /** Ends this stream in a sink; returns the whole graph (the pipeline). */
  sink<E>(declaration: SinkDeclaration<A, E>, options?: StageOptions): Pipeline {
    this.next<never>(declaration as SinkDeclaration<unknown>, options)
    return this.graph.build()
  }

  /** The whole graph. */
  build(): Pipeline {
    return this.graph.build()
  }
}

/** A stream partitioned by key, ready for a keyed operator. */
export class KeyedStream<A, K extends Key> {
  readonly stream: Stream<A>
  readonly key: (record: A) => K
  constructor(stream: Stream<A>, key: (record: A) => K) {
    this.stream = stream
    this.key = key
  }

  /** @internal the partitioning of the edges this keying makes */
  get partitioning(): Partitioning {
    return { kind: "keyBy", key: this.key as (record: unknown) => Key }
  }

  process<S, B, E>(declaration: ProcessDeclaration<A, S, B, E>, options?: StageOptions): Stream<B> {
    const graph = this.stream.graph
    const node = graph.append(declaration as ProcessDeclaration<unknown, unknown, unknown>, options, [
      { stream: this.stream as Stream<unknown>, key: this.partitioning }
    ])
    return new Stream<B>(graph, [{ operator: node, port: "main" }])
  }

  /**
   * Event-time windows per key (DESIGN-dataflow §4), named `spec.name`; then `aggregate`, `reduce`
   * or `process`. Checks the assigner and the spec now (`WindowInvalid` names the field).
   */
  window(assigner: WindowAssigner, spec: WindowSpec<A> & { readonly name: string }): WindowedStream<A, K> {
    validateWindow(spec.name, assigner, spec)
    return new WindowedStream<A, K>(this, assigner, spec)
  }

  /** Two inputs keyed alike into one keyed operator: `.process(keyedCoProcess(...))`. */
  connect<B>(other: KeyedStream<B, K>): ConnectedStreams<A, B, K> {
    return new ConnectedStreams<A, B, K>(this, other)
  }

  /** Ends this stream in a sink, partitioned by key; returns the whole graph. */
  sink<E>(declaration: SinkDeclaration<A, E>, options?: StageOptions): Pipeline {
    const graph = this.stream.graph
    graph.append(declaration as SinkDeclaration<unknown>, options, [
      { stream: this.stream as Stream<unknown>, key: this.partitioning }
    ])
    return graph.build()
  }
}

/** A keyed stream cut into windows: each method makes the window operator and gives its results. */
export class WindowedStream<A, K extends Key> {
  readonly keyed: KeyedStream<A, K>
  readonly assigner: WindowAssigner
  readonly spec: WindowSpec<A> & { readonly name: string }
  constructor(
    keyed: KeyedStream<A, K>,
    assigner: WindowAssigner,
    spec: WindowSpec<A> & { readonly name: string }
  ) {
    this.keyed = keyed
    this.assigner = assigner
    this.spec = spec
  }

  /** A `WindowResult` per firing of each window of each key, aggregated incrementally by `f`. */
  aggregate<Acc, R>(f: AggregateFunction<A, Acc, R>, options?: StageOptions): Stream<WindowResult<K, R>> {
    return this.keyed.process(
      windowAggregate<A, K, Acc, R>(this.spec.name, this.assigner, this.spec, f),
      options
    )
  }

  /** A `WindowResult` per firing whose value is the window's records combined by `f`. */
  reduce(f: (x: A, y: A) => A, options?: StageOptions): Stream<WindowResult<K, A>> {
    return this.aggregate(reducing(f), options)
  }

  /**
   * Each result of `f(key, window, elements)` per firing, with timestamp window.end − 1. Keeps every
   * element of every open window (state grows with the window): prefer `aggregate`.
   */
  process<R>(
    f: (key: K, window: Window, elements: ReadonlyArray<A>) => ReadonlyArray<R>,
    options?: StageOptions
  ): Stream<R> {
    return this.keyed.process(windowProcess<A, K, R>(this.spec.name, this.assigner, this.spec, f), options)
  }
}

/** Two keyed streams for a co-process: input 0 (`first`) and input 1 (`second`). */
export class ConnectedStreams<A, B, K extends Key> {
  readonly first: KeyedStream<A, K>
  readonly second: KeyedStream<B, K>
  constructor(first: KeyedStream<A, K>, second: KeyedStream<B, K>) {
    this.first = first
    this.second = second
  }

  process<S, O, E>(declaration: CoProcessDeclaration<A, B, S, O, E>, options?: StageOptions): Stream<O> {
    const graph = this.first.stream.graph
    const node = graph.append(
      declaration as CoProcessDeclaration<unknown, unknown, unknown, unknown>,
      options,
      [
        { stream: this.first.stream as Stream<unknown>, key: this.first.partitioning },
        { stream: this.second.stream as Stream<unknown>, key: this.second.partitioning, input: 1 }
      ]
    )
    return new Stream<O>(graph, [{ operator: node, port: "main" }])
  }

  /**
   * The interval join (lib/api/IntervalJoin.ts): `join(a, b, key)` for each a of the first and b
   * of the second stream with the same key and a.ts + lower ≤ b.ts ≤ a.ts + upper; late records to
   * `leftLate` / `rightLate`. Needs event time on both inputs.
   */
  intervalJoin<O>(
    spec: IntervalJoinSpec<A, B> & { readonly name: string },
    join: (a: A, b: B, key: K) => O,
    options?: StageOptions
  ): Stream<O> {
    return this.process(intervalJoin<A, B, K, O>(spec.name, spec, join), options)
  }
}

/** Starts a pipeline named `job` (a NATS subject token: letters, digits, `-`, `_`). */
export const pipeline = (job: string, options: JobOptionsInput = {}): PipelineBuilder =>
  new PipelineBuilder(job, options)
