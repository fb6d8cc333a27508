/**
 * Messages an instance (or the coordinator) rejected off the wire: bytes that are not an envelope,
 * an envelope of a kind that does not belong on its subject, or one no receiver can take (a channel
 * that is not an input, a grant beyond what was sent). Invariant: every rejection is counted, and
 * the log names subject and reason for the first `burst` of each interval and sums up the rest in
 * one line per interval, so a flood of garbage cannot fill the disk.
 */
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type { EnvelopeDecodeError } from "./Envelope.ts"

export interface RejectLogOptions {
  /** rejections logged one by one per interval (default 10) */
  readonly burst: number
  /** length of an interval, ms (default 10 s) */
  readonly intervalMs: number
}

export const defaultRejectLog: RejectLogOptions = { burst: 10, intervalMs: 10_000 }

/** How many subjects a summary line names (the busiest ones). */
const summarySubjects = 3

export class RejectedMessages {
  /** every rejection since this process started (not reset by a new epoch) */
  total = 0
  private readonly who: string
  private readonly warn: (line: string) => void
  private readonly options: RejectLogOptions
  private windowStart = Number.NEGATIVE_INFINITY
  private logged = 0
  private suppressed = 0
  private readonly suppressedBySubject = new Map<string, number>()

  /** `who` starts each log line (`count#1`, `coordinator`); `warn` writes one line. */
  constructor(who: string, warn: (line: string) => void, options: RejectLogOptions = defaultRejectLog) {
    this.who = who
    this.warn = warn
    this.options = options
  }

  /** Counts one rejected message and logs it, unless this interval's burst is used up. */
  reject(error: EnvelopeDecodeError, now: number = Date.now()): void {
    this.total++
    if (now - this.windowStart >= this.options.intervalMs) {
      this.flush(now)
      this.windowStart = now
      this.logged = 0
    }
    if (this.logged < this.options.burst) {
      this.logged++
      this.warn(`${this.who}: rejected ${error.message}`)
      return
    }
    this.suppressed++
    const subject = error.subject
    // a flood over many subjects must not grow the map: count the rest under one key
    const key =
      this.suppressedBySubject.has(subject) || this.suppressedBySubject.size < 64 ? subject : "others"
    this.suppressedBySubject.set(key, (this.suppressedBySubject.get(key) ?? 0) + 1)
  }

  /**
   * Writes the summary of the rejections not logged in the interval that has ended, if any; run it
   * every interval so that the count of a flood that stopped is still told.
   */
  flush(now: number = Date.now()): void {
    const line = this.summary(now)
    if (line !== undefined) this.warn(line)
  }

  /**
   * The summary line of what was not logged (and forgets it), or undefined when there is none or,
   * unless `final` (the process is stopping), the interval has not ended yet.
   */
  summary(now: number = Date.now(), final = false): string | undefined {
    if (this.suppressed === 0 || (!final && now - this.windowStart < this.options.intervalMs))
      return undefined
    const busiest = [...this.suppressedBySubject]
      .sort((a, b) => b[1] - a[1])
      .slice(0, summarySubjects)
      .map(([s, n]) => `${n} on ${s}`)
      .join(", ")
    const more = this.suppressedBySubject.size > summarySubjects ? ", …" : ""
    const seconds = Math.max(1, Math.round((now - this.windowStart) / 1000))
    const line = `${this.who}: ${this.suppressed} more messages rejected in ${seconds} s, not logged one by one (${busiest}${more}); ${this.total} rejected since start`
    this.suppressed = 0
    this.suppressedBySubject.clear()
    return line
  }
}

/**
 * The rejected-message log of one process for as long as the scope lives: warnings go to the
 * Effect logger, the summary is flushed every second, and what the last interval did not log is
 * told when the scope closes, not lost.
 */
export const rejectedMessagesScoped = (who: string) =>
  Effect.gen(function* () {
    const services = yield* Effect.context<never>()
    const rejects = new RejectedMessages(who, (line) => {
      Effect.runForkWith(services)(Effect.logWarning(line))
    })
    yield* Effect.forkScoped(
      Effect.sync(() => rejects.flush()).pipe(Effect.repeat(Schedule.spaced("1 second")))
    )
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        const line = rejects.summary(Date.now(), true)
        return line === undefined ? Effect.void : Effect.logWarning(line)
      })
    )
    return rejects
  })
