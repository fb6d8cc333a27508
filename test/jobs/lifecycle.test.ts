/**
 * Job lifecycle over real processes and brokers: `exactor jobs` lists a running job, `delete` refuses
 * it, `cancel --savepoint` stops it right after a committed savepoint and a run from that savepoint
 * gives exactly-once output (the source is unbounded, so the job runs until cancelled), `cancel`
 * without a savepoint stops that run, and `delete` then leaves
 * nothing of the job on NATS or RabbitMQ (the output queue, the user's data, stays).
 */
import { fileURLToPath } from "node:url"
import { jetstreamManager } from "@nats-io/jetstream"
import amqp from "amqplib"
import { Effect } from "effect"
import t from "tap"
import { checkOrders, drainQueue } from "../../lib/chaos/OutputCheck.ts"
import { ordersPartitioning } from "../../lib/connectors/jetstream/Partitioning.ts"
import { generateOrder, produce } from "../../lib/connectors/jetstream/Producer.ts"
import { Kvm } from "@nats-io/kv"
import { exactlyOnce, exitWithin, status, until } from "../harness/checks.ts"
import { amqpUrl, natsUrl } from "../harness/env.ts"
import { startOrdersJob } from "../harness/job.ts"

const queueExists = async (queue: string): Promise<boolean> => {
  const conn = await amqp.connect(amqpUrl)
  try {
    const ch = await conn.createChannel()
    ch.on("error", () => undefined)
    return await ch.checkQueue(queue).then(
      () => true,
      () => false
    )
  } finally {
    await conn.close().catch(() => undefined)
  }
}

t.test("jobs, cancel with and without a savepoint, delete", async (t) => {
  // an unbounded source: the job runs until it is cancelled, however slow the machine
  const orders = 40_000
  const extra = 20_000
  const total = orders + extra
  const job = await startOrdersJob({
    orders,
    module: fileURLToPath(new URL("../fixtures/benchOrders.ts", import.meta.url)),
    env: { EXACTOR_BENCH_BOUNDED: "0", EXACTOR_SOURCE_PARALLELISM: "1", EXACTOR_CHECKPOINT_INTERVAL: "500" }
  })
  t.teardown(() => job.cleanup())
  const committed = async () =>
    (await status(job))?.instances.find((i) => i.id === "sink#0")?.recordsCommitted

  const first = job.run()
  await until("a completed checkpoint", async () => {
    const s = await status(job)
    return s !== undefined && s.state === "RUNNING" && s.checkpoints.completed >= 1
  })
  const listed = await job.cli(["jobs"])
  t.equal(listed.code, 0, listed.output)
  t.match(
    listed.output,
    new RegExp(`${job.job}\\s+RUNNING\\s+\\d+\\s+\\d+`),
    "jobs lists it RUNNING with its last checkpoint"
  )

  const refused = await job.cli(["delete", job.job])
  t.equal(refused.code, 1, "delete refuses a running job")
  t.match(refused.output, /delete refused: job \S+ is RUNNING/)

  // more input arrives while the cancel is under way: records after the savepoint's barrier may be
  // in flight when the job stops (timing decides; the comment below says how many were committed),
  // and every one must come out once, from the run that resumes
  const partitions = ordersPartitioning(job.env)
  const more = Effect.runPromise(
    produce({
      natsUrl,
      stream: job.stream,
      input: { generate: { count: orders + extra } },
      // on the partition subjects the job's source reads, as the harness produced the first orders
      ...(partitions === undefined ? {} : { partitions })
    })
  )
  const cancelled = await job.cli(["cancel", job.job, "--savepoint", "last"])
  await more
  t.equal(cancelled.code, 0, cancelled.output)
  t.match(cancelled.output, /CANCELLED after savepoint last \(checkpoint \d+\)/)
  t.equal(await exitWithin(first.exit), 4, "the run ends with exit code 4 (CANCELLED)")
  t.equal((await status(job))?.state, "CANCELLED")
  t.match((await job.cli(["jobs"])).output, new RegExp(`${job.job}\\s+CANCELLED`), "jobs shows it CANCELLED")
  t.match((await job.cli(["savepoints", job.job])).output, /last\s+checkpoint \d+/, "the savepoint is kept")
  const atSavepoint = (await committed()) ?? -1
  t.comment(`committed when cancelled at the savepoint: ${atSavepoint} of ${total}`)

  // from the savepoint, logging JSON, until every record is committed; then cancelled without a savepoint
  const before = (await status(job))!.startedAt
  const resumed = job.run(["--from-savepoint", "last"], { EXACTOR_LOG_FORMAT: "json" })
  await until("the run from the savepoint running", async () => {
    const s = await status(job)
    return s !== undefined && s.startedAt > before && s.state === "RUNNING"
  })
  await until("every record committed", async () => ((await committed()) ?? 0) >= total, 180_000)
  const plain = await job.cli(["cancel", job.job])
  t.equal(plain.code, 0, plain.output)
  t.match(plain.output, new RegExp(`job ${job.job} CANCELLED`))
  t.equal(await exitWithin(resumed.exit), 4, "the run from the savepoint ends CANCELLED")
  t.equal(await committed(), total, "the status counts every record committed, across both runs")
  const output = await Effect.runPromise(drainQueue(amqpUrl, job.queue, 5000))
  exactlyOnce(
    t,
    checkOrders(
      Array.from({ length: total }, (_, i) => generateOrder(i)),
      output
    ),
    total
  )
  const json = resumed
    .output()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
  t.ok(
    json.some((o) => o.job === job.job && o.instance === "coordinator" && typeof o.epoch === "number"),
    `EXACTOR_LOG_FORMAT=json: the coordinator logs JSON lines with job, instance and epoch (${json.length} lines)`
  )
  t.ok(
    json.some((o) => o.instance === "sink#0"),
    "and so do the actors"
  )
  // a bounded source of this job would have recorded its end here (this one is unbounded)
  const bounds = await new Kvm(job.nc).create("exactor-source-bounds", { history: 1 })
  await bounds.put(`${job.job}.orders.${job.stream}`, JSON.stringify({ end: total }))

  const noJob = await job.cli(["cancel", job.job])
  t.equal(noJob.code, 1, "cancelling a job that is not running fails")

  const deleted = await job.cli(["delete", job.job])
  t.equal(deleted.code, 0, deleted.output)
  t.match(deleted.output, /RabbitMQ queue exactor\.\S+\.sink\.0\.marker/)
  // the lock queue is exclusive: it went with the sink's connection, and delete finds nothing of it
  t.match(deleted.output, /bounded-source end record/)
  t.match(deleted.output, /Object Store exactor-/)
  t.match(deleted.output, /KV bucket exactor-/)

  const jsm = await jetstreamManager(job.nc)
  const streams: Array<string> = []
  for await (const name of jsm.streams.names()) streams.push(name)
  t.same(
    streams.filter((s) => s.includes(job.job)),
    [],
    "no stream of the job is left (KV bucket, Object Store)"
  )
  const keys: Array<string> = []
  for await (const k of await bounds.keys(`${job.job}.>`)) keys.push(k)
  t.same(keys, [], "no bounded-source end of the job is left")
  t.equal(await queueExists(`exactor.${job.job}.sink.0.lock`), false, "the lock queue is gone")
  t.equal(await queueExists(`exactor.${job.job}.sink.0.marker`), false, "the marker queue is gone")
  t.equal(await queueExists(job.queue), true, "the output queue stays")
  t.notMatch((await job.cli(["jobs"])).output, job.job, "jobs no longer lists it")
  const gone = await job.cli(["delete", job.job])
  t.equal(gone.code, 1)
  t.match(gone.output, /is not known to this NATS server/)
})
