/**
 * Restart strategies of a job (as in Flink): fixed delay, exponential backoff with jitter, and
 * failure rate. Pure: given the failures so far, the delay before the next restart or the
 * reason the job must fail. Invariant: a strategy never allows more restarts than its budget.
 */
import type { RestartStrategy } from "./JobOptions.ts"

export type RestartDecision =
  | { readonly restart: true; readonly delayMs: number }
  | { readonly restart: false; readonly reason: string }

/**
 * `failures`: times (ms) of every failure of this job run, the newest last (it is the one being
 * decided on). `random` in [0, 1) drives the jitter.
 */
export const decideRestart = (
  strategy: RestartStrategy,
  failures: ReadonlyArray<number>,
  random: number = Math.random()
): RestartDecision => {
  const attempt = failures.length
  switch (strategy.kind) {
    case "fixedDelay":
      return attempt > strategy.attempts
        ? { restart: false, reason: `restart budget exhausted: ${strategy.attempts} restarts (fixedDelay)` }
        : { restart: true, delayMs: strategy.delay }
    case "exponentialBackoff": {
      // As Flink's exponential-delay strategy: a quiet spell of `resetAfter` starts the count afresh.
      let streak = 1
      for (let i = failures.length - 1; i > 0; i--) {
        if (failures[i]! - failures[i - 1]! > strategy.resetAfter) break
        streak++
      }
      const attempt = streak
      if (attempt > strategy.attempts)
        return {
          restart: false,
          reason: `restart budget exhausted: ${strategy.attempts} restarts (exponentialBackoff)`
        }
      const base = Math.min(strategy.max, strategy.initial * strategy.multiplier ** Math.max(0, attempt - 1))
      const jitter = 1 + strategy.jitter * (2 * random - 1)
      return { restart: true, delayMs: Math.round(Math.min(strategy.max, base * jitter)) }
    }
    case "failureRate": {
      const now = failures.at(-1) ?? 0
      const recent = failures.filter((t) => now - t < strategy.interval).length
      return recent > strategy.maxFailures
        ? {
            restart: false,
            reason: `failure rate exceeded: ${recent} failures within ${strategy.interval} ms (at most ${strategy.maxFailures})`
          }
        : { restart: true, delayMs: strategy.delay }
    }
  }
}
