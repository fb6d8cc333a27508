/**
 * What the coordinator says about a job: its state, every instance as last seen, the checkpoint
 * counts and history (`exactor status`; written to the job's KV bucket every second).
 * Invariant: a status is built in one place from the coordinator's state, so the KV record, the
 * CLI and the tests read the same fields; a job whose status says FINISHED, FAILED or CANCELLED
 * stays ended.
 */
import type { HeartbeatBody, InstancePhase } from "../runtime/Actor.ts"
import type { JobPlan } from "../api/Pipeline.ts"
import type { TaskStats } from "../runtime/TaskStats.ts"
import type { CheckpointTracker } from "./CheckpointTracker.ts"

export type JobState =
  | "WAITING"
  | "RESTORING"
  | "RUNNING"
  | "FINISHING"
  | "CANCELLING"
  | "FINISHED"
  | "FAILED"
  | "CANCELLED"

/** States a job does not leave: its coordinator has stopped every instance. */
export const isEnded = (state: string | undefined): boolean =>
  state === "FINISHED" || state === "FAILED" || state === "CANCELLED"

/** One instance as the coordinator sees it; its event-time fields (absent without event time) as TaskStats. */
export interface InstanceView extends EventTimeFields {
  readonly id: string
  incarnation: string | undefined
  lastSeen: number
  phase: InstancePhase | "unknown"
  recordsIn: number
  recordsOut: number
  /** a sink: records visible downstream (committed), across epochs */
  recordsCommitted: number
  /** share of the time between its last two heartbeats that it waited for credit (0..1) */
  backpressure: number
  /** from the last heartbeat: credit wait this epoch, ms, and when it was seen */
  creditWaitMs: number
  creditWaitAt: number
  /** the last checkpoint it acked and the alignment it took, ms */
  lastCheckpoint: number
  lastAlignmentMs: number
  restarts: number
  pid: number
  host: string
  /** from the last heartbeat: resident set, V8 heap in use, outside the heap; MB */
  rssMb: number
  heapMb: number
  externalMb: number
  /** from the last heartbeat: messages its process rejected off the wire since it started */
  rejected: number
  /** control commands it refused for a missing or wrong tag (forged), since its process started */
  rejectedCommands: number
  /** a sink: `complete n` it refused because checkpoint n was not completed in the store */
  refusedCommits: number
  /** records it sent to its dead-letter output this epoch (policy `deadLetter`) */
  deadLetters: number
}

/** The job's operator graph as a status shows it: operators in topological order, and edges. */
export interface JobGraph {
  readonly operators: ReadonlyArray<{
    readonly name: string
    readonly kind: string
    readonly parallelism: number
  }>
  readonly edges: ReadonlyArray<{ readonly from: string; readonly to: string; readonly partitioning: string }>
}

/** The graph of `plan`, as plain data. */
export const jobGraph = (plan: JobPlan): JobGraph => ({
  operators: plan.pipeline.operators.map((o) => ({
    name: o.name,
    kind: o.declaration.kind,
    parallelism: o.parallelism
  })),
  edges: plan.pipeline.edges.map((e) => ({ from: e.from, to: e.to, partitioning: e.partitioning.kind }))
})

/** A recovery as the status keeps it: when, into which epoch, and why. */
export interface RecoveryEvent {
  readonly at: number
  readonly epoch: number
  readonly cause: string
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
  /** messages the coordinator rejected on the coordinator and admin subjects (absent before it counted) */
  readonly rejected?: number
  /** the same figures as Prometheus metrics (text exposition format) */
  readonly metrics?: string
  readonly instances: ReadonlyArray<InstanceView>
  /** absent in a status written before the job's coordinator started */
  readonly graph?: JobGraph
  /** the last recoveries, oldest first */
  readonly recoveryLog?: ReadonlyArray<RecoveryEvent>
  readonly checkpoints: { readonly completed: number; readonly aborted: number; readonly latest?: number }
  readonly history: CheckpointTracker["history"]
  /** reports on the coordinator subject ignored for a missing or wrong tag (forged), this coordinator */
  readonly rejectedReports?: number
}

/** Committed records per sink operator: the sum over its instances (records visible downstream). */
export const committedBySink = (
  s: JobStatus
): ReadonlyArray<{ readonly sink: string; readonly committed: number }> =>
  (s.graph?.operators ?? [])
    .filter((o) => o.kind === "sink")
    .map((o) => ({
      sink: o.name,
      committed: s.instances
        .filter((i) => i.id.slice(0, i.id.lastIndexOf("#")) === o.name)
        .reduce((a, i) => a + (i.recordsCommitted ?? 0), 0)
    }))

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
  recordsCommitted: 0,
  backpressure: 0,
  creditWaitMs: 0,
  creditWaitAt: 0,
  lastCheckpoint: -1,
  lastAlignmentMs: 0,
  restarts: 0,
  pid: 0,
  host: "",
  rssMb: 0,
  heapMb: 0,
  externalMb: 0,
  rejected: 0,
  rejectedCommands: 0,
  refusedCommits: 0,
  deadLetters: 0
})

const phases: ReadonlySet<string> = new Set<InstancePhase>([
  "idle",
  "restoring",
  "restored",
  "running",
  "failed"
])
/** A figure a heartbeat may carry: finite (a forged NaN or Infinity is not a count). */
const figure = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v)

/** Copies what a report's heartbeat body says into the view; a field it lacks keeps its value. */
export const applyHeartbeat = (
  v: InstanceView,
  hb: Partial<HeartbeatBody> | undefined,
  now = Date.now()
): void => {
  // the body came off the wire: only fields of the right type are taken
  if (typeof hb !== "object" || hb === null) return
  if (typeof hb.phase === "string" && phases.has(hb.phase)) v.phase = hb.phase
  if (figure(hb.creditWaitMs)) {
    // the wait restarts at 0 in every epoch; a drop is a new epoch, not negative backpressure
    const waited = hb.creditWaitMs >= v.creditWaitMs ? hb.creditWaitMs - v.creditWaitMs : hb.creditWaitMs
    const elapsed = now - v.creditWaitAt
    if (v.creditWaitAt > 0 && elapsed > 0) v.backpressure = Math.min(1, waited / elapsed)
    v.creditWaitMs = hb.creditWaitMs
    v.creditWaitAt = now
  }
  // never down: a heartbeat sent before a commit's answer may arrive after the coordinator counted it
  if (figure(hb.recordsCommitted)) v.recordsCommitted = Math.max(v.recordsCommitted, hb.recordsCommitted)
  if (figure(hb.lastCheckpoint)) v.lastCheckpoint = hb.lastCheckpoint
  if (figure(hb.lastAlignmentMs)) v.lastAlignmentMs = hb.lastAlignmentMs
  if (figure(hb.recordsIn)) v.recordsIn = hb.recordsIn
  if (figure(hb.recordsOut)) v.recordsOut = hb.recordsOut
  if (figure(hb.pid)) v.pid = hb.pid
  if (typeof hb.host === "string") v.host = hb.host.slice(0, 255)
  if (figure(hb.rssMb)) v.rssMb = hb.rssMb
  if (figure(hb.heapMb)) v.heapMb = hb.heapMb
  if (figure(hb.externalMb)) v.externalMb = hb.externalMb
  if (figure(hb.rejected)) v.rejected = hb.rejected
  if (figure(hb.rejectedCommands)) v.rejectedCommands = hb.rejectedCommands
  if (figure(hb.refusedCommits)) v.refusedCommits = hb.refusedCommits
  if (figure(hb.deadLetters)) v.deadLetters = hb.deadLetters
  Object.assign(v, eventTimeOf(hb))
}

/** The event-time fields of an instance, as a heartbeat carries them. */
export type EventTimeFields = Pick<
  TaskStats,
  "watermark" | "idle" | "idleInputs" | "timers" | "lateRecords" | "droppedTimers" | "firing"
>

/** The event-time fields of a heartbeat body off the wire: those of the right type only. */
export const eventTimeOf = (hb: Partial<HeartbeatBody> | undefined): EventTimeFields => {
  const out: { -readonly [K in keyof EventTimeFields]?: EventTimeFields[K] } = {}
  if (typeof hb !== "object" || hb === null) return out
  if (figure(hb.watermark)) out.watermark = hb.watermark
  if (typeof hb.idle === "boolean") out.idle = hb.idle
  if (figure(hb.idleInputs)) out.idleInputs = hb.idleInputs
  if (figure(hb.timers)) out.timers = hb.timers
  if (figure(hb.lateRecords)) out.lateRecords = hb.lateRecords
  if (figure(hb.droppedTimers)) out.droppedTimers = hb.droppedTimers
  if (typeof hb.firing === "boolean") out.firing = hb.firing
  return out
}

/** What an operator's instances say of event time, summed (the watermark: their minimum). */
export interface OperatorEventTime {
  readonly operator: string
  /** min over its instances' watermarks (Flink's currentInputWatermark of the operator) */
  readonly watermark: number
  /** now − watermark, ms: how far event time lags the wall clock */
  readonly lagMs: number
  readonly idle: number
  readonly idleInputs: number
  readonly timers: number
  readonly lateRecords: number
  readonly droppedTimers: number
  readonly firing: number
}

/** Per operator with event time (an instance id is `<operator>#<i>`), in first-seen order. */
export const eventTimeByOperator = (
  instances: ReadonlyArray<EventTimeFields & { readonly id: string }>,
  now: number
): Array<OperatorEventTime> => {
  const by = new Map<string, OperatorEventTime>()
  for (const i of instances) {
    if (i.watermark === undefined) continue
    const operator = i.id.slice(0, i.id.lastIndexOf("#"))
    const o = by.get(operator)
    const watermark = Math.min(o?.watermark ?? Number.MAX_SAFE_INTEGER, i.watermark)
    by.set(operator, {
      operator,
      watermark,
      lagMs: Math.max(0, now - watermark),
      idle: (o?.idle ?? 0) + (i.idle === true ? 1 : 0),
      idleInputs: (o?.idleInputs ?? 0) + (i.idleInputs ?? 0),
      timers: (o?.timers ?? 0) + (i.timers ?? 0),
      lateRecords: (o?.lateRecords ?? 0) + (i.lateRecords ?? 0),
      droppedTimers: (o?.droppedTimers ?? 0) + (i.droppedTimers ?? 0),
      firing: (o?.firing ?? 0) + (i.firing === true ? 1 : 0)
    })
  }
  return [...by.values()]
}

/** A watermark as text: an ISO time, or −∞ / END at the ends of event time. */
export const formatWatermark = (w: number): string =>
  w <= Number.MIN_SAFE_INTEGER ? "−∞" : w >= Number.MAX_SAFE_INTEGER ? "END" : new Date(w).toISOString()

/** A lag as text: seconds below 2 min, then minutes, hours, days. */
export const formatLag = (ms: number): string =>
  ms < 120_000
    ? `${(ms / 1000).toFixed(1)} s`
    : ms < 7_200_000
      ? `${(ms / 60_000).toFixed(1)} min`
      : ms < 172_800_000
        ? `${(ms / 3_600_000).toFixed(1)} h`
        : `${(ms / 86_400_000).toFixed(1)} d`

/** The rows of an event-time table (header first), or none when no operator has event time. */
export const eventTimeRows = (ops: ReadonlyArray<OperatorEventTime>): Array<string> =>
  ops.length === 0
    ? []
    : [
        `${"event time".padEnd(16)}${"watermark".padEnd(26)}${"lag".padStart(11)}${"idle".padStart(6)}${"idle in".padStart(9)}${"timers".padStart(9)}${"late".padStart(8)}${"dropped".padStart(9)}${"firing".padStart(8)}`,
        ...ops.map(
          (o) =>
            `${o.operator.padEnd(16)}${formatWatermark(o.watermark).padEnd(26)}${(o.watermark >= Number.MAX_SAFE_INTEGER || o.watermark <= Number.MIN_SAFE_INTEGER ? "" : formatLag(o.lagMs)).padStart(11)}${String(o.idle).padStart(6)}${String(o.idleInputs).padStart(9)}${String(o.timers).padStart(9)}${String(o.lateRecords).padStart(8)}${String(o.droppedTimers).padStart(9)}${String(o.firing).padStart(8)}`
        )
      ]

/** The part of the coordinator's state that a status shows. */
export interface CoordinatorState {
  readonly job: string
  readonly state: JobState
  readonly epoch: number
  readonly reason: string | undefined
  readonly startedAt: number
  readonly recoveries: number
  readonly lastRecoveryReason: string | undefined
  readonly graph: JobGraph
  readonly recoveryLog: ReadonlyArray<RecoveryEvent>
  readonly views: ReadonlyMap<string, InstanceView>
  readonly tracker: CheckpointTracker
  /** messages the coordinator rejected off the wire */
  readonly rejected: number
  /** the checkpoint the job last restored from or completed */
  readonly latest: number | undefined
  readonly rejectedReports: number
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
  rejected: s.rejected,
  ...(s.lastRecoveryReason === undefined ? {} : { lastRecoveryReason: s.lastRecoveryReason }),
  instances: [...s.views.values()],
  graph: s.graph,
  recoveryLog: s.recoveryLog,
  checkpoints: {
    completed: s.tracker.completedCount,
    aborted: s.tracker.abortedCount,
    ...(s.latest === undefined ? {} : { latest: s.latest })
  },
  history: s.tracker.history,
  rejectedReports: s.rejectedReports
})

/** How the job ended, when a stored status says it already has (FINISHED, FAILED or CANCELLED). */
export const endedOutcome = (previous: Partial<JobStatus> | undefined): JobOutcome | undefined =>
  previous?.state !== undefined && isEnded(previous.state)
    ? { state: previous.state, ...(previous.reason === undefined ? {} : { reason: previous.reason }) }
    : undefined
