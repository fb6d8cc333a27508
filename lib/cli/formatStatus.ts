/**
 * Renders a job's status record (written by its coordinator every second) as the text of
 * `exactor status`: state, epoch, committed output per sink, instances with records in/out,
 * committed, backpressure, restarts and messages rejected off the wire, last checkpoints, and
 * forged control messages refused, dead letters sent, and per operator with event time its
 * watermark, its lag behind the wall clock, idle inputs, timers pending and late records.
 */
import {
  committedBySink,
  eventTimeByOperator,
  eventTimeRows,
  type JobStatus
} from "../checkpoint/JobStatus.ts"

const ago = (ms: number) => (ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`)

export const formatStatus = (s: JobStatus, now = Date.now()): string => {
  const committed = committedBySink(s)
  const lines = [
    `job ${s.job}: ${s.state}${s.reason ? ` (${s.reason})` : ""}`,
    `epoch ${s.epoch} · recoveries ${s.recoveries}${s.lastRecoveryReason ? ` (last: ${s.lastRecoveryReason})` : ""} · status written ${ago(now - s.updatedAt)} ago`,
    ...(s.rejected ? [`coordinator rejected ${s.rejected} malformed messages`] : []),
    `checkpoints: ${s.checkpoints.completed} completed, ${s.checkpoints.aborted} aborted${s.checkpoints.latest !== undefined ? `, latest ${s.checkpoints.latest}` : ""}`,
    ...(committed.length > 0
      ? [`committed: ${committed.map((c) => `${c.sink} ${c.committed}`).join(", ")}`]
      : []),
    "",
    `${"instance".padEnd(16)}${"state".padEnd(11)}${"records in".padStart(12)}${"records out".padStart(13)}${"committed".padStart(11)}${"backpr.".padStart(9)}${"restarts".padStart(10)}${"rejected".padStart(10)}${"rss MB".padStart(8)}${"pid".padStart(9)}  host`,
    ...s.instances.map(
      (i) =>
        `${i.id.padEnd(16)}${String(i.phase).padEnd(11)}${String(i.recordsIn).padStart(12)}${String(i.recordsOut).padStart(13)}${String(i.recordsCommitted ?? 0).padStart(11)}${`${Math.round((i.backpressure ?? 0) * 100)} %`.padStart(9)}${String(i.restarts).padStart(10)}${String(i.rejected ?? 0).padStart(10)}${String(i.rssMb ?? "").padStart(8)}${String(i.pid).padStart(9)}  ${i.host}`
    )
  ]
  const eventTime = eventTimeRows(eventTimeByOperator(s.instances, now))
  if (eventTime.length > 0) lines.push("", ...eventTime)
  const dead = s.instances.filter((i) => (i.deadLetters ?? 0) > 0)
  if (dead.length > 0)
    lines.push(
      "",
      `dead letters this epoch: ${dead.map((i) => `${i.id} ${i.deadLetters}`).join(", ")} (written exactly once by the sink of each operator's deadLetters output)`
    )
  const forged = s.instances.filter((i) => (i.rejectedCommands ?? 0) > 0 || (i.refusedCommits ?? 0) > 0)
  if (forged.length > 0 || (s.rejectedReports ?? 0) > 0)
    lines.push(
      "",
      `refused: ${[
        ...((s.rejectedReports ?? 0) > 0
          ? [`coordinator ${s.rejectedReports} reports without a valid tag`]
          : []),
        ...forged.map(
          (i) =>
            `${i.id} ${i.rejectedCommands ?? 0} commands without a valid tag, ${i.refusedCommits ?? 0} commits of checkpoints not completed`
        )
      ].join("; ")}`
    )
  if (s.history.length > 0) {
    lines.push(
      "",
      `${"checkpoint".padEnd(12)}${"kind".padEnd(12)}${"status".padEnd(11)}${"duration".padStart(10)}${"alignment".padStart(11)}${"size".padStart(12)}`
    )
    for (const c of s.history.slice(-10))
      lines.push(
        `${String(c.n).padEnd(12)}${c.kind.padEnd(12)}${c.status.padEnd(11)}${`${c.durationMs} ms`.padStart(10)}${`${c.alignmentMs} ms`.padStart(11)}${`${c.size} B`.padStart(12)}${c.reason ? `  ${c.reason}` : ""}`
      )
  }
  return lines.join("\n")
}
