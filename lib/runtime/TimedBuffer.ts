/**
 * Output records of one port with, once any of them has one, their event times (DESIGN-dataflow
 * §2.1). Invariant: `times` is absent or exactly as long as `records`; a record without event time
 * in a timed buffer carries START_OF_TIME, so a stream without event time carries no times at all.
 */
import { START_OF_TIME } from "../api/Watermark.ts"

export class TimedBuffer {
  readonly records: Array<unknown> = []
  times: Array<number> | undefined

  push(record: unknown, timestamp: number | undefined): void {
    this.records.push(record)
    if (this.times !== undefined) this.times.push(timestamp ?? START_OF_TIME)
    else if (timestamp !== undefined) {
      this.times = new Array<number>(this.records.length - 1).fill(START_OF_TIME)
      this.times.push(timestamp)
    }
  }

  get length(): number {
    return this.records.length
  }

  /** Keeps the first `n` records (and their times). */
  truncate(n: number): void {
    this.records.length = n
    if (this.times !== undefined) this.times.length = n
  }

  /** Drops the last record. */
  pop(): void {
    this.records.pop()
    this.times?.pop()
  }

  clear(): void {
    this.records.length = 0
    this.times = undefined
  }
}
