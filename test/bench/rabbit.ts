/**
 * RabbitMQ benchmarks, in this process: the raw limit (persistent publishes in AMQP transactions
 * of `batch` messages, lib/connectors/rabbitmq/AmqpTx.ts) and the RabbitMqSink driven the way the runtime drives it
 * (write in channel-sized batches, snapshot = preCommit, commit with its marker) at the same
 * transaction size. Both publish the same JSON body with the same message properties (`recordProperties`,
 * ids of the same length: RabbitMQ's cost per message depends on their size).
 */
import amqp from "amqplib"
import { Effect } from "effect"
import { txCommit, txSelect } from "../../lib/connectors/rabbitmq/AmqpTx.ts"
import { makeRabbitMqSink } from "../../lib/connectors/rabbitmq/RabbitMqSink.ts"
import { recordProperties } from "../../lib/connectors/rabbitmq/RabbitMqSinkWire.ts"
import { type CpuReading, coresBetween, readCpu } from "./cpu.ts"

export interface RateFigures {
  readonly records: number
  readonly seconds: number
  readonly perSecond: number
  /** RabbitMQ's CPU per record during the run, µs (when its process is on this host) */
  readonly rabbitCpuMicros?: number
  /** the publishing process's own CPU per record (this process), µs */
  readonly publisherCpuMicros?: number
}

const body = (i: number) => ({ orderId: i, customer: `c${i % 1000}`, amount: i % 10_000, total: i * 7 })
const figures = (records: number, started: number): RateFigures => {
  const seconds = (performance.now() - started) / 1000
  return { records, seconds, perSecond: records / seconds }
}

/** The run's figures, with RabbitMQ's CPU per record since `before` (when its process is on this host). */
const measured = (
  count: number,
  started: number,
  before: CpuReading,
  ownBefore: NodeJS.CpuUsage
): RateFigures => {
  const own = process.cpuUsage(ownBefore)
  const rabbit = coresBetween(before, readCpu())
  const cores = rabbit.cores.rabbitmq
  return {
    ...figures(count, started),
    publisherCpuMicros: (own.user + own.system) / count,
    ...(cores === undefined ? {} : { rabbitCpuMicros: (cores * rabbit.seconds * 1e6) / count })
  }
}

const withQueue = async <A>(url: string, queue: string, f: (conn: amqp.ChannelModel) => Promise<A>) => {
  const conn = await amqp.connect(url)
  try {
    return await f(conn)
  } finally {
    const ch = await conn.createChannel()
    await ch.deleteQueue(queue).catch(() => undefined)
    await conn.close().catch(() => undefined)
  }
}

/** `count` persistent publishes, `batch` per transaction (the last publish of each is a marker-sized extra). */
export const rawTxPublish = (url: string, queue: string, count: number, batch: number) =>
  withQueue(url, queue, async (conn) => {
    const ch = await conn.createChannel()
    await ch.assertQueue(queue, { durable: true })
    await Effect.runPromise(txSelect(ch))
    const before = readCpu()
    const ownBefore = process.cpuUsage()
    const started = performance.now()
    let inTx = 0
    let n = 1
    const ids = { job: queue, sink: "sink", instance: 0 }
    for (let i = 0; i < count; i++) {
      const ok = ch.publish("", queue, Buffer.from(JSON.stringify(body(i))), recordProperties(ids, n, inTx))
      if (!ok) await new Promise((r) => ch.once("drain", r))
      if (++inTx === batch - 1 || i === count - 1) {
        await Effect.runPromise(txCommit(ch))
        inTx = 0
        n += 1
      }
    }
    return measured(count, started, before, ownBefore)
  })

/** The RabbitMqSink: `count` records through write (batches of `writeBatch`) / snapshot / commit cycles of `batch - 1` records. */
export const sinkCycles = (
  url: string,
  o: { readonly job: string; readonly queue: string },
  count: number,
  batch: number,
  writeBatch: number
) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const sink = yield* makeRabbitMqSink<unknown>({
          url,
          job: o.job,
          sink: "sink",
          instance: 0,
          queue: o.queue,
          maxTransactionMessages: batch
        })
        yield* sink.restore(undefined)
        const perTx = batch - 1
        const before = readCpu()
        const ownBefore = process.cpuUsage()
        const started = performance.now()
        let n = 0
        let inTx = 0
        for (let i = 0; i < count; i += writeBatch) {
          const records: Array<unknown> = []
          for (let j = i; j < Math.min(count, i + writeBatch); j++) records.push(body(j))
          yield* sink.write(records)
          inTx += records.length
          if (inTx >= perTx || i + writeBatch >= count) {
            n += 1
            yield* sink.snapshot(n)
            yield* sink.commit(n)
            inTx = 0
          }
        }
        return measured(count, started, before, ownBefore)
      })
    )
  ).finally(async () => {
    const conn = await amqp.connect(url)
    const ch = await conn.createChannel()
    ch.on("error", () => undefined)
    for (const q of [o.queue, `exactor.${o.job}.sink.0.marker`, `exactor.${o.job}.sink.0.lock`])
      await ch.deleteQueue(q).catch(() => undefined)
    await conn.close().catch(() => undefined)
  })
