/**
 * The report of one chaos run: the Jepsen-style verdict of the output, the faults injected, what
 * the job went through (recoveries, checkpoints), wall time and actor memory, as a table and as
 * JSON. Invariant: `ok` is true only if the job FINISHED, lost, duplicated and unexpected are 0
 * and every customer's running totals form one unbroken chain (`exactlyOnce`).
 */
import type { SinkVerdict } from "./JobSpec.ts"
import { exactlyOnce, formatVerdict, type Verdict } from "./OutputCheck.ts"
import type { KilledKind } from "./Nemesis.ts"
import { type PostgresOutputCounts, postgresOutputOk } from "./PostgresOutputCheck.ts"
import { redactUrl } from "../internal/redactUrl.ts"

/** One fault as it was done, `at` ms after the first `running` heartbeats. */
export interface FaultEvent {
  readonly at: number
  readonly fault: "kill" | "pause" | "natsRestart" | "rabbitmqCrash" | "postgresCrash"
  readonly target: string
  readonly pid?: number
  /** pause length in ms */
  readonly ms?: number
  /** a kill sent when the target's heartbeat said it was firing a burst of timers (`firingKills`) */
  readonly firing?: boolean
}

/** VmRSS per process name (KiB), with the pid it was read from. */
export type MemorySample = Record<string, { readonly pid: number; readonly rssKiB: number }>

export interface ChaosReport {
  readonly module: string
  readonly job: string
  readonly stream: string
  readonly queue: string
  readonly natsUrl: string
  readonly seed: number
  readonly records: number
  readonly intervalMs: number
  readonly kinds: ReadonlyArray<string>
  readonly pause: boolean
  readonly natsRestartsEnabled: boolean
  readonly deadlineMs: number
  /** the job ended FINISHED before the deadline */
  readonly finished: boolean
  /** `exactor run`'s exit code (null: stopped at the deadline) */
  readonly exitCode: number | null
  readonly state: string | undefined
  readonly reason: string | undefined
  /** the sum over every sink (for a job with a jobSpec) or the orders sink's verdict */
  readonly verdict: Verdict
  /** a job with a jobSpec: each sink's verdict */
  readonly sinks?: ReadonlyArray<SinkVerdict>
  readonly kills: Readonly<Record<KilledKind, number>>
  /** of the keyed kills, those sent while the target said it was firing timers (`firingKills`) */
  readonly firingKills: number
  readonly pauses: number
  /** pauses longer than the heartbeat timeout (the instance is declared dead: a zombie) */
  readonly longPauses: number
  readonly natsRestarts: number
  /** kill -9 + restarts of the private RabbitMQ node (`--rabbitmq-crashes`), and how many were asked for */
  readonly rabbitmqCrashes?: {
    readonly done: number
    readonly asked: number
    readonly output: "queue" | "stream"
  }
  /** a run writing into PostgreSQL: the private server's crashes and what plain SQL says of the table */
  readonly postgres?: PostgresOutputCounts & {
    readonly url: string
    readonly table: string
    readonly crashes: number
  }
  readonly faults: ReadonlyArray<FaultEvent>
  /** epochs the job went through after its first one */
  readonly recoveries: number
  readonly epochs: { readonly first: number; readonly last: number }
  /** summed over every coordinator process (each counts from 0) */
  readonly checkpoints: { readonly completed: number; readonly aborted: number; readonly latest: number }
  readonly wallMs: number
  readonly memory: { readonly start: MemorySample; readonly end: MemorySample }
  /** where the `exactor run` child's output (every process, prefixed) went */
  readonly log: string
  readonly ok: boolean
}

export const reportOk = (r: Omit<ChaosReport, "ok">): boolean =>
  r.finished &&
  exactlyOnce(r.verdict) &&
  (r.sinks ?? []).every((s) => exactlyOnce(s.verdict)) &&
  (r.postgres === undefined || postgresOutputOk(r.postgres))

const mib = (kib: number | undefined) => (kib === undefined ? "-" : `${(kib / 1024).toFixed(1)} MiB`)

const memoryTable = (m: ChaosReport["memory"]): Array<string> => {
  const names = [...new Set([...Object.keys(m.start), ...Object.keys(m.end)])].sort()
  if (names.length === 0) return ["  (no /proc: not measured)"]
  const sum = (s: MemorySample) => Object.values(s).reduce((a, b) => a + b.rssKiB, 0)
  return [
    `  ${"process".padEnd(14)}${"start".padStart(12)}${"end".padStart(12)}`,
    ...names.map(
      (n) => `  ${n.padEnd(14)}${mib(m.start[n]?.rssKiB).padStart(12)}${mib(m.end[n]?.rssKiB).padStart(12)}`
    ),
    `  ${"total".padEnd(14)}${mib(sum(m.start)).padStart(12)}${mib(sum(m.end)).padStart(12)}`
  ]
}

/** The one-screen table printed at the end of a chaos run. */
export const formatChaosReport = (r: ChaosReport): string => {
  const k = r.kills
  const killed = k.source + k.keyed + k.sink + k.coordinator + k.other
  const rule = (title: string) => `── ${title} ${"─".repeat(Math.max(4, 60 - title.length))}`
  return [
    rule(`chaos: job ${r.job}, ${r.records} ${r.sinks ? "records" : "orders"}, seed ${r.seed}`),
    ...(r.sinks
      ? r.sinks.flatMap((s) => [rule(`sink ${s.sink} (queue ${s.queue})`), formatVerdict(s.verdict)])
      : [formatVerdict(r.verdict)]),
    rule("faults"),
    `${"kills".padEnd(12)}${killed}: source ${k.source}, keyed ${k.keyed}, sink ${k.sink}, coordinator ${k.coordinator}, other ${k.other}${r.firingKills > 0 ? ` (${r.firingKills} keyed while firing timers)` : ""}`,
    `${"pauses".padEnd(12)}${r.pauses} SIGSTOP/SIGCONT (${r.longPauses} longer than the heartbeat timeout)`,
    `${"NATS".padEnd(12)}${r.natsRestarts} restarts${r.natsRestartsEnabled ? ` of the private server ${redactUrl(r.natsUrl)}` : ""}`,
    ...(r.rabbitmqCrashes
      ? [
          `${"RabbitMQ".padEnd(12)}${r.rabbitmqCrashes.done} of ${r.rabbitmqCrashes.asked} kill -9 + restarts of the private node (output: a ${r.rabbitmqCrashes.output})`
        ]
      : []),
    ...(r.postgres
      ? [
          `${"PostgreSQL".padEnd(12)}${r.postgres.crashes} crashes (kill -9 + restart) of the private server; table ${r.postgres.table}: ${r.postgres.rows} rows, ${r.postgres.distinctOrders} order ids, ${r.postgres.duplicateRows} duplicate rows (SQL GROUP BY), ${r.postgres.preparedLeft} prepared transactions left`
        ]
      : []),
    rule("job"),
    `${"state".padEnd(12)}${r.state ?? "?"}${r.finished ? "" : ` (did not finish${r.reason ? `: ${r.reason}` : ""})`}, exit ${r.exitCode ?? "none (stopped at the deadline)"}`,
    `${"recoveries".padEnd(12)}${r.recoveries} (epochs ${r.epochs.first} → ${r.epochs.last})`,
    `${"checkpoints".padEnd(12)}${r.checkpoints.completed} completed, ${r.checkpoints.aborted} aborted (latest ${r.checkpoints.latest})`,
    `${"wall time".padEnd(12)}${(r.wallMs / 1000).toFixed(1)} s`,
    rule("actor memory (VmRSS)"),
    ...memoryTable(r.memory),
    "",
    `logs: ${r.log}   repeat: --seed ${r.seed}`,
    r.ok ? "exactly once: yes" : "exactly once: NO"
  ].join("\n")
}
