/**
 * What the coordinator says about a job: its state, every instance as last seen, the checkpoint
 * counts and history (`exactor status`; written to the job's KV bucket every second).
 * Invariant: a status is built in one place from the coordinator's state, so the KV record, the
 * CLI and the tests read the same fields; a job whose status says FINISHED or FAILED stays ended.
 */
import type { HeartbeatBody, InstancePhase } from "../runtime/Actor.ts"
import type { CheckpointTracker } from "./CheckpointTracker.ts"

export type JobState = "WAITING" | "RESTORING" | "RUNNING" | "FINISHING" | "FINISHED" | "FAILED"

/** One instance as the coordinator sees it. */
export interface InstanceView {
  readonly id: string
  incarnation: string | undefined
  lastSeen: number
  phase: InstancePhase | "unknown"
  recordsIn: number
  recordsOut: number
  restarts: number
  pid: number
  host: string
  /** from the last heartbeat: resident set, V8 heap in use, outside the heap; MB */
  rssMb: number
  heapMb: number
  externalMb: number
}

/** What `exactor status` prints; written to the job's KV bucket every second. */
export interface JobStatus {
  readonly job: string
  readonly state: JobState
  readonly epoch: number
  readonly reason?: string
  readonly updatedAt: number
  readonly startedAt: number
  readonly recoveries: number
  readonly lastRecoveryReason?: string
  /** the coordinator process */
  readonly pid: number
  /** the same figures as Prometheus metrics (text exposition format) */
  readonly metrics?: string
  readonly instances: ReadonlyArray<InstanceView>
  readonly checkpoints: { readonly completed: number; readonly aborted: number; readonly latest?: number }
  readonly history: CheckpointTracker["history"]
}

/** How a job ended: what `runCoordinator` returns. */
export interface JobOutcome {
  readonly state: JobState
  readonly reason?: string
}

/** An instance that has not said hello yet. */
export const newInstanceView = (id: string): InstanceView => ({
  id,
  incarnation: undefined,
  lastSeen: 0,
  phase: "unknown",
  recordsIn: 0,
  recordsOut: 0,
  restarts: 0,
  pid: 0,
  host: "",
  rssMb: 0,
  heapMb: 0,
  externalMb: 0
})

/** Copies what a report's heartbeat body says into the view; a field it lacks keeps its value. */
export const applyHeartbeat = (v: InstanceView, hb: Partial<HeartbeatBody> | undefined): void => {
  if (hb?.phase) v.phase = hb.phase
  if (typeof hb?.recordsIn === "number") v.recordsIn = hb.recordsIn
  if (typeof hb?.recordsOut === "number") v.recordsOut = hb.recordsOut
  if (typeof hb?.pid === "number") v.pid = hb.pid
  if (typeof hb?.host === "string") v.host = hb.host
  if (typeof hb?.rssMb === "number") v.rssMb = hb.rssMb
  if (typeof hb?.heapMb === "number") v.heapMb = hb.heapMb
  if (typeof hb?.externalMb === "number") v.externalMb = hb.externalMb
}

/** The part of the coordinator's state that a status shows. */
export interface CoordinatorState {
  readonly job: string
  readonly state: JobState
  readonly epoch: number
  readonly reason: string | undefined
  readonly startedAt: number
  readonly recoveries: number
  readonly lastRecoveryReason: string | undefined
  readonly views: ReadonlyMap<string, InstanceView>
  readonly tracker: CheckpointTracker
  /** the checkpoint the job last restored from or completed */
  readonly latest: number | undefined
}

/** The status of this coordinator's job at `now` (without metrics). */
export const jobStatus = (s: CoordinatorState, now: number): JobStatus => ({
  job: s.job,
  state: s.state,
  epoch: s.epoch,
  ...(s.reason === undefined ? {} : { reason: s.reason }),
  updatedAt: now,
  startedAt: s.startedAt,
  recoveries: s.recoveries,
  pid: process.pid,
  ...(s.lastRecoveryReason === undefined ? {} : { lastRecoveryReason: s.lastRecoveryReason }),
  instances: [...s.views.values()],
  checkpoints: {
    completed: s.tracker.completedCount,
    aborted: s.tracker.abortedCount,
    ...(s.latest === undefined ? {} : { latest: s.latest })
  },
  history: s.tracker.history
})

/** How the job ended, when a stored status says it already has (FINISHED or FAILED). */
export const endedOutcome = (previous: Partial<JobStatus> | undefined): JobOutcome | undefined =>
  previous?.state === "FINISHED" || previous?.state === "FAILED"
    ? { state: previous.state, ...(previous.reason === undefined ? {} : { reason: previous.reason }) }
    : undefined
