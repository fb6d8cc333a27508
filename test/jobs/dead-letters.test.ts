/**
 * Dead letters (the `deadLetter` policy): the orders example with EXACTOR_DEAD_LETTERS=1 on input
 * with 1 % malformed orders and two payloads that are not JSON. Good orders reach the totals
 * queue exactly once; each bad record reaches the dead-letter queue exactly once with its reason,
 * operator, input and position; `exactor status` counts them. Also: a pipeline that turns the
 * policy on without reading the output is refused, naming the operator; and the batch loop's
 * failure path (throw, failed Effect, defect) and the rollback of a failed record's emits.
 */
import { jetstream } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import t from "tap"
import {
  checkDeadLetters,
  deadLetterInput,
  ordersDeadLetterSpec
} from "../../actors/examples/ordersDeadLetterCheck.ts"
import { parseOrder, runningTotal } from "../../actors/examples/orderOperators.ts"
import { deadLetters, type DeadLetter, declaredPorts, sink, withDeadLetters } from "../../lib/api/Operator.ts"
import { PipelineInvalid, validatePipeline } from "../../lib/api/Pipeline.ts"
import { pipeline } from "../../lib/api/Stream.ts"
import { checkOrders, drainQueue } from "../../lib/chaos/OutputCheck.ts"
import { ordersPartitioning } from "../../lib/connectors/jetstream/Partitioning.ts"
import { produce } from "../../lib/connectors/jetstream/Producer.ts"
import { applyBatch, PortOutputs } from "../../lib/runtime/Task.ts"
import { jetstreamSource } from "../../actors/jetstreamSource.ts"
import { status } from "../harness/checks.ts"
import { amqpUrl, natsUrl, uniqueName } from "../harness/env.ts"
import { jobProcesses, ordersModule, removeJob } from "../harness/job.ts"

const discard = sink<unknown>("discard", () => Effect.die("not opened in this test"))

t.test("a deadLetter operator whose dead letters nobody reads is refused, naming it", async (t) => {
  const b = pipeline("dl-unread")
  b.source(jetstreamSource("orders", { stream: "s" }))
    .map(withDeadLetters(parseOrder))
    .keyBy((o) => o.customer)
    .process(runningTotal)
    .sink(discard)
  const r = validatePipeline(b.build())
  t.ok(r instanceof PipelineInvalid, "refused")
  const text = r instanceof PipelineInvalid ? r.message : ""
  t.match(text, /parse.*policy is deadLetter, but nothing reads its "deadLetter" output/s, text)
  t.same(declaredPorts(withDeadLetters(parseOrder)), ["deadLetter"], "the policy adds the port")
  t.same(declaredPorts(parseOrder), [], "without it, no port")

  const ok = pipeline("dl-read")
  const parsed = ok.source(jetstreamSource("orders", { stream: "s" })).map(withDeadLetters(parseOrder))
  parsed
    .keyBy((o) => o.customer)
    .process(runningTotal)
    .sink(discard)
  parsed.sideOutput(deadLetters).sink(sink<DeadLetter>("dlq", () => Effect.die("not opened")))
  t.notOk(validatePipeline(ok.build()) instanceof PipelineInvalid, "read by a sink: accepted")
})

t.test("applyBatch with onFailure: a throw, a failed Effect and a defect each go on", async (t) => {
  const out: Array<unknown> = []
  const failed: Array<[unknown, number, string]> = []
  await Effect.runPromise(
    applyBatch(
      "op#0",
      [1, 2, 3, 4, 5, 6],
      (r) => {
        const n = r as number
        if (n === 2) throw new Error("two")
        if (n === 3) return Effect.succeed(30)
        if (n === 4) return Effect.fail(new Error("four"))
        if (n === 5) return Effect.die(new Error("five"))
        return n * 10
      },
      (_, x) => out.push(x),
      (r, i, cause) => failed.push([r, i, cause instanceof Error ? cause.message : "cause"])
    )
  )
  t.same(out, [10, 30, 60], "the good records, in order")
  t.same(
    failed.map(([r, i]) => [r, i]),
    [
      [2, 1],
      [4, 3],
      [5, 4]
    ],
    "each failed record with its index"
  )
  const exit = await Effect.runPromise(
    Effect.exit(
      applyBatch(
        "op#0",
        [1],
        () => Effect.fail(new Error("boom")),
        () => undefined
      )
    )
  )
  t.equal(exit._tag, "Failure", "without onFailure the batch fails")
  // an interruption is never a dead letter
  const fiber = Effect.runFork(
    applyBatch(
      "op#0",
      [1],
      () => Effect.never,
      () => undefined,
      () => t.fail("an interruption became a dead letter")
    )
  )
  await Effect.runPromise(Fiber.interrupt(fiber))
})

t.test("PortOutputs takes back a failed record's pushes, and only those", async (t) => {
  const routed: Array<[string, ReadonlyArray<unknown>]> = []
  const router = {
    route: (records: ReadonlyArray<unknown>, port: string) => Effect.sync(() => routed.push([port, records]))
  }
  const ports = new PortOutputs("op#0", new Set(["a", "b", "deadLetter"]), true)
  ports.push("a", 1)
  const mark = ports.count
  ports.push("b", 2)
  ports.push("a", 3)
  ports.rollback(mark)
  ports.push("deadLetter", "x")
  await Effect.runPromise(ports.route(router as never))
  t.same(routed, [
    ["a", [1]],
    ["deadLetter", ["x"]]
  ])
})

t.test("the orders example with dead letters: good orders and dead letters each exactly once", async (t) => {
  const job = uniqueName("job-dl")
  const stream = uniqueName("orders-dl")
  const queue = uniqueName("totals-dl")
  const dlq = uniqueName("dead-dl")
  const env = {
    EXACTOR_NATS_URL: natsUrl,
    EXACTOR_AMQP_URL: amqpUrl,
    EXACTOR_ORDERS_JOB: job,
    EXACTOR_ORDERS_STREAM: stream,
    EXACTOR_ORDERS_QUEUE: queue,
    EXACTOR_DEAD_LETTERS: "1",
    EXACTOR_DEAD_LETTER_QUEUE: dlq
  }
  const input = deadLetterInput(3000)
  const partitions = ordersPartitioning(env)!
  await Effect.runPromise(produce({ natsUrl, stream, input: { records: input.records }, partitions }))
  const nc = await connect({ servers: natsUrl })
  // two payloads that are not JSON, on partitions 0 and 3
  const js = jetstream(nc)
  const garbage = [
    { partition: 0, bytes: new TextEncoder().encode("not json {") },
    { partition: 3, bytes: new Uint8Array([0xff, 0xfe, 0x41]) }
  ]
  const seqs: Array<number> = []
  for (const g of garbage) seqs.push((await js.publish(`${stream}.records.${g.partition}`, g.bytes)).seq)
  const processes = await jobProcesses(job, ordersModule, env, nc)
  t.teardown(async () => {
    await processes.stop()
    await removeJob(nc, amqpUrl, job, {
      streams: [stream],
      queues: [queue, dlq],
      sinks: ["sink", "deadLetters"]
    })
    await nc.close()
  })
  const run = processes.run()
  const code = await run.exit
  t.equal(code, 0, "the job FINISHED")
  if (code !== 0) t.comment(run.output().slice(-3000))

  const totals = checkOrders(input.good, await Effect.runPromise(drainQueue(amqpUrl, queue)))
  t.same(
    { attempted: totals.attempted, ok: totals.ok, lost: totals.lost, duplicated: totals.duplicated },
    { attempted: 2970, ok: 2970, lost: 0, duplicated: 0 },
    "every good order exactly once"
  )
  t.equal(totals.unexpected + totals.brokenChains, 0, "nothing else, unbroken chains")

  const letters = await Effect.runPromise(drainQueue(amqpUrl, dlq))
  const fromParse = letters.filter((m) => (m.body as DeadLetter).operator === "parse")
  const fromSource = letters.filter((m) => (m.body as DeadLetter).operator === "orders")
  t.equal(letters.length, 32, "30 malformed orders and 2 undecodable payloads")
  const v = checkDeadLetters(input.bad, fromParse)
  t.same(
    { ok: v.ok, lost: v.lost, duplicated: v.duplicated, unexpected: v.unexpected },
    { ok: 30, lost: 0, duplicated: 0, unexpected: 0 }
  )
  const one = fromParse.find((m) => (m.body as DeadLetter).reason.includes("amount"))?.body as DeadLetter
  t.match(one, {
    operator: "parse",
    instance: /^parse#[01]$/,
    reason: /^invalid order: order bad-\d+: amount must be a whole number of cents >= 0$/,
    input: /^orders#[01]$/,
    position: { epoch: Number, seq: Number, index: Number }
  })
  const customer = fromParse.find(
    (m) => String(((m.body as DeadLetter).record as { id: string }).id) === "bad-399"
  )
  t.match((customer?.body as DeadLetter | undefined)?.reason, /customer must be a non-empty string/)
  t.same(
    fromSource
      .map((m) => m.body as DeadLetter)
      .map((l) => ({ record: l.record, input: l.input, position: l.position }))
      .sort((a, b) => a.position.seq - b.position.seq),
    [
      { record: "not json {", input: `jetstream:${stream}`, position: { seq: seqs[0], partition: 0 } },
      { record: "\ufffd\ufffdA", input: `jetstream:${stream}`, position: { seq: seqs[1], partition: 3 } }
    ],
    "the source's undecodable payloads, with their stream position"
  )
  t.ok(
    fromSource.every(
      (m) => /^orders#[01]$/.test((m.body as DeadLetter).instance) && (m.body as DeadLetter).reason.length > 0
    )
  )

  const s = await status({ nc, job })
  const count = (op: string) =>
    (s?.instances ?? [])
      .filter((i) => i.id.startsWith(`${op}#`))
      .reduce((a, i) => a + (i.deadLetters ?? 0), 0)
  t.equal(count("parse"), 30, "status: parse sent 30 dead letters")
  t.equal(count("orders"), 2, "status: the source sent 2")
  const shown = await processes.cli(["status", job])
  t.match(shown.output, /dead letters this epoch: .*parse#\d \d+/, shown.output)
  t.ok(ordersDeadLetterSpec.env("x").EXACTOR_DEAD_LETTERS === "1", "the chaos spec turns it on")
})
