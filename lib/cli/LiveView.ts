/**
 * The live terminal view of a running job (`npm start`, `exactor run`): records/s, progress,
 * per-operator counts, restarts, epoch and checkpoints, redrawn in place with log-update from
 * the instances' heartbeats. Invariant: it only listens; nothing it does affects the job.
 */
import logUpdate from "log-update"
import * as Effect from "effect/Effect"
import type { HeartbeatBody } from "../runtime/Actor.ts"
import { Subjects } from "../core/Address.ts"
import { decode, EnvelopeDecodeError } from "../runtime/Envelope.ts"
import type { LauncherEvent } from "../process/Launcher.ts"
import type { NatsConnection } from "../runtime/Nats.ts"
import type { JobPlan } from "../api/Pipeline.ts"

interface Seen {
  recordsIn: number
  recordsOut: number
  phase: string
  epoch: number
  lastCheckpoint: number
}

export interface LiveView {
  readonly onLauncherEvent: (e: LauncherEvent) => void
  /** the final figures, for the summary */
  readonly snapshot: () => ViewFigures
}

export interface ViewFigures {
  readonly elapsedMs: number
  readonly sinkRecords: number
  readonly perOperator: ReadonlyArray<{
    readonly operator: string
    readonly recordsIn: number
    readonly recordsOut: number
    readonly parallelism: number
  }>
  readonly restarts: number
  readonly kills: ReadonlyArray<string>
  readonly epoch: number
  readonly lastCheckpoint: number
}

const bar = (fraction: number, width = 30) => {
  const full = Math.round(Math.max(0, Math.min(1, fraction)) * width)
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
            seen.set(r.c, {
              recordsIn: b?.recordsIn ?? 0,
              recordsOut: b?.recordsOut ?? 0,
              phase: b?.phase ?? "?",
              epoch: r.e,
              lastCheckpoint: b?.lastCheckpoint ?? -1
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
        for (let i = 0; i < node.parallelism; i++) {
          const s = seen.get(`${node.name}#${i}`)
          recordsIn += s?.recordsIn ?? 0
          recordsOut += s?.recordsOut ?? 0
        }
        return { operator: node.name, recordsIn, recordsOut, parallelism: node.parallelism }
      })
      const sinkRecords = perOperator
        .filter((o) => plan.operator.get(o.operator)!.declaration.kind === "sink")
        .reduce((a, o) => a + o.recordsOut, 0)
      let epoch = 0
      let lastCheckpoint = -1
      for (const s of seen.values()) {
        epoch = Math.max(epoch, s.epoch)
        lastCheckpoint = Math.max(lastCheckpoint, s.lastCheckpoint)
      }
      return {
        elapsedMs: Date.now() - started,
        sinkRecords,
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
        rate = ((f.sinkRecords - lastSink) * 1000) / (now - lastAt)
        lastSink = f.sinkRecords
        lastAt = now
      }
      const lines = [
        `exactor · job ${plan.pipeline.job} · ${(f.elapsedMs / 1000).toFixed(1)} s · epoch ${f.epoch} · checkpoint ${Math.max(f.lastCheckpoint, 0)} · restarts ${restarts}`,
        expected
          ? `${bar(f.sinkRecords / expected)} ${f.sinkRecords.toLocaleString("en")} / ${expected.toLocaleString("en")} at the sink (this epoch) · ${Math.round(rate).toLocaleString("en")} records/s`
          : `${f.sinkRecords.toLocaleString("en")} records at the sink (this epoch) · ${Math.round(rate).toLocaleString("en")} records/s`,
        "",
        `${"operator".padEnd(16)}${"instances".padStart(10)}${"records in".padStart(14)}${"records out".padStart(14)}`,
        ...f.perOperator.map(
          (o) =>
            `${o.operator.padEnd(16)}${String(o.parallelism).padStart(10)}${o.recordsIn.toLocaleString("en").padStart(14)}${o.recordsOut.toLocaleString("en").padStart(14)}`
        )
      ]
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
