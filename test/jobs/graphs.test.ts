/**
 * Graph jobs on the real brokers (test/fixtures/graphJobs.ts): a keyed co-process whose two inputs
 * come from two sources, through kill -9 of either source and of the co-process; and a diamond
 * whose paths meet again after one of them is slow, which must keep checkpointing (alignment
 * reported) and end exactly once.
 */
import { fileURLToPath } from "node:url"
import t from "tap"
import { exactlyOnce, status, until } from "../harness/checks.ts"
import { startOrdersJob } from "../harness/job.ts"

const graphs = fileURLToPath(new URL("../fixtures/graphJobs.ts", import.meta.url))

t.test(
  "connect: two sources into one keyed co-process, kills of either source and of the co-process",
  async (t) => {
    const job = await startOrdersJob({
      orders: 40_000,
      module: graphs,
      env: { EXACTOR_GRAPH: "connect", EXACTOR_CHECKPOINT_INTERVAL: "300" }
    })
    t.teardown(() => job.cleanup())
    const run = job.run()
    for (const victim of ["evens#0", "total#1", "odds#0"]) {
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
      t.ok(
        after.epoch > before.epoch,
        `a new process runs ${victim}, in epoch ${after.epoch} > ${before.epoch}`
      )
    }
    const code = await run.exit
    t.equal(code, 0, "the job FINISHED")
    if (code !== 0) t.comment(run.output().slice(-3000))
    exactlyOnce(t, await job.verdict(), 40_000)
  }
)

t.test(
  "diamond with a slow path: checkpoints keep completing, alignment is reported, exactly once",
  async (t) => {
    const job = await startOrdersJob({
      orders: 6_000,
      module: graphs,
      env: { EXACTOR_GRAPH: "diamond", EXACTOR_CHECKPOINT_INTERVAL: "300" }
    })
    t.teardown(() => job.cleanup())
    const run = job.run()
    let maxAlignment = 0
    const s = await until(
      "3 completed checkpoints",
      async () => {
        const s = await status(job)
        for (const i of s?.instances ?? [])
          if (i.id.startsWith("total#")) maxAlignment = Math.max(maxAlignment, i.lastAlignmentMs)
        return s && s.checkpoints.completed >= 3 ? s : undefined
      },
      120_000
    )
    t.ok(
      s.checkpoints.completed >= 3,
      `${s.checkpoints.completed} checkpoints completed while the slow path runs`
    )
    const code = await run.exit
    t.equal(code, 0, "the job FINISHED")
    if (code !== 0) t.comment(run.output().slice(-3000))
    t.ok(maxAlignment > 0, `the keyed total reported alignment (${maxAlignment} ms at most)`)
    exactlyOnce(t, await job.verdict(), 6_000)
  }
)
