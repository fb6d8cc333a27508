/**
 * Graph jobs on the real brokers (test/fixtures/graphJobs.ts): a keyed co-process whose two inputs
 * come from two sources, through kill -9 of either source and of the co-process; and a diamond
 * whose paths meet again after one of them is slow, which must keep checkpointing (alignment
 * reported) and end exactly once; the co-process rescaled 2 -> 3 from a savepoint; a broadcast to
 * 3 sink instances.
 */
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import t from "tap"
import { drainQueue } from "../../lib/chaos/OutputCheck.ts"
import { generateOrder } from "../../lib/connectors/jetstream/Producer.ts"
import { amqpConnect } from "../../lib/internal/AmqpConnectOptions.ts"
import { exactlyOnce, exitWithin, killAfterCheckpoint, status, until } from "../harness/checks.ts"
import { amqpUrl } from "../harness/env.ts"
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
    for (const victim of ["evens#0", "total#1", "odds#0"]) await killAfterCheckpoint(t, job, victim)
    const code = await run.exit
    t.equal(code, 0, "the job FINISHED")
    if (code !== 0) t.comment(run.output().slice(-3000))
    exactlyOnce(t, await job.verdict(), 40_000)
  }
)

t.test(
  "diamond with a slow path into a slowed sink: no deadlock, checkpoints keep completing, alignment is reported, exactly once",
  async (t) => {
    const job = await startOrdersJob({
      orders: 6_000,
      module: graphs,
      env: { EXACTOR_GRAPH: "diamond", EXACTOR_CHECKPOINT_INTERVAL: "300", EXACTOR_SINK_DELAY_MS: "20" }
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

t.test(
  "a co-process rescaled 2 -> 3 from a savepoint: its state follows the key groups, exactly once",
  async (t) => {
    // not slowed (alignment stays short, so the first checkpoint comes early) and long enough
    // that the savepoint is taken with most of the input ahead
    const orders = 130_000
    const job = await startOrdersJob({
      orders,
      module: graphs,
      env: { EXACTOR_GRAPH: "connect", EXACTOR_CHECKPOINT_INTERVAL: "300", EXACTOR_SLOW_MS: "0" }
    })
    t.teardown(() => job.cleanup())
    const first = job.run()
    await job.running("total#1")
    await until("a completed checkpoint", async () => ((await status(job))?.checkpoints.completed ?? 0) >= 1)
    const cancelled = await job.cli(["cancel", job.job, "--savepoint", "wide"])
    t.equal(cancelled.code, 0, cancelled.output)
    t.equal(await exitWithin(first.exit), 4, "the first run ends CANCELLED after the savepoint")
    const committed = ((await status(job))?.instances ?? [])
      .filter((x) => x.id.startsWith("sink#"))
      .reduce((a, x) => a + x.recordsCommitted, 0)
    t.ok(committed < orders, `the first run committed ${committed} of ${orders}`)
    const wider = job.run(["--from-savepoint", "wide"], { EXACTOR_TOTAL_PARALLELISM: "3" })
    const code = await exitWithin(wider.exit, 240_000)
    t.equal(code, 0, "the run from the savepoint with 3 co-process instances FINISHED")
    if (code !== 0) t.comment(wider.output().slice(-3000))
    const s = await status(job)
    t.same(
      s?.instances
        .filter((i) => i.id.startsWith("total#"))
        .map((i) => i.id)
        .sort(),
      ["total#0", "total#1", "total#2"],
      "3 instances of the co-process"
    )
    exactlyOnce(t, await job.verdict(), orders)
  }
)

t.test("broadcast: every record to each of 3 sink instances, once each", async (t) => {
  const orders = 3000
  const job = await startOrdersJob({ orders, module: graphs, env: { EXACTOR_GRAPH: "broadcast" } })
  t.teardown(async () => {
    await job.cleanup()
    const conn = await amqpConnect(amqpUrl)
    const ch = await conn.createChannel()
    for (const i of [1, 2])
      for (const suffix of ["marker", "lock"])
        await ch.deleteQueue(`exactor.${job.job}.sink.${i}.${suffix}`).catch(() => undefined)
    await conn.close()
  })
  const run = job.run()
  t.equal(await exitWithin(run.exit), 0, "the job FINISHED")
  const out = await Effect.runPromise(drainQueue(amqpUrl, job.queue))
  // messageId <job>/<sink>/<instance>/<checkpoint>/<seq>: which instance wrote each copy
  const copies = new Map<string, Array<string>>()
  for (const m of out) {
    const id = String((m.body as { id?: unknown }).id)
    const instance = m.messageId?.split("/")[2] ?? "?"
    copies.set(id, [...(copies.get(id) ?? []), instance])
  }
  const wrong = Array.from({ length: orders }, (_, i) => generateOrder(i))
    .filter((o) => (copies.get(String(o.id)) ?? []).sort().join(",") !== "0,1,2")
    .map((o) => `${o.id}: ${copies.get(String(o.id))?.join(",") ?? "none"}`)
  t.equal(out.length, orders * 3, `${out.length} records: 3 per order`)
  t.same(wrong.slice(0, 5), [], "each order once from each of the 3 instances")
})

t.test(
  "union of two sources at very different rates, with a kill of the slow one: exactly once",
  async (t) => {
    const orders = 8_000
    const job = await startOrdersJob({
      orders,
      module: graphs,
      env: {
        EXACTOR_GRAPH: "union",
        EXACTOR_UNION_ORDERS: String(orders),
        EXACTOR_SLOW_RATE: "800",
        EXACTOR_CHECKPOINT_INTERVAL: "300"
      }
    })
    t.teardown(() => job.cleanup())
    const run = job.run()
    const before = await job.running("slow#0")
    await until("a completed checkpoint", async () => ((await status(job))?.checkpoints.completed ?? 0) >= 1)
    const fast = await until("the fast source finished", () =>
      job.reports.find((r) => r.k === "finished" && r.c === "fast#0")
    )
    t.ok(fast, "the fast source ended while the slow one still runs")
    process.kill(before.pid, "SIGKILL")
    await until("a new process for slow#0", () => {
      const s = job.seen.get("slow#0")
      return s !== undefined && s.pid !== before.pid && s.phase === "running" ? s : undefined
    })
    const code = await exitWithin(run.exit, 180_000)
    t.equal(code, 0, "the job FINISHED")
    if (code !== 0) t.comment(run.output().slice(-3000))
    exactlyOnce(t, await job.verdict(), orders)
  }
)
