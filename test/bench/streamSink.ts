/**
 * The RabbitMQ stream sink benchmark, in this process, against a private RabbitMQ node (the shared
 * broker may have no stream plugin): a raw named producer publishing `count` records with explicit
 * ids in batches of `batch`, waiting for every confirm of a batch (the stream sink's commit), and the
 * stream sink driven as the runtime drives it (write, snapshot = preCommit, commit) at the same size.
 * Both publish the same JSON bodies. The two alternate for `rounds` rounds (fresh streams each) and
 * the best of each counts, so that a burst of load on this shared machine hits both alike.
 */
import { Effect } from "effect"
import { startRabbitMqNode } from "../../lib/brokers/RabbitMqNode.ts"
import { makeRabbitMqStreamSink } from "../../lib/connectors/rabbitmq-stream/RabbitMqStreamSink.ts"
import {
  ensureStream,
  openNamedProducer,
  parseStreamUrl
} from "../../lib/connectors/rabbitmq-stream/StreamClient.ts"

export interface StreamSinkFigures {
  readonly records: number
  readonly raw: { readonly seconds: number; readonly perSecond: number }
  readonly sink: { readonly seconds: number; readonly perSecond: number }
  /** sink / raw records per second (goal >= 0.8) */
  readonly ratioRawStream: number
}

const body = (i: number) => ({ orderId: i, customer: `c${i % 1000}`, amount: i % 10_000, total: i * 7 })

export const streamSinkBench = async (
  count: number,
  batch: number,
  rounds = 3
): Promise<StreamSinkFigures> => {
  const node = await startRabbitMqNode()
  try {
    let best: StreamSinkFigures | undefined
    let bestRaw = 0
    let bestSink = 0
    for (let round = 0; round < rounds; round++) {
      const r = await oneRound(node, count, batch, round)
      bestRaw = Math.max(bestRaw, r.raw.perSecond)
      bestSink = Math.max(bestSink, r.sink.perSecond)
      best = {
        records: count,
        raw: { seconds: count / bestRaw, perSecond: bestRaw },
        sink: { seconds: count / bestSink, perSecond: bestSink },
        ratioRawStream: bestSink / bestRaw
      }
    }
    if (best === undefined) throw new Error("no round")
    return best
  } finally {
    await node.stop()
  }
}

const oneRound = async (
  node: { readonly streamPort: number; readonly amqpUrl: string },
  count: number,
  batch: number,
  round: number
): Promise<StreamSinkFigures> => {
  const streamUrl = `rabbitmq-stream://guest:guest@127.0.0.1:${node.streamPort}/`
  const endpoint = parseStreamUrl(streamUrl)
  if (endpoint === undefined) throw new Error("bad stream URL")
  const bodies = Array.from({ length: count }, (_, i) => Buffer.from(JSON.stringify(JSON.stringify(body(i)))))
  // raw: one named producer, explicit ids, every batch confirmed before the next
  await Effect.runPromise(ensureStream("bench", `bench-raw-${round}`, endpoint, 10_000))
  const producer = await Effect.runPromise(
    openNamedProducer({
      owner: "bench raw",
      stream: `bench-raw-${round}`,
      name: `bench-raw-${round}`,
      endpoint,
      timeoutMs: 30_000,
      heartbeatSeconds: 10
    })
  )
  const rawStart = performance.now()
  for (let i = 0; i < count; i += batch)
    await Effect.runPromise(producer.publish(1, BigInt(i + 1), bodies.slice(i, i + batch)))
  const rawSeconds = (performance.now() - rawStart) / 1000
  await Effect.runPromise(producer.close)
  // the sink: write in channel-sized batches, snapshot n, commit n
  const records = Array.from({ length: count }, (_, i) => JSON.stringify(body(i)))
  const sinkSeconds = await Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const w = yield* makeRabbitMqStreamSink<unknown>({
          streamUrl,
          amqpUrl: node.amqpUrl,
          job: `bench${round}`,
          sink: "stream",
          instance: 0,
          stream: `bench-sink-${round}`,
          maxTransactionRecords: batch,
          commitTimeout: "30 seconds"
        })
        yield* w.restore(undefined)
        const started = performance.now()
        let n = 0
        for (let i = 0; i < count; i += batch) {
          for (let j = i; j < Math.min(count, i + batch); j += 500)
            yield* w.write(records.slice(j, Math.min(j + 500, i + batch, count)))
          n += 1
          yield* w.snapshot(n)
          yield* w.commit(n)
        }
        return (performance.now() - started) / 1000
      })
    )
  )
  const raw = { seconds: rawSeconds, perSecond: count / rawSeconds }
  const sink = { seconds: sinkSeconds, perSecond: count / sinkSeconds }
  return { records: count, raw, sink, ratioRawStream: sink.perSecond / raw.perSecond }
}
