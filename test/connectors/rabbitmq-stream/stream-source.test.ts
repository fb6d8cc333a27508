/**
 * The RabbitMQ stream source against a private RabbitMQ node (stream plugin on): a bounded read
 * stops at the last offsets fixed at the job's first open, a reader restored from a position (also
 * re-split over more instances) continues without loss or duplicate, a malformed payload is a typed
 * error naming stream and offset, options and positions that do not fit are errors naming the
 * field, and the orders stream-to-stream job rescales its source 1 -> 2 instances from a checkpoint
 * of a running job with exactly-once output; `exactor produce --to rabbitmq-stream` fills the
 * partition streams and names a malformed line.
 */
import { spawnSync } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect, Exit, Scope } from "effect"
import t from "tap"
import { type PrivateRabbitMqNode, startRabbitMqNode } from "../../../lib/brokers/RabbitMqNode.ts"
import { drainStream } from "../../../lib/chaos/StreamDrain.ts"
import {
  mergeStreamPositions,
  type RabbitMqStreamSourceReader,
  rabbitMqStreamSource,
  type StreamSourcePosition
} from "../../../lib/connectors/rabbitmq-stream/RabbitMqStreamSource.ts"
import {
  ensureStream,
  openNamedProducer,
  parseStreamUrl
} from "../../../lib/connectors/rabbitmq-stream/StreamClient.ts"
import { writeStreamInput } from "../../../lib/connectors/rabbitmq-stream/StreamInput.ts"
import {
  type RabbitMqStreamSourceOptions,
  resolveStreamSourceOptions
} from "../../../lib/connectors/rabbitmq-stream/StreamSourceOptions.ts"
import { exactlyOnce, status, store, until } from "../../harness/checks.ts"
import { natsUrl, uniqueName } from "../../harness/env.ts"
import { startOrdersJob } from "../../harness/job.ts"

const exampleModule = fileURLToPath(
  new URL("../../../actors/examples/ordersStreamToStream.ts", import.meta.url)
)

let node: PrivateRabbitMqNode
t.before(async () => {
  node = await startRabbitMqNode()
})
t.teardown(() => node?.stop())

const streamUrl = () => `rabbitmq-stream://guest:guest@127.0.0.1:${node.streamPort}/`

interface Rec {
  readonly n: number
  readonly key: string
}
const recs = (from: number, count: number): Array<Rec> =>
  Array.from({ length: count }, (_, i) => ({ n: from + i, key: `k${(from + i) % 17}` }))

const write = (stream: string, records: ReadonlyArray<unknown>, partitions?: number) =>
  Effect.runPromise(
    writeStreamInput({
      streamUrl: streamUrl(),
      stream,
      records,
      ...(partitions === undefined ? {} : { partitions: { count: partitions, key: "key" } })
    })
  )

/** An open reader in a scope the test closes itself (closing it = the source instance is gone). */
const openReader = async (
  options: Omit<RabbitMqStreamSourceOptions<Rec>, "streamUrl">,
  ctx: { readonly job: string; readonly index?: number; readonly parallelism?: number },
  position?: unknown
) => {
  const scope = Effect.runSync(Scope.make())
  const reader = await Effect.runPromise(
    Scope.provide(scope)(
      rabbitMqStreamSource<Rec>({ ...options, streamUrl: streamUrl() }).open(
        { job: ctx.job, operator: "src", index: ctx.index ?? 0, parallelism: ctx.parallelism ?? 1, natsUrl },
        position
      )
    ) as Effect.Effect<RabbitMqStreamSourceReader<Rec>, unknown>
  )
  return { reader, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

/** Reads until `end`, or until `atLeast` records when given; fails after 30 s. */
const readAll = async (reader: RabbitMqStreamSourceReader<Rec>, atLeast = Number.POSITIVE_INFINITY) => {
  const out: Array<Rec> = []
  const deadline = Date.now() + 30_000
  for (;;) {
    const r = await Effect.runPromise(reader.read(Math.min(500, atLeast - out.length)))
    out.push(...r.records)
    if (r.end || out.length >= atLeast) return { records: out, end: r.end }
    if (Date.now() > deadline) throw new Error(`read ${out.length} records, no end after 30 s`)
  }
}

const ns = (rs: ReadonlyArray<Rec>) => rs.map((r) => r.n)
const range = (from: number, count: number) => Array.from({ length: count }, (_, i) => from + i)

t.test(
  "bounded atStart: exactly the N records there at the first open, in order, the same end after a reopen",
  async (t) => {
    const stream = uniqueName("ssrc-bounded")
    const job = uniqueName("job")
    await write(stream, recs(0, 3000))
    const first = await openReader({ stream, bounded: "atStart" }, { job })
    await write(stream, recs(3000, 500)) // after the end was fixed
    const a = await readAll(first.reader)
    t.ok(a.end, "the bounded read ended")
    t.same(
      ns(a.records),
      range(0, 3000),
      "records 0..2999 once each, in stream order; none of the 500 written later"
    )
    const p = first.reader.position() as StreamSourcePosition
    t.same(p.at, [[0, 3000]], "the position is the offset of the next record")
    t.same(p.ends, [2999], "and carries the last offset at the first open")
    await first.close()
    const again = await openReader({ stream, bounded: "atStart" }, { job })
    const b = await readAll(again.reader)
    await again.close()
    t.equal(
      b.records.length,
      3000,
      "a fresh open of the same job (a recovery without checkpoint) keeps the recorded end"
    )
  }
)

t.test(
  "restore from a position: continues without loss or duplicate, also re-split over 2 instances",
  async (t) => {
    const stream = uniqueName("ssrc-restore")
    const job = uniqueName("job")
    const partitions = 4
    const input = recs(0, 4000)
    await write(stream, input, partitions)
    const opts = { stream, partitions, bounded: "atStart" as const }
    const one = await openReader(opts, { job })
    const before = await readAll(one.reader, 1700)
    const position = one.reader.position()
    await one.close()
    t.equal(before.records.length, 1700, "1700 records read before the snapshot")

    // the same instance restored
    const same = await openReader(opts, { job }, position)
    const rest = await readAll(same.reader)
    await same.close()
    const all = [...ns(before.records), ...ns(rest.records)].sort((x, y) => x - y)
    t.same(all, range(0, 4000), "restored at 1 instance: 4000 records, each once")

    // rescaled: 2 instances from the one position
    const parts = await Promise.all(
      [0, 1].map(async (index) => {
        const merged = mergeStreamPositions(partitions, { index, parallelism: 2 }, [position])
        const r = await openReader(opts, { job, index, parallelism: 2 }, merged)
        const got = await readAll(r.reader)
        await r.close()
        return got.records
      })
    )
    const rescaled = [...ns(before.records), ...ns(parts[0]!), ...ns(parts[1]!)].sort((x, y) => x - y)
    t.same(rescaled, range(0, 4000), "restored at 2 instances: 4000 records, each once")
    // per key (so per partition), the order of the stream is kept
    const byKey = new Map<string, Array<number>>()
    for (const r of [...before.records, ...parts[0]!, ...parts[1]!])
      byKey.set(r.key, [...(byKey.get(r.key) ?? []), r.n])
    t.ok(
      [...byKey.values()].every((l) => l.every((n, i) => i === 0 || n > l[i - 1]!)),
      "every key's records in input order"
    )
  }
)

t.test("a malformed payload fails the read with an error naming stream and offset", async (t) => {
  const stream = uniqueName("ssrc-malformed")
  const endpoint = parseStreamUrl(streamUrl())!
  await write(stream, recs(0, 3))
  await Effect.runPromise(
    Effect.gen(function* () {
      yield* ensureStream("test", stream, endpoint, 10_000)
      const p = yield* openNamedProducer({
        owner: "test",
        stream,
        name: `exactor-input/${stream}`,
        endpoint,
        timeoutMs: 10_000,
        heartbeatSeconds: 10
      })
      yield* p.publish(0, 4n, [Buffer.from("{not json")])
      yield* p.close
    })
  )
  await write(stream, recs(3, 2))
  const r = await openReader({ stream, bounded: "atStart" }, { job: uniqueName("job") })
  const first = await readAll(r.reader, 3)
  t.same(ns(first.records), [0, 1, 2], "the records before it are read")
  const failed = await Effect.runPromise(Effect.flip(r.reader.read(100)))
  t.equal(failed._tag, "StreamRecordMalformed")
  t.match(
    failed.message,
    new RegExp(`stream ${stream}: message at offset 3 \\(partition 0\\) is not a record`)
  )
  t.same((r.reader.position() as StreamSourcePosition).at, [[0, 3]], "the position stays before it")
  await r.close()
  const skipping = await openReader(
    { stream, bounded: "atStart", onMalformed: "skip-and-count" },
    { job: uniqueName("job") }
  )
  const all = await readAll(skipping.reader)
  t.same(ns(all.records), [0, 1, 2, 3, 4], "skip-and-count: the 5 records")
  t.equal(skipping.reader.malformed(), 1, "and 1 malformed counted")
  await skipping.close()
})

t.test(
  "the orders stream-to-stream job rescales its source 1 -> 2 from a checkpoint: exactly once",
  async (t) => {
    const orders = 60_000
    const job = await startOrdersJob({
      orders,
      input: "rabbitmq-stream",
      output: "rabbitmq-stream",
      module: exampleModule,
      env: {
        EXACTOR_AMQP_URL: node.amqpUrl,
        EXACTOR_STREAM_URL: streamUrl(),
        EXACTOR_CHECKPOINT_INTERVAL: "300",
        EXACTOR_SOURCE_PARTITIONS: "4",
        EXACTOR_SOURCE_PARALLELISM: "1"
      }
    })
    t.teardown(() => job.cleanup())
    const latest = async () => (await Effect.runPromise((await store(job)).readLatest()))?.manifest
    const run = job.run([], { EXACTOR_SOURCE_PARALLELISM: "1" })
    await job.running("orders#0")
    const first = await until(`two checkpoints (log: ${run.output().slice(-2000)})`, async () => {
      const m = await latest()
      return m && m.checkpoint >= 2 && (await status(job))?.state === "RUNNING" ? m : undefined
    })
    run.child.kill("SIGTERM")
    await run.exit
    const taken = (await latest())!
    t.ok(taken.checkpoint >= first.checkpoint)
    t.equal(taken.parallelism.orders, 1, `checkpoint ${taken.checkpoint} taken with 1 source instance`)
    const before = (await Effect.runPromise(drainStream(node.amqpUrl, job.queue, orders, 500))).length
    t.ok(before < orders, `the first run stopped in the middle: ${before} of ${orders} totals out`)
    const second = job.run(["--from-checkpoint", String(taken.checkpoint)], {
      EXACTOR_SOURCE_PARALLELISM: "2"
    })
    const s1 = await job.running("orders#1")
    t.ok(s1.pid > 0, "a second source instance runs")
    const code = await second.exit
    if (code !== 0) t.comment(second.output().slice(-3000))
    t.equal(code, 0, "the rescaled job FINISHED")
    const verdict = await job.verdict()
    t.comment(`verdict: ${JSON.stringify({ ...verdict, examples: undefined })}`)
    exactlyOnce(t, verdict, orders)
  }
)

t.test("options and positions that do not fit are typed errors naming the field", async (t) => {
  const bad = (o: Partial<RabbitMqStreamSourceOptions<Rec>>) =>
    resolveStreamSourceOptions<Rec>({ streamUrl: streamUrl(), stream: "s", ...o })
  t.match(bad({ streamUrl: "amqp://x" }), { _tag: "StreamOptionsInvalid", field: "streamUrl" })
  t.match(bad({ partitions: 0 }), { _tag: "StreamOptionsInvalid", field: "partitions" })
  t.match(bad({ bounded: "atEnd" as "atStart" }), { _tag: "StreamOptionsInvalid", field: "bounded" })
  t.same((bad({ partitions: 3 }) as { streams: ReadonlyArray<string> }).streams, ["s-0", "s-1", "s-2"])
  const tooMany = await Effect.runPromise(
    Effect.flip(
      Effect.scoped(
        rabbitMqStreamSource<Rec>({ streamUrl: streamUrl(), stream: "s", partitions: 1 }).open(
          { job: "j", operator: "o", index: 0, parallelism: 2, natsUrl },
          undefined
        )
      )
    )
  )
  t.match(tooMany, { _tag: "StreamOptionsInvalid", field: "partitions" }, "more instances than partitions")
  const wrong = await Effect.runPromise(
    Effect.flip(
      Effect.scoped(
        rabbitMqStreamSource<Rec>({ streamUrl: streamUrl(), stream: "s", partitions: 2 }).open(
          { job: "j", operator: "o", index: 0, parallelism: 1, natsUrl },
          { partitions: 3, at: [[0, 5]] }
        )
      )
    )
  )
  t.match(wrong, { _tag: "StreamPositionInvalid", reason: /recorded for 3 partitions, the source reads 2/ })
  t.same(
    mergeStreamPositions(4, { index: 1, parallelism: 2 }, [
      {
        partitions: 4,
        at: [
          [0, 7],
          [1, 8],
          [2, 9],
          [3, 10]
        ],
        ends: [9, 9, 9, 9]
      }
    ]),
    {
      partitions: 4,
      at: [
        [2, 9],
        [3, 10]
      ],
      ends: [9, 9, 9, 9]
    },
    "a merge gives instance 1 of 2 its partitions' offsets and the ends"
  )
})

t.test(
  "exactor produce --to rabbitmq-stream: the orders in the partition streams; a bad line is named",
  async (t) => {
    const cli = fileURLToPath(new URL("../../../lib/cli/exactor.ts", import.meta.url))
    const env = { ...process.env, EXACTOR_STREAM_URL: streamUrl(), EXACTOR_AMQP_URL: node.amqpUrl }
    const exactor = (args: ReadonlyArray<string>) => {
      const r = spawnSync(process.execPath, [cli, ...args], { env, encoding: "utf8", timeout: 120_000 })
      return { code: r.status, output: `${r.stdout}${r.stderr}` }
    }
    const name = uniqueName("produce")
    const r = exactor([
      "produce",
      name,
      "--generate",
      "600",
      "--partitions",
      "2",
      "--key",
      "customer",
      "--to",
      "rabbitmq-stream"
    ])
    t.equal(r.code, 0, r.output)
    t.match(r.output, new RegExp(`600 records written to ${name}-0, ${name}-1`))
    const parts = await Promise.all(
      [0, 1].map((k) => Effect.runPromise(drainStream(node.amqpUrl, `${name}-${k}`, 600, 1000)))
    )
    t.equal(
      parts[0]!.length + parts[1]!.length,
      600,
      `600 orders over 2 streams (${parts[0]!.length} + ${parts[1]!.length})`
    )
    const dir = mkdtempSync(join(tmpdir(), "exactor-produce-"))
    const file = join(dir, "orders.ndjson")
    writeFileSync(file, '{"id":1,"customer":"c1","amount":2}\n{"id":2,\n')
    const bad = exactor(["produce", uniqueName("produce-bad"), "--file", file, "--to", "rabbitmq-stream"])
    t.not(bad.code, 0, "a malformed line fails the command")
    t.match(
      bad.output,
      /orders\.ndjson:2: not a JSON record/,
      `the line is named: ${bad.output.split("\n").find((l) => l.includes("MalformedInputLine"))}`
    )
  }
)
