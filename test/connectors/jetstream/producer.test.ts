import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import t from "tap"
import { Effect, Result } from "effect"
import { generateOrder, type ProducerError, produce } from "../../../lib/connectors/jetstream/Producer.ts"

const natsUrl = process.env.EXACTOR_NATS_URL ?? "nats://127.0.0.1:4222"
const unique = (name: string) => `t${process.pid}${Math.random().toString(36).slice(2, 8)}${name}`
const created: Array<string> = []
const streamName = (name: string) => {
  const s = unique(name)
  created.push(s)
  return s
}

t.teardown(async () => {
  const nc = await connect({ servers: natsUrl })
  const jsm = await jetstreamManager(nc)
  for (const s of created) await jsm.streams.delete(s).catch(() => false)
  await nc.drain()
})

const streamState = async (stream: string) => {
  const nc = await connect({ servers: natsUrl })
  try {
    const jsm = await jetstreamManager(nc)
    return await jsm.streams.info(stream).then(
      (i) => i.state,
      () => undefined
    )
  } finally {
    await nc.drain()
  }
}

const failureOf = async (eff: Effect.Effect<unknown, ProducerError>): Promise<ProducerError | undefined> => {
  const r = await Effect.runPromise(Effect.result(eff))
  return Result.isFailure(r) ? r.failure : undefined
}

t.test("generateOrder is deterministic and in range", async (t) => {
  t.same(generateOrder(7, 42, 1000), generateOrder(7, 42, 1000), "same inputs, same order")
  t.not(JSON.stringify(generateOrder(7, 42)), JSON.stringify(generateOrder(7, 43)), "the seed matters")
  const seen = new Set<string>()
  for (let i = 0; i < 5000; i++) {
    const o = generateOrder(i, 1, 50)
    if (o.id !== i || !/^c\d{4}$/.test(o.customer) || o.amount < 1 || o.amount > 100_000) {
      t.fail(`order ${i} out of range: ${JSON.stringify(o)}`)
      return
    }
    seen.add(o.customer)
  }
  t.equal(seen.size, 50, "every customer of 50 occurs in 5000 orders")
})

t.test("10k generated orders produced twice: stored once, second run all duplicates", async (t) => {
  const stream = streamName("gen")
  const input = { generate: { count: 10_000, seed: 7 } }
  const first = await Effect.runPromise(produce({ natsUrl, stream, input }))
  t.same(first, { stream, published: 10_000, duplicates: 0, lastSeq: 10_000 })
  const second = await Effect.runPromise(produce({ natsUrl, stream, input }))
  t.same(second, { stream, published: 0, duplicates: 10_000, lastSeq: 10_000 })
  const state = await streamState(stream)
  t.equal(state?.messages, 10_000, "10k messages in the stream")
  t.equal(state?.last_seq, 10_000)
})

t.test(
  "NDJSON file: good lines published once; a bad line fails naming it and publishes nothing",
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "exactor-producer-"))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))

    const good = join(dir, "good.ndjson")
    writeFileSync(
      good,
      `${JSON.stringify({ a: 1 })}\n\n${JSON.stringify({ a: 2 })}\n${JSON.stringify({ a: 3 })}\n`
    )
    const stream = streamName("file")
    const r1 = await Effect.runPromise(produce({ natsUrl, stream, input: { file: good } }))
    t.same(r1, { stream, published: 3, duplicates: 0, lastSeq: 3 }, "blank lines are skipped")
    const r2 = await Effect.runPromise(produce({ natsUrl, stream, input: { file: good } }))
    t.same(r2, { stream, published: 0, duplicates: 3, lastSeq: 3 })

    const bad = join(dir, "bad.ndjson")
    writeFileSync(bad, `{"a":1}\n{"a":2}\n{"a":\n{"a":4}\nnope\n`)
    const badStream = streamName("badfile")
    const err = await failureOf(produce({ natsUrl, stream: badStream, input: { file: bad } }))
    t.equal(err?._tag, "MalformedInputLine")
    if (err?._tag === "MalformedInputLine") {
      t.equal(err.line, 3, "the first bad line")
      t.equal(err.badLines, 2, "both bad lines counted")
      t.equal(err.file, bad)
      t.match(err.message, /bad\.ndjson:3: not a JSON record/)
    }
    t.equal(await streamState(badStream), undefined, "nothing published, not even the stream created")

    const missing = await failureOf(produce({ natsUrl, stream, input: { file: join(dir, "absent.ndjson") } }))
    t.equal(missing?._tag, "InputUnreadable")
  }
)

t.test("options are validated with errors naming the field", async (t) => {
  const cases: Array<[Parameters<typeof produce>[0], string]> = [
    [{ natsUrl, stream: "", input: { generate: { count: 1 } } }, "stream"],
    [{ natsUrl, stream: "a.b", input: { generate: { count: 1 } } }, "stream"],
    [{ natsUrl, stream: "s", subject: "s.>", input: { generate: { count: 1 } } }, "subject"],
    [{ natsUrl, stream: "s", inFlight: 0, input: { generate: { count: 1 } } }, "inFlight"],
    [{ natsUrl, stream: "s", input: { generate: { count: -1 } } }, "input.generate.count"],
    [{ natsUrl, stream: "s", input: { generate: { count: 1, customers: 0 } } }, "input.generate.customers"],
    [{ natsUrl, stream: "s", input: { file: "" } }, "input.file"]
  ]
  for (const [options, field] of cases) {
    const err = await failureOf(produce(options))
    t.equal(err?._tag === "ProducerOptionsInvalid" ? err.field : err?._tag, field, `${field} rejected`)
  }
})
