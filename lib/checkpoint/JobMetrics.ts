/**
 * The coordinator's figures as Effect metrics (checkpoint duration, alignment time and size,
 * checkpoints completed/aborted, recoveries, epoch), exported in Prometheus text format into the
 * job's status record, so `exactor status <job> --metrics` prints them. Same words as the README.
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import { PrometheusMetrics } from "effect/observability"
import type { CheckpointStats } from "./CheckpointTracker.ts"

const msBoundaries = Metric.exponentialBoundaries({ start: 1, factor: 2, count: 16 })

const checkpointDuration = Metric.histogram("exactor_checkpoint_duration_ms", {
  description: "from trigger to the last ack of a completed checkpoint",
  boundaries: msBoundaries
})
const alignmentTime = Metric.histogram("exactor_checkpoint_alignment_ms", {
  description: "the longest barrier alignment of any instance in a completed checkpoint",
  boundaries: msBoundaries
})
const snapshotSize = Metric.gauge("exactor_checkpoint_size_bytes", {
  description: "total snapshot size of the last completed checkpoint"
})
const completed = Metric.counter("exactor_checkpoints_completed_total", { incremental: true })
const aborted = Metric.counter("exactor_checkpoints_aborted_total", { incremental: true })
const recoveries = Metric.counter("exactor_recoveries_total", { incremental: true })
const epochGauge = Metric.gauge("exactor_epoch", { description: "the job's current epoch" })

export const recordCheckpoint = (s: CheckpointStats): Effect.Effect<void> =>
  s.status === "completed"
    ? Effect.all(
        [
          Metric.update(checkpointDuration, s.durationMs),
          Metric.update(alignmentTime, s.alignmentMs),
          Metric.update(snapshotSize, s.size),
          Metric.update(completed, 1)
        ],
        { discard: true }
      )
    : Metric.update(aborted, 1)

export const recordRecovery = (epoch: number): Effect.Effect<void> =>
  Effect.all([Metric.update(recoveries, 1), Metric.update(epochGauge, epoch)], { discard: true })

export const recordEpoch = (epoch: number): Effect.Effect<void> => Metric.update(epochGauge, epoch)

/** Every metric of this process in Prometheus exposition format. */
export const prometheusText: Effect.Effect<string> = PrometheusMetrics.format()
