/**
 * The job lifecycle commands: `exactor jobs` (every job this NATS server knows), `exactor cancel
 * <job> [--savepoint name]` and `exactor delete <job>`. Exit codes: 0 done, 1 error or refused.
 */
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import { Argument, Command, Flag } from "effect/cli"
import type { BrokerUrls } from "../brokers/BrokerUrls.ts"
import { requestCancel } from "../checkpoint/CancelRequest.ts"
import { type JobSummary, listJobs } from "../checkpoint/JobCatalog.ts"
import { deleteJob } from "../jobs/JobRemoval.ts"
import { natsConnection } from "../runtime/Nats.ts"

const jobArg = Argument.String("job").pipe(Argument.withDescription("the job name (the pipeline's name)"))

const setExit = (code: number) => Effect.sync(() => (process.exitCode = code))

const age = (ms: number): string =>
  ms < 60_000
    ? `${Math.round(ms / 1000)} s`
    : ms < 3_600_000
      ? `${Math.round(ms / 60_000)} min`
      : ms < 172_800_000
        ? `${(ms / 3_600_000).toFixed(1)} h`
        : `${Math.round(ms / 86_400_000)} d`

/** The table `exactor jobs` prints. */
export const formatJobs = (jobs: ReadonlyArray<JobSummary>, now = Date.now()): string => {
  if (jobs.length === 0) return "no jobs on this NATS server"
  const width = Math.max(4, ...jobs.map((j) => j.job.length)) + 2
  const head = `${"job".padEnd(width)}${"state".padEnd(20)}${"epoch".padStart(6)}${"last checkpoint".padStart(17)}${"age".padStart(9)}${"status written".padStart(16)}`
  const rows = jobs.map(
    (j) =>
      `${j.job.padEnd(width)}${(j.stale ? `${j.state} (stale)` : j.state).padEnd(20)}${String(j.epoch).padStart(6)}${(j.latestCheckpoint === undefined ? "-" : String(j.latestCheckpoint)).padStart(17)}${(j.startedAt === undefined ? "-" : age(now - j.startedAt)).padStart(9)}${(j.updatedAt === undefined ? "-" : `${age(now - j.updatedAt)} ago`).padStart(16)}`
  )
  return [head, ...rows].join("\n")
}

export const lifecycleCommands = (urls: BrokerUrls) => {
  const connected = <A, E>(
    name: string,
    f: (nc: Effect.Success<ReturnType<typeof natsConnection>>) => Effect.Effect<A, E>,
    job?: string
  ) =>
    Effect.scoped(
      Effect.flatMap(natsConnection(urls.natsUrl, job === undefined ? { name } : { name, job }), f)
    )

  const jobs = Command.make("jobs", {}, () =>
    connected("exactor/cli", (nc) => Effect.flatMap(listJobs(nc), (list) => Console.log(formatJobs(list))))
  ).pipe(
    Command.withDescription("List every job known to the NATS server: state, epoch, last checkpoint, age")
  )

  const cancel = Command.make(
    "cancel",
    {
      job: jobArg,
      savepoint: Flag.String("savepoint").pipe(
        Flag.withDescription("take this savepoint first and stop right after it is committed"),
        Flag.optional
      )
    },
    (f) =>
      connected(
        `${f.job}/cli`,
        (nc) =>
          Effect.gen(function* () {
            const savepoint = Option.getOrUndefined(f.savepoint)
            const done = yield* Effect.result(requestCancel(nc, f.job, savepoint))
            if (Result.isFailure(done)) {
              yield* Console.error(done.failure.message)
              return yield* setExit(1)
            }
            yield* Console.log(
              savepoint === undefined
                ? `job ${f.job} CANCELLED`
                : `job ${f.job} CANCELLED after savepoint ${savepoint} (checkpoint ${done.success.checkpoint})`
            )
          }),
        f.job
      )
  ).pipe(Command.withDescription("Stop a running job, optionally right after a final savepoint"))

  const del = Command.make("delete", { job: jobArg }, (f) =>
    connected(`${f.job}/cli`, (nc) =>
      Effect.gen(function* () {
        const done = yield* Effect.result(deleteJob(nc, urls.amqpUrl, f.job))
        if (Result.isFailure(done)) {
          yield* Console.error(`delete refused: ${done.failure.message}`)
          return yield* setExit(1)
        }
        yield* Console.log(
          [`job ${f.job} deleted; removed:`, ...done.success.removed.map((r) => `  ${r}`)].join("\n")
        )
      })
    )
  ).pipe(
    Command.withDescription(
      "Remove a finished or cancelled job's checkpoints, savepoints, status, bounded-source ends and sink queues"
    )
  )

  return [jobs, cancel, del] as const
}
