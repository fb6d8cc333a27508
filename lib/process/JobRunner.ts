/**
 * `exactor run` and `exactor launch`: prepares where a job starts from (afresh, from a checkpoint
 * or savepoint, or resumed) and launches its processes under the supervisor on this host.
 * Invariant: the coordinator always restores the job's `latest` manifest, so choosing where to
 * start means writing `latest` here, before any process starts; checkpoint ids never go back.
 */
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { InstanceId } from "../core/Address.ts"
import { CheckpointStore, type Manifest } from "../checkpoint/CheckpointStore.ts"
import type { JobStatus } from "../checkpoint/JobStatus.ts"
import {
  ExitCode,
  type LauncherEvent,
  type LauncherResult,
  type ProcessSpec,
  runLauncher,
  type SupervisorOptions
} from "./Launcher.ts"
import { type JobSecretError, jobSecret, jobSecretVariable } from "./JobSecret.ts"
import { ControlAuth } from "../runtime/ControlAuth.ts"
import { natsConnection } from "../runtime/Nats.ts"
import type { JobPlan } from "../api/Pipeline.ts"

export class StartPointNotFound extends Data.TaggedError("StartPointNotFound")<{
  readonly job: string
  readonly what: string
  readonly available: ReadonlyArray<string>
}> {
  override get message(): string {
    return `job ${this.job} has no ${this.what}; available: ${this.available.length > 0 ? this.available.join(", ") : "none"}`
  }
}

export type StartFrom =
  | { readonly kind: "fresh" }
  | { readonly kind: "resume" }
  | { readonly kind: "checkpoint"; readonly n: number }
  | { readonly kind: "savepoint"; readonly name: string }

export interface Urls {
  readonly natsUrl: string
  readonly amqpUrl: string
}

/** Writes `latest` so that the coordinator starts where asked, and a fresh status for the new run. */
export const prepareStart = (plan: JobPlan, from: StartFrom, urls: Urls) =>
  Effect.scoped(
    Effect.gen(function* () {
      const job = plan.pipeline.job
      const nc = yield* natsConnection(urls.natsUrl, { name: `${job}/launcher`, job })
      const store = yield* CheckpointStore.open(nc, job)
      const latest = yield* store.readLatest()
      let target: Manifest | undefined
      if (from.kind === "resume") {
        target = undefined
      } else if (from.kind === "checkpoint") {
        const m = yield* store.readCheckpoint(from.n)
        if (!m)
          return yield* new StartPointNotFound({
            job,
            what: `checkpoint ${from.n}`,
            available: (yield* store.listCheckpoints()).map((c) => String(c.checkpoint))
          })
        target = m
      } else if (from.kind === "savepoint") {
        const m = yield* Effect.result(store.readSavepoint(from.name))
        if (m._tag === "Failure")
          return yield* new StartPointNotFound({
            job,
            what: `savepoint ${from.name}`,
            available: (yield* store.listSavepoints()).map((s) => s.name ?? String(s.checkpoint))
          })
        target = m.success
      } else {
        // A fresh run: empty state, but checkpoint ids go on from the last run's, so that a sink's
        // commit marker of an older run can never be mistaken for one of this run.
        target = {
          job,
          checkpoint: latest?.manifest.checkpoint ?? 0,
          epoch: latest?.manifest.epoch ?? 0,
          createdAt: Date.now(),
          kind: "checkpoint",
          handles: {},
          parallelism: {}
        }
        for (const [name, node] of plan.operator) {
          const d = node.declaration
          if (d.kind !== "source" || !d.onFreshStart) continue
          yield* d.onFreshStart({ job, operator: name, index: 0, parallelism: node.parallelism, ...urls })
        }
      }
      if (target) yield* store.commitManifest(target, latest?.revision ?? 0)
      // A new run: the previous run's final state must not end this one.
      const now = Date.now()
      const fresh: JobStatus = {
        job,
        state: "WAITING",
        epoch: (target ?? latest?.manifest)?.epoch ?? 0,
        updatedAt: now,
        startedAt: now,
        recoveries: 0,
        pid: 0,
        instances: [],
        checkpoints: { completed: 0, aborted: 0 },
        history: []
      }
      yield* store.writeStatus(fresh)
    })
  )

export interface LaunchOptions {
  readonly module: string
  readonly plan: JobPlan
  /** instances to start here; all of them plus the coordinator when undefined */
  readonly instances?: ReadonlyArray<string>
  readonly supervisor: SupervisorOptions
  readonly urls: Urls
  /** children's output goes to this file instead of stderr */
  readonly logFile?: string
  readonly onEvent?: (event: LauncherEvent) => void
}

/** Default log file of a job's processes when a live view owns the terminal. */
export const defaultLogFile = (job: string) => join(tmpdir(), `exactor-${job}.log`)

/**
 * Starts the processes on this host and supervises them until the job ends. The job's secret
 * (`JobSecret`: the user's `EXACTOR_JOB_SECRET`, else derived from this user's key file) reaches the
 * children in their environment only.
 */
export const launch = (o: LaunchOptions): Effect.Effect<LauncherResult, JobSecretError> =>
  Effect.scoped(
    Effect.gen(function* () {
      const job = o.plan.pipeline.job
      const secret = yield* jobSecret(job)
      const names = o.instances ?? ["coordinator", ...o.plan.instances.map(String)]
      const specs: Array<ProcessSpec> = names.map((name) =>
        name === "coordinator"
          ? { name, args: ["coordinator", o.module] }
          : { name, args: ["actor", o.module, name] }
      )
      const nc = yield* natsConnection(o.urls.natsUrl, { name: `${job}/launcher`, job }).pipe(Effect.orDie)
      const result = yield* runLauncher({
        job,
        nc,
        specs,
        supervisor: o.supervisor,
        env: {
          EXACTOR_NATS_URL: o.urls.natsUrl,
          EXACTOR_AMQP_URL: o.urls.amqpUrl,
          [jobSecretVariable]: secret
        },
        auth: ControlAuth.fromSecret(secret),
        ...(o.logFile === undefined ? {} : { logFile: o.logFile }),
        ...(o.onEvent === undefined ? {} : { onEvent: o.onEvent })
      })
      if (result.exitCode !== ExitCode.failed) return result
      // the coordinator wrote why in the job's status record
      const reason = yield* CheckpointStore.open(nc, job).pipe(
        Effect.flatMap((store) => store.readStatus()),
        Effect.map((s) => (s as { reason?: string } | undefined)?.reason),
        Effect.orElseSucceed(() => undefined)
      )
      return reason === undefined ? result : { ...result, reason }
    })
  )

/** Checks `--instances` against the plan; `coordinator` is allowed too. */
export const parseInstances = (plan: JobPlan, text: string): ReadonlyArray<string> | StartPointNotFound => {
  const all = new Set(plan.instances.map(String))
  const names = text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
  for (const n of names) {
    if (n === "coordinator") continue
    const id = InstanceId.parse(n)
    if (!(id instanceof InstanceId) || !all.has(String(id)))
      return new StartPointNotFound({
        job: plan.pipeline.job,
        what: `instance ${n}`,
        available: [...all, "coordinator"]
      })
  }
  return names
}
