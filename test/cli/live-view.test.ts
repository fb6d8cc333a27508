/**
 * The live view's progress bar follows committed output: it is full only at the last record, and
 * over a real run of the example job, the moment the view first counts every record committed,
 * RabbitMQ already holds every output message; received records run ahead of committed ones.
 */
import amqp from "amqplib"
import { Effect, Exit, Scope } from "effect"
import t from "tap"
import { loadPipeline } from "../../lib/api/PipelineModule.ts"
import { bar, progress, liveView } from "../../lib/cli/LiveView.ts"
import { amqpUrl } from "../harness/env.ts"
import { ordersModule, startOrdersJob } from "../harness/job.ts"

t.test("the bar is full only when every expected record is committed", async (t) => {
  const full = "#".repeat(30)
  t.notMatch(bar(progress(99_999, 100_000)), full, "99,999 of 100,000: not full")
  t.notMatch(bar(progress(99_990, 100_000)), full, "99,990 of 100,000: not full (no rounding up)")
  t.match(bar(progress(100_000, 100_000)), full, "100,000 of 100,000: full")
  t.equal(progress(0, 100), 0)
})

t.test("over a run: 100 % committed in the view means every message is in RabbitMQ", async (t) => {
  const orders = 30_000
  // transactions big enough that none overflows: a sink's carried records count as committed one
  // checkpoint early (docs/observe.md), which this test does not cover
  const job = await startOrdersJob({
    orders,
    env: {
      EXACTOR_CHECKPOINT_INTERVAL: "1000",
      EXACTOR_MAX_TRANSACTION_MESSAGES: "100000"
    }
  })
  t.teardown(() => job.cleanup())
  // the example module reads its names from the environment when it is loaded
  Object.assign(process.env, job.env)
  const plan = await Effect.runPromise(loadPipeline(ordersModule))
  t.equal(plan.pipeline.job, job.job)
  const scope = await Effect.runPromise(Scope.make())
  t.teardown(() => Effect.runPromise(Scope.close(scope, Exit.void)))
  const view = await Effect.runPromise(liveView(job.nc, plan, orders, false).pipe(Scope.provide(scope)))

  const conn = await amqp.connect(amqpUrl)
  t.teardown(() => conn.close().catch(() => undefined))
  const ch = await conn.createChannel()

  const run = job.run()
  let exited = false
  void run.exit.then(() => {
    exited = true
  })
  let receivedAllAt: number | undefined
  let committedAllAt: number | undefined
  let inQueueThen = -1
  let committedAboveReceived = 0
  let samples = 0
  while (committedAllAt === undefined && !exited) {
    const f = view.snapshot()
    samples++
    if (f.sinkCommitted > f.sinkRecords && f.epoch <= 1) committedAboveReceived++
    if (receivedAllAt === undefined && f.sinkRecords >= orders) receivedAllAt = Date.now()
    if (f.sinkCommitted >= orders) {
      committedAllAt = Date.now()
      inQueueThen = (await ch.checkQueue(job.queue)).messageCount
    }
    await new Promise((r) => setTimeout(r, 20))
    // the last heartbeat may arrive just after the job's process exits: one more look
    if (exited && committedAllAt === undefined && f.sinkCommitted < orders) {
      await new Promise((r) => setTimeout(r, 500))
      if (view.snapshot().sinkCommitted >= orders) {
        committedAllAt = Date.now()
        inQueueThen = (await ch.checkQueue(job.queue)).messageCount
      }
    }
  }
  t.equal(await run.exit, 0, "the job FINISHED")
  t.ok(committedAllAt !== undefined, `the view counted every record committed (${samples} samples)`)
  t.equal(
    inQueueThen,
    orders,
    "when the view first says 100 % committed, RabbitMQ holds every output message"
  )
  t.equal(committedAboveReceived, 0, "committed never ran ahead of received")
  t.ok(
    receivedAllAt !== undefined && committedAllAt !== undefined && receivedAllAt <= committedAllAt,
    `received reached 100 % first; committed followed ${committedAllAt! - receivedAllAt!} ms later`
  )
  t.equal(view.snapshot().sinkCommitted, orders)
})
