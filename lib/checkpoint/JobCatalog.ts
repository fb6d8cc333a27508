/**
 * Every job a NATS server knows: one per checkpoint store (the KV bucket `exactor-<job>`, stream
 * `KV_exactor-<job>`), with what its status record says (`exactor jobs`), and the removal of a
 * job's store (KV bucket and Object Store) for `exactor delete`.
 * Invariant: listing only reads (it never creates a bucket); a job's status counts as live only if
 * it is not ended and its coordinator wrote it within `staleAfterMs`.
 */
import { jetstreamManager } from "@nats-io/jetstream"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { causeMessage } from "../internal/causeMessage.ts"
import type { NatsConnection } from "../runtime/Nats.ts"
import { isEnded, type JobState, type JobStatus } from "./JobStatus.ts"
import { packr } from "../internal/msgpack.ts"

export class JobCatalogError extends Data.TaggedError("JobCatalogError")<{
  readonly operation: string
  readonly cause: unknown
}> {
  override get message(): string {
    return `${this.operation}: ${causeMessage(this.cause)}`
  }
}

/** One line of `exactor jobs`. */
export interface JobSummary {
  readonly job: string
  /** the status record's state, or `UNKNOWN` when the job has no status record */
  readonly state: JobState | "UNKNOWN"
  readonly epoch: number
  /** the checkpoint `latest` names, if any */
  readonly latestCheckpoint: number | undefined
  readonly startedAt: number | undefined
  readonly updatedAt: number | undefined
  /** not ended, but its coordinator has not written its status for `staleAfterMs`: probably gone */
  readonly stale: boolean
  readonly reason: string | undefined
}

/** A status written less recently than this by a job that has not ended means its coordinator is gone. */
export const staleAfterMs = 10_000

const prefix = "KV_exactor-"
/** The bucket a bounded JetStream source keeps its ends in by default; not a job. */
const sharedBuckets = new Set(["exactor-source-bounds"])

const io = <A>(operation: string, f: () => Promise<A>) =>
  Effect.tryPromise({ try: f, catch: (cause) => new JobCatalogError({ operation, cause }) })

/** The stream names behind a job's checkpoint store. */
export const storeStreams = (job: string) => ({ kv: `KV_exactor-${job}`, os: `OBJ_exactor-${job}` })

/** Reads one key of a KV bucket straight from its stream (no bucket is created); undefined if absent. */
const readKey = (nc: NatsConnection, job: string, key: string) =>
  io(`read ${key} of job ${job}`, async () => {
    const jsm = await jetstreamManager(nc)
    try {
      const m = await jsm.streams.getMessage(storeStreams(job).kv, {
        last_by_subj: `$KV.exactor-${job}.${key}`
      })
      if (m === null || m.data.length === 0) return undefined
      return packr.unpack(m.data) as unknown
    } catch (cause) {
      // no such message (never written, or purged)
      if (cause instanceof Error && /no message found/i.test(cause.message)) return undefined
      throw cause
    }
  })

/** The job's summary from its status record and `latest` manifest. */
export const summarize = (
  job: string,
  status: Partial<JobStatus> | undefined,
  latest: unknown,
  now: number
) => {
  const state = status?.state ?? "UNKNOWN"
  const checkpoint = (latest as { checkpoint?: unknown } | undefined)?.checkpoint
  const summary: JobSummary = {
    job,
    state,
    epoch: status?.epoch ?? 0,
    latestCheckpoint: typeof checkpoint === "number" && checkpoint > 0 ? checkpoint : undefined,
    startedAt: status?.startedAt,
    updatedAt: status?.updatedAt,
    stale:
      state !== "UNKNOWN" &&
      !isEnded(state) &&
      (status?.updatedAt === undefined || now - status.updatedAt > staleAfterMs),
    reason: status?.reason
  }
  return summary
}

/** Every job with a checkpoint store on this NATS server, by name. */
export const listJobs = (nc: NatsConnection): Effect.Effect<ReadonlyArray<JobSummary>, JobCatalogError> =>
  Effect.gen(function* () {
    const names = yield* io("list streams", async () => {
      const jsm = await jetstreamManager(nc)
      const out: Array<string> = []
      for await (const name of jsm.streams.names()) out.push(name)
      return out
    })
    const jobs = names
      .filter((n) => n.startsWith(prefix) && !sharedBuckets.has(n.slice(3)))
      .map((n) => n.slice(prefix.length))
      .sort()
    return yield* Effect.forEach(
      jobs,
      (job) =>
        Effect.gen(function* () {
          const status = (yield* readKey(nc, job, "status")) as Partial<JobStatus> | undefined
          const latest = yield* readKey(nc, job, "latest")
          return summarize(job, status, latest, Date.now())
        }),
      { concurrency: 4 }
    )
  })

/** The job's status record, if it has one (read without creating its bucket). */
export const readJobStatus = (nc: NatsConnection, job: string) =>
  Effect.map(readKey(nc, job, "status"), (s) => s as Partial<JobStatus> | undefined)

/** The job's `latest` manifest's operators and their parallelism, if it has one. */
export const readLatestParallelism = (nc: NatsConnection, job: string) =>
  Effect.map(
    readKey(nc, job, "latest"),
    (m) => (m as { parallelism?: Readonly<Record<string, number>> } | undefined)?.parallelism
  )

/** The summary of one job, or undefined when the server has no store of it. */
export const findJob = (nc: NatsConnection, job: string) =>
  Effect.map(listJobs(nc), (all) => all.find((j) => j.job === job))

/** Whether a job counts as running: not ended and its status is fresh. */
export const isRunning = (j: JobSummary): boolean => j.state !== "UNKNOWN" && !isEnded(j.state) && !j.stale

/** Deletes the job's KV bucket and Object Store; returns the names of those that existed. */
export const removeJobStore = (nc: NatsConnection, job: string) =>
  io(`delete the checkpoint store of job ${job}`, async () => {
    const jsm = await jetstreamManager(nc)
    const removed: Array<string> = []
    const { kv, os } = storeStreams(job)
    for (const [stream, what] of [
      [os, `Object Store exactor-${job}`],
      [kv, `KV bucket exactor-${job}`]
    ] as const) {
      const existed = await jsm.streams.delete(stream).catch((cause: unknown) => {
        if (cause instanceof Error && /stream not found/i.test(cause.message)) return false
        throw cause
      })
      if (existed) removed.push(what)
    }
    return removed
  })
