/**
 * Event time at a source (DESIGN-dataflow §2.2): a `WatermarkStrategy` says where a record's
 * timestamp is and builds one `WatermarkGenerator` per split (source instance). Invariant: a
 * generator's watermarks are a pure function of the record sequence it sees, never of batch
 * boundaries, read sizes or the clock, so a replay puts each watermark after the same record.
 */

/** The watermark of an input that has ended: every timer and window is due. */
export const END_OF_TIME = Number.MAX_SAFE_INTEGER
/** The watermark before any: nothing is due. */
export const START_OF_TIME = Number.MIN_SAFE_INTEGER

/** Turns a split's timestamps, in order, into watermarks; its state is in the source's snapshot. */
export interface WatermarkGenerator {
  /** the record with timestamp `ts` was read; a returned watermark goes out right after it */
  onEvent(ts: number): number | undefined
  /** msgpack-able state: the same watermarks after a restore as without the failure */
  snapshot(): unknown
  restore(state: unknown): void
}

export interface WatermarkStrategy<A> {
  readonly kind: "watermarkStrategy"
  /** the record's event time, ms since the epoch (a safe integer) */
  readonly timestamp: (record: A) => number
  readonly generator: () => WatermarkGenerator
  /** ms of reading nothing after which the split is idle and left out of the minimum (§2.5) */
  readonly idleTimeout?: number
}

export class WatermarkStrategyInvalid extends Error {
  override readonly name = "WatermarkStrategyInvalid"
}

const positiveOrAbsent = (name: string, v: number | undefined, min: number) => {
  if (v !== undefined && (!Number.isSafeInteger(v) || v < min))
    throw new WatermarkStrategyInvalid(
      `boundedOutOfOrderness: ${name} must be a whole number of ms >= ${min}, got ${v}`
    )
}

/**
 * Flink's bounded out-of-orderness: the watermark is `maxTs − maxDelay − 1` (no record later than
 * `maxDelay` behind the highest seen is expected), emitted after the record that raised it by at
 * least `emitEvery` ms of event time (default 200) past the last one. `maxDelay` has no default.
 */
export const boundedOutOfOrderness = <A>(options: {
  readonly timestamp: (record: A) => number
  readonly maxDelay: number
  readonly emitEvery?: number
  readonly idleTimeout?: number
}): WatermarkStrategy<A> => {
  if (options.maxDelay === undefined)
    throw new WatermarkStrategyInvalid("boundedOutOfOrderness: maxDelay is required (ms)")
  positiveOrAbsent("maxDelay", options.maxDelay, 0)
  positiveOrAbsent("emitEvery", options.emitEvery, 1)
  positiveOrAbsent("idleTimeout", options.idleTimeout, 1)
  const { maxDelay } = options
  const emitEvery = options.emitEvery ?? 200
  return {
    kind: "watermarkStrategy",
    timestamp: options.timestamp,
    ...(options.idleTimeout === undefined ? {} : { idleTimeout: options.idleTimeout }),
    generator: () => {
      let maxTs = START_OF_TIME
      let last = START_OF_TIME
      return {
        onEvent: (ts) => {
          if (ts <= maxTs) return undefined
          maxTs = ts
          const w = ts - maxDelay - 1
          if (last !== START_OF_TIME && w < last + emitEvery) return undefined
          last = w
          return w
        },
        snapshot: () => [maxTs, last],
        restore: (state) => {
          if (!Array.isArray(state) || state.length !== 2 || !state.every(Number.isSafeInteger))
            throw new WatermarkStrategyInvalid(
              `boundedOutOfOrderness: generator state ${JSON.stringify(state)} is not [maxTs, last]`
            )
          maxTs = state[0]
          last = state[1]
        }
      }
    }
  }
}
