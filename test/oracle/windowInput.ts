/**
 * The seeded input of the windowed chaos tests (DESIGN-dataflow §5): per split an ordered list of
 * orders, 96 % on time, 2 % allowed-late, 2 % too late. Imports nothing from lib/: it feeds the
 * independent oracle. Also the event sequence a window operator sees: records and the watermarks
 * of boundedOutOfOrderness. Invariant: the same options give the same records, byte for byte.
 */

export type Intended = "onTime" | "allowedLate" | "tooLate"

/** What a job reads and what a late row carries back. */
export interface Order {
  readonly id: string
  readonly customer: string
  /** integer cents */
  readonly amount: number
  /** event time, ms */
  readonly at: number
}

export interface InputOrder extends Order {
  readonly split: number
  /** the fate the generator aimed at; the oracle decides the actual one */
  readonly intended: Intended
}

export interface GenerateOptions {
  readonly seed: number
  readonly splits: number
  readonly perSplit: number
  readonly customers: number
  /** ms between base(i) and base(i + 1) */
  readonly step: number
  /** base(0), ms */
  readonly start: number
  /** B of the watermark strategy */
  readonly maxDelay: number
  /** L of the window spec */
  readonly lateness: number
  /** the largest window size: a too-late record is late for every window of that size */
  readonly size: number
  /** the generator's emitEvery: a watermark can lag maxTs − B − 1 by up to this much */
  readonly emitEvery: number
  /** share of allowed-late records and, again, of too-late ones (default 0.02 each) */
  readonly lateShare?: number
}

/** The first records of a split are on time, so maxTs is known before any late one. */
export const ALWAYS_ON_TIME = 10

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
export const mulberry32 = (seed: number): (() => number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * Per split (index s) an ordered array of records `s-i`. On time: `base(i) − U[0, B)`, above the
 * split's watermark, so on time everywhere (L1). Allowed-late: `maxTs − B − 1 − U[0, L)`. Too late:
 * `maxTs − B − L − size − emitEvery − U[0, size)`, late for every window even when the last
 * watermark lags by emitEvery. maxTs is the highest timestamp of the split so far.
 */
export const generateOrders = (o: GenerateOptions): Array<Array<InputOrder>> => {
  const rand = mulberry32(o.seed)
  const below = (n: number) => (n <= 0 ? 0 : Math.floor(rand() * n))
  const share = o.lateShare ?? 0.02
  const splits: Array<Array<InputOrder>> = []
  for (let s = 0; s < o.splits; s++) {
    const records: Array<InputOrder> = []
    let maxTs = Number.NEGATIVE_INFINITY
    for (let i = 0; i < o.perSplit; i++) {
      const pick = rand()
      let intended: Intended = "onTime"
      if (i >= ALWAYS_ON_TIME && pick < share) intended = "allowedLate"
      else if (i >= ALWAYS_ON_TIME && pick < 2 * share) intended = "tooLate"
      let at: number
      if (intended === "allowedLate") at = maxTs - o.maxDelay - 1 - below(o.lateness)
      else if (intended === "tooLate")
        at = maxTs - o.maxDelay - o.lateness - o.size - o.emitEvery - below(o.size)
      else at = o.start + i * o.step - below(o.maxDelay)
      if (at > maxTs) maxTs = at
      const customer = `c${below(o.customers)}`
      const amount = 100 + below(99_900)
      records.push({ id: `${s}-${i}`, customer, amount, at, split: s, intended })
    }
    splits.push(records)
  }
  return splits
}

/** The watermark of an ended input, as the runtime's END_OF_TIME. */
export const END = Number.MAX_SAFE_INTEGER

/** B and emitEvery of boundedOutOfOrderness. */
export interface WatermarkOptions {
  readonly maxDelay: number
  readonly emitEvery: number
}

/**
 * The watermark emitted right after each record of one split (undefined: none), as the runtime's
 * boundedOutOfOrderness: wm = maxTs − B − 1 when it is ≥ emitEvery past the last one emitted.
 */
export const watermarksAfter = (
  timestamps: ReadonlyArray<number>,
  maxDelay: number,
  emitEvery: number
): Array<number | undefined> => {
  let maxTs = Number.NEGATIVE_INFINITY
  let last = Number.NEGATIVE_INFINITY
  return timestamps.map((ts) => {
    if (ts <= maxTs) return undefined
    maxTs = ts
    const w = ts - maxDelay - 1
    if (last !== Number.NEGATIVE_INFINITY && w < last + emitEvery) return undefined
    last = w
    return w
  })
}

/** What the window operator sees, in order: records and (increasing) watermarks. */
export type WindowEvent = { readonly record: Order } | { readonly watermark: number }

/** One split's records followed by its watermarks (E1), then END. */
export const splitEvents = (records: ReadonlyArray<Order>, config: WatermarkOptions): Array<WindowEvent> => {
  const marks = watermarksAfter(
    records.map((r) => r.at),
    config.maxDelay,
    config.emitEvery
  )
  const events: Array<WindowEvent> = []
  records.forEach((record, i) => {
    events.push({ record })
    const w = marks[i]
    if (w !== undefined) events.push({ watermark: w })
  })
  events.push({ watermark: END })
  return events
}

/**
 * One possible execution with several splits: the splits are read in a seeded random interleaving
 * and the operator's watermark is the min over the splits' (an ended split counts as END).
 */
export const interleaveSplits = (
  splits: ReadonlyArray<ReadonlyArray<Order>>,
  config: WatermarkOptions,
  rand: () => number
): Array<WindowEvent> => {
  const queues = splits.map((s) => splitEvents(s, config))
  const positions = splits.map(() => 0)
  const marks = splits.map(() => Number.NEGATIVE_INFINITY)
  let out = Number.NEGATIVE_INFINITY
  const events: Array<WindowEvent> = []
  for (;;) {
    const open = queues.map((_, i) => i).filter((i) => positions[i]! < queues[i]!.length)
    if (open.length === 0) return events
    const s = open[Math.floor(rand() * open.length)]!
    const event = queues[s]![positions[s]!++]!
    if ("record" in event) events.push(event)
    else {
      marks[s] = event.watermark
      const min = Math.min(...marks)
      if (min > out) {
        out = min
        events.push({ watermark: min })
      }
    }
  }
}
