/**
 * Event-time windows (DESIGN-dataflow §4): assigners, window arithmetic, and their compilation into
 * keyed process declarations with event-time timers (tag = window start). Invariant: boundaries are
 * aligned to epoch 0 + offset; a record is in a window's highest firing or in the late output for
 * that window, never both; a key whose windows are all cleaned up keeps no state.
 */
import type { Key } from "../core/KeyGroups.ts"
import type { OutputTag, ProcessContext, ProcessDeclaration } from "./Operator.ts"
import { keyedProcess } from "./Operator.ts"
import {
  dropBefore,
  dropEntry,
  entryAt,
  hasPaneIn,
  isEmpty,
  mergePanes,
  type PanedState,
  type Session,
  type SessionState,
  sessionAt,
  setEntry,
  touching,
  type WindowState
} from "./WindowState.ts"

export type { PanedState, Session, SessionState, WindowState } from "./WindowState.ts"

/** The window [start, end) in ms of event time; its last timestamp (maxTimestamp) is end − 1. */
export interface Window {
  readonly start: number
  readonly end: number
}

/** Which windows a record belongs to: fixed ones (tumbling, sliding) or per-key sessions. */
export type WindowAssigner =
  | { readonly kind: "tumbling"; readonly size: number; readonly offset: number }
  | { readonly kind: "sliding"; readonly size: number; readonly slide: number; readonly offset: number }
  | { readonly kind: "session"; readonly gap: number }

/** Windows of `size` ms, one after the other, starting at offset + k·size (offset default 0). */
export const tumbling = (size: number, options?: { readonly offset?: number }): WindowAssigner => ({
  kind: "tumbling",
  size,
  offset: options?.offset ?? 0
})

/** Windows of `size` ms starting every `slide` ms, at offset + k·slide (offset default 0). */
export const sliding = (
  size: number,
  slide: number,
  options?: { readonly offset?: number }
): WindowAssigner => ({
  kind: "sliding",
  size,
  slide,
  offset: options?.offset ?? 0
})

/** Per-key sessions: a record opens [ts, ts + gap); sessions that overlap or touch merge. */
export const session = (gap: number): WindowAssigner => ({ kind: "session", gap })

/** How a window operator treats time: lateness, where late records go, when results go out. */
export interface WindowSpec<A> {
  /** ms a window stays open after its end − 1 for late records (0 = none); required, no hidden grace */
  readonly lateness: number
  /** where records too late for (some of) their windows go; absent: they are counted and dropped */
  readonly lateOutput?: OutputTag<Late<A>>
  /** `atEnd` (default): a result at end − 1 and one more per allowed-late record; `final`: one at cleanup */
  readonly emit?: "atEnd" | "final"
}

/** A record that came too late for `windows` (each of whose end − 1 + lateness ≤ the watermark). */
export interface Late<A> {
  readonly record: A
  readonly timestamp: number
  readonly windows: ReadonlyArray<Window>
  /** the window operator it was late for, so several may share one late output */
  readonly operator: string
}

/**
 * An incremental aggregation (Flink's AggregateFunction). `add` and `merge` return the new
 * accumulator and must not change their arguments; accumulators are plain msgpack-able data.
 */
export interface AggregateFunction<A, Acc, R> {
  create(): Acc
  add(acc: Acc, a: A): Acc
  merge(x: Acc, y: Acc): Acc
  result(acc: Acc): R
}

/**
 * One firing of a window of a key: firings run 1..k (later ones are updates by allowed-late
 * records); `final` when no later firing is possible (at cleanup, or lateness 0).
 */
export interface WindowResult<K, R> {
  readonly key: K
  readonly window: Window
  readonly value: R
  readonly firing: number
  readonly final: boolean
}

/** A window declaration that breaks a rule; thrown when it is declared. */
export class WindowInvalid extends Error {
  override readonly name = "WindowInvalid"
  /** the window operator */
  readonly operator: string
  /** the assigner or spec field: size, slide, offset, gap, lateness, emit */
  readonly field: string
  constructor(operator: string, field: string, problem: string) {
    super(`${operator}: window ${field} ${problem}`)
    this.operator = operator
    this.field = field
  }
}

const floorMod = (a: number, n: number): number => ((a % n) + n) % n

const gcd = (a: number, b: number): number => {
  let x = a
  let y = b
  while (y !== 0) {
    const r = x % y
    x = y
    y = r
  }
  return x
}

const slideOf = (a: WindowAssigner): number =>
  a.kind === "sliding" ? a.slide : a.kind === "tumbling" ? a.size : a.gap

/**
 * The windows (tumbling, sliding) `ts` belongs to, earliest first; a session assigner gives the
 * session the record opens, [ts, ts + gap).
 */
export const windowsOf = (a: WindowAssigner, ts: number): ReadonlyArray<Window> => {
  if (a.kind === "session") return [{ start: ts, end: ts + a.gap }]
  const slide = slideOf(a)
  const last = ts - floorMod(ts - a.offset, slide)
  const first = last - Math.floor((last - ts + a.size - 1) / slide) * slide
  const out: Array<Window> = []
  for (let start = first; start <= last; start += slide) out.push({ start, end: start + a.size })
  return out
}

const whole = (operator: string, field: string, v: unknown, min: number): void => {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min)
    throw new WindowInvalid(operator, field, `must be a whole number of ms >= ${min}, got ${String(v)}`)
}

/** Checks an assigner and a spec as DESIGN-dataflow §1.2 says; throws `WindowInvalid` naming the field. */
export const validateWindow = (operator: string, a: WindowAssigner, spec: WindowSpec<unknown>): void => {
  if (a.kind === "session") whole(operator, "gap", a.gap, 1)
  else {
    whole(operator, "size", a.size, 1)
    if (a.kind === "sliding") {
      whole(operator, "slide", a.slide, 1)
      if (a.slide > a.size)
        throw new WindowInvalid(operator, "slide", `must be <= size ${a.size}, got ${a.slide}`)
      if (a.size / a.slide > 1000)
        throw new WindowInvalid(
          operator,
          "slide",
          `must be >= size / 1000 (${a.size / 1000}), got ${a.slide}`
        )
    }
    const bound = slideOf(a)
    if (typeof a.offset !== "number" || !Number.isSafeInteger(a.offset) || Math.abs(a.offset) >= bound)
      throw new WindowInvalid(
        operator,
        "offset",
        `must be a whole number of ms with |offset| < ${bound}, got ${String(a.offset)}`
      )
  }
  whole(operator, "lateness", spec.lateness, 0)
  if (spec.emit !== undefined && spec.emit !== "atEnd" && spec.emit !== "final")
    throw new WindowInvalid(operator, "emit", `must be "atEnd" or "final", got ${String(spec.emit)}`)
}

/** What a window operator sends for one firing: the outputs, each with timestamp window.end − 1. */
export type Present<K, Acc, O> = (
  key: K,
  window: Window,
  acc: Acc,
  firing: number,
  final: boolean
) => ReadonlyArray<O>

/**
 * @internal A window operator whose firings `present` turns into outputs: `windowAggregate` sends a
 * `WindowResult`, `WindowedStream.process` the results of its function.
 */
export const compileWindow = <A, K extends Key, Acc, O>(
  name: string,
  assigner: WindowAssigner,
  spec: WindowSpec<A>,
  f: AggregateFunction<A, Acc, unknown>,
  present: Present<K, Acc, O>
): ProcessDeclaration<A, WindowState<Acc>, O, never> => {
  validateWindow(name, assigner, spec as WindowSpec<unknown>)
  const L = spec.lateness
  const atEnd = spec.emit !== "final"
  const lateOutput = spec.lateOutput
  const outputs = lateOutput === undefined ? [] : [lateOutput as OutputTag<unknown>]

  const timestampOf = (ctx: ProcessContext<O>): number => {
    if (ctx.timestamp === undefined)
      throw new Error(`${name}: record has no event time: give its source \`watermarks\``)
    return ctx.timestamp
  }
  const late = (ctx: ProcessContext<O>, record: A, timestamp: number, windows: ReadonlyArray<Window>) => {
    if (lateOutput !== undefined) ctx.output(lateOutput, { record, timestamp, windows, operator: name })
    ctx.lateRecord()
  }
  const send = (ctx: ProcessContext<O>, outs: ReadonlyArray<O>, w: Window) => {
    for (let i = 0; i < outs.length; i++) ctx.emit(outs[i]!, w.end - 1)
  }
  /** The timers of a window with content: fire at end − 1 (unless already passed), clean up at end − 1 + L. */
  const register = (ctx: ProcessContext<O>, w: Window) => {
    const fireAt = w.end - 1
    if (L === 0) ctx.timers.eventTime(fireAt, w.start)
    else {
      if (atEnd && fireAt > ctx.watermark) ctx.timers.eventTime(fireAt, w.start)
      ctx.timers.eventTime(fireAt + L, w.start)
    }
  }
  const unregister = (ctx: ProcessContext<O>, w: Window) => {
    ctx.timers.deleteEventTime(w.end - 1, w.start)
    if (L > 0) ctx.timers.deleteEventTime(w.end - 1 + L, w.start)
  }
  /** Whether a timer at `at` of a window whose end − 1 is `fireAt` sends a firing. */
  const fires = (at: number, fireAt: number) => (atEnd ? at === fireAt : at === fireAt + L)
  const done = (ctx: ProcessContext<O>, state: WindowState<Acc>) => {
    if (isEmpty(state)) ctx.clearState()
    return state
  }

  if (assigner.kind !== "session") {
    const size = assigner.size
    const slide = slideOf(assigner)
    const pane = gcd(size, slide)
    const offset = assigner.offset
    return keyedProcess<A, WindowState<Acc>, O, never>(name, {
      state: { name: `${name}.windows`, initial: (): PanedState<Acc> => ({ panes: [], fired: [] }) },
      outputs,
      eventTime: true,
      handle: (record, state, _emit, key, ctx) => {
        const ts = timestampOf(ctx)
        const { panes, fired } = state as PanedState<Acc>
        const wm = ctx.watermark
        const windows = windowsOf(assigner, ts)
        const live: Array<Window> = []
        const missed: Array<Window> = []
        for (const w of windows) (w.end - 1 + L <= wm ? missed : live).push(w)
        if (live.length === 0) {
          late(ctx, record, ts, missed)
          return done(ctx, state)
        }
        // user code first (add, merge, result), so a failing record leaves the state as it was
        // (unless `add` changes its argument, as `collecting` does)
        const start = ts - floorMod(ts - offset, pane)
        const acc = f.add(entryAt(panes, start) ?? f.create(), record)
        const fresh: Array<Window> = []
        const refired: Array<readonly [Window, number, ReadonlyArray<O>]> = []
        for (const w of live) {
          if (!hasPaneIn(panes, w.start, w.end)) fresh.push(w)
          if (atEnd && w.end - 1 <= wm) {
            const firing = (entryAt(fired, w.start) ?? 0) + 1
            const value = mergePanes(panes, w.start, w.end, f, [start, acc]) as Acc
            refired.push([w, firing, present(key as K, w, value, firing, false)])
          }
        }
        setEntry(panes, start, acc)
        for (const w of fresh) register(ctx, w)
        for (const [w, firing, outs] of refired) {
          setEntry(fired, w.start, firing)
          send(ctx, outs, w)
        }
        if (missed.length > 0) late(ctx, record, ts, missed)
        return state
      },
      onTimer: (timer, state, ctx) => {
        if (timer.domain !== "event" || typeof timer.tag !== "number") return state
        const { panes, fired } = state as PanedState<Acc>
        const w: Window = { start: timer.tag, end: timer.tag + size }
        const fireAt = w.end - 1
        const cleanup = timer.at === fireAt + L
        if (fires(timer.at, fireAt)) {
          const firing = atEnd ? (entryAt(fired, w.start) ?? 0) + 1 : 1
          const value = mergePanes(panes, w.start, w.end, f)
          // final: no allowed-late record can come (the watermark may have jumped past cleanup)
          const final = cleanup || fireAt + L <= ctx.watermark
          const outs = value === undefined ? [] : present(ctx.key as K, w, value, firing, final)
          if (!cleanup) setEntry(fired, w.start, firing)
          send(ctx, outs, w)
        }
        if (!cleanup) return state
        // no later window needs the panes before the next window's start
        dropEntry(fired, w.start)
        dropBefore(panes, w.start + slide)
        return done(ctx, state)
      }
    })
  }

  const gap = assigner.gap
  return keyedProcess<A, WindowState<Acc>, O, never>(name, {
    state: { name: `${name}.sessions`, initial: (): SessionState<Acc> => ({ sessions: [] }) },
    outputs,
    eventTime: true,
    handle: (record, state, _emit, key, ctx) => {
      const ts = timestampOf(ctx)
      const { sessions } = state as SessionState<Acc>
      const wm = ctx.watermark
      const [from, to] = touching(sessions, ts, ts + gap)
      // merge before the late check: a late record that bridges or extends a live session joins it
      if (from === to && ts + gap - 1 + L <= wm) {
        late(ctx, record, ts, [{ start: ts, end: ts + gap }])
        return done(ctx, state)
      }
      let start = ts
      let end = ts + gap
      let firing = 0
      let merged: Acc | undefined
      for (let i = from; i < to; i++) {
        const s = sessions[i]!
        if (s.start < start) start = s.start
        if (s.end > end) end = s.end
        if (s.firing > firing) firing = s.firing
        merged = i === from ? s.acc : f.merge(merged as Acc, s.acc)
      }
      const acc = f.add(from === to ? f.create() : (merged as Acc), record)
      const w: Window = { start, end }
      const refire = atEnd && end - 1 <= wm
      const outs = refire ? present(key as K, w, acc, firing + 1, false) : []
      const same = to - from === 1 && sessions[from]!.start === start && sessions[from]!.end === end
      if (!same) for (let i = from; i < to; i++) unregister(ctx, sessions[i]!)
      const next: Session<Acc> = { start, end, acc, firing: refire ? firing + 1 : firing }
      sessions.splice(from, to - from, next)
      if (!same) register(ctx, w)
      send(ctx, outs, w)
      return state
    },
    onTimer: (timer, state, ctx) => {
      if (timer.domain !== "event" || typeof timer.tag !== "number") return state
      const { sessions } = state as SessionState<Acc>
      const i = sessionAt(sessions, timer.tag)
      const s = sessions[i]
      if (s === undefined) return state
      const fireAt = s.end - 1
      const cleanup = timer.at === fireAt + L
      if (fires(timer.at, fireAt)) {
        const outs = present(ctx.key as K, s, s.acc, s.firing + 1, cleanup || fireAt + L <= ctx.watermark)
        sessions[i] = { ...s, firing: s.firing + 1 }
        send(ctx, outs, s)
      }
      if (!cleanup) return state
      sessions.splice(i, 1)
      return done(ctx, state)
    }
  })
}

/**
 * A window operator that aggregates each window of each key incrementally and sends a
 * `WindowResult` per firing, with timestamp window.end − 1. Validates the assigner and the spec
 * (`WindowInvalid`); the late output tag is among the declaration's `outputs`.
 */
export const windowAggregate = <A, K extends Key, Acc, R>(
  name: string,
  assigner: WindowAssigner,
  spec: WindowSpec<A>,
  f: AggregateFunction<A, Acc, R>
): ProcessDeclaration<A, WindowState<Acc>, WindowResult<K, R>, never> =>
  compileWindow<A, K, Acc, WindowResult<K, R>>(name, assigner, spec, f, (key, window, acc, firing, final) => [
    { key, window: { start: window.start, end: window.end }, value: f.result(acc), firing, final }
  ])

/** The AggregateFunction of `reduce(f)`: the accumulator is [] or [the reduced value]. */
export const reducing = <A>(f: (x: A, y: A) => A): AggregateFunction<A, Array<A>, A> => ({
  create: () => [],
  add: (acc, a) => (acc.length === 0 ? [a] : [f(acc[0]!, a)]),
  merge: (x, y) => (x.length === 0 ? y : y.length === 0 ? x : [f(x[0]!, y[0]!)]),
  result: (acc) => acc[0]!
})

/**
 * The AggregateFunction that keeps every element (state grows with the window: prefer an
 * aggregate). `add` appends in place, so a record costs O(1) (but a record whose late firing
 * fails under the `deadLetter` policy stays in its window); `merge` makes a new array.
 */
export const collecting = <A>(): AggregateFunction<A, Array<A>, Array<A>> => ({
  create: () => [],
  add: (acc, a) => {
    acc.push(a)
    return acc
  },
  merge: (x, y) => x.concat(y),
  result: (acc) => acc.slice()
})

/**
 * A window operator that calls `f(key, window, elements)` per firing and sends each of its results
 * with timestamp window.end − 1 (Flink's ProcessWindowFunction).
 */
export const windowProcess = <A, K extends Key, R>(
  name: string,
  assigner: WindowAssigner,
  spec: WindowSpec<A>,
  f: (key: K, window: Window, elements: ReadonlyArray<A>) => ReadonlyArray<R>
): ProcessDeclaration<A, WindowState<Array<A>>, R, never> => {
  const elements = collecting<A>()
  return compileWindow<A, K, Array<A>, R>(name, assigner, spec, elements, (key, window, acc) =>
    f(key, { start: window.start, end: window.end }, elements.result(acc))
  )
}
