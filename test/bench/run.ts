/**
 * `npm run bench [-- <name>...] [-- --quick]`: benchmarks that print their rate next to the raw
 * broker limits measured in the same run, and the ratio; a table at the end, one JSON line, and
 * `exactor-bench.json`. Goals live here, not in timed tests. Names (default: all, in this order):
 * channel (exactor channel vs raw NATS pub->sub between two processes), rabbit (raw RabbitMQ
 * persistent publish in transactions), sink (RabbitMqSink vs raw, issue 5), relay (at-least-once
 * JetStream -> RabbitMQ relay process), p1 (example job), p2 (3-operator job: generated source,
 * map, discard sink), rawRead (a raw nats.js ordered consumer parsing the input, one process), p2js (the
 * orders job with a JetStream source and the discard sink, against rawRead), p2jsPar2 (p2js with 1
 * and 2 partitioned source instances: source CPU per record),
 * p3 (P2's job with checkpoints off vs every 1 s), p5 (checkpoint duration/alignment at half rate; also the
 * steady RSS of P6), p4 (recovery after SIGKILL), p6 (RSS under a slowed sink), pgsink (the PostgreSQL
 * sink vs a raw pg client, on a private cluster; JSON key `pgSink`), p1pg (P1 with the PostgreSQL sink),
 * windowed (the event-time example end to end, against P1: `results.windowed.perSecond`, `ratioP1`).
 * `EXACTOR_BENCH_PROFILE=<dir>`: the processes of the P1, p2js and windowed jobs write `--cpu-prof` profiles there.
 */
import { spawn } from "node:child_process"
import { writeFileSync } from "node:fs"
import { cpus, loadavg, totalmem } from "node:os"
import { fileURLToPath } from "node:url"
import { jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { defaultNatsUrl } from "../../lib/brokers/BrokerUrls.ts"
import { amqpUrl, uniqueName } from "../harness/env.ts"
import {
  benchModule,
  discardJob,
  p1 as runP1,
  recovery,
  sequenceModule,
  slowSink,
  steady,
  type Throughput
} from "./jobs.ts"
import { microsByKind, microsLine, microsPerRecord, readCpu } from "./cpu.ts"
import { createInput } from "./jobRun.ts"
import { type RateFigures, rawTxPublish, sinkCycles } from "./rabbit.ts"
import { streamSinkBench } from "./streamSink.ts"
import { p1PostgresBench, type PgSinkFigures, pgSinkBench } from "./postgres.ts"
import { windowedBench as windowedBench_ } from "./windowed.ts"

const natsUrl = process.env.EXACTOR_NATS_URL ?? defaultNatsUrl
const profileDir = process.env.EXACTOR_BENCH_PROFILE
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

/** A benchmark whose result others use runs once per run. */
function once<A>(f: () => Promise<A>): () => Promise<A> {
  let p: Promise<A> | undefined
  return () => {
    p ??= f()
    return p
  }
}

const channelBench = once(async () => {
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
})

const fmt = (n: number) => Math.round(n).toLocaleString("en")
const nc = await connect({ servers: natsUrl, name: "bench" })
/** records per AMQP transaction: the sink's default maxTransactionMessages (the marker included) */
const txSize = 10_000
const size = {
  rabbit: quick ? 30_000 : 100_000,
  input: quick ? 30_000 : 200_000,
  /** records of the generated job (P2, P3): enough for several checkpoints at its rate */
  generated: quick ? 1_000_000 : 5_000_000,
  generatedRounds: quick ? 1 : 3,
  steadySeconds: quick ? 6 : 30,
  kills: quick ? 3 : 10,
  slowSeconds: quick ? 6 : 20
}

/** Raw tx publish and the sink alternate (two rounds each, best of each), so neither gets the warm-up alone. */
const rabbitRounds = once(async () => {
  const raw: Array<RateFigures> = []
  const sink: Array<RateFigures> = []
  for (let round = 0; round < 2; round++) {
    raw.push(await rawTxPublish(amqpUrl, uniqueName("bench_raw"), size.rabbit, txSize))
    sink.push(
      await sinkCycles(
        amqpUrl,
        { job: uniqueName("bench_sink"), queue: uniqueName("bench_sinkq") },
        size.rabbit,
        txSize,
        256
      )
    )
  }
  const best = (xs: ReadonlyArray<RateFigures>) => xs.reduce((a, b) => (b.perSecond > a.perSecond ? b : a))
  return { raw: best(raw), sink: best(sink), rounds: { raw, sink } }
})

const rabbitBench = once(async () => {
  const r = (await rabbitRounds()).raw
  console.log(`rabbit: raw persistent publish, ${txSize}/tx: ${fmt(r.perSecond)} records/s`)
  return r
})

const sinkBench = once(async () => {
  const raw = await rabbitBench()
  const s = (await rabbitRounds()).sink
  const ratio = s.perSecond / raw.perSecond
  console.log(
    `sink: RabbitMqSink write+snapshot+commit: ${fmt(s.perSecond)} records/s, ${ratio.toFixed(2)} of raw (goal >= 0.8)${s.rabbitCpuMicros === undefined ? "" : `; RabbitMQ's CPU ${fmt(s.rabbitCpuMicros)} µs/record (raw ${fmt(raw.rabbitCpuMicros ?? 0)})`}`
  )
  return { ...s, ratio }
})

let inputStream: string | undefined
const input = once(async () => {
  inputStream = uniqueName("bench_in")
  await createInput(nc, inputStream, size.input)
  return inputStream
})

const relayBench = once(async () => {
  const stream = await input()
  const worker = fileURLToPath(new URL("./relayWorker.ts", import.meta.url))
  const before = readCpu()
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [worker, natsUrl, amqpUrl, stream, uniqueName("bench_relay"), String(size.input)],
      { stdio: ["ignore", "pipe", "inherit"] }
    )
    let text = ""
    child.stdout.on("data", (d: Buffer) => {
      text += d.toString()
    })
    child.on("exit", (code) => (code === 0 ? resolve(text) : reject(new Error(`relay exited with ${code}`))))
  })
  const figures = JSON.parse(out.split("\n").find((l) => l.startsWith("{"))!) as {
    perSecond: number
    seconds: number
    cpuMicros: number
  }
  // the brokers' from /proc while it ran; the relay's own it reports itself (it has exited)
  const brokers = microsPerRecord(before, readCpu(), size.input)
  const r = { ...figures, cpuMicros: { ...brokers, relay: figures.cpuMicros } }
  console.log(
    `relay: JetStream ordered consumer -> RabbitMQ confirms: ${fmt(r.perSecond)} records/s; CPU per record ${microsLine(r.cpuMicros)}`
  )
  return r
})

/** The raw JetStream read: one nats.js ordered consumer JSON-parsing the same input the p2js job reads. */
const rawReadBench = once(async () => {
  const stream = await input()
  const worker = fileURLToPath(new URL("./rawReadWorker.ts", import.meta.url))
  const before = readCpu()
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, [worker, natsUrl, stream, String(size.input)], {
      stdio: ["ignore", "pipe", "inherit"]
    })
    let text = ""
    child.stdout.on("data", (d: Buffer) => {
      text += d.toString()
    })
    child.on("exit", (code) =>
      code === 0 ? resolve(text) : reject(new Error(`raw read exited with ${code}`))
    )
  })
  const figures = JSON.parse(out.split("\n").find((l) => l.startsWith("{"))!) as {
    perSecond: number
    seconds: number
    cpuMicros: number
  }
  const nats = microsPerRecord(before, readCpu(), size.input).nats
  const r = {
    perSecond: figures.perSecond,
    seconds: figures.seconds,
    cpuMicros: figures.cpuMicros,
    natsCpuMicros: nats
  }
  console.log(
    `rawRead: nats.js ordered consumer + JSON.parse: ${fmt(r.perSecond)} records/s, ${r.cpuMicros.toFixed(1)} µs CPU per record (nats-server ${(nats ?? 0).toFixed(1)})`
  )
  return r
})

/** "rabbitmq 0.80, nats 0.14, orders 0.28, …; machine 87% busy" */
const cpuLine = (cpu: NonNullable<Throughput["cpu"]>) =>
  `${Object.entries(cpu.cores)
    .sort((a, b) => b[1] - a[1])
    .map(([g, c]) => `${g} ${c.toFixed(2)}`)
    .join(", ")}; machine ${Math.round(cpu.busyShare * 100)}% busy`

const p1Bench = once(async () => {
  const [raw, relay] = [await rabbitBench(), await relayBench()]
  const t = await runP1(nc, {
    job: uniqueName("bench_p1"),
    stream: await input(),
    count: size.input,
    ...(profileDir ? { profileDir } : {})
  })
  const r = {
    ...t,
    ratioRabbit: t.perSecond / raw.perSecond,
    ratioRelay: t.perSecond / relay.perSecond,
    cpuMicros: t.cpu ? microsByKind(t.cpu.cores, t.perSecond) : {}
  }
  console.log(
    `P1: example job ${fmt(t.perSecond)} records/s (exit ${t.exitCode}, exactly once: ${t.exactlyOnce} ${JSON.stringify(t.verdict)}); ${r.ratioRabbit.toFixed(2)} of RabbitMQ tx, ${r.ratioRelay.toFixed(2)} of the relay; the sink had a commit in flight ${(t.sinkCommitSeconds ?? 0).toFixed(1)} s of the ${t.seconds.toFixed(1)} s`
  )
  if (t.cpu) console.log(`  cores used: ${cpuLine(t.cpu)}`)
  return r
})

/**
 * P2 and P3 run the generated 3-operator job (test/fixtures/benchSequence.ts): the runtime alone.
 * Checkpoints every 1 s and off alternate, best of each over `size.generatedRounds` rounds, so that
 * neither gets the machine's quiet or busy moment alone (a run takes seconds, 2 cores are shared
 * with both brokers, and single runs swung by 20%).
 */
const generatedRounds = once(async () => {
  const every: Array<Throughput> = []
  const off: Array<Throughput> = []
  for (let round = 0; round < size.generatedRounds; round++)
    for (const [interval, into] of [
      [1000, every],
      [0, off]
    ] as const)
      into.push(
        await discardJob(nc, {
          job: uniqueName(interval > 0 ? "bench_p2" : "bench_p3"),
          module: sequenceModule,
          stream: "",
          count: size.generated,
          interval
        })
      )
  const best = (xs: ReadonlyArray<Throughput>) => xs.reduce((a, b) => (b.perSecond > a.perSecond ? b : a))
  return { every: best(every), off: best(off) }
})

const p2Bench = once(async () => {
  const raw = await channelBench()
  const t = (await generatedRounds()).every
  const r = { ...t, ratio: t.perSecond / raw.rawPerSecond }
  console.log(
    `P2: 3-operator job (generated source -> map -> discard sink), checkpoint 1 s: ${fmt(t.perSecond)} records/s; ${r.ratio.toFixed(2)} of raw NATS`
  )
  return r
})

/** The orders job over the JetStream input with `sources` partitioned source instances and the discard sink. */
const jetStreamJob = async (name: string, sources: number) => {
  const t = await discardJob(nc, {
    job: uniqueName(name),
    module: benchModule,
    stream: await input(),
    count: size.input,
    interval: 1000,
    env: {
      EXACTOR_SOURCE_PARALLELISM: String(sources),
      ...(profileDir ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profileDir}` } : {})
    }
  })
  return { ...t, cpuMicros: t.cpu ? microsByKind(t.cpu.cores, t.perSecond) : {} }
}

/** The orders job with a JetStream source (2 instances, 4 partitions) and the discard sink, against the raw read. */
const p2JetStreamBench = once(async () => {
  const raw = await rawReadBench()
  const t = await jetStreamJob("bench_p2js", 2)
  const r = { ...t, ratioRawRead: t.perSecond / raw.perSecond }
  console.log(
    `P2 with a JetStream source (orders job, 2 source instances, discard sink): ${fmt(t.perSecond)} records/s; ${r.ratioRawRead.toFixed(2)} of the raw read; CPU per record ${microsLine(r.cpuMicros)}`
  )
  return r
})

/** Source CPU per record with 2 partitioned source instances over that with 1 (each reads only its partitions). */
const p2jsPar2Bench = once(async () => {
  const two = await p2JetStreamBench()
  const one = await jetStreamJob("bench_p2js1", 1)
  const sourceCpuRatio = (two.cpuMicros.source ?? 0) / (one.cpuMicros.source ?? 1)
  console.log(
    `p2js source CPU per record: 1 instance ${(one.cpuMicros.source ?? 0).toFixed(1)} µs, 2 instances ${(two.cpuMicros.source ?? 0).toFixed(1)} µs; ratio ${sourceCpuRatio.toFixed(2)}`
  )
  return {
    sourceCpuRatio,
    one: { perSecond: one.perSecond, cpuMicros: one.cpuMicros },
    two: { perSecond: two.perSecond, cpuMicros: two.cpuMicros }
  }
})

const p3Bench = once(async () => {
  const { every, off } = await generatedRounds()
  const r = { off: off.perSecond, every: every.perSecond, ratio: every.perSecond / off.perSecond }
  console.log(
    `P3: checkpoints off ${fmt(off.perSecond)} records/s, every 1 s ${fmt(every.perSecond)}; ratio ${r.ratio.toFixed(2)}`
  )
  return r
})

const p5Bench = once(async () => {
  const max = (await p1Bench()).perSecond
  const s = await steady(nc, {
    job: uniqueName("bench_p5"),
    stream: uniqueName("bench_steady"),
    rate: Math.round(max / 2),
    seconds: size.steadySeconds
  })
  console.log(
    `P5: at ${fmt(s.ratePerSecond)} records/s (sink wrote ${fmt(s.outPerSecond)}/s), ${s.checkpoints} checkpoints: duration p50 ${s.durationP50} ms p99 ${s.durationP99} ms, alignment p50 ${s.alignmentP50} ms p99 ${s.alignmentP99} ms; RSS max ${s.rss.maxMb.toFixed(0)} MB, growth ${s.rss.maxGrowthMb.toFixed(1)} MB`
  )
  return s
})

const p4Bench = once(async () => {
  const rate = Math.min(20_000, Math.round((await p2JetStreamBench()).perSecond / 2))
  const r = await recovery(nc, {
    job: uniqueName("bench_p4"),
    stream: uniqueName("bench_kill"),
    rate,
    kills: size.kills,
    restartDelayMs: 200
  })
  console.log(
    `P4: ${r.kills.length} kills at ${fmt(rate)} records/s: kill -> first output of the new epoch p50 ${fmt(r.p50)} ms, max ${fmt(r.max)} ms (${r.kills.map((k) => `${k.instance} ${fmt(k.ms)}`).join(", ")})`
  )
  return { ...r, rate }
})

const p6Bench = once(async () => {
  const steadyFigures = await p5Bench()
  const slow = await slowSink(nc, {
    job: uniqueName("bench_p6"),
    stream: uniqueName("bench_slow"),
    rate: 20_000,
    delayMs: 50,
    seconds: size.slowSeconds
  })
  console.log(
    `P6: slowed sink (50 ms per batch; fed 20,000/s, drained ${fmt(slow.sinkPerSecond)}/s): RSS max ${slow.rss.maxMb.toFixed(0)} MB, growth ${slow.rss.maxGrowthMb.toFixed(1)} MB; steady max ${steadyFigures.rss.maxMb.toFixed(0)} MB`
  )
  return { steady: steadyFigures.rss, slow }
})

const streamSinkRow = once(async () => {
  const r = await streamSinkBench(size.rabbit, txSize)
  console.log(
    `streamSink: RabbitMqStreamSink write+snapshot+commit: ${fmt(r.sink.perSecond)} records/s; raw named producer with confirms ${fmt(r.raw.perSecond)} records/s; ratio ${r.ratioRawStream.toFixed(2)} (goal >= 0.8)`
  )
  return r
})

const pgsinkBench = once(async () => {
  const r = await pgSinkBench(quick ? 30_000 : 100_000)
  console.log(
    `pgsink: PostgresSink write+PREPARE+COMMIT PREPARED: ${fmt(r.perSecond)} records/s; raw pg client, same rows and transactions: ${fmt(r.rawPerSecond)} records/s; ratio ${r.ratioRaw.toFixed(2)} (goal >= 0.8)`
  )
  return r
})

/** The event-time example end to end (test/bench/windowed.ts), against P1 in the same run. */
const windowedBench = once(async () => {
  const base = await p1Bench()
  const w = await windowedBench_(nc, natsUrl, size.input, profileDir)
  const r = { ...w, ratioP1: w.perSecond / base.perSecond }
  console.log(
    `windowed: revenue example ${fmt(w.perSecond)} input records/s to FINISHED (${fmt(w.results)} (record, window) and join pairs; exit ${w.exitCode}, exactly once by the oracles: ${w.exactlyOnce}); ${r.ratioP1.toFixed(2)} of P1`
  )
  console.log(
    `  CPU µs per input record: ${Object.entries(w.cpuMicros)
      .sort((a, b) => b[1] - a[1])
      .map(([g, us]) => `${g} ${us.toFixed(1)}`)
      .join(", ")}`
  )
  return r
})

const p1pgBench = once(async () => {
  const t = await p1PostgresBench(nc, {
    job: uniqueName("bench_p1pg"),
    stream: await input(),
    count: size.input
  })
  console.log(
    `P1 with the PostgreSQL sink: ${fmt(t.perSecond)} records/s (exit ${t.exitCode}, exactly once: ${t.exactlyOnce} ${JSON.stringify(t.verdict)}, SQL ${JSON.stringify(t.sql)})`
  )
  return t
})

const benches: Record<string, () => Promise<unknown>> = {
  channel: channelBench,
  rabbit: rabbitBench,
  sink: sinkBench,
  relay: relayBench,
  p1: p1Bench,
  windowed: windowedBench,
  p2: p2Bench,
  rawRead: rawReadBench,
  p2js: p2JetStreamBench,
  p2jsPar2: p2jsPar2Bench,
  p3: p3Bench,
  p5: p5Bench,
  p4: p4Bench,
  p6: p6Bench,
  streamSink: streamSinkRow,
  pgsink: pgsinkBench,
  p1pg: p1pgBench
}
const chosen = names.length > 0 ? names : Object.keys(benches)
for (const name of chosen)
  if (!benches[name]) {
    console.error(`unknown benchmark ${name}; known: ${Object.keys(benches).join(", ")}`)
    process.exit(64)
  }
const load = loadavg()
const started = performance.now()
const results: Record<string, unknown> = {}
try {
  for (const name of chosen) results[name === "pgsink" ? "pgSink" : name] = await benches[name]!()
} finally {
  if (inputStream) await (await jetstreamManager(nc)).streams.delete(inputStream).catch(() => false)
}

// ---------------------------------------------------------------------------------------------
// The table

type Row = readonly [what: string, measured: string, goal: string, met: string]
const rows: Array<Row> = []
const yes = (ok: boolean) => (ok ? "yes" : "**no**")
const c = results.channel as Awaited<ReturnType<typeof channelBench>> | undefined
const rb = results.rabbit as Awaited<ReturnType<typeof rabbitBench>> | undefined
const sk = results.sink as Awaited<ReturnType<typeof sinkBench>> | undefined
const rl = results.relay as Awaited<ReturnType<typeof relayBench>> | undefined
const r1 = results.p1 as Awaited<ReturnType<typeof p1Bench>> | undefined
const rw = results.windowed as Awaited<ReturnType<typeof windowedBench>> | undefined
const r2 = results.p2 as Awaited<ReturnType<typeof p2Bench>> | undefined
const r2js = results.p2js as Awaited<ReturnType<typeof p2JetStreamBench>> | undefined
const rr = results.rawRead as Awaited<ReturnType<typeof rawReadBench>> | undefined
const r2par = results.p2jsPar2 as Awaited<ReturnType<typeof p2jsPar2Bench>> | undefined
const r3 = results.p3 as Awaited<ReturnType<typeof p3Bench>> | undefined
const r4 = results.p4 as Awaited<ReturnType<typeof p4Bench>> | undefined
const r5 = results.p5 as Awaited<ReturnType<typeof p5Bench>> | undefined
const r6 = results.p6 as Awaited<ReturnType<typeof p6Bench>> | undefined
const pgs = results.pgSink as PgSinkFigures | undefined
const p1pg = results.p1pg as Awaited<ReturnType<typeof p1pgBench>> | undefined
if (p1pg)
  rows.push([
    "P1 with the PostgreSQL sink (prepared), first to last row",
    `${fmt(p1pg.perSecond)}/s`,
    "exactly once",
    yes(p1pg.exactlyOnce)
  ])
if (rw)
  rows.push([
    "windowed: the revenue example (2 sources, 3 window kinds, an interval join, 5 sinks), input records/s to FINISHED, ratio to P1",
    `${fmt(rw.perSecond)}/s, ${rw.ratioP1.toFixed(2)}${rw.exactlyOnce ? "" : " (NOT exactly once)"}`,
    ">= 0.8",
    yes(rw.ratioP1 >= 0.8 && rw.exactlyOnce)
  ])
if (pgs) {
  rows.push([
    `raw pg client, multi-row INSERTs, ${fmt(pgs.txSize)} rows per transaction`,
    `${fmt(pgs.rawPerSecond)}/s`,
    "",
    ""
  ])
  rows.push([
    `PostgreSQL sink alone (prepared: PREPARE + COMMIT PREPARED), ${fmt(pgs.txSize)} per transaction`,
    `${fmt(pgs.perSecond)}/s, ratioRaw ${pgs.ratioRaw.toFixed(2)}`,
    ">= 0.8",
    yes(pgs.ratioRaw >= 0.8)
  ])
}
if (c) {
  rows.push([
    "raw NATS pub→sub, one msgpack record per message (2 processes)",
    `${fmt(c.rawPerSecond)}/s`,
    "",
    ""
  ])
  rows.push([
    "exactor channel (batches, credit, seq), ratio to raw NATS",
    `${fmt(c.channelPerSecond)}/s, ${c.ratio.toFixed(2)}`,
    "≥ 0.5",
    yes(c.ratio >= 0.5)
  ])
}
const ss = results.streamSink as Awaited<ReturnType<typeof streamSinkRow>> | undefined
if (ss)
  rows.push([
    `RabbitMQ stream sink (${fmt(txSize)} per checkpoint, private node), ratio to a raw named producer with confirms (${fmt(ss.raw.perSecond)}/s)`,
    `${fmt(ss.sink.perSecond)}/s, ${ss.ratioRawStream.toFixed(2)}`,
    "≥ 0.8",
    yes(ss.ratioRawStream >= 0.8)
  ])
if (rb)
  rows.push([`raw RabbitMQ persistent publish, ${fmt(txSize)} per AMQP tx`, `${fmt(rb.perSecond)}/s`, "", ""])
if (rl)
  rows.push([
    "at-least-once relay: JetStream ordered consumer → RabbitMQ confirms (1 process)",
    `${fmt(rl.perSecond)}/s`,
    "",
    ""
  ])
if (sk)
  rows.push([
    "sink: RabbitMqSink write+snapshot+commit, ratio to raw tx",
    `${fmt(sk.perSecond)}/s, ${sk.ratio.toFixed(2)}`,
    "≥ 0.8",
    yes(sk.ratio >= 0.8)
  ])
if (r1) {
  rows.push([
    "P1 example job end to end (RabbitMQ 2PC, ckpt 1 s), ratio to RabbitMQ tx",
    `${fmt(r1.perSecond)}/s, ${r1.ratioRabbit.toFixed(2)}`,
    "≥ 0.8",
    yes(r1.ratioRabbit >= 0.8)
  ])
  rows.push([
    "P1 ratio to the at-least-once relay",
    r1.ratioRelay.toFixed(2),
    "≥ 1.0",
    yes(r1.ratioRelay >= 1)
  ])
  rows.push(["P1 CPU per record by kind", microsLine(r1.cpuMicros), "", ""])
  rows.push([
    "P1 sink's time with a commit in flight (it takes input meanwhile) / the run",
    `${(r1.sinkCommitSeconds ?? 0).toFixed(1)} s / ${r1.seconds.toFixed(1)} s`,
    "",
    ""
  ])
  if (r1.cpu)
    rows.push([`P1 cores used (of ${cpus().length}), first to last output`, cpuLine(r1.cpu), "", ""])
  const raw = await rabbitBench()
  const relay = await relayBench()
  if (r1.cpu && raw.rabbitCpuMicros !== undefined) {
    const p1Micros = Object.fromEntries(
      Object.entries(r1.cpu.cores).map(([g, cores]) => [g, (cores * 1e6) / r1.perSecond])
    )
    const rawMicros = { rabbitmq: raw.rabbitCpuMicros, publisher: raw.publisherCpuMicros ?? 0 }
    const sinkOwn = r1.cpuMicros.sink
    if (sinkOwn !== undefined)
      rows.push([
        "P1 sink's own CPU per record (RabbitMQ excluded) vs the relay process's own",
        `${sinkOwn.toFixed(0)} µs vs ${relay.cpuMicros.relay.toFixed(0)} µs`,
        "≤ the relay's",
        yes(sinkOwn <= relay.cpuMicros.relay)
      ])
    rows.push([
      "CPU per record: P1 / the relay / raw tx",
      `${microsLine(p1Micros)} / ${microsLine(relay.cpuMicros)} / ${microsLine(rawMicros)}`,
      "",
      ""
    ])
    // What 0.8 of raw leaves per record on this machine, at P1's own busy share: the goal needs
    // P1's whole per-record CPU (brokers included) under it.
    const target = 0.8 * raw.perSecond
    const budget = (cpus().length * r1.cpu.busyShare * 1e6) / target
    const total = Object.values(p1Micros).reduce((a, b) => a + b, 0)
    rows.push([
      `P1's CPU budget at 0.8 of raw (${fmt(target)}/s on ${cpus().length} cores, ${Math.round(r1.cpu.busyShare * 100)}% busy) vs P1's CPU per record`,
      `${fmt(budget)} µs vs ${fmt(total)} µs`,
      "",
      ""
    ])
  }
}
if (r2)
  rows.push([
    "P2 3-operator job (generated source → map → discard sink, ckpt 1 s), ratio to raw NATS pub→sub",
    `${fmt(r2.perSecond)}/s, ${r2.ratio.toFixed(2)}`,
    "≥ 0.5",
    yes(r2.ratio >= 0.5)
  ])
if (rr)
  rows.push([
    "raw JetStream read: nats.js ordered consumer + JSON.parse (1 process), CPU per record",
    `${fmt(rr.perSecond)}/s, ${rr.cpuMicros.toFixed(1)} µs`,
    "",
    ""
  ])
if (r2js) {
  rows.push([
    "p2js: orders job, JetStream source (2 instances, 4 partitions) → parse → total → discard sink, ratio to the raw read",
    `${fmt(r2js.perSecond)}/s, ${r2js.ratioRawRead.toFixed(2)}`,
    "≥ 0.5",
    yes(r2js.ratioRawRead >= 0.5)
  ])
  rows.push(["p2js CPU per record by kind", microsLine(r2js.cpuMicros), "", ""])
  const m = r2js.cpuMicros
  if (rr && m.source !== undefined)
    rows.push([
      "p2js source CPU per record / the raw read's",
      `${m.source.toFixed(1)} / ${rr.cpuMicros.toFixed(1)} µs = ${(m.source / rr.cpuMicros).toFixed(1)}×`,
      "≤ 2×",
      yes(m.source / rr.cpuMicros <= 2)
    ])
  if (m.map !== undefined)
    rows.push([
      "stateless map hop (parse), CPU per record",
      `${m.map.toFixed(1)} µs`,
      "≤ 6 µs",
      yes(m.map <= 6)
    ])
  if (m.keyed !== undefined)
    rows.push([
      "keyed running-total hop, CPU per record",
      `${m.keyed.toFixed(1)} µs`,
      "≤ 10 µs",
      yes(m.keyed <= 10)
    ])
}
if (r2par)
  rows.push([
    "2 partitioned source instances / 1, source CPU per record",
    `${(r2par.two.cpuMicros.source ?? 0).toFixed(1)} / ${(r2par.one.cpuMicros.source ?? 0).toFixed(1)} µs = ${r2par.sourceCpuRatio.toFixed(2)}`,
    "≤ 1.1",
    yes(r2par.sourceCpuRatio <= 1.1)
  ])
if (r3)
  rows.push([
    `P3 P2's job, checkpoint every 1 s vs off (interval 0), best of ${size.generatedRounds} runs each`,
    `${fmt(r3.every)}/s vs ${fmt(r3.off)}/s, ${r3.ratio.toFixed(2)}`,
    "≥ 0.9",
    yes(r3.ratio >= 0.9)
  ])
if (r4)
  rows.push([
    `P4 SIGKILL of one actor → first output of new epoch (${r4.kills.length} kills)`,
    `p50 ${fmt(r4.p50)} ms, max ${fmt(r4.max)} ms`,
    "p50 < 1 s",
    yes(r4.p50 < 1000)
  ])
if (r5) {
  rows.push([
    `P5 checkpoint duration at ${fmt(r5.ratePerSecond)}/s (${r5.checkpoints} ckpts)`,
    `p50 ${r5.durationP50} ms, p99 ${r5.durationP99} ms`,
    "p99 < 250 ms",
    yes(r5.durationP99 < 250)
  ])
  rows.push(["P5 alignment time", `p50 ${r5.alignmentP50} ms, p99 ${r5.alignmentP99} ms`, "", ""])
}
if (r6) {
  rows.push([
    "P6 RSS per actor, steady (max; growth)",
    `${r6.steady.maxMb.toFixed(0)} MB; ${r6.steady.maxGrowthMb.toFixed(1)} MB`,
    "< 100 MB, flat",
    yes(r6.steady.maxMb < 100 && r6.steady.maxGrowthMb < 10)
  ])
  rows.push([
    `P6 RSS per actor, sink slowed (drains ${fmt(r6.slow.sinkPerSecond)}/s of 20,000/s fed)`,
    `${r6.slow.rss.maxMb.toFixed(0)} MB; ${r6.slow.rss.maxGrowthMb.toFixed(1)} MB`,
    "< 100 MB, flat",
    yes(r6.slow.rss.maxMb < 100 && r6.slow.rss.maxGrowthMb < 10)
  ])
}
const machine = {
  cpus: cpus().length,
  cpu: cpus()[0]?.model ?? "?",
  memGB: Math.round(totalmem() / 2 ** 30),
  node: process.version,
  loadBefore: load.map((x) => x.toFixed(2)).join(" "),
  loadAfter: loadavg()
    .map((x) => x.toFixed(2))
    .join(" "),
  quick,
  seconds: Math.round((performance.now() - started) / 1000)
}
console.log(
  [
    "",
    `exactor bench${quick ? " --quick" : ""}: ${machine.cpus} cores (${machine.cpu}), ${machine.memGB} GB, Node ${machine.node}; load before ${machine.loadBefore}, after ${machine.loadAfter}; ${machine.seconds} s`,
    "",
    "| what | measured | goal | met |",
    "| --- | --- | --- | --- |",
    ...rows.map((r) => `| ${r.join(" | ")} |`)
  ].join("\n")
)
const json = JSON.stringify({ machine, results })
console.log(json)
writeFileSync("exactor-bench.json", `${json}\n`)
await nc.close()
process.exit(0)
