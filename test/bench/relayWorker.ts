/**
 * The at-least-once baseline, written the way a user would without exactor, as its own process:
 * a JetStream ordered consumer reads the orders stream, parses each order, keeps the running total
 * per customer in a Map, and publishes the result persistently to RabbitMQ on a confirm channel
 * (waiting for the confirms every `window` messages). No checkpoints: a crash replays or loses
 * totals. Args: natsUrl amqpUrl stream queue count [window]. Prints one JSON line with its figures.
 */
import { jetstream } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import amqp from "amqplib"

const [natsUrl, amqpUrl, stream, queue, countText, windowText] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
  string | undefined
]
const count = Number(countText)
const window = Number(windowText ?? 1000)

const nc = await connect({ servers: natsUrl, name: "bench-relay" })
const conn = await amqp.connect(amqpUrl)
const ch = await conn.createConfirmChannel()
await ch.assertQueue(queue, { durable: true })
const consumer = await jetstream(nc).consumers.get(stream)
const totals = new Map<string, number>()
let n = 0
let first = 0
for await (const m of await consumer.consume()) {
  if (n === 0) first = performance.now()
  const o = m.json<{ id: number; customer: string; amount: number }>()
  const total = (totals.get(o.customer) ?? 0) + o.amount
  totals.set(o.customer, total)
  const body = JSON.stringify({ orderId: o.id, customer: o.customer, amount: o.amount, total })
  // properties of the sink's shape and size (RabbitMQ's work per message depends on their size)
  const ok = ch.publish("", queue, Buffer.from(body), {
    persistent: true,
    messageId: `${queue}/relay/0/1/${o.id}`
  })
  if (!ok) await new Promise((r) => ch.once("drain", r))
  n += 1
  if (n % window === 0 || n === count) await ch.waitForConfirms()
  if (n === count) break
}
const seconds = (performance.now() - first) / 1000
const own = process.cpuUsage()
// its own CPU over its whole life, per record (the bench reads the brokers' from /proc)
console.log(
  JSON.stringify({ records: n, seconds, perSecond: n / seconds, cpuMicros: (own.user + own.system) / n })
)
await ch.deleteQueue(queue).catch(() => undefined)
await conn.close()
await nc.close()
process.exit(0)
