/**
 * A wake-up for fibers and handlers that wait on a buffer (data for a source's `read`, room for a
 * fetcher or consumer). Invariant: a waiter registered before a `notify` is woken by it, or by its
 * timeout; `notifySoon` wakes the same waiters once the messages of the current socket read have
 * all been buffered (on `setImmediate`), so a reader drains them in one read instead of one each.
 */
import * as Effect from "effect/Effect"

export class Signal {
  private waiters: Array<() => void> = []
  private soon = false

  notify(): void {
    if (this.waiters.length === 0) return
    const ws = this.waiters
    this.waiters = []
    for (const w of ws) w()
  }

  /** `notify` after the I/O callbacks of this turn (every message a socket read brought is buffered). */
  notifySoon(): void {
    if (this.soon || this.waiters.length === 0) return
    this.soon = true
    setImmediate(() => {
      this.soon = false
      this.notify()
    })
  }

  /** resolves on the next `notify`, or after `ms` */
  next(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms)
      this.waiters.push(() => {
        clearTimeout(timer)
        resolve()
      })
    })
  }

  /** waits for the next `notify`, or `ms`; interrupting it clears its timer */
  wait(ms: number): Effect.Effect<void> {
    return Effect.callback<void>((resume) => {
      let done = false
      const fire = () => {
        if (done) return
        done = true
        clearTimeout(timer)
        resume(Effect.void)
      }
      const timer = setTimeout(fire, ms)
      this.waiters.push(fire)
      return Effect.sync(() => {
        done = true
        clearTimeout(timer)
      })
    })
  }
}
