/**
 * The commits of one sink instance in one epoch. A writer that can commit beside its input
 * (`commitsBesideInput`) has `complete n` start `writer.commit(n)` at once (`start`: it does not queue
 * behind the mailbox's input), so the sink takes input while the broker commits; any other writer
 * commits in its task loop (`run`). Either way `complete n` is answered when its commit is done.
 * Invariants: commits never overlap each other; a commit that fails fails the epoch (`check`);
 * `stats.recordsCommitted` moves only when a commit is confirmed, to the count at its barrier.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import type { SinkWriter } from "../api/Operator.ts"
import type { TaskStats } from "./TaskStats.ts"

export class SinkCommits {
  private failure: Cause.Cause<unknown> | undefined
  private readonly writer: SinkWriter<unknown>
  private readonly scope: Scope.Scope
  private readonly stats: TaskStats
  private readonly serial = Semaphore.makeUnsafe(1)
  /** records committed when this epoch began (those of the restored checkpoint) */
  private readonly base: number
  /** by checkpoint: the records before its barrier, counted across epochs, until its commit is confirmed */
  private readonly atBarriers = new Map<number, number>()

  /** Commits started beside the loop run in `scope` (the epoch's): closing it interrupts them. Time in flight goes to `stats.commitMs`. */
  constructor(writer: SinkWriter<unknown>, scope: Scope.Scope, stats: TaskStats) {
    this.writer = writer
    this.scope = scope
    this.stats = stats
    this.base = stats.recordsCommitted
  }

  /** Notes that barrier n came after `recordsOut` records of this epoch; returns the count across epochs. */
  atBarrier(n: number, recordsOut: number): number {
    const count = this.base + recordsOut
    this.atBarriers.set(n, count)
    return count
  }

  /** A commit of everything up to n is confirmed: the records before barrier n are visible. */
  private committed(n: number): void {
    for (const [m, count] of this.atBarriers)
      if (m <= n) {
        this.stats.recordsCommitted = Math.max(this.stats.recordsCommitted, count)
        this.atBarriers.delete(m)
      }
  }

  /** Whether `complete n` starts the commit beside the loop (`start`) rather than in it (`run`). */
  get besideInput(): boolean {
    return this.writer.commitsBesideInput === true
  }

  /** Starts committing everything pending up to n beside the loop; `reply(true)` when done, `reply(false, why)` on failure. */
  start(n: number, reply: (ok: boolean, error?: string) => void): Effect.Effect<void> {
    return Effect.asVoid(Effect.forkIn(Effect.ignore(this.run(n, reply)), this.scope))
  }

  /** Commits everything pending up to n, then replies; fails (and fails the epoch) if the commit does. */
  run(n: number, reply: (ok: boolean, error?: string) => void): Effect.Effect<void, unknown> {
    // commits never overlap (serial), so the time with one in flight is the sum of their durations
    let started = 0
    const begin = Effect.sync(() => {
      started = performance.now()
    })
    const end = Effect.sync(() => {
      this.stats.commitMs += performance.now() - started
    })
    return begin.pipe(
      Effect.andThen(this.writer.commit(n)),
      Effect.ensuring(end),
      this.serial.withPermits(1),
      Effect.tapCause((cause) =>
        Effect.sync(() => {
          if (Cause.hasInterruptsOnly(cause)) return
          this.failure ??= cause
          reply(false, Cause.pretty(cause))
        })
      ),
      Effect.tap(() =>
        Effect.sync(() => {
          this.committed(n)
          reply(true)
        })
      )
    )
  }

  /** Fails with the cause of the first failed commit of this epoch. */
  get check(): Effect.Effect<void, unknown> {
    return this.failure === undefined ? Effect.void : Effect.failCause(this.failure)
  }
}
