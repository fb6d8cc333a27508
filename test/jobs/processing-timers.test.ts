/**
 * T7 of DESIGN-dataflow §5 on the brokers: processing-time timers due while their instance is
 * down. test/fixtures/reminders.ts sets a timer 1 s ahead for each order; right after a
 * checkpoint the timer instance is killed with SIGKILL, and the restored one fires the timers that
 * came due during the downtime at once. Every reminder must come out exactly once.
 */
import { connect } from "@nats-io/transport-node"
import * as Effect from "effect/Effect"
import t from "tap"
import { drainQueue } from "../../lib/chaos/OutputCheck.ts"
import { generateOrder, produce } from "../../lib/connectors/jetstream/Producer.ts"
import { amqpConnect } from "../../lib/internal/AmqpConnectOptions.ts"
import { exitWithin, killAfterCheckpoint, until } from "../harness/checks.ts"
import { amqpUrl, natsUrl, uniqueName } from "../harness/env.ts"
import { jobProcesses, removeJob } from "../harness/job.ts"

const fixture = new URL("../fixtures/reminders.ts", import.meta.url).pathname

t.test("T7: processing-time timers due during downtime fire once each after the restore", async (t) => {
  const job = uniqueName("remind")
  const stream = uniqueName("orders")
  const queue = uniqueName("reminders")
  const orders = Array.from({ length: 2000 }, (_, i) => ({ ...generateOrder(i), id: `o${i}` }))
  const publish = (records: ReadonlyArray<unknown>, firstIndex: number) =>
    Effect.runPromise(produce({ natsUrl, stream, input: { records, firstIndex } }))
  await publish(orders.slice(0, 1000), 0)
  const nc = await connect({ servers: natsUrl })
  t.teardown(async () => {
    await removeJob(nc, amqpUrl, job, { streams: [stream], queues: [queue], sinks: ["sink"] })
    await nc.close()
  })
  const processes = await jobProcesses(
    job,
    fixture,
    {
      EXACTOR_NATS_URL: natsUrl,
      EXACTOR_AMQP_URL: amqpUrl,
      EXACTOR_ORDERS_JOB: job,
      EXACTOR_ORDERS_STREAM: stream,
      EXACTOR_ORDERS_QUEUE: queue,
      EXACTOR_REMIND_MS: "1000",
      EXACTOR_CHECKPOINT_INTERVAL: "300"
    },
    nc
  )
  t.teardown(() => processes.stop())
  const run = processes.run()
  await processes.running("remind#0")
  const killing = Date.now()
  await killAfterCheckpoint(t, processes, "remind#0")
  const restarted = Date.now()
  await publish(orders.slice(1000), 1000)
  const conn = await amqpConnect(amqpUrl)
  const ch = await conn.createChannel()
  await ch.assertQueue(queue, { durable: true })
  await until(
    "every reminder committed",
    async () => (await ch.checkQueue(queue)).messageCount >= orders.length,
    120_000
  )
  await conn.close()
  const cancelled = await processes.cli(["cancel", job])
  t.equal(cancelled.code, 0, cancelled.output)
  t.not(await exitWithin(run.exit), -1, "the run ended after the cancel")
  const out = (await Effect.runPromise(drainQueue(amqpUrl, queue))).map(
    (m) => m.body as { id: string; due: number; firedAt: number }
  )
  const count = new Map<string, number>()
  for (const r of out) count.set(r.id, (count.get(r.id) ?? 0) + 1)
  const lost = orders.filter((o) => !count.has(o.id)).length
  const duplicated = [...count.values()].reduce((a, n) => a + n - 1, 0)
  const unexpected = [...count.keys()].filter((id) => !orders.some((o) => o.id === id)).length
  t.same(
    { lost, duplicated, unexpected },
    { lost: 0, duplicated: 0, unexpected: 0 },
    `${out.length} reminders, one per order`
  )
  // due while the instance was down (between the kill's wait and its new process running), fired after
  const whileDown = out.filter((r) => r.due >= killing && r.due < restarted && r.firedAt >= r.due + 200)
  const dues = out.map((r) => r.due - killing)
  t.comment(
    `kill and restart took ${restarted - killing} ms; reminders due ${Math.min(...dues)} to ${Math.max(...dues)} ms after the kill's wait began`
  )
  t.ok(
    whileDown.length > 0,
    `${whileDown.length} reminders came due while their instance was down and fired after its restore`
  )
})
