/**
 * Actor declarations: what each kind of operator does, as values the pipeline composes and every
 * actor process loads. Handlers are plain functions that may return an Effect (typed errors);
 * the runtime calls them in a plain loop per batch and wraps the batch, not each record, in Effect.
 * Invariant: everything an operator remembers across records is named state (`state.name`) so it
 * is in the checkpoint; keyed state lives per key and key group, nowhere else.
 */
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { Key } from "../core/KeyGroups.ts"

/** What an actor knows of where it runs. */
export interface OperatorContext {
  readonly job: string
  readonly operator: string
  readonly index: number
  readonly parallelism: number
  readonly natsUrl: string
  readonly amqpUrl: string
}

/** A result or an Effect of it: handlers that need I/O or typed errors return an Effect. */
export type Result<A, E> = A | Effect.Effect<A, E>

/**
 * What a record its operator could not take becomes under the `deadLetter` policy: the record as it
 * arrived (a source's: the payload as text), why, and where it was. Written exactly once, like
 * any record, by whatever sink reads the operator's `deadLetters` side output.
 */
export interface DeadLetter {
  /** the operator and the instance that rejected it (e.g. `parse`, `parse#1`) */
  readonly operator: string
  readonly instance: string
  /** the handler's error or the decoder's reason */
  readonly reason: string
  readonly record: unknown
  /** the input stream: the instance that sent it, or a source's stream */
  readonly input: string
  /**
   * where it was in that input: a channel's batch (`epoch`, the batch's sequence `seq`, the record's
   * `index` in it) or a stream's sequence (and partition)
   */
  readonly position:
    | { readonly epoch: number; readonly seq: number; readonly index: number }
    | { readonly seq: number; readonly partition?: number }
}

/** A payload a source could not decode, handed to the runtime under the `deadLetter` policy. */
export interface UndecodedRecord {
  readonly record: unknown
  readonly reason: string
  readonly input: string
  readonly position: { readonly seq: number; readonly partition?: number }
}

/** A source instance reading from its recorded position on. */
export interface SourceReader<A, E = unknown> {
  /**
   * Up to `max` records after the current position; `end` once a bounded source is exhausted;
   * `undecoded`: payloads it read but could not decode (its policy `deadLetter` only), in order.
   */
  read(max: number): Effect.Effect<
    {
      readonly records: ReadonlyArray<A>
      readonly end: boolean
      readonly undecoded?: ReadonlyArray<UndecodedRecord>
    },
    E
  >
  /** msgpack-able position of the last record `read` returned; restored readers continue after it. */
  position(): unknown
}

/**
 * What an operator does with a record its handler rejects (throws, or returns a failed Effect):
 * `fail` (the default) fails the epoch, naming the record; `deadLetter` sends a `DeadLetter` to its
 * `deadLetters` side output and goes on with the next record. A pipeline must read that output.
 */
export type OnError = "fail" | "deadLetter"

/** The side output of an operator with the `deadLetter` policy. */
export const deadLetters: OutputTag<DeadLetter> = { kind: "outputTag", name: "deadLetter" }

export interface SourceDeclaration<A, E = unknown> {
  readonly kind: "source"
  readonly name: string
  /** `deadLetter`: payloads the reader cannot decode go to `deadLetters` (its reader returns them as `undecoded`) */
  readonly onError?: OnError
  open(ctx: OperatorContext, position: unknown): Effect.Effect<SourceReader<A, E>, E, Scope.Scope>
  /** Forgets what a previous run of the job left behind (e.g. a bounded source's fixed end). */
  onFreshStart?(ctx: OperatorContext): Effect.Effect<void, unknown>
  /**
   * Present when the source can change parallelism across a restore (as a partitioned stream can):
   * given the positions of every instance of the restored checkpoint (in no particular order, each
   * as `position()` returned it), the position instance `ctx.index` of `ctx.parallelism` opens with.
   * Absent: each instance restores its own position and the parallelism is fixed.
   */
  mergePositions?(ctx: OperatorContext, positions: ReadonlyArray<unknown>): unknown
}

export interface MapDeclaration<I, O, E = unknown> {
  readonly kind: "map"
  readonly name: string
  readonly onError?: OnError
  handle(record: I): Result<O, E>
}

export interface FlatMapDeclaration<I, O, E = unknown> {
  readonly kind: "flatMap"
  readonly name: string
  readonly onError?: OnError
  handle(record: I): Result<ReadonlyArray<O>, E>
}

export interface FilterDeclaration<I, E = unknown> {
  readonly kind: "filter"
  readonly name: string
  readonly onError?: OnError
  handle(record: I): Result<boolean, E>
}

/** Keyed state: one value per key, created by `initial` on the key's first record. */
export interface KeyedState<S> {
  readonly name: string
  initial(): S
}

/**
 * A side output of an operator (Flink's OutputTag): a second stream of its own type beside the
 * main output. The operator's declaration lists it in `outputs`; `emit.side(tag, value)` sends to
 * it and `stream.sideOutput(tag)` reads it. Its name is a port name: letters, digits, `-`, `_`.
 */
export interface OutputTag<T> {
  readonly kind: "outputTag"
  readonly name: string
  /** phantom: the type of the tag's records */
  readonly _T?: T
}

export const outputTag = <T>(name: string): OutputTag<T> => ({ kind: "outputTag", name })

/** How a keyed operator emits: `emit(o)` to its main output, `emit.side(tag, v)` to a side output. */
export interface Emit<O> {
  (output: O): void
  side<T>(tag: OutputTag<T>, value: T): void
}

/** A timer's tag: several timers of one key at one time are told apart by it (a window's start). */
export type TimerTag = string | number

/**
 * The timers of the current key (DESIGN-dataflow §3). One timer per (domain, at, key, tag):
 * registering it twice keeps one. Event-time timers fire when the instance's watermark reaches
 * `at`; processing-time ones when the wall clock does. Both are in every snapshot, per key group.
 */
export interface Timers {
  eventTime(at: number, tag?: TimerTag): void
  processingTime(at: number, tag?: TimerTag): void
  deleteEventTime(at: number, tag?: TimerTag): void
  deleteProcessingTime(at: number, tag?: TimerTag): void
}

/** A timer that fired, as `onTimer` gets it. */
export interface FiredTimer {
  readonly domain: "event" | "processing"
  readonly at: number
  readonly tag: TimerTag
}

/**
 * What a keyed handler and `onTimer` know beyond the record and the state: the key, the record's
 * event time (undefined on a stream without event time, and in a processing-time `onTimer`), the
 * instance's watermark, the wall clock, the timers, and a way to drop the key's state.
 */
export interface ProcessContext<O> {
  readonly key: Key
  readonly timestamp: number | undefined
  readonly watermark: number
  readonly now: number
  /** to the main output, with the record's (or the timer's) timestamp unless `timestamp` is given */
  emit(output: O, timestamp?: number): void
  output<T>(tag: OutputTag<T>, value: T): void
  readonly timers: Timers
  /** drops the key's state after this call (what the call returns is ignored) */
  clearState(): void
  /** counts a record that came too late (windows, joins): `exactor status` shows the count */
  lateRecord(): void
}

/** A keyed operator: gets each record with its key's state, emits outputs, returns the new state. */
export interface ProcessDeclaration<I, S, O, E = unknown> {
  readonly kind: "process"
  readonly name: string
  readonly onError?: OnError
  readonly state: KeyedState<S>
  /** the side outputs `handle` may emit to */
  readonly outputs?: ReadonlyArray<OutputTag<unknown>>
  handle(record: I, state: S, emit: Emit<O>, key: Key, ctx: ProcessContext<O>): Result<S, E>
  /** a timer of the key fired (it is removed first); returns the key's new state */
  onTimer?(timer: FiredTimer, state: S, ctx: ProcessContext<O>): Result<S, E>
  /** true when the operator needs event time on its input (windows, joins): validation checks it */
  readonly eventTime?: boolean
}

/**
 * A keyed operator with two inputs keyed alike (Flink's KeyedCoProcessFunction): records of either
 * side with the same key see the same state. `handle1` takes input 0, `handle2` input 1.
 */
export interface CoProcessDeclaration<I1, I2, S, O, E = unknown> {
  readonly kind: "coProcess"
  readonly name: string
  readonly onError?: OnError
  readonly state: KeyedState<S>
  readonly outputs?: ReadonlyArray<OutputTag<unknown>>
  handle1(record: I1, state: S, emit: Emit<O>, key: Key, ctx: ProcessContext<O>): Result<S, E>
  handle2(record: I2, state: S, emit: Emit<O>, key: Key, ctx: ProcessContext<O>): Result<S, E>
  onTimer?(timer: FiredTimer, state: S, ctx: ProcessContext<O>): Result<S, E>
  readonly eventTime?: boolean
}

/**
 * Routes each record to one or more of its labels (each label is an output port of the operator).
 * Stateless; records keep their order within a label.
 */
export interface SplitDeclaration<A, L extends string = string, E = unknown> {
  readonly kind: "split"
  readonly name: string
  readonly onError?: OnError
  readonly labels: ReadonlyArray<L>
  route(record: A): Result<L | ReadonlyArray<L>, E>
}

/**
 * The two-phase-commit contract a sink instance fulfils (Flink's TwoPhaseCommitSinkFunction as
 * the runtime drives it): write into the open transaction, snapshot (preCommit) at a barrier,
 * commit on `complete n`, restore after a failure.
 */
export interface SinkWriter<A, E = unknown> {
  write(records: ReadonlyArray<A>): Effect.Effect<void, E>
  snapshot(n: number): Effect.Effect<unknown, E>
  commit(n: number): Effect.Effect<void, E>
  /** `snapshot` is what `snapshot(n)` returned for the restored checkpoint, or undefined */
  restore(snapshot: never): Effect.Effect<void, E>
  full(): boolean
  /**
   * true: `commit` may run while `write` and `snapshot` do (the writer guards its own state, as the
   * two-phase-commit writer does), so the sink takes input while it commits. Otherwise the runtime
   * calls `commit` between writes, in the task loop. Commits never overlap each other.
   */
  readonly commitsBesideInput?: boolean
}

export interface SinkDeclaration<A, E = unknown> {
  readonly kind: "sink"
  readonly name: string
  open(ctx: OperatorContext): Effect.Effect<SinkWriter<A, E>, E, Scope.Scope>
}

export type Declaration =
  | SourceDeclaration<unknown>
  | MapDeclaration<unknown, unknown>
  | FlatMapDeclaration<unknown, unknown>
  | FilterDeclaration<unknown>
  | ProcessDeclaration<unknown, unknown, unknown>
  | CoProcessDeclaration<unknown, unknown, unknown, unknown>
  | SplitDeclaration<unknown>
  | SinkDeclaration<unknown>

/** The output ports of a declaration besides `main` (a split has only its labels), `deadLetter` last. */
export const declaredPorts = (d: Declaration): ReadonlyArray<string> => {
  const ports =
    d.kind === "split"
      ? d.labels
      : d.kind === "process" || d.kind === "coProcess"
        ? (d.outputs ?? []).map((t) => t.name)
        : []
  return hasDeadLetters(d) ? [...ports, deadLetters.name] : ports
}

/** Whether `d` has the `deadLetter` policy (a sink never has). */
export const hasDeadLetters = (d: Declaration): boolean => "onError" in d && d.onError === "deadLetter"

/** Declarations that can take the `deadLetter` policy (a sink cannot: it has no outputs). */
export type HandlerDeclaration = Exclude<Declaration, SinkDeclaration<unknown>>

/**
 * `declaration` with the `deadLetter` policy: a record its handler rejects (a source: a payload
 * its reader cannot decode, where the reader supports it) goes to `stream.sideOutput(deadLetters)`.
 */
export const withDeadLetters = <D extends HandlerDeclaration>(declaration: D): D => ({
  ...declaration,
  onError: "deadLetter"
})

export const source = <A, E = unknown>(
  name: string,
  open: (ctx: OperatorContext, position: unknown) => Effect.Effect<SourceReader<A, E>, E, Scope.Scope>,
  onFreshStart?: (ctx: OperatorContext) => Effect.Effect<void, unknown>,
  mergePositions?: (ctx: OperatorContext, positions: ReadonlyArray<unknown>) => unknown
): SourceDeclaration<A, E> => ({
  kind: "source",
  name,
  open,
  ...(onFreshStart ? { onFreshStart } : {}),
  ...(mergePositions ? { mergePositions } : {})
})

export const map = <I, O, E = never>(
  name: string,
  handle: (record: I) => Result<O, E>
): MapDeclaration<I, O, E> => ({
  kind: "map",
  name,
  handle
})

export const flatMap = <I, O, E = never>(
  name: string,
  handle: (record: I) => Result<ReadonlyArray<O>, E>
): FlatMapDeclaration<I, O, E> => ({ kind: "flatMap", name, handle })

export const filter = <I, E = never>(
  name: string,
  handle: (record: I) => Result<boolean, E>
): FilterDeclaration<I, E> => ({
  kind: "filter",
  name,
  handle
})

export const keyedProcess = <I, S, O, E = never>(
  name: string,
  spec: {
    readonly state: KeyedState<S>
    readonly outputs?: ReadonlyArray<OutputTag<unknown>>
    handle(record: I, state: S, emit: Emit<O>, key: Key, ctx: ProcessContext<O>): Result<S, E>
    onTimer?(timer: FiredTimer, state: S, ctx: ProcessContext<O>): Result<S, E>
    readonly eventTime?: boolean
  }
): ProcessDeclaration<I, S, O, E> => ({
  kind: "process",
  name,
  state: spec.state,
  handle: spec.handle,
  ...(spec.outputs ? { outputs: spec.outputs } : {}),
  ...(spec.onTimer ? { onTimer: spec.onTimer } : {}),
  ...(spec.eventTime ? { eventTime: true } : {})
})

export const keyedCoProcess = <I1, I2, S, O, E = never>(
  name: string,
  spec: {
    readonly state: KeyedState<S>
    readonly outputs?: ReadonlyArray<OutputTag<unknown>>
    handle1(record: I1, state: S, emit: Emit<O>, key: Key, ctx: ProcessContext<O>): Result<S, E>
    handle2(record: I2, state: S, emit: Emit<O>, key: Key, ctx: ProcessContext<O>): Result<S, E>
    onTimer?(timer: FiredTimer, state: S, ctx: ProcessContext<O>): Result<S, E>
    readonly eventTime?: boolean
  }
): CoProcessDeclaration<I1, I2, S, O, E> => ({
  kind: "coProcess",
  name,
  state: spec.state,
  handle1: spec.handle1,
  handle2: spec.handle2,
  ...(spec.outputs ? { outputs: spec.outputs } : {}),
  ...(spec.onTimer ? { onTimer: spec.onTimer } : {}),
  ...(spec.eventTime ? { eventTime: true } : {})
})

export const split = <A, L extends string, E = never>(
  name: string,
  labels: ReadonlyArray<L>,
  route: (record: A) => Result<L | ReadonlyArray<L>, E>
): SplitDeclaration<A, L, E> => ({ kind: "split", name, labels, route })

/** A keyed fold: the state is the accumulator, and every new accumulator is emitted. */
export const reduce = <I, S, E = never>(
  name: string,
  spec: { readonly initial: () => S; reduce(acc: S, record: I): S }
): ProcessDeclaration<I, S, S, E> =>
  keyedProcess<I, S, S, E>(name, {
    state: { name: `${name}.acc`, initial: spec.initial },
    handle: (record, acc, emit) => {
      const next = spec.reduce(acc, record)
      emit(next)
      return next
    }
  })

export const sink = <A, E = unknown>(
  name: string,
  open: (ctx: OperatorContext) => Effect.Effect<SinkWriter<A, E>, E, Scope.Scope>
): SinkDeclaration<A, E> => ({ kind: "sink", name, open })
