/**
 * Rescaling a partitioned JetStream source from checkpoints, over real processes: the orders job
 * (4 partitions) runs with 1 source instance, is stopped after a checkpoint and resumed from it with
 * 2, stopped again and resumed with 1. Each instance reads only its partitions from the merged
 * per-partition positions, and the output is exactly once with unbroken running-total chains.
 */
import { Effect } from "effect"
import t from "tap"
import { exactlyOnce, status, store, until } from "../harness/checks.ts"
import { startOrdersJob } from "../harness/job.ts"

t.test("a partitioned source rescales 1 -> 2 -> 1 from checkpoints: exactly once", async (t) => {
  const orders = 60_000
  const job = await startOrdersJob({
    orders,
    output: "jetstream",
    env: {
      EXACTOR_CHECKPOINT_INTERVAL: "300",
      EXACTOR_SOURCE_PARTITIONS: "4",
      EXACTOR_SOURCE_PARALLELISM: "1"
    }
  })
  t.teardown(() => job.cleanup())

  const latest = async () => (await Effect.runPromise((await store(job)).readLatest()))?.manifest

  /**
   * Runs until a checkpoint newer than `after` is completed while it runs, then stops it; the
   * latest checkpoint. (One, not two: a loaded machine's run could finish its input first.)
   */
  const runAndStop = async (
    args: ReadonlyArray<string>,
    parallelism: string,
    running: string,
    after: number
  ) => {
    const run = job.run(args, { EXACTOR_SOURCE_PARALLELISM: parallelism })
    await job.running(running)
    await until(`a checkpoint after ${after} while RUNNING`, async () => {
      const m = await latest()
      return m && m.checkpoint >= after + 1 && (await status(job))?.state === "RUNNING" ? m : undefined
    }).catch((e: Error) => {
      throw new Error(`${e.message}; the run's log: ${run.output().slice(-3000)}`)
    })
    run.child.kill("SIGTERM")
    await run.exit
    return (await latest())!
  }

  const first = await runAndStop([], "1", "orders#0", 0)
  t.equal(first.parallelism.orders, 1, `checkpoint ${first.checkpoint} taken with 1 source instance`)
  const second = await runAndStop(
    ["--from-checkpoint", String(first.checkpoint)],
    "2",
    "orders#1",
    first.checkpoint
  )
  t.equal(second.parallelism.orders, 2, `checkpoint ${second.checkpoint} taken with 2 source instances`)
  t.ok(second.checkpoint > first.checkpoint)

  const last = job.run(["--from-checkpoint", String(second.checkpoint)], { EXACTOR_SOURCE_PARALLELISM: "1" })
  t.equal(await last.exit, 0, "back at 1 source instance, the job FINISHED")
  exactlyOnce(t, await job.verdict(), orders)
})
