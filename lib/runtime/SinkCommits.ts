/**
 * The commits of one sink instance in one epoch. A writer that can commit beside its input
 * (`commitsBesideInput`) has `complete n` start `writer.commit(n)` at once (`start`: it does not queue
 * behind the mailbox's input), so the sink takes input while the broker commits; any other writer
 * commits in its task loop (`run`). Either way `complete n` is answered when its commit is done.
 * Invariants: commits never overlap each other; a commit that fails fails the epoch (`check`);
 * `stats.recordsCommitted` moves only when a commit is confirmed, to the count at its barrier;
 * `complete n` commits only when the checkpoint store records a completed checkpoint >= n of this
 * epoch's lineage (`CommitGate`, read once per commit): a forged or early `complete` commits
 * nothing, is answered not-ok and counted (`stats.refusedCommits`), and does not fail the epoch.
 */
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import type { SinkWriter } from "../api/Operator.ts"
import type { TaskStats } from "./TaskStats.ts"

/** The latest completed checkpoint as the store records it (its manifest's id and epoch). */
export interface CompletedCheckpoint {
  readonly checkpoint: number
  readonly epoch: number
}

/** Where a sink learns which checkpoints are complete: the job's checkpoint store in production. */
export interface CommitGate {
  /** the epoch these commits belong to */
  readonly epoch: number
  /** the store's latest completed checkpoint (its `latest` manifest), undefined if none */
  readonly latestCompleted: Effect.Effect<CompletedCheckpoint | undefined, unknown>
}

/** `complete n` for a checkpoint the store does not record as completed (forged, or early). */
export class CheckpointNotCompleted extends Data.TaggedError("CheckpointNotCompleted")<{
  readonly checkpoint: number
  readonly epoch: number
  readonly latest: CompletedCheckpoint | undefined
}> {
  override get message(): string {
    const l = this.latest
    const why =
      l === undefined
        ? "the store records no completed checkpoint"
        : l.epoch > this.epoch
          ? `the store's latest completed checkpoint ${l.checkpoint} is of a newer epoch ${l.epoch}`
          : `the store's latest completed checkpoint is ${l.checkpoint}`
    return `complete ${this.checkpoint} refused in epoch ${this.epoch}: ${why}; nothing committed`
  }
}

/** Re-reads of the store while `complete n` is ahead of it (a lagging replica): every 100 ms, for 1 s at most. */
export const notCompletedRetry = Schedule.spaced("100 millis").pipe(Schedule.upTo({ duration: "1 second" }))
/** Retries of a store read that failed: exponential from 50 ms, at most 5. */
export const gateReadRetry = Schedule.exponential("50 millis").pipe(Schedule.upTo({ times: 5 }))

export class SinkCommits {
  private failure: Cause.Cause<unknown> | undefined
  private readonly writer: SinkWriter<unknown>
  private readonly scope: Scope.Scope
  private readonly stats: TaskStats
  private readonly gate: CommitGate
  private readonly serial = Semaphore.makeUnsafe(1)
  /** records committed when this epoch began (those of the restored checkpoint) */
  private readonly base: number
  /** by checkpoint: the records before its barrier, counted across epochs, until its commit is confirmed */
  private readonly atBarriers = new Map<number, number>()

  /**
   * Commits started beside the loop run in `scope` (the epoch's): closing it interrupts them. Time in
   * flight goes to `stats.commitMs`. `gate` says which checkpoints are complete.
   */
  constructor(writer: SinkWriter<unknown>, scope: Scope.Scope, stats: TaskStats, gate: CommitGate) {
    this.writer = writer
    this.scope = scope
    this.stats = stats
    this.gate = gate
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

  /**
   * Succeeds when the store records checkpoint n (or a later one of this lineage) as completed; fails
   * with CheckpointNotCompleted after re-reading for a while, or with the store's error.
   */
  private authorize(n: number): Effect.Effect<void, unknown> {
    const { epoch } = this.gate
    const check = this.gate.latestCompleted.pipe(
      Effect.retry(gateReadRetry),
      Effect.flatMap((latest) =>
        latest !== undefined && latest.checkpoint >= n && latest.epoch <= epoch
          ? Effect.void
          : Effect.fail(new CheckpointNotCompleted({ checkpoint: n, epoch, latest }))
      )
    )
    return check.pipe(
      Effect.retry({
        schedule: notCompletedRetry,
        while: (e) => e instanceof CheckpointNotCompleted && (e.latest?.epoch ?? 0) <= epoch
      })
    )
  }

  /**
   * Commits everything pending up to n, then replies; fails (and fails the epoch) if the commit
   * does. A checkpoint the store does not record as completed is refused: nothing is committed, the
   * reply is not-ok, and the epoch goes on.
   */
  run(n: number, reply: (ok: boolean, error?: string) => void): Effect.Effect<void, unknown> {
    return this.authorize(n).pipe(
      Effect.matchCauseEffect({
        onSuccess: () => this.commit(n, reply),
        onFailure: (cause) => {
          if (Cause.hasInterruptsOnly(cause)) return Effect.failCause(cause)
          const refused = cause.reasons.find(Cause.isFailReason)?.error
          if (refused instanceof CheckpointNotCompleted)
            return Effect.sync(() => {
              this.stats.refusedCommits++
              reply(false, refused.message)
            }).pipe(
              Effect.andThen(
                Effect.suspend(() =>
                  Effect.logWarning(`${refused.message} (refused commits: ${this.stats.refusedCommits})`)
                )
              )
            )
          // the store cannot say: as a failed commit, this fails the epoch
          return Effect.sync(() => {
            this.failure ??= cause
            reply(false, `cannot read the completed checkpoint: ${Cause.pretty(cause)}`)
          }).pipe(Effect.andThen(Effect.failCause(cause)))
        }
      })
    )
  }

  /** Commits everything pending up to n (authorized), then replies. */
  private commit(n: number, reply: (ok: boolean, error?: string) => void): Effect.Effect<void, unknown> {
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
