/**
 * The partitioned JetStream source against a real NATS server: `produce` with partitions puts each
 * order on `<stream>.records.<k>` by murmur3(customer); each source instance reads only the
 * partitions it owns; positions are per partition and re-split for another parallelism (1 -> 2 -> 1)
 * with every record read exactly once; a malformed record names stream, partition and sequence.
 */
import { jetstreamManager } from "@nats-io/jetstream"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { Effect, Result, type Scope } from "effect"
import t from "tap"
import { hashKey } from "../../../lib/core/KeyGroups.ts"
import {
  type JetStreamSourceReader,
  jetStreamSource,
  mergePartitionedPositions,
  ownedPartitions
} from "../../../lib/connectors/jetstream/JetStreamSource.ts"
import type { JetStreamSourceOptions } from "../../../lib/connectors/jetstream/JetStreamSourceOptions.ts"
import { generateOrder, type Order, produce } from "../../../lib/connectors/jetstream/Producer.ts"
import type { SourceError } from "../../../lib/connectors/jetstream/SourceError.ts"
import type { PartitionedPosition, SourceContext } from "../../../lib/connectors/jetstream/SourceReader.ts"

const natsUrl = process.env.EXACTOR_NATS_URL ?? "nats://127.0.0.1:4222"
const run = `p${process.pid}${Math.random().toString(36).slice(2, 8)}`
const boundsBucket = `${run}-bounds`
const stream = `${run}orders`
const P = 4
const N = 6000
const options: JetStreamSourceOptions<Order> = { stream, partitions: P, bounded: "atStart", boundsBucket }
const ctx = (job: string, index: number, parallelism: number): SourceContext => ({
  job: `${run}-${job}`,
  operator: "src",
  index,
  parallelism,
  natsUrl
})

let nc: NatsConnection
t.before(async () => {
  nc = await connect({ servers: natsUrl })
  await Effect.runPromise(
    produce({
      natsUrl,
      stream,
      input: { generate: { count: N, seed: 5 } },
      partitions: { count: P, key: "customer" }
    })
  )
})
t.teardown(async () => {
  const jsm = await jetstreamManager(nc)
  for (const s of [stream, `${run}bad`, `${run}plain`, `KV_${boundsBucket}`])
    await jsm.streams.delete(s).catch(() => false)
  await nc.drain()
})

const partitionOf = (o: Order) => hashKey(o.customer) % P

/** Reads up to `want` records (all, by default) or until the end. */
const drain = (reader: JetStreamSourceReader<Order>, want = Number.POSITIVE_INFINITY) =>
  Effect.gen(function* () {
    const got: Array<Order> = []
    let end = false
    const deadline = Date.now() + 20_000
    while (!end && got.length < want && Date.now() < deadline) {
      const r = yield* reader.read(Math.min(500, want - got.length))
      for (const x of r.records) got.push(x)
      end = r.end
    }
    return { got, end, position: reader.position() as PartitionedPosition }
  })

const withReader = <B>(
  c: SourceContext,
  position: unknown,
  use: (r: JetStreamSourceReader<Order>) => Effect.Effect<B, SourceError, Scope.Scope>,
  o: JetStreamSourceOptions<Order> = options
) =>
  Effect.runPromise(
    Effect.scoped(
      jetStreamSource(o)
        .open(c, position as never)
        .pipe(Effect.flatMap(use))
    )
  )

t.test("produce puts each order on the partition subject of murmur3(customer) mod P", async (t) => {
  const jsm = await jetstreamManager(nc)
  const info = await jsm.streams.info(stream, { subjects_filter: ">" })
  const counts = new Array<number>(P).fill(0)
  for (let i = 0; i < N; i++) counts[partitionOf(generateOrder(i, 5))]! += 1
  t.same(
    Object.fromEntries(Object.entries(info.state.subjects ?? {}).sort()),
    Object.fromEntries(counts.map((n, k) => [`${stream}.records.${k}`, n])),
    "messages per partition subject as the hash says"
  )
})

t.test("two instances read disjoint partitions, each only its own, together every order once", async (t) => {
  const a = await withReader(ctx("two", 0, 2), undefined, (r) => drain(r))
  const b = await withReader(ctx("two", 1, 2), undefined, (r) => drain(r))
  t.ok(a.end && b.end, "both reach the bounded end")
  t.same(ownedPartitions(P, 2, 0), [0, 1])
  t.ok(
    a.got.every((o) => ownedPartitions(P, 2, 0).includes(partitionOf(o))),
    "instance 0 got only orders of its partitions"
  )
  t.ok(
    b.got.every((o) => ownedPartitions(P, 2, 1).includes(partitionOf(o))),
    "instance 1 got only orders of its partitions"
  )
  const ids = [...a.got, ...b.got].map((o) => o.id).sort((x, y) => x - y)
  t.same(
    ids,
    Array.from({ length: N }, (_, i) => i),
    "every order exactly once"
  )
  for (const k of [0, 1]) {
    const inK = a.got.filter((o) => partitionOf(o) === k).map((o) => o.id)
    t.same(
      inK,
      [...inK].sort((x, y) => x - y),
      `partition ${k} in stream order`
    )
  }
})

t.test("positions re-split 1 -> 2 -> 1: every order read exactly once", async (t) => {
  const first = await withReader(ctx("rescale", 0, 1), undefined, (r) => drain(r, 2000))
  t.equal(first.got.length, 2000)
  t.equal(first.position.at.length, P, "one instance owns every partition")
  t.ok(first.position.ends?.length === P, "the bounded ends travel in the position")

  const split = [0, 1].map((i) =>
    mergePartitionedPositions(P, { index: i, parallelism: 2 }, [first.position])
  )
  t.same(
    (split as Array<PartitionedPosition>).map((p) => p.at.map(([k]) => k)),
    [
      [0, 1],
      [2, 3]
    ],
    "2 instances: partitions 0-1 and 2-3"
  )
  const halves = await Promise.all(
    [0, 1].map((i) => withReader(ctx("rescale", i, 2), split[i], (r) => drain(r, 1000)))
  )
  const merged = mergePartitionedPositions(P, { index: 0, parallelism: 1 }, [
    halves[1]!.position,
    halves[0]!.position
  ])
  const rest = await withReader(ctx("rescale", 0, 1), merged, (r) => drain(r))
  t.ok(rest.end, "back at 1 instance, it reads to the end")
  const ids = [first, ...halves, rest].flatMap((x) => x.got.map((o) => o.id)).sort((x, y) => x - y)
  t.same(
    ids,
    Array.from({ length: N }, (_, i) => i),
    "every order exactly once across the rescales"
  )
})

t.test("a malformed record names stream, partition and sequence; bad options name the field", async (t) => {
  const jsm = await jetstreamManager(nc)
  const bad = `${run}bad`
  await jsm.streams.add({ name: bad, subjects: [`${bad}.records.*`] })
  const { jetstream } = await import("@nats-io/jetstream")
  const js = jetstream(nc)
  await js.publish(`${bad}.records.1`, JSON.stringify({ id: 0, customer: "c1", amount: 1 }))
  await js.publish(`${bad}.records.1`, "{not json")
  const o = { stream: bad, partitions: 2, bounded: "atStart", boundsBucket } as const
  const outcome = await withReader(
    ctx("bad", 0, 1),
    undefined,
    (r) =>
      Effect.gen(function* () {
        const first = yield* r.read(10)
        return { first: first.records.length, err: yield* Effect.result(r.read(10)) }
      }),
    o
  )
  t.equal(outcome.first, 1, "the good record before it is read")
  t.ok(Result.isFailure(outcome.err))
  if (Result.isFailure(outcome.err))
    t.match(outcome.err.failure, {
      _tag: "MalformedRecord",
      stream: bad,
      partition: 1,
      seq: 2,
      message: new RegExp(`stream ${bad}: message at sequence 2 \\(partition 1\\) is not a record`)
    })

  const plain = `${run}plain`
  await Effect.runPromise(produce({ natsUrl, stream: plain, input: { generate: { count: 3 } } }))
  const wrong = await Effect.runPromise(
    Effect.scoped(Effect.flip(jetStreamSource({ ...o, stream: plain }).open(ctx("plain", 0, 1), undefined)))
  )
  t.match(wrong, { _tag: "SourceOptionsInvalid", field: "partitions" })
  t.match(wrong.message, /holds messages on .*\.records \(produce it with --partitions 2 --key <field>/)
  const few = await Effect.runPromise(
    Effect.scoped(Effect.flip(jetStreamSource({ ...o, partitions: 1 }).open(ctx("few", 0, 2), undefined)))
  )
  t.match(few.message, /partitions must be at least the source's parallelism \(2\)/)
})
