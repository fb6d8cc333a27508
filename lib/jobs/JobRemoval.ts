/**
 * lib/jobs/ — a job's lifecycle beyond one run: removing what a finished or cancelled job left on
 * both brokers (this file). Imports checkpoint/ and below, connectors/ and brokers/.
 *
 * `exactor delete <job>`: removes the job's checkpoint store (KV bucket and Object Store
 * `exactor-<job>`: manifests, savepoints, snapshots, status), its bounded sources' recorded ends,
 * and its sinks' lock and marker queues. Invariant: nothing is removed while the job runs (its
 * status is fresh and not ended, or a sink still holds its lock); the output itself stays.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import {
  findJob,
  isRunning,
  readJobStatus,
  readLatestParallelism,
  removeJobStore
} from "../checkpoint/JobCatalog.ts"
import { clearJobBoundedEnds } from "../connectors/jetstream/BoundedEnd.ts"
import { deleteSinkQueues } from "../connectors/rabbitmq/SinkQueues.ts"
import type { NatsConnection } from "../runtime/Nats.ts"

export class JobNotFound extends Data.TaggedError("JobNotFound")<{ readonly job: string }> {
  override get message(): string {
    return `job ${this.job} is not known to this NATS server (no KV bucket exactor-${this.job})`
  }
}

export class JobStillRunning extends Data.TaggedError("JobStillRunning")<{
  readonly job: string
  readonly state: string
  readonly statusAgeMs: number
}> {
  override get message(): string {
    return `job ${this.job} is ${this.state} (status written ${Math.round(this.statusAgeMs / 1000)} s ago): cancel it first (exactor cancel ${this.job})`
  }
}

/** What `deleteJob` removed, in the words `exactor delete` prints. */
export interface JobRemoved {
  readonly job: string
  readonly removed: ReadonlyArray<string>
}

/** Removes everything of `job` on both brokers; refuses while it runs. */
export const deleteJob = (nc: NatsConnection, amqpUrl: string, job: string) =>
  Effect.gen(function* () {
    const summary = yield* findJob(nc, job)
    if (summary === undefined) return yield* new JobNotFound({ job })
    if (isRunning(summary))
      return yield* new JobStillRunning({
        job,
        state: summary.state,
        statusAgeMs: Date.now() - (summary.updatedAt ?? 0)
      })
    const status = yield* readJobStatus(nc, job)
    // the status names the sinks; without one, any operator of the latest manifest may be a sink
    const sinks =
      status?.graph?.operators
        .filter((o) => o.kind === "sink")
        .map((o) => [o.name, o.parallelism] as const) ??
      Object.entries((yield* readLatestParallelism(nc, job)) ?? {})
    const removed: Array<string> = []
    for (const [sink, parallelism] of sinks)
      for (const q of yield* deleteSinkQueues(amqpUrl, job, sink, parallelism))
        removed.push(`RabbitMQ queue ${q}`)
    const ends = yield* clearJobBoundedEnds(nc, job)
    if (ends > 0)
      removed.push(`${ends} bounded-source end record${ends === 1 ? "" : "s"} in KV exactor-source-bounds`)
    removed.push(...(yield* removeJobStore(nc, job)))
    const result: JobRemoved = { job, removed }
    return result
  })
