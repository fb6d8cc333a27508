/**
 * The coordinator's bookkeeping of checkpoints: which are in flight, who has acked, which timed
 * out, the figures of the last ones (duration, alignment, size, status). Pure; no I/O.
 * Invariant: a checkpoint completes only when every instance of the job has acked it in the
 * epoch it was triggered in, and ids are strictly increasing within a job.
 */

/** What an instance sends with its ack. */
export interface AckBody {
  readonly handle?: unknown
  readonly alignmentMs: number
  readonly durationMs: number
  /** a sink: the records before its barrier, counted across epochs */
  readonly committed?: number
}

/** Why an ack's body (off the wire) is not an `AckBody`, or undefined. */
export const ackBodyProblem = (b: unknown): string | undefined => {
  if (typeof b !== "object" || b === null || Array.isArray(b)) return "ack body is not a map"
  const o = b as Record<string, unknown>
  // finite, not necessarily >= 0: a wall clock stepped back must not drop a real ack
  for (const f of ["alignmentMs", "durationMs"])
    if (typeof o[f] !== "number" || !Number.isFinite(o[f])) return `ack body: ${f} is not a duration`
  if (o.committed !== undefined && !(Number.isSafeInteger(o.committed) && (o.committed as number) >= 0))
    return "ack body: committed is not a whole number"
  if (o.handle !== undefined && (typeof o.handle !== "object" || o.handle === null))
    return "ack body: handle is not a map"
  return undefined
}

export type CheckpointKind = "checkpoint" | "savepoint" | "final"

export interface PendingCheckpoint {
  readonly n: number
  readonly kind: CheckpointKind
  readonly epoch: number
  readonly startedAt: number
  readonly acks: Map<string, AckBody>
  readonly savepointName?: string
}

/** One line of `exactor status`'s checkpoint table. */
export interface CheckpointStats {
  readonly n: number
  readonly kind: CheckpointKind
  readonly status: "completed" | "aborted" | "failed"
  readonly durationMs: number
  readonly alignmentMs: number
  readonly size: number
  readonly at: number
  readonly reason?: string
}

const sizeOf = (handle: unknown): number =>
  typeof handle === "object" && handle !== null && typeof (handle as { size?: unknown }).size === "number"
    ? (handle as { size: number }).size
    : 0

export class CheckpointTracker {
  private readonly instances: ReadonlyArray<string>
  readonly inflight = new Map<number, PendingCheckpoint>()
  readonly history: Array<CheckpointStats> = []
  nextId: number
  consecutiveFailures = 0
  completedCount = 0
  abortedCount = 0
  lastEndedAt = 0
  lastTriggeredAt = 0

  constructor(instances: ReadonlyArray<string>, firstId: number) {
    this.instances = instances
    this.nextId = firstId
  }

  /** Starts checkpoint `nextId` (or a savepoint / the final checkpoint) and returns it. */
  start(
    epoch: number,
    now: number,
    kind: CheckpointKind = "checkpoint",
    savepointName?: string
  ): PendingCheckpoint {
    const p: PendingCheckpoint = {
      n: this.nextId++,
      kind,
      epoch,
      startedAt: now,
      acks: new Map(),
      ...(savepointName === undefined ? {} : { savepointName })
    }
    this.inflight.set(p.n, p)
    this.lastTriggeredAt = now
    return p
  }

  /** Records an ack; returns the checkpoint when this ack completed its set of acks. */
  ack(n: number, epoch: number, instance: string, body: AckBody): PendingCheckpoint | undefined {
    const p = this.inflight.get(n)
    if (!p || p.epoch !== epoch || !this.instances.includes(instance)) return undefined
    p.acks.set(instance, body)
    return p.acks.size === this.instances.length ? p : undefined
  }

  /** Checkpoints in flight for longer than `timeoutMs`. */
  expired(now: number, timeoutMs: number): ReadonlyArray<PendingCheckpoint> {
    return [...this.inflight.values()].filter((p) => now - p.startedAt > timeoutMs)
  }

  /** Handles of a fully acked checkpoint, by instance. */
  handles(p: PendingCheckpoint): Record<string, unknown> {
    const out: Record<string, unknown> = {}
    for (const [instance, ack] of p.acks) if (ack.handle !== undefined) out[instance] = ack.handle
    return out
  }

  /** What each sink instance will have committed once this checkpoint's commit is done. */
  committed(p: PendingCheckpoint): Record<string, number> {
    const out: Record<string, number> = {}
    for (const [instance, ack] of p.acks) if (typeof ack.committed === "number") out[instance] = ack.committed
    return out
  }

  figures(p: PendingCheckpoint, now: number): { durationMs: number; alignmentMs: number; size: number } {
    let alignmentMs = 0
    let size = 0
    for (const ack of p.acks.values()) {
      alignmentMs = Math.max(alignmentMs, ack.alignmentMs)
      size += sizeOf(ack.handle)
    }
    return { durationMs: now - p.startedAt, alignmentMs, size }
  }

  completed(p: PendingCheckpoint, now: number): CheckpointStats {
    this.inflight.delete(p.n)
    this.consecutiveFailures = 0
    this.completedCount++
    this.lastEndedAt = now
    return this.record({ n: p.n, kind: p.kind, status: "completed", ...this.figures(p, now), at: now })
  }

  /** A checkpoint that timed out or could not be stored; counts toward `tolerableFailures`. */
  failed(p: PendingCheckpoint, now: number, reason: string): CheckpointStats {
    this.inflight.delete(p.n)
    this.consecutiveFailures++
    this.abortedCount++
    this.lastEndedAt = now
    return this.record({ n: p.n, kind: p.kind, status: "aborted", ...this.figures(p, now), at: now, reason })
  }

  /** Drops every checkpoint in flight (recovery); they do not count as failures. */
  dropAll(): ReadonlyArray<PendingCheckpoint> {
    const all = [...this.inflight.values()]
    this.inflight.clear()
    return all
  }

  private record(s: CheckpointStats): CheckpointStats {
    this.history.push(s)
    if (this.history.length > 20) this.history.shift()
    return s
  }
}
