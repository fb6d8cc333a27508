/**
 * `npm run bench [-- <name>...] [-- --quick]`: benchmarks that print their rate next to the raw
 * broker limit measured in the same run, and the ratio. Goals live here, not in timed tests.
 * Names: channel (exactor channel vs raw NATS pub->sub between two processes).
 */
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { defaultNatsUrl } from "../../lib/Brokers.ts"

const natsUrl = process.env.EXACTOR_NATS_URL ?? defaultNatsUrl
const args = process.argv.slice(2)
const quick = args.includes("--quick")
const names = args.filter((a) => !a.startsWith("--"))
const worker = fileURLToPath(new URL("./channelWorker.ts", import.meta.url))

interface Figures {
  readonly received: number
  readonly seconds: number
}

/** Starts the receiver, waits for `ready`, runs the sender, returns the receiver's figures. */
const pair = (mode: "raw" | "channel", count: number): Promise<Figures> =>
  new Promise((resolve, reject) => {
    const job = `bench${process.pid}${mode}${Date.now() % 100000}`
    const receiver = spawn(process.execPath, [worker, mode, "receive", natsUrl, String(count), job], {
      stdio: ["ignore", "pipe", "inherit"]
    })
    let out = ""
    let started = false
    receiver.stdout.setEncoding("utf8")
    receiver.stdout.on("data", (chunk: string) => {
      out += chunk
      if (out.includes("ready\n") && !started) {
        started = true
        const sender = spawn(process.execPath, [worker, mode, "send", natsUrl, String(count), job], {
          stdio: "inherit"
        })
        sender.on("exit", (code) => {
          if (code !== 0) reject(new Error(`${mode} sender exited with ${code}`))
        })
      }
    })
    receiver.on("exit", (code) => {
      const line = out.split("\n").find((l) => l.startsWith("{"))
      if (code !== 0 || !line) reject(new Error(`${mode} receiver exited with ${code}`))
      else resolve(JSON.parse(line) as Figures)
    })
  })

const rate = (f: Figures) => f.received / f.seconds

const channelBench = async () => {
  const count = quick ? 200_000 : 1_000_000
  const raw = await pair("raw", count)
  const channel = await pair("channel", count)
  const ratio = rate(channel) / rate(raw)
  console.log(
    `channel benchmark: ${count.toLocaleString("en")} records {id, customer, amount} between two processes`
  )
  console.log(
    `  raw NATS pub->sub, one msgpack record per message: ${Math.round(rate(raw)).toLocaleString("en")} records/s (${raw.received.toLocaleString("en")} of ${count.toLocaleString("en")} arrived)`
  )
  console.log(
    `  exactor channel (batches, credit, seq):            ${Math.round(rate(channel)).toLocaleString("en")} records/s (${channel.received.toLocaleString("en")} arrived, in order)`
  )
  console.log(`  ratio ${ratio.toFixed(2)} (goal >= 0.5)`)
  return { bench: "channel", count, rawPerSecond: rate(raw), channelPerSecond: rate(channel), ratio }
}

const benches: Record<string, () => Promise<unknown>> = { channel: channelBench }
const chosen = names.length > 0 ? names : Object.keys(benches)
const results: Array<unknown> = []
for (const name of chosen) {
  const bench = benches[name]
  if (!bench) {
    console.error(`unknown benchmark ${name}; known: ${Object.keys(benches).join(", ")}`)
    process.exit(64)
  }
  results.push(await bench())
}
console.log(
  JSON.stringify({
    machine: { cpus: (await import("node:os")).cpus().length, node: process.version },
    results
  })
)
