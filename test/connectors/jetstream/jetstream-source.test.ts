import { type JetStreamClient, jetstream, jetstreamManager } from "@nats-io/jetstream"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import t from "tap"
import { Effect, Result, type Scope } from "effect"
import {
  type JetStreamSourceReader,
  jetStreamSource
} from "../../../lib/connectors/jetstream/JetStreamSource.ts"
import type { JetStreamSourceOptions } from "../../../lib/connectors/jetstream/JetStreamSourceOptions.ts"
import type { SourceError } from "../../../lib/connectors/jetstream/SourceError.ts"
import type {
  JetStreamPosition,
  SourceContext,
  SourcePosition
} from "../../../lib/connectors/jetstream/SourceReader.ts"
import { generateOrder, type Order, produce } from "../../../lib/connectors/jetstream/Producer.ts"

const natsUrl = process.env.EXACTOR_NATS_URL ?? "nats://127.0.0.1:4222"
const run = `t${process.pid}${Math.random().toString(36).slice(2, 8)}`
const boundsBucket = `${run}-bounds`
const streams: Array<string> = []
const streamName = (name: string) => {
  const s = `${run}${name}`
  streams.push(s)
  return s
}
const ctx = (job: string, index = 0, parallelism = 1): SourceContext => ({
  job: `${run}-${job}`,
  operator: "src",
  index,
  parallelism,
  natsUrl
})

let nc: NatsConnection
let js: JetStreamClient
const orders = streamName("orders")
const N = 10_000

t.before(async () => {
  nc = await connect({ servers: natsUrl })
  js = jetstream(nc)
  await Effect.runPromise(produce({ natsUrl, stream: orders, input: { generate: { count: N, seed: 3 } } }))
})
t.teardown(async () => {
  const jsm = await jetstreamManager(nc)
  for (const s of [...streams, `KV_${boundsBucket}`]) await jsm.streams.delete(s).catch(() => false)
  await nc.drain()
})

/** A stream with the given raw payloads at sequences 1.. */
const rawStream = async (name: string, payloads: ReadonlyArray<string>) => {
  const stream = streamName(name)
  const jsm = await jetstreamManager(nc)
  await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] })
  for (const p of payloads) await js.publish(`${stream}.x`, p)
  return stream
}

/** Reads until `end`, `want` records, or 20 s; returns what came and the last `end`. */
const drain = <A>(reader: JetStreamSourceReader<A>, want = Number.POSITIVE_INFINITY, max = 700) =>
  Effect.gen(function* () {
    const got: Array<A> = []
    let end = false
    const deadline = Date.now() + 20_000
    while (!end && got.length < want && Date.now() < deadline) {
      const r = yield* reader.read(max)
      for (const x of r.records) got.push(x)
      end = r.end
    }
    return { got, end }
  })

const withReader = <A, B>(
  options: JetStreamSourceOptions<A>,
  c: SourceContext,
  position: SourcePosition | undefined,
  use: (r: JetStreamSourceReader<A>) => Effect.Effect<B, SourceError, Scope.Scope>
) => Effect.runPromise(Effect.scoped(jetStreamSource(options).open(c, position).pipe(Effect.flatMap(use))))

const openFailure = async <A>(
  options: JetStreamSourceOptions<A>,
  c: SourceContext,
  position: SourcePosition | undefined
): Promise<SourceError | undefined> => {
  const r = await Effect.runPromise(Effect.result(Effect.scoped(jetStreamSource(options).open(c, position))))
  return Result.isFailure(r) ? r.failure : undefined
}

const idsInOrder = (got: ReadonlyArray<Order>, from: number, to: number) => {
  if (got.length !== to - from) return false
  for (let i = 0; i < got.length; i++) if (got[i]?.id !== from + i) return false
  return true
}

t.test("reads every record from the start, in order, as the generator made them", async (t) => {
  const { got, position } = await withReader<Order, { got: Array<Order>; position: SourcePosition }>(
    { stream: orders },
    ctx("all"),
    undefined,
    (r) => drain(r, N).pipe(Effect.map(({ got }) => ({ got, position: r.position() })))
  )
  t.ok(idsInOrder(got, 0, N), "ids 0..9999 in order")
  t.same(got[1234], generateOrder(1234, 3), "payload is the generated order")
  t.same(position, { seq: N, index: 0, parallelism: 1 }, "position is the last sequence read")
})

t.test("a reader opened at a recorded position continues right after it", async (t) => {
  const { first, second } = await withReader<Order, { first: Array<Order>; second: SourcePosition }>(
    { stream: orders },
    ctx("mid"),
    undefined,
    (r) => drain(r, 4000, 1000).pipe(Effect.map(({ got }) => ({ first: got, second: r.position() })))
  )
  t.ok(idsInOrder(first, 0, 4000), "first reader: 4000 records")
  t.equal((second as JetStreamPosition).seq, 4000)
  const rest = await withReader<Order, Array<Order>>({ stream: orders }, ctx("mid"), second, (r) =>
    drain(r, N - 4000).pipe(Effect.map(({ got }) => got))
  )
  t.ok(idsInOrder(rest, 4000, N), "second reader: 4000..9999, nothing repeated or skipped")
})

t.test("bounded atStart stops at the stream's end at first open, also after a restore", async (t) => {
  const stream = await rawStream(
    "bounded",
    Array.from({ length: 100 }, (_, i) => JSON.stringify(i + 1))
  )
  const options = { stream, bounded: "atStart" as const, boundsBucket }
  const { got, end, position } = await withReader<
    number,
    { got: Array<number>; end: boolean; position: SourcePosition }
  >(options, ctx("bounded"), undefined, (r) =>
    Effect.gen(function* () {
      const head = yield* drain(r, 60, 60)
      // more messages arrive after the end was fixed
      yield* Effect.promise(async () => {
        for (let i = 101; i <= 150; i++) await js.publish(`${stream}.x`, JSON.stringify(i))
      })
      const tail = yield* drain(r)
      return { got: [...head.got, ...tail.got], end: tail.end, position: r.position() }
    })
  )
  t.equal(got.length, 100, "100 records")
  t.equal(got.at(-1), 100, "last is sequence 100")
  t.ok(end, "end is reported")
  t.same(position, { seq: 100, end: 100, index: 0, parallelism: 1 }, "the end is part of the position")

  const restored = await withReader<number, { got: Array<number>; end: boolean }>(
    options,
    ctx("bounded"),
    { seq: 60, end: 100, index: 0, parallelism: 1 },
    (r) => drain(r)
  )
  t.same(
    restored.got,
    Array.from({ length: 40 }, (_, i) => 61 + i),
    "restored at 60: 61..100"
  )
  t.ok(restored.end)

  // a fresh open of the same job (another instance, or before any checkpoint) agrees on the end
  const again = await withReader<number, { got: Array<number>; end: boolean }>(
    options,
    ctx("bounded"),
    undefined,
    (r) => drain(r)
  )
  t.equal(again.got.length, 100, "the end recorded for the job holds: still 100 records though 150 exist")

  const records = await withReader<number, { got: Array<number>; end: boolean }>(
    { stream, bounded: { records: 25 }, boundsBucket },
    ctx("records"),
    undefined,
    (r) => drain(r)
  )
  t.same(
    records.got,
    Array.from({ length: 25 }, (_, i) => i + 1),
    "{ records: 25 } reads sequences 1..25"
  )
  t.ok(records.end)
})

t.test("3 parallel instances together read every record exactly once", async (t) => {
  const p = 3
  const results = await Promise.all(
    Array.from({ length: p }, (_, i) =>
      withReader<Order, { got: Array<Order>; end: boolean }>(
        { stream: orders, bounded: "atStart", boundsBucket },
        ctx("parallel", i, p),
        undefined,
        (r) => drain(r)
      )
    )
  )
  const count = new Map<number, number>()
  results.forEach(({ got, end }, i) => {
    t.ok(end, `instance ${i} reached the end`)
    t.ok(
      got.every((o) => o.id % p === i),
      `instance ${i} holds only sequences with (seq - 1) % ${p} === ${i}`
    )
    for (const o of got) count.set(o.id, (count.get(o.id) ?? 0) + 1)
  })
  let lost = 0
  let duplicated = 0
  for (let id = 0; id < N; id++) {
    const c = count.get(id) ?? 0
    if (c === 0) lost++
    if (c > 1) duplicated++
  }
  t.same({ read: count.size, lost, duplicated }, { read: N, lost: 0, duplicated: 0 })
})

t.test("a malformed payload is a typed error with its sequence, or skipped and counted", async (t) => {
  const stream = await rawStream("malformed", ['{"n":1}', '{"n":2}', "{not json", '{"n":4}'])
  const failing = await withReader<
    { n: number },
    { first: ReadonlyArray<{ n: number }>; err: unknown; pos: number }
  >({ stream }, ctx("malformed"), undefined, (r) =>
    Effect.gen(function* () {
      const first = yield* drain(r, 2)
      const err = yield* Effect.result(r.read(10))
      return {
        first: first.got,
        err: Result.isFailure(err) ? err.failure : err,
        pos: (r.position() as JetStreamPosition).seq
      }
    })
  )
  t.same(failing.first, [{ n: 1 }, { n: 2 }], "records before the bad one are delivered")
  t.match(failing.err, { _tag: "MalformedRecord", stream, seq: 3 })
  t.match(
    (failing.err as Error).message,
    new RegExp(`stream ${stream}: message at sequence 3 is not a record`)
  )
  t.equal(failing.pos, 2, "the position stays before the bad record")

  const skipping = await withReader<{ n: number }, { got: ReadonlyArray<{ n: number }>; malformed: number }>(
    { stream, onMalformed: "skip-and-count" },
    ctx("skip"),
    undefined,
    (r) => drain(r, 3).pipe(Effect.map(({ got }) => ({ got, malformed: r.malformed() })))
  )
  t.same(skipping.got, [{ n: 1 }, { n: 2 }, { n: 4 }])
  t.equal(skipping.malformed, 1, "one malformed payload counted")
})

t.test("options, context and positions are validated with errors naming the field", async (t) => {
  const cases: Array<[JetStreamSourceOptions<unknown>, SourceContext, SourcePosition | undefined, string]> = [
    [{ stream: "" }, ctx("v"), undefined, "stream"],
    [{ stream: "a.b" }, ctx("v"), undefined, "stream"],
    [{ stream: orders, bounded: { records: 0 } }, ctx("v"), undefined, "bounded.records"],
    [{ stream: orders, idleMs: 0 }, ctx("v"), undefined, "idleMs"],
    [{ stream: orders, fetchExpiresMs: 10 }, ctx("v"), undefined, "fetchExpiresMs"],
    [{ stream: orders, fetchSize: 100, maxBuffered: 10 }, ctx("v"), undefined, "maxBuffered"],
    [{ stream: orders }, ctx("v", 3, 3), undefined, "ctx.index"],
    [{ stream: orders }, ctx("v", 0, 2), { seq: 5, index: 0, parallelism: 3 }, "SourcePositionInvalid"],
    [{ stream: `${run}absent` }, ctx("v"), undefined, "SourceReadFailed"]
  ]
  for (const [options, c, position, expected] of cases) {
    const err = await openFailure(options, c, position)
    t.equal(err?._tag === "SourceOptionsInvalid" ? err.field : err?._tag, expected, `${expected} rejected`)
  }
})
