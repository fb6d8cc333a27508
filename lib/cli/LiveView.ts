/**
 * The live terminal view of a running job (`npm start`, `exactor run`): records/s, progress,
 * per-operator counts, restarts, epoch and checkpoints, redrawn in place with log-update from
 * the instances' heartbeats. Invariants: it only listens; nothing it does affects the job; the
 * progress bar follows the sinks' committed records (visible downstream), not those received.
 */
import logUpdate from "log-update"
import * as Effect from "effect/Effect"
import type { HeartbeatBody } from "../runtime/Actor.ts"
import {
  type EventTimeFields,
  eventTimeByOperator,
  eventTimeOf,
  eventTimeRows
} from "../checkpoint/JobStatus.ts"
import { Subjects } from "../core/Address.ts"
import { decode, EnvelopeDecodeError } from "../runtime/Envelope.ts"
import type { LauncherEvent } from "../process/Launcher.ts"
import type { NatsConnection } from "../runtime/Nats.ts"
import type { JobPlan } from "../api/Pipeline.ts"

interface Seen {
  recordsIn: number
  recordsOut: number
  recordsCommitted: number
  phase: string
  epoch: number
  lastCheckpoint: number
  /** event time, absent without it */
  eventTime: EventTimeFields
}

export interface LiveView {
  readonly onLauncherEvent: (e: LauncherEvent) => void
  /** the final figures, for the summary */
  readonly snapshot: () => ViewFigures
}

export interface ViewFigures {
  readonly elapsedMs: number
  /** records the sinks received this epoch */
  readonly sinkRecords: number
  /** records the sinks have committed (visible downstream), across epochs */
  readonly sinkCommitted: number
  readonly perOperator: ReadonlyArray<{
    readonly operator: string
    readonly recordsIn: number
    readonly recordsOut: number
    readonly recordsCommitted: number
    readonly parallelism: number
  }>
  readonly restarts: number
  readonly kills: ReadonlyArray<string>
  readonly epoch: number
  readonly lastCheckpoint: number
}

/** The bar's fraction: committed over expected, and 1 only when every expected record is committed. */
export const progress = (committed: number, expected: number): number =>
  committed >= expected ? 1 : Math.min(committed / expected, (expected - 1) / expected)

/** A text progress bar; full only at fraction 1. */
export const bar = (fraction: number, width = 30) => {
  const f = Math.max(0, Math.min(1, fraction))
  const full = f >= 1 ? width : Math.min(width - 1, Math.round(f * width))
  return `[${"#".repeat(full)}${".".repeat(width - full)}]`
}

/** Subscribes to the job's coordinator subject and redraws every 250 ms while the scope is open. */
export const liveView = (nc: NatsConnection, plan: JobPlan, expected: number | undefined, enabled: boolean) =>
  Effect.gen(function* () {
    const subjects = new Subjects(plan.pipeline.job)
    const seen = new Map<string, Seen>()
    const started = Date.now()
    let restarts = 0
    const kills: Array<string> = []
    let lastSink = 0
    let lastAt = started
    let rate = 0
    const sub = yield* Effect.acquireRelease(
      Effect.sync(() =>
        nc.subscribe(subjects.coordinator, {
          callback: (_e, msg) => {
            const r = decode(subjects.coordinator, msg.data)
            if (r instanceof EnvelopeDecodeError || r.k !== "heartbeat") return
            const b = ("b" in r ? r.b : undefined) as Partial<HeartbeatBody> | undefined
            // the body came off the wire: a field of the wrong type counts as absent
            const n = (v: unknown, otherwise: number) =>
              typeof v === "number" && Number.isFinite(v) ? v : otherwise
            seen.set(r.c, {
              recordsIn: n(b?.recordsIn, 0),
              recordsOut: n(b?.recordsOut, 0),
              recordsCommitted: n(b?.recordsCommitted, 0),
              phase: typeof b?.phase === "string" ? b.phase : "?",
              epoch: r.e,
              lastCheckpoint: n(b?.lastCheckpoint, -1),
              eventTime: eventTimeOf(b)
            })
          }
        })
      ),
      (s) => Effect.sync(() => s.unsubscribe())
    )
    void sub
    const figures = (): ViewFigures => {
      const perOperator = [...plan.operator.values()].map((node) => {
        let recordsIn = 0
        let recordsOut = 0
        let recordsCommitted = 0
        for (let i = 0; i < node.parallelism; i++) {
          const s = seen.get(`${node.name}#${i}`)
          recordsIn += s?.recordsIn ?? 0
          recordsOut += s?.recordsOut ?? 0
          recordsCommitted += s?.recordsCommitted ?? 0
        }
        return { operator: node.name, recordsIn, recordsOut, recordsCommitted, parallelism: node.parallelism }
      })
      const sinks = perOperator.filter((o) => plan.operator.get(o.operator)!.declaration.kind === "sink")
      const sinkRecords = sinks.reduce((a, o) => a + o.recordsOut, 0)
      const sinkCommitted = sinks.reduce((a, o) => a + o.recordsCommitted, 0)
      let epoch = 0
      let lastCheckpoint = -1
      for (const s of seen.values()) {
        epoch = Math.max(epoch, s.epoch)
        lastCheckpoint = Math.max(lastCheckpoint, s.lastCheckpoint)
      }
      return {
        elapsedMs: Date.now() - started,
        sinkRecords,
        sinkCommitted,
        perOperator,
        restarts,
        kills,
        epoch,
        lastCheckpoint
      }
    }
    const render = () => {
      const f = figures()
      const now = Date.now()
      if (now - lastAt >= 1000) {
        rate = ((f.sinkCommitted - lastSink) * 1000) / (now - lastAt)
        lastSink = f.sinkCommitted
        lastAt = now
      }
      const n = (x: number) => x.toLocaleString("en")
      const lines = [
        `exactor · job ${plan.pipeline.job} · ${(f.elapsedMs / 1000).toFixed(1)} s · epoch ${f.epoch} · checkpoint ${Math.max(f.lastCheckpoint, 0)} · restarts ${restarts}`,
        expected
          ? `${bar(progress(f.sinkCommitted, expected))} ${n(f.sinkCommitted)} / ${n(expected)} committed · ${n(f.sinkRecords)} received at the sink (this epoch) · ${n(Math.round(rate))} committed/s`
          : `${n(f.sinkCommitted)} records committed · ${n(f.sinkRecords)} received at the sink (this epoch) · ${n(Math.round(rate))} committed/s`,
        "",
        `${"operator".padEnd(16)}${"instances".padStart(10)}${"records in".padStart(14)}${"records out".padStart(14)}${"committed".padStart(14)}`,
        ...f.perOperator.map(
          (o) =>
            `${o.operator.padEnd(16)}${String(o.parallelism).padStart(10)}${n(o.recordsIn).padStart(14)}${n(o.recordsOut).padStart(14)}${(plan.operator.get(o.operator)!.declaration.kind === "sink" ? n(o.recordsCommitted) : "").padStart(14)}`
        )
      ]
      const eventTime = eventTimeRows(
        eventTimeByOperator(
          [...seen].map(([id, v]) => ({ id, ...v.eventTime })),
          now
        )
      )
      if (eventTime.length > 0) lines.push("", ...eventTime)
      if (kills.length > 0) lines.push("", `process exits: ${kills.slice(-4).join(", ")}`)
      logUpdate(lines.join("\n"))
    }
    if (enabled) {
      const timer = setInterval(render, 250)
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          clearInterval(timer)
          render()
          logUpdate.done()
        })
      )
    }
    const view: LiveView = {
      onLauncherEvent: (e) => {
        if (e.kind === "restarting") restarts++
        if (e.kind === "exited" && (e.code ?? 0) !== 0)
          kills.push(`${e.name} (${e.signal ?? `code ${e.code}`})`)
      },
      snapshot: figures
    }
    return view
  })
