/**
 * The commits of one sink instance in one epoch, run beside its task loop: `complete n` starts
 * `writer.commit(n)` at once (it does not queue behind the mailbox's input) and is answered when that
 * commit is done, so the sink takes input while the broker commits. The writer orders commits and
 * makes a repeated `complete n` a no-op. Invariant: a commit that fails fails the epoch (`check`).
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { SinkWriter } from "./Operator.ts"
import type { TaskStats } from "./Task.ts"

export class SinkCommits {
  private failure: Cause.Cause<unknown> | undefined
  private inFlight = 0
  private since = 0
  private readonly writer: SinkWriter<unknown>
  private readonly scope: Scope.Scope
  private readonly stats: TaskStats

  /** Commits run in `scope` (the epoch's): closing it interrupts them. Time in flight goes to `stats.commitMs`. */
  constructor(writer: SinkWriter<unknown>, scope: Scope.Scope, stats: TaskStats) {
    this.writer = writer
    this.scope = scope
    this.stats = stats
  }

  /** Starts committing everything pending up to n; `reply(true)` when done, `reply(false, why)` on failure. */
  start(n: number, reply: (ok: boolean, error?: string) => void): Effect.Effect<void> {
    // stats.commitMs grows by the time with at least one commit in flight, at every start and end
    const tick = () => {
      const now = performance.now()
      if (this.inFlight > 0) this.stats.commitMs += now - this.since
      this.since = now
    }
    const begin = Effect.sync(() => {
      tick()
      this.inFlight++
    })
    const end = Effect.sync(() => {
      tick()
      this.inFlight--
    })
    return Effect.asVoid(
      Effect.forkIn(
        begin.pipe(
          Effect.andThen(this.writer.commit(n)),
          Effect.ensuring(end),
          Effect.matchCause({
            onSuccess: () => reply(true),
            onFailure: (cause) => {
              if (Cause.hasInterruptsOnly(cause)) return
              this.failure ??= cause
              reply(false, Cause.pretty(cause))
            }
          })
        ),
        this.scope
      )
    )
  }

  /** Fails with the cause of the first failed commit of this epoch. */
  get check(): Effect.Effect<void, unknown> {
    return this.failure === undefined ? Effect.void : Effect.failCause(this.failure)
  }
}
