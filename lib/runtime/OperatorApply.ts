/**
 * Applying an operator to one batch (or to the timers that fired): the per-record loop that calls
 * user handlers, their outputs per port with event times, and the `deadLetter` policy.
 * Invariant: handlers run in record order, once per record; a record's outputs carry its event
 * time (a keyed handler may set another); under `deadLetter` a failed record leaves only its
 * dead letter behind, and a keyed key's state stays as it was.
 */
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type { BatchEnvelope } from "./Envelope.ts"
import type { KeyedContext } from "./KeyedContext.ts"
import type { TaskStats } from "./TaskStats.ts"
import type { Key } from "../core/KeyGroups.ts"
import {
  type DeadLetter,
  type Declaration,
  deadLetters,
  hasDeadLetters,
  type Result
} from "../api/Operator.ts"
import type { Edge } from "../api/Pipeline.ts"
import type { PortOutputs } from "./PortOutputs.ts"
import { TimedBuffer } from "./TimedBuffer.ts"

export class UserCodeError extends Data.TaggedError("UserCodeError")<{
  readonly instance: string
  readonly record: string
  readonly cause: unknown
}> {
  override get message(): string {
    const why =
      this.cause instanceof Error
        ? this.cause.message
        : Cause.isCause(this.cause)
          ? Cause.pretty(this.cause)
          : String(this.cause)
    return `operator ${this.instance} failed on record ${this.record}: ${why}`
  }
}

const describe = (record: unknown): string => {
  try {
    const s = JSON.stringify(record)
    return s === undefined ? String(record) : s.length > 200 ? `${s.slice(0, 200)}…` : s
  } catch {
    return String(record)
  }
}

/** A handler's failure as one line: the error's message, a Cause's first error, or the value. */
export const reasonOf = (cause: unknown): string => {
  const x = Cause.isCause(cause) ? Cause.squash(cause) : cause
  if (x instanceof Error) return x.message
  if (typeof x === "object" && x !== null && "message" in x) return String(x.message)
  return String(x)
}

/**
 * Applies `fn` to every record in a plain loop; switches to Effect only for the records whose
 * handler returned an Effect. `onResult` receives each record with its result, in order. Without
 * `onFailure` the first failure fails the batch naming its record; with it, a failed record (a
 * throw, a failed or dying Effect; never an interruption) goes to `onFailure` and the loop goes on.
 */
export const applyBatch = <X>(
  instance: string,
  records: ReadonlyArray<unknown>,
  fn: (record: unknown) => Result<X, unknown>,
  onResult: (record: unknown, result: X) => void,
  onFailure?: (record: unknown, index: number, cause: unknown) => void
): Effect.Effect<void, UserCodeError> => {
  const fail = (record: unknown, cause: unknown) =>
    new UserCodeError({ instance, record: describe(record), cause })
  /** the rest of the batch from `i` on, once a handler returned an Effect */
  const rest = (i: number, first: Effect.Effect<X, unknown>) =>
    Effect.gen(function* () {
      for (let j = i; j < records.length; j++) {
        const r = records[j]
        let y: Result<X, unknown>
        if (j === i) y = first
        else
          try {
            y = fn(r)
          } catch (cause) {
            if (onFailure === undefined) return yield* Effect.fail(fail(r, cause))
            onFailure(r, j, cause)
            continue
          }
        if (!Effect.isEffect(y)) {
          onResult(r, y)
          continue
        }
        const e = y as Effect.Effect<X, unknown>
        if (onFailure === undefined) onResult(r, yield* Effect.mapError(e, (c) => fail(r, c)))
        else {
          const ok = yield* e.pipe(
            Effect.map((x) => ({ x })),
            Effect.catchCause((cause) =>
              Cause.hasInterrupts(cause)
                ? Effect.failCause(cause)
                : Effect.sync(() => {
                    onFailure(r, j, cause)
                    return undefined
                  })
            )
          )
          if (ok !== undefined) onResult(r, ok.x)
        }
      }
    }) as Effect.Effect<void, UserCodeError>
  for (let i = 0; i < records.length; i++) {
    const record = records[i]
    let x: Result<X, unknown>
    try {
      x = fn(record)
    } catch (cause) {
      if (onFailure === undefined) return Effect.fail(fail(record, cause))
      onFailure(record, i, cause)
      continue
    }
    if (Effect.isEffect(x)) return rest(i, x as Effect.Effect<X, unknown>)
    onResult(record, x)
  }
  return Effect.void
}

/** The operator name of an instance id (`parse#1` -> `parse`). */
export const operatorOf = (instance: string) => instance.slice(0, instance.lastIndexOf("#"))

/** What applying an operator needs of its task. */
export interface ApplyEnv {
  readonly instance: string
  readonly declaration: Declaration
  /** the input edge of each mailbox channel */
  readonly channelEdges: ReadonlyArray<Edge>
  readonly stats: TaskStats
}

/**
 * Under the `deadLetter` policy: `before` marks what was emitted before each record, and
 * `onFailure` takes back what a failed record emitted (a keyed handler may emit, then fail) and
 * sends its dead letter instead. A keyed record that fails leaves its key's state as it was.
 */
const deadLetterMode = (env: ApplyEnv, batch: BatchEnvelope, out: TimedBuffer, ports: PortOutputs) => {
  let outMark = 0
  let portsMark = 0
  const operator = operatorOf(env.instance)
  return {
    before: () => {
      outMark = out.length
      portsMark = ports.count
    },
    onFailure: (record: unknown, index: number, cause: unknown) => {
      out.truncate(outMark)
      ports.rollback(portsMark)
      const letter: DeadLetter = {
        operator,
        instance: env.instance,
        reason: reasonOf(cause),
        record,
        input: batch.c,
        position: { epoch: batch.e, seq: batch.s, index }
      }
      ports.push(deadLetters.name, letter, batch.t?.[index])
      env.stats.deadLetters++
    }
  }
}

/**
 * Applies the operator of `env` to one batch from `channel`; returns its main output (the other
 * ports' records, dead letters among them, are in `ports`). Outputs carry their input's event time.
 */
export const transform = (
  env: ApplyEnv,
  channel: number,
  batch: BatchEnvelope,
  ports: PortOutputs,
  keyed: KeyedContext | undefined
): Effect.Effect<TimedBuffer, UserCodeError> => {
  const d = env.declaration
  const records = batch.r
  const times = batch.t
  const out = new TimedBuffer()
  const dl = hasDeadLetters(d) ? deadLetterMode(env, batch, out, ports) : undefined
  /** the event time of the record being handled (records are handled once each, in order) */
  let ts: number | undefined
  let next = 0
  /** the handler, noting the record's event time and marking emits first under `deadLetter` */
  const guarded = <X>(fn: (r: unknown) => Result<X, unknown>): ((r: unknown) => Result<X, unknown>) =>
    dl === undefined && times === undefined
      ? fn
      : (r) => {
          if (times !== undefined) ts = times[next++]
          dl?.before()
          return fn(r)
        }
  const apply = <X>(fn: (r: unknown) => Result<X, unknown>, onResult: (r: unknown, x: X) => void) =>
    applyBatch(env.instance, records, guarded(fn), onResult, dl?.onFailure).pipe(Effect.as(out))
  switch (d.kind) {
    case "map":
      return apply(
        (r) => d.handle(r),
        (_, o) => out.push(o, ts)
      )
    case "flatMap":
      return apply(
        (r) => d.handle(r),
        (_, os) => {
          for (const o of os) out.push(o, ts)
        }
      )
    case "filter":
      return apply(
        (r) => d.handle(r),
        (r, keep) => {
          if (keep) out.push(r, ts)
        }
      )
    case "split": {
      const toPorts = (r: unknown, labels: string | ReadonlyArray<string>) => {
        if (typeof labels === "string") ports.push(labels, r, ts)
        else for (const l of labels) ports.push(l, r, ts)
      }
      // a label is pushed inside the handler's try (an unknown one fails naming the record), or,
      // when `route` returned an Effect, inside that Effect
      return apply(
        (r) => {
          const labels = d.route(r)
          if (Effect.isEffect(labels)) return Effect.flatMap(labels, (ls) => Effect.try(() => toPorts(r, ls)))
          toPorts(r, labels)
        },
        () => undefined
      )
    }
    case "process":
    case "coProcess": {
      if (keyed === undefined) return Effect.die("keyed operator without keyed state")
      const edge = env.channelEdges[channel]!
      if (edge.partitioning.kind !== "keyBy") return Effect.die("keyed operator input without keyBy")
      const keyOf = edge.partitioning.key
      const handle = d.kind === "process" ? d.handle : edge.input === 1 ? d.handle2 : d.handle1
      keyed.begin(out, ports)
      let key: Key = ""
      return apply(
        (r) => {
          key = keyOf(r)
          keyed.enter(key, ts)
          return handle(r, keyed.store.get(key), keyed.emitter, key, keyed)
        },
        (_, state) => keyed.commit(key, state)
      )
    }
    default: {
      const all = new TimedBuffer()
      for (let i = 0; i < records.length; i++) all.push(records[i], times?.[i])
      return Effect.succeed(all)
    }
  }
}
