/**
 * The interval join of two keyed streams (DESIGN-dataflow §4; Flink's IntervalJoinOperator):
 * a ⨝ b iff they have the same key and a.ts + lower ≤ b.ts ≤ a.ts + upper, both bounds inclusive.
 * Compiled to a keyed co-process with event time: per key a buffer per side; a record is joined
 * with the other side's buffered records in bounds, then buffered itself until no later record of
 * the other side can match it (left: wm ≥ a.ts + upper; right: wm ≥ b.ts − lower), when a timer
 * drops it. A record with ts ≤ the watermark is late: it goes to `leftLate`/`rightLate` (or is
 * counted), never joined. Invariant: every pair of on-time records in bounds is emitted exactly
 * once, when the second of them arrives, with timestamp max(a.ts, b.ts).
 */
import type { Key } from "../core/KeyGroups.ts"
import { type CoProcessDeclaration, keyedCoProcess, type OutputTag, type ProcessContext } from "./Operator.ts"

/** A record that came too late for the join: its side, its event time and the join's name. */
export interface JoinLate<A> {
  readonly record: A
  readonly timestamp: number
  readonly side: "left" | "right"
  readonly operator: string
}

export interface IntervalJoinSpec<A, B> {
  /** ms, may be negative; b.ts − a.ts ≥ lower */
  readonly lower: number
  /** ms, ≥ lower; b.ts − a.ts ≤ upper */
  readonly upper: number
  readonly leftLate?: OutputTag<JoinLate<A>>
  readonly rightLate?: OutputTag<JoinLate<B>>
}

/** The join's state of one key: each side's buffered records with their event times, in arrival order. */
export interface JoinState<A, B> {
  readonly left: Array<readonly [number, A]>
  readonly right: Array<readonly [number, B]>
}

/** An interval join declaration that breaks a rule; thrown when it is declared. */
export class IntervalJoinInvalid extends Error {
  override readonly name = "IntervalJoinInvalid"
  readonly operator: string
  readonly field: string
  constructor(operator: string, field: string, problem: string) {
    super(`${operator}: interval join ${field} ${problem}`)
    this.operator = operator
    this.field = field
  }
}

const LEFT = 1
const RIGHT = 2

/**
 * The join `name` of keyed streams A and B: `join(a, b, key)` for every pair in bounds. Checks
 * the bounds now (`IntervalJoinInvalid` names the field).
 */
export const intervalJoin = <A, B, K extends Key, O>(
  name: string,
  spec: IntervalJoinSpec<A, B>,
  join: (a: A, b: B, key: K) => O
): CoProcessDeclaration<A, B, JoinState<A, B>, O, never> => {
  const { lower, upper } = spec
  if (!Number.isSafeInteger(lower))
    throw new IntervalJoinInvalid(name, "lower", `must be a whole number of ms, got ${lower}`)
  if (!Number.isSafeInteger(upper))
    throw new IntervalJoinInvalid(name, "upper", `must be a whole number of ms, got ${upper}`)
  if (upper < lower) throw new IntervalJoinInvalid(name, "upper", `must be ≥ lower (${lower}), got ${upper}`)
  // both sides may share one late output
  const outputs = [spec.leftLate, spec.rightLate]
    .filter((o): o is OutputTag<JoinLate<never>> => o !== undefined)
    .filter((o, i, all) => all.findIndex((x) => x.name === o.name) === i)
  const timestampOf = (ctx: ProcessContext<O>): number => {
    if (ctx.timestamp === undefined)
      throw new Error(`${name}: record has no event time: give its source \`watermarks\``)
    return ctx.timestamp
  }
  /** a late record: to its side output (or counted); a key with nothing buffered keeps no state */
  const late = <R>(
    ctx: ProcessContext<O>,
    state: JoinState<A, B>,
    tag: OutputTag<JoinLate<R>> | undefined,
    side: "left" | "right",
    record: R,
    timestamp: number
  ) => {
    if (tag !== undefined) ctx.output(tag, { record, timestamp, side, operator: name })
    ctx.lateRecord()
    if (state.left.length === 0 && state.right.length === 0) ctx.clearState()
    return state
  }
  return keyedCoProcess<A, B, JoinState<A, B>, O, never>(name, {
    state: { name: `${name}.buffers`, initial: () => ({ left: [], right: [] }) },
    outputs: outputs as ReadonlyArray<OutputTag<unknown>>,
    eventTime: true,
    handle1: (a, state, _emit, key, ctx) => {
      const ts = timestampOf(ctx)
      if (ts <= ctx.watermark) return late(ctx, state, spec.leftLate, "left", a, ts)
      for (const [tb, b] of state.right)
        if (ts + lower <= tb && tb <= ts + upper) ctx.emit(join(a, b, key as K), Math.max(ts, tb))
      state.left.push([ts, a])
      ctx.timers.eventTime(ts + upper, LEFT)
      return state
    },
    handle2: (b, state, _emit, key, ctx) => {
      const ts = timestampOf(ctx)
      if (ts <= ctx.watermark) return late(ctx, state, spec.rightLate, "right", b, ts)
      for (const [ta, a] of state.left)
        if (ta + lower <= ts && ts <= ta + upper) ctx.emit(join(a, b, key as K), Math.max(ta, ts))
      state.right.push([ts, b])
      ctx.timers.eventTime(ts - lower, RIGHT)
      return state
    },
    onTimer: (timer, state, ctx) => {
      if (timer.domain !== "event") return state
      // a buffered record can match nothing more once wm ≥ its cleanup time
      const wm = ctx.watermark
      const left = timer.tag === LEFT ? state.left.filter(([ta]) => ta + upper > wm) : state.left
      const right = timer.tag === RIGHT ? state.right.filter(([tb]) => tb - lower > wm) : state.right
      if (left.length === 0 && right.length === 0) ctx.clearState()
      return { left, right }
    }
  })
}
