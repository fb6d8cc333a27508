/**
 * The keyed state of a window operator (DESIGN-dataflow §4) and the sorted-array operations on it.
 * Invariant: the state is plain msgpack-able data (arrays, plain objects, numbers); panes, fired
 * windows and sessions are each sorted by start, and a key's sessions never overlap or touch.
 */

/** One pane of a tumbling or sliding window operator: `[paneStart, acc]`. */
export type Pane<Acc> = [paneStart: number, acc: Acc]

/** A window that fired and is not yet cleaned up: `[windowStart, firing]` (its last firing). */
export type Fired = [windowStart: number, firing: number]

/**
 * Tumbling and sliding windows of one key: an accumulator per pane of gcd(size, slide) ms that
 * holds a record, sorted by pane start, and the last firing of each fired window, sorted by start.
 */
export interface PanedState<Acc> {
  readonly panes: Array<Pane<Acc>>
  readonly fired: Array<Fired>
}

/** A session window of one key: [start, end), its accumulator and its last firing (0: none yet). */
export interface Session<Acc> {
  readonly start: number
  readonly end: number
  readonly acc: Acc
  readonly firing: number
}

/** The session windows of one key, sorted by start; no two overlap or touch. */
export interface SessionState<Acc> {
  readonly sessions: Array<Session<Acc>>
}

/** A window operator's state of one key. */
export type WindowState<Acc> = PanedState<Acc> | SessionState<Acc>

/** How accumulators combine (the `merge` of an AggregateFunction). */
export interface Merge<Acc> {
  merge(x: Acc, y: Acc): Acc
}

/** The first index of `xs` (sorted by their first element) whose start is ≥ `v`. */
export const lowerBound = (xs: ReadonlyArray<readonly [number, unknown]>, v: number): number => {
  let lo = 0
  let hi = xs.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (xs[mid]![0] < v) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** The entry of `xs` that starts at `start`, or undefined. */
export const entryAt = <T>(xs: ReadonlyArray<readonly [number, T]>, start: number): T | undefined => {
  const i = lowerBound(xs, start)
  const x = xs[i]
  return x !== undefined && x[0] === start ? x[1] : undefined
}

/** Sets the entry of `xs` at `start` to `value`, keeping `xs` sorted. */
export const setEntry = <T>(xs: Array<[number, T]>, start: number, value: T): void => {
  const i = lowerBound(xs, start)
  const x = xs[i]
  if (x !== undefined && x[0] === start) x[1] = value
  else xs.splice(i, 0, [start, value])
}

/** Removes the entry of `xs` at `start`, if any. */
export const dropEntry = (xs: Array<[number, unknown]>, start: number): void => {
  const i = lowerBound(xs, start)
  if (xs[i]?.[0] === start) xs.splice(i, 1)
}

/** Removes the entries of `xs` that start before `v`. */
export const dropBefore = (xs: Array<[number, unknown]>, v: number): void => {
  const n = lowerBound(xs, v)
  if (n > 0) xs.splice(0, n)
}

/** Whether some pane starts in [from, to). */
export const hasPaneIn = (panes: ReadonlyArray<Pane<unknown>>, from: number, to: number): boolean => {
  const p = panes[lowerBound(panes, from)]
  return p !== undefined && p[0] < to
}

/**
 * The accumulators of the panes starting in [from, to) merged in start order, with `extra` in
 * place of (or beside) the pane at its start; undefined when there is none.
 */
export const mergePanes = <Acc>(
  panes: ReadonlyArray<Pane<Acc>>,
  from: number,
  to: number,
  f: Merge<Acc>,
  extra?: Pane<Acc>
): Acc | undefined => {
  let out: Acc | undefined
  let has = false
  let pending = extra !== undefined && extra[0] >= from && extra[0] < to
  for (let i = lowerBound(panes, from); i < panes.length; i++) {
    const p = panes[i]!
    if (p[0] >= to) break
    if (pending && extra![0] <= p[0]) {
      out = has ? f.merge(out as Acc, extra![1]) : extra![1]
      has = true
      pending = false
      if (extra![0] === p[0]) continue
    }
    out = has ? f.merge(out as Acc, p[1]) : p[1]
    has = true
  }
  if (pending) out = has ? f.merge(out as Acc, extra![1]) : extra![1]
  return out
}

/**
 * The run [from, to) of `sessions` that a new session [start, end) overlaps or touches
 * ([a, b) and [c, d) with a ≤ d and c ≤ b); empty (from = to) when it merges with none.
 */
export const touching = (
  sessions: ReadonlyArray<Session<unknown>>,
  start: number,
  end: number
): readonly [from: number, to: number] => {
  let from = 0
  while (from < sessions.length && sessions[from]!.end < start) from++
  let to = from
  while (to < sessions.length && sessions[to]!.start <= end) to++
  return [from, to]
}

/** The index of the session that starts at `start`, or −1. */
export const sessionAt = (sessions: ReadonlyArray<Session<unknown>>, start: number): number => {
  for (let i = 0; i < sessions.length; i++) if (sessions[i]!.start === start) return i
  return -1
}

/** Whether the key has no window left (its state may be cleared). */
export const isEmpty = (state: WindowState<unknown>): boolean =>
  "sessions" in state ? state.sessions.length === 0 : state.panes.length === 0 && state.fired.length === 0
