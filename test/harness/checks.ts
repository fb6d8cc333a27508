/**
 * What the job tests assert and wait for, in one place: the exactly-once verdict, the
 * coordinator's status record, waiting on a condition, and stopping a job after checkpoints.
 */
import type { Test } from "tap"
import { Effect } from "effect"
import { CheckpointStore } from "../../lib/checkpoint/CheckpointStore.ts"
import type { JobStatus } from "../../lib/checkpoint/JobStatus.ts"
import type { Verdict } from "../../lib/chaos/OutputCheck.ts"
import type { JobProcesses, OrdersJob } from "./job.ts"

/** Every order exactly once (Jepsen counts) and one unbroken running-total chain per customer. */
export const exactlyOnce = (t: Test, v: Verdict, n: number) => {
  t.same(
    { attempted: v.attempted, ok: v.ok, lost: v.lost, duplicated: v.duplicated, unexpected: v.unexpected },
    { attempted: n, ok: n, lost: 0, duplicated: 0, unexpected: 0 },
    "every order exactly once"
  )
  t.equal(v.brokenChains, 0, `one unbroken running-total chain per customer (${v.customers} customers)`)
}

export const store = (job: Pick<OrdersJob, "nc" | "job">) =>
  Effect.runPromise(CheckpointStore.open(job.nc, job.job))

/** The status record the job's coordinator writes every second. */
export const status = async (job: Pick<OrdersJob, "nc" | "job">) =>
  (await Effect.runPromise((await store(job)).readStatus())) as JobStatus | undefined

/** Polls `f` until it gives something other than undefined or false. */
export const until = async <A>(
  what: string,
  f: () => A | undefined | false | Promise<A | undefined | false>,
  timeoutMs = 60_000
): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const a = await f()
    if (a !== undefined && a !== false) return a
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/** Runs the job until `checkpoints` have completed, then stops it (SIGTERM); returns that status. */
export const stopAfterCheckpoints = async (job: OrdersJob, checkpoints: number) => {
  const run = job.run()
  const s = await until("completed checkpoints", async () => {
    const s = await status(job)
    return s && s.checkpoints.completed >= checkpoints && s.state === "RUNNING" ? s : undefined
  })
  run.child.kill("SIGTERM")
  await run.exit
  return s
}

/** The exit code of a run, or -1 if it has not exited within `ms` (so a test never waits on a job forever). */
export const exitWithin = (exit: Promise<number>, ms = 120_000): Promise<number> =>
  Promise.race([exit, new Promise<number>((resolve) => setTimeout(() => resolve(-1), ms).unref())])

/**
 * After the next completed checkpoint, kill -9 of `victim`'s process; waits for a new process of
 * it to run (a sink's process outlives a recovery, so a newer epoch alone does not mean a new
 * process) and asserts it runs in a newer epoch.
 */
export const killAfterCheckpoint = async (
  t: Test,
  job: Pick<JobProcesses, "nc" | "job" | "seen" | "running">,
  victim: string
) => {
  const before = await job.running(victim)
  const done = (await status(job))?.checkpoints.completed ?? 0
  await until(
    `a checkpoint after ${done}`,
    async () => ((await status(job))?.checkpoints.completed ?? 0) > done
  )
  process.kill(before.pid, "SIGKILL")
  const after = await until(`a new process for ${victim}`, () => {
    const s = job.seen.get(victim)
    return s !== undefined && s.pid !== before.pid && s.phase === "running" ? s : undefined
  })
  t.ok(after.epoch > before.epoch, `a new process runs ${victim}, in epoch ${after.epoch} > ${before.epoch}`)
}
