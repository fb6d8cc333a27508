/**
 * The raw JetStream read the source is measured against, written the way a user would without
 * exactor, as its own process: one nats.js ordered consumer (`consume()`) reads the input stream and
 * `JSON.parse`s every order, nothing else. Args: natsUrl stream count. Prints one JSON line: records,
 * seconds (first to last message), perSecond, and its own CPU per record (µs, over its whole life).
 */
import { jetstream } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"

const [natsUrl, stream, countText] = process.argv.slice(2) as [string, string, string]
const count = Number(countText)

const nc = await connect({ servers: natsUrl, name: "bench-raw-read" })
const consumer = await jetstream(nc).consumers.get(stream)
const decoder = new TextDecoder()
let n = 0
let first = 0
let sum = 0
for await (const m of await consumer.consume()) {
  if (n === 0) first = performance.now()
  const o = JSON.parse(decoder.decode(m.data)) as { amount: number }
  sum += o.amount
  n += 1
  if (n === count) break
}
const seconds = (performance.now() - first) / 1000
const own = process.cpuUsage()
console.log(
  JSON.stringify({ records: n, seconds, perSecond: n / seconds, cpuMicros: (own.user + own.system) / n, sum })
)
await nc.close()
process.exit(0)
