/**
 * The example job end to end into RabbitMQ (issue 5 acceptance through the runtime): the sink
 * process killed mid-run, and more records per checkpoint interval than a transaction may hold.
 * The output is drained by an independent amqplib consumer that counts message ids and checks
 * every running total.
 */
import t from "tap"
import { exactlyOnce, status } from "../../harness/checks.ts"
import { startOrdersJob } from "../../harness/job.ts"

t.test("kill -9 of the sink between checkpoints: exactly once in RabbitMQ", async (t) => {
  const job = await startOrdersJob({ orders: 40_000, env: { EXACTOR_CHECKPOINT_INTERVAL: "300" } })
  t.teardown(() => job.cleanup())
  const run = job.run()
  let epoch = 0
  for (let kill = 0; kill < 2; kill++) {
    const s = await job.running("sink#0", epoch)
    await new Promise((r) => setTimeout(r, 700))
    process.kill(s.pid, "SIGKILL")
    epoch = s.epoch
  }
  t.equal(await run.exit, 0, "the job FINISHED")
  t.ok(((await status(job))?.recoveries ?? 0) >= 2, "it recovered from both kills")
  exactlyOnce(t, await job.verdict(), 40_000)
})

t.test(
  "more records per checkpoint than a transaction holds: early checkpoints, still exactly once",
  async (t) => {
    const job = await startOrdersJob({
      orders: 20_000,
      env: { EXACTOR_CHECKPOINT_INTERVAL: "0", EXACTOR_MAX_TRANSACTION_MESSAGES: "1000" }
    })
    t.teardown(() => job.cleanup())
    const run = job.run()
    t.equal(await run.exit, 0, "the job FINISHED")
    const s = await status(job)
    t.ok(
      (s?.checkpoints.completed ?? 0) > 2,
      `${s?.checkpoints.completed} checkpoints with periodic checkpoints off: the sink asked for them`
    )
    exactlyOnce(t, await job.verdict(), 20_000)
  }
)
