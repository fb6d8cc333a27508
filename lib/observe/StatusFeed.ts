/**
 * lib/observe/ — what an operator of jobs looks at: the status feed (this file), the Prometheus
 * export, the web view and its HTTP server. Imports checkpoint/ and below; the CLI imports it.
 *
 * The status feed: the latest status record of every job on the NATS server, pushed to listeners
 * as each job's coordinator writes it (a KV watch on `status` per job; new jobs are found every
 * `discoverEvery`). Invariant: it only reads what coordinators write; it never asks an instance.
 */
import { jetstreamManager } from "@nats-io/jetstream"
import { Kvm } from "@nats-io/kv"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type { JobStatus } from "../checkpoint/JobStatus.ts"
import { packr } from "../internal/msgpack.ts"
import { causeMessage } from "../internal/causeMessage.ts"
import type { NatsConnection } from "../runtime/Nats.ts"

export interface StatusFeed {
  /** the latest status of every job seen, by job */
  readonly statuses: () => ReadonlyMap<string, JobStatus>
  /** called with every new status; returns the function that unsubscribes */
  readonly subscribe: (listener: (status: JobStatus) => void) => () => void
}

/** How often the feed looks for jobs it does not watch yet. */
export const discoverEvery = "2 seconds"

/**
 * The status record as a `JobStatus`, or undefined when it is not one (not msgpack, or without
 * the fields every reader of a status relies on): anyone on the NATS server can write the key.
 */
const decodeStatus = (bytes: Uint8Array): JobStatus | undefined => {
  let s: unknown
  try {
    s = packr.unpack(bytes)
  } catch {
    return undefined
  }
  if (typeof s !== "object" || s === null) return undefined
  const o = s as Record<string, unknown>
  const shaped =
    typeof o.job === "string" &&
    typeof o.state === "string" &&
    typeof o.epoch === "number" &&
    Array.isArray(o.instances) &&
    o.instances.every(
      (i) => typeof i === "object" && i !== null && typeof (i as { id?: unknown }).id === "string"
    ) &&
    Array.isArray(o.history) &&
    typeof o.checkpoints === "object" &&
    o.checkpoints !== null
  return shaped ? (s as JobStatus) : undefined
}

const storePrefix = "KV_exactor-"
const notJobs = new Set(["source-bounds"])

/** Starts the feed; it watches until the scope closes. */
export const statusFeed = (nc: NatsConnection) =>
  Effect.gen(function* () {
    const statuses = new Map<string, JobStatus>()
    const listeners = new Set<(s: JobStatus) => void>()
    const watched = new Map<string, { stop: () => void }>()
    /** jobs whose last status record was malformed (warned once) */
    const malformed = new Set<string>()
    let closed = false

    const watch = async (job: string) => {
      const kv = await new Kvm(nc).open(`exactor-${job}`)
      const it = await kv.watch({ key: "status" })
      watched.set(job, { stop: () => it.stop() })
      if (closed) it.stop()
      for await (const e of it) {
        if (e.operation !== "PUT" || e.value.length === 0) continue
        const s = decodeStatus(e.value)
        if (s === undefined) {
          // a malformed record is skipped (the last good one stays), not the end of the watch;
          // told once until a good one comes, so a flood of them cannot fill the log
          if (!malformed.has(job))
            Effect.runFork(Effect.logWarning(`status feed: a status record of ${job} is malformed; skipped`))
          malformed.add(job)
          continue
        }
        malformed.delete(job)
        statuses.set(job, s)
        for (const l of listeners) l(s)
      }
    }

    const discover = Effect.tryPromise({
      try: async () => {
        const jsm = await jetstreamManager(nc)
        const jobs = new Set<string>()
        for await (const name of jsm.streams.names())
          if (name.startsWith(storePrefix) && !notJobs.has(name.slice(storePrefix.length)))
            jobs.add(name.slice(storePrefix.length))
        for (const job of jobs)
          if (!watched.has(job) && !closed) {
            watched.set(job, { stop: () => undefined })
            // a watch ends when its bucket is deleted; the job is then forgotten (found again if it comes back)
            void watch(job)
              .catch((cause: unknown) =>
                Effect.runFork(
                  Effect.logWarning(`status feed: watch of ${job} ended: ${causeMessage(cause)}`)
                )
              )
              .finally(() => watched.delete(job))
          }
        for (const job of [...statuses.keys()]) if (!jobs.has(job)) statuses.delete(job)
      },
      catch: (cause) => cause
    }).pipe(
      Effect.catch((cause) => Effect.logWarning(`status feed: listing jobs failed: ${causeMessage(cause)}`))
    )

    yield* discover
    yield* Effect.forkScoped(Effect.repeat(discover, Schedule.spaced(discoverEvery)))
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closed = true
        for (const w of watched.values()) w.stop()
      })
    )
    const feed: StatusFeed = {
      statuses: () => statuses,
      subscribe: (l) => {
        listeners.add(l)
        return () => listeners.delete(l)
      }
    }
    return feed
  })
