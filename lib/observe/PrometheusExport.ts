/**
 * `/metrics`: every job's status as Prometheus metrics (prom-client, text exposition format), with
 * labels `job`, `operator`, `subtask` (the instance's index) and `sink`. Checkpoint histograms are
 * fed by each checkpoint the first time a status shows it; the rest is read from the latest
 * statuses at scrape time. Invariant: counters come from counts the instances and coordinator only
 * increase, so they grow within an epoch (records in/out start again at 0 in a new epoch, which
 * Prometheus reads as a counter reset); the names are the ones docs/observe.md lists.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client"
import type { JobStatus } from "../checkpoint/JobStatus.ts"
import type { StatusFeed } from "./StatusFeed.ts"

/** What a recovery's cause text says, as a label value. */
export const recoveryCause = (cause: string): string =>
  /exited/.test(cause)
    ? "process_exit"
    : /new incarnation|restarted/.test(cause)
      ? "process_restart"
      : /missed heartbeats/.test(cause)
        ? "heartbeat_timeout"
        : /consecutive checkpoints failed/.test(cause)
          ? "checkpoint_failures"
          : /^recovery in epoch/.test(cause)
            ? "recovery_failed"
            : "instance_failed"

const split = (id: string) => {
  const at = id.lastIndexOf("#")
  return { operator: id.slice(0, at), subtask: id.slice(at + 1) }
}

/** Every metric `/metrics` exports, with its type: the list docs/observe.md shows. */
export const exportedMetrics = {
  exactor_job_state: "gauge",
  exactor_job_epoch: "gauge",
  exactor_checkpoint_duration_seconds: "histogram",
  exactor_checkpoint_size_bytes: "histogram",
  exactor_checkpoint_alignment_seconds: "histogram",
  exactor_checkpoints_total: "counter",
  exactor_records_in_total: "counter",
  exactor_records_out_total: "counter",
  exactor_sink_records_committed_total: "counter",
  exactor_backpressure_ratio: "gauge",
  exactor_alignment_seconds: "gauge",
  exactor_recoveries_total: "counter",
  exactor_instance_restarts_total: "counter",
  exactor_heartbeat_age_seconds: "gauge",
  exactor_instance_resident_memory_bytes: "gauge",
  exactor_rejected_messages_total: "counter",
  exactor_dead_letters_total: "counter",
  exactor_coordinator_rejected_messages_total: "counter"
} as const

/** A registry whose metrics follow `feed`; `metrics()` renders it. */
export const prometheusExport = (feed: StatusFeed): Registry => {
  const registry = new Registry()
  const all = () => [...feed.statuses().values()]
  const each = (f: (s: JobStatus, i: JobStatus["instances"][number]) => void) => {
    for (const s of all()) for (const i of s.instances) f(s, i)
  }
  const registers = [registry]

  new Gauge({
    name: "exactor_job_state",
    help: "1 for the job's current state (WAITING, RESTORING, RUNNING, FINISHING, CANCELLING, FINISHED, FAILED, CANCELLED)",
    labelNames: ["job", "state"],
    registers,
    collect() {
      this.reset()
      for (const s of all()) this.set({ job: s.job, state: s.state }, 1)
    }
  })
  new Gauge({
    name: "exactor_job_epoch",
    help: "the job's current epoch (+1 at every recovery)",
    labelNames: ["job"],
    registers,
    collect() {
      this.reset()
      for (const s of all()) this.set({ job: s.job }, s.epoch)
    }
  })
  const duration = new Histogram({
    name: "exactor_checkpoint_duration_seconds",
    help: "from trigger to the last acknowledgement, of completed checkpoints",
    labelNames: ["job"],
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers
  })
  const size = new Histogram({
    name: "exactor_checkpoint_size_bytes",
    help: "total snapshot bytes of completed checkpoints",
    labelNames: ["job"],
    buckets: [1024, 8192, 65_536, 262_144, 1_048_576, 4_194_304, 16_777_216, 67_108_864, 268_435_456],
    registers
  })
  const alignment = new Histogram({
    name: "exactor_checkpoint_alignment_seconds",
    help: "the longest barrier alignment of any instance, of completed checkpoints",
    labelNames: ["job"],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers
  })
  new Counter({
    name: "exactor_checkpoints_total",
    help: "checkpoints that ended, by status (completed, aborted) since the job's run started",
    labelNames: ["job", "status"],
    registers,
    collect() {
      this.reset()
      for (const s of all()) {
        this.inc({ job: s.job, status: "completed" }, s.checkpoints.completed)
        this.inc({ job: s.job, status: "aborted" }, s.checkpoints.aborted)
      }
    }
  })
  new Counter({
    name: "exactor_records_in_total",
    help: "records an instance received (a source: read) in the current epoch",
    labelNames: ["job", "operator", "subtask"],
    registers,
    collect() {
      this.reset()
      each((s, i) => this.inc({ job: s.job, ...split(i.id) }, i.recordsIn))
    }
  })
  new Counter({
    name: "exactor_records_out_total",
    help: "records an instance emitted (a sink: wrote into its transaction) in the current epoch",
    labelNames: ["job", "operator", "subtask"],
    registers,
    collect() {
      this.reset()
      each((s, i) => this.inc({ job: s.job, ...split(i.id) }, i.recordsOut))
    }
  })
  new Counter({
    name: "exactor_sink_records_committed_total",
    help: "records a sink instance has committed (visible downstream), across epochs",
    labelNames: ["job", "sink", "subtask"],
    registers,
    collect() {
      this.reset()
      for (const s of all()) {
        const sinks = new Set((s.graph?.operators ?? []).filter((o) => o.kind === "sink").map((o) => o.name))
        for (const i of s.instances) {
          const { operator, subtask } = split(i.id)
          if (sinks.has(operator)) this.inc({ job: s.job, sink: operator, subtask }, i.recordsCommitted ?? 0)
        }
      }
    }
  })
  new Gauge({
    name: "exactor_backpressure_ratio",
    help: "share of the time between two heartbeats an instance waited for credit (0..1)",
    labelNames: ["job", "operator", "subtask"],
    registers,
    collect() {
      this.reset()
      each((s, i) => this.set({ job: s.job, ...split(i.id) }, i.backpressure ?? 0))
    }
  })
  new Gauge({
    name: "exactor_alignment_seconds",
    help: "barrier alignment of an instance's last checkpoint",
    labelNames: ["job", "operator", "subtask"],
    registers,
    collect() {
      this.reset()
      each((s, i) => this.set({ job: s.job, ...split(i.id) }, (i.lastAlignmentMs ?? 0) / 1000))
    }
  })
  new Counter({
    name: "exactor_recoveries_total",
    help: "recoveries (new epochs after a failure) since the job's run started, by cause",
    labelNames: ["job", "cause"],
    registers,
    collect() {
      this.reset()
      for (const s of all()) {
        const log = s.recoveryLog ?? []
        for (const r of log) this.inc({ job: s.job, cause: recoveryCause(r.cause) }, 1)
        if (s.recoveries > log.length) this.inc({ job: s.job, cause: "unlogged" }, s.recoveries - log.length)
      }
    }
  })
  new Counter({
    name: "exactor_instance_restarts_total",
    help: "times the coordinator saw an instance's process exit or come back as a new incarnation",
    labelNames: ["job", "operator", "subtask"],
    registers,
    collect() {
      this.reset()
      each((s, i) => this.inc({ job: s.job, ...split(i.id) }, i.restarts))
    }
  })
  new Gauge({
    name: "exactor_heartbeat_age_seconds",
    help: "time since the coordinator last heard from an instance",
    labelNames: ["job", "operator", "subtask"],
    registers,
    collect() {
      this.reset()
      const now = Date.now()
      each((s, i) => {
        if (i.lastSeen > 0) this.set({ job: s.job, ...split(i.id) }, Math.max(0, now - i.lastSeen) / 1000)
      })
    }
  })
  new Gauge({
    name: "exactor_instance_resident_memory_bytes",
    help: "resident set size of an instance's process, from its last heartbeat",
    labelNames: ["job", "operator", "subtask"],
    registers,
    collect() {
      this.reset()
      each((s, i) => this.set({ job: s.job, ...split(i.id) }, (i.rssMb ?? 0) * 1_048_576))
    }
  })

  new Counter({
    name: "exactor_rejected_messages_total",
    help: "messages an instance's process rejected off the wire (malformed, or on the wrong subject) since it started",
    labelNames: ["job", "operator", "subtask"],
    registers,
    collect() {
      this.reset()
      each((s, i) => this.inc({ job: s.job, ...split(i.id) }, i.rejected ?? 0))
    }
  })
  new Counter({
    name: "exactor_dead_letters_total",
    help: "records an instance sent to its dead-letter output (policy deadLetter) in the current epoch",
    labelNames: ["job", "operator", "subtask"],
    registers,
    collect() {
      this.reset()
      each((s, i) => this.inc({ job: s.job, ...split(i.id) }, i.deadLetters ?? 0))
    }
  })
  new Counter({
    name: "exactor_coordinator_rejected_messages_total",
    help: "messages the job's coordinator rejected on the coordinator and admin subjects since it started",
    labelNames: ["job"],
    registers,
    collect() {
      this.reset()
      for (const s of all()) this.inc({ job: s.job }, s.rejected ?? 0)
    }
  })

  // Histograms take each completed checkpoint once, when a status first shows it.
  const observed = new Map<string, number>()
  const observe = (s: JobStatus) => {
    const last = observed.get(s.job) ?? -1
    for (const c of s.history)
      if (c.n > last && c.status === "completed") {
        duration.observe({ job: s.job }, c.durationMs / 1000)
        size.observe({ job: s.job }, c.size)
        alignment.observe({ job: s.job }, c.alignmentMs / 1000)
      }
    const newest = s.history.reduce((m, c) => Math.max(m, c.n), last)
    observed.set(s.job, newest)
  }
  for (const s of all()) observe(s)
  feed.subscribe(observe)
  return registry
}
