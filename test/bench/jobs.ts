/**
 * The job benchmarks P1-P6 (issue 7): whole jobs run as processes by `exactor run`, observed from
 * outside. Throughput counts records from the first to the last output (not process start-up):
 * (records out after the first observation) / (time of the last - time of the first).
 */
import { fileURLToPath } from "node:url"
import type { NatsConnection } from "@nats-io/transport-node"
import amqp from "amqplib"
import { Effect } from "effect"
import { checkOrders, drainQueue, exactlyOnce } from "../../lib/chaos/OutputCheck.ts"
import { generateOrder } from "../../lib/connectors/jetstream/Producer.ts"
import { type CpuReading, coresBetween, readCpu } from "./cpu.ts"
import { amqpUrl } from "../harness/env.ts"
import { ordersModule } from "../harness/job.ts"
import {
  createInput,
  type JobRun,
  instances,
  percentile,
  rssMb,
  sleep,
  startJob,
  steadyProducer
} from "./jobRun.ts"

export const benchModule = fileURLToPath(new URL("../fixtures/benchOrders.ts", import.meta.url))
export const sequenceModule = fileURLToPath(new URL("../fixtures/benchSequence.ts", import.meta.url))

export interface Throughput {
  readonly records: number
  readonly seconds: number
  readonly perSecond: number
  readonly exitCode: number
  readonly exactlyOnce?: boolean
  /** P1: the sink's time in commit (tx.commit on `complete n`, when it takes no input), per its last heartbeat, s */
  readonly sinkCommitSeconds?: number
  /** P1: cores each process group used from the first to the last output (test/bench/cpu.ts), and the machine's busy share */
  readonly cpu?: { readonly cores: Readonly<Record<string, number>>; readonly busyShare: number }
  /** the output check's counts (P1), so a failed check says what was lost or duplicated */
  readonly verdict?: {
    readonly ok: number
    readonly lost: number
    readonly duplicated: number
    readonly unexpected: number
    readonly brokenChains: number
  }
}

/** Polls `count()` every 50 ms until it reaches `total` (or the job exits); the first-to-last rate. `onEdge` is called at the first and at the last output. */
const watchOutput = async (
  count: () => Promise<number> | number,
  total: number,
  run: JobRun,
  onEdge: (edge: "first" | "last") => void = () => {}
) => {
  let exited = false
  void run.exit.then(() => (exited = true))
  let first: { at: number; n: number } | undefined
  let last = performance.now()
  const deadline = Date.now() + 600_000
  for (;;) {
    const n = await count()
    const now = performance.now()
    if (n > 0 && first === undefined) {
      first = { at: now, n }
      onEdge("first")
    }
    if (n >= total) {
      last = now
      onEdge("last")
      break
    }
    if ((exited && n < total) || Date.now() > deadline)
      throw new Error(
        `${run.job}: ${n} of ${total} records came out; exit; log tail:\n${run.output().slice(-3000)}`
      )
    await sleep(50)
  }
  const f = first!
  const seconds = (last - f.at) / 1000
  return { records: total - f.n, seconds, perSecond: (total - f.n) / seconds }
}

const untilRunning = async (run: JobRun) => {
  const deadline = Date.now() + 60_000
  while (!run.allRunning(instances)) {
    if (Date.now() > deadline)
      throw new Error(
        `${run.job}: not every instance running after 60 s: ${JSON.stringify([...run.seen])}\n${run.output().slice(-3000)}`
      )
    await sleep(100)
  }
}

/** P1: the example job (actors/examples/orders.ts, RabbitMQ 2PC sink, checkpoint every 1 s) over `stream`. */
export const p1 = async (
  nc: NatsConnection,
  o: { readonly job: string; readonly stream: string; readonly count: number; readonly profileDir?: string }
): Promise<Throughput> => {
  const queue = `${o.job}-totals`
  const conn = await amqp.connect(amqpUrl)
  const ch = await conn.createChannel()
  await ch.assertQueue(queue, { durable: true })
  const run = await startJob(nc, {
    module: ordersModule,
    job: o.job,
    stream: o.stream,
    queue,
    env: {
      EXACTOR_CHECKPOINT_INTERVAL: "1000",
      ...(o.profileDir ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${o.profileDir}` } : {})
    }
  })
  try {
    const readings: Array<CpuReading> = []
    const t = await watchOutput(
      async () => (await ch.checkQueue(queue)).messageCount,
      o.count,
      run,
      () => readings.push(readCpu())
    )
    const { cores, busyShare } = coresBetween(readings[0]!, readings[1]!)
    const exitCode = await run.exit
    const output = await Effect.runPromise(drainQueue(amqpUrl, queue, 2000))
    const input = Array.from({ length: o.count }, (_, i) => generateOrder(i))
    const v = checkOrders(input, output)
    const { ok, lost, duplicated, unexpected, brokenChains } = v
    return {
      ...t,
      exitCode,
      sinkCommitSeconds: (run.seen.get("sink#0")?.commitMs ?? 0) / 1000,
      cpu: { cores, busyShare },
      exactlyOnce: exactlyOnce(v),
      verdict: { ok, lost, duplicated, unexpected, brokenChains }
    }
  } finally {
    await conn.close().catch(() => undefined)
    await run.cleanup([], [queue])
  }
}

/** Counts the record counts the discard sink publishes on `subject`. */
const progressCounter = (nc: NatsConnection, subject: string) => {
  let n = 0
  /** arrival times since the last `mark()` */
  let times: Array<number> = []
  const sub = nc.subscribe(subject, {
    callback: (_e, m) => {
      n += Number(m.string())
      if (times.length < 100_000) times.push(performance.now())
    }
  })
  return {
    count: () => n,
    mark: () => {
      times = []
    },
    firstAfter: (t: number) => times.find((x) => x > t),
    stop: () => sub.unsubscribe()
  }
}

/**
 * A job with the discard sink, checkpoints every `interval` ms (0 = final only): P2/P3's
 * generated 3-operator job (`sequenceModule`, `count` records), or the orders job over `stream`.
 */
export const discardJob = async (
  nc: NatsConnection,
  o: {
    readonly job: string
    readonly module: string
    readonly stream: string
    readonly count: number
    readonly interval: number
    readonly env?: Readonly<Record<string, string>>
  }
): Promise<Throughput> => {
  const subject = `bench.${o.job}.progress`
  const progress = progressCounter(nc, subject)
  await nc.flush()
  const run = await startJob(nc, {
    module: o.module,
    job: o.job,
    stream: o.stream,
    env: {
      EXACTOR_BENCH_SINK: "discard",
      EXACTOR_BENCH_RECORDS: String(o.count),
      EXACTOR_PROGRESS_SUBJECT: subject,
      EXACTOR_CHECKPOINT_INTERVAL: String(o.interval),
      ...o.env
    }
  })
  try {
    const readings: Array<CpuReading> = []
    const t = await watchOutput(progress.count, o.count, run, () => readings.push(readCpu()))
    const { cores, busyShare } = coresBetween(readings[0]!, readings[1]!)
    return { ...t, exitCode: await run.exit, cpu: { cores, busyShare } }
  } finally {
    progress.stop()
    await run.cleanup([], [])
  }
}

export interface RssFigures {
  /** per instance: the highest RSS seen and the growth from the first to the last third of the samples, MB */
  readonly perInstance: Record<string, { readonly maxMb: number; readonly growthMb: number }>
  readonly maxMb: number
  readonly maxGrowthMb: number
}

const rssSampler = (run: JobRun) => {
  const samples = new Map<string, Array<number>>()
  const timer = setInterval(() => {
    for (const [id, s] of run.seen) {
      const mb = s.pid > 0 ? rssMb(s.pid) : undefined
      if (mb === undefined) continue
      const list = samples.get(id) ?? []
      list.push(mb)
      samples.set(id, list)
    }
  }, 500)
  return {
    stop: (): RssFigures => {
      clearInterval(timer)
      const perInstance: Record<string, { maxMb: number; growthMb: number }> = {}
      for (const [id, xs] of samples) {
        const third = Math.max(1, Math.floor(xs.length / 3))
        const mean = (ys: ReadonlyArray<number>) => ys.reduce((a, b) => a + b, 0) / ys.length
        perInstance[id] = {
          maxMb: Math.max(...xs),
          growthMb: mean(xs.slice(-third)) - mean(xs.slice(0, third))
        }
      }
      const v = Object.values(perInstance)
      return {
        perInstance,
        maxMb: Math.max(...v.map((x) => x.maxMb)),
        maxGrowthMb: Math.max(...v.map((x) => x.growthMb))
      }
    }
  }
}

export interface SteadyFigures {
  readonly ratePerSecond: number
  readonly outPerSecond: number
  readonly checkpoints: number
  readonly durationP50: number
  readonly durationP99: number
  readonly alignmentP50: number
  readonly alignmentP99: number
  readonly rss: RssFigures
}

/** P5 + P6 (steady): the RabbitMQ job on an unbounded stream fed at `rate`/s for `seconds`. */
export const steady = async (
  nc: NatsConnection,
  o: { readonly job: string; readonly stream: string; readonly rate: number; readonly seconds: number }
): Promise<SteadyFigures> => {
  const queue = `${o.job}-totals`
  await createInput(nc, o.stream, 0)
  const run = await startJob(nc, {
    module: benchModule,
    job: o.job,
    stream: o.stream,
    queue,
    env: { EXACTOR_BENCH_BOUNDED: "0", EXACTOR_CHECKPOINT_INTERVAL: "1000" }
  })
  let producer: ReturnType<typeof steadyProducer> | undefined
  try {
    await untilRunning(run)
    producer = steadyProducer(nc, o.stream, o.rate)
    await sleep(2000) // warm-up: first checkpoints, JIT
    const from = performance.now()
    const sinkOut0 = run.seen.get("sink#0")?.recordsOut ?? 0
    const rss = rssSampler(run)
    const history = new Map<number, { durationMs: number; alignmentMs: number }>()
    while (performance.now() - from < o.seconds * 1000) {
      await sleep(1000)
      const s = await run.status()
      for (const h of s?.history ?? [])
        if (
          h.status === "completed" &&
          h.kind === "checkpoint" &&
          h.at >= Date.now() - (performance.now() - from)
        )
          history.set(h.n, { durationMs: h.durationMs, alignmentMs: h.alignmentMs })
    }
    const elapsed = (performance.now() - from) / 1000
    const sinkOut = (run.seen.get("sink#0")?.recordsOut ?? 0) - sinkOut0
    const d = [...history.values()].map((h) => h.durationMs)
    const a = [...history.values()].map((h) => h.alignmentMs)
    return {
      ratePerSecond: o.rate,
      outPerSecond: sinkOut / elapsed,
      checkpoints: d.length,
      durationP50: percentile(d, 50),
      durationP99: percentile(d, 99),
      alignmentP50: percentile(a, 50),
      alignmentP99: percentile(a, 99),
      rss: rss.stop()
    }
  } finally {
    producer?.stop()
    await run.cleanup([o.stream], [queue])
  }
}

/** P6 (slowed sink): the discard job whose sink sleeps `delayMs` per batch, fed faster than it drains. */
export const slowSink = async (
  nc: NatsConnection,
  o: {
    readonly job: string
    readonly stream: string
    readonly rate: number
    readonly delayMs: number
    readonly seconds: number
  }
): Promise<{ readonly rate: number; readonly sinkPerSecond: number; readonly rss: RssFigures }> => {
  const subject = `bench.${o.job}.progress`
  const progress = progressCounter(nc, subject)
  await createInput(nc, o.stream, 0)
  const run = await startJob(nc, {
    module: benchModule,
    job: o.job,
    stream: o.stream,
    env: {
      EXACTOR_BENCH_SINK: "discard",
      EXACTOR_BENCH_BOUNDED: "0",
      EXACTOR_PROGRESS_SUBJECT: subject,
      EXACTOR_SINK_DELAY_MS: String(o.delayMs)
    }
  })
  let producer: ReturnType<typeof steadyProducer> | undefined
  try {
    await untilRunning(run)
    producer = steadyProducer(nc, o.stream, o.rate)
    await sleep(2000)
    const n0 = progress.count()
    const from = performance.now()
    const rss = rssSampler(run)
    await sleep(o.seconds * 1000)
    return {
      rate: o.rate,
      sinkPerSecond: (progress.count() - n0) / ((performance.now() - from) / 1000),
      rss: rss.stop()
    }
  } finally {
    producer?.stop()
    progress.stop()
    await run.cleanup([o.stream], [])
  }
}

export interface RecoveryFigures {
  readonly kills: ReadonlyArray<{ readonly instance: string; readonly ms: number }>
  readonly p50: number
  readonly max: number
}

/**
 * P4: SIGKILL one actor (in turn) of the discard job fed at `rate`/s; time from the kill to the
 * first batch the sink writes in the new epoch (after the sink got `run` of that epoch).
 */
export const recovery = async (
  nc: NatsConnection,
  o: {
    readonly job: string
    readonly stream: string
    readonly rate: number
    readonly kills: number
    readonly restartDelayMs: number
  }
): Promise<RecoveryFigures> => {
  const subject = `bench.${o.job}.progress`
  const progress = progressCounter(nc, subject)
  await createInput(nc, o.stream, 0)
  const run = await startJob(nc, {
    module: benchModule,
    job: o.job,
    stream: o.stream,
    env: {
      EXACTOR_BENCH_SINK: "discard",
      EXACTOR_BENCH_BOUNDED: "0",
      EXACTOR_PROGRESS_SUBJECT: subject,
      EXACTOR_RESTART_DELAY_MS: String(o.restartDelayMs)
    }
  })
  let producer: ReturnType<typeof steadyProducer> | undefined
  const kills: Array<{ instance: string; ms: number }> = []
  try {
    await untilRunning(run)
    producer = steadyProducer(nc, o.stream, o.rate)
    let epoch = 0
    for (let k = 0; k < o.kills; k++) {
      const deadline = Date.now() + 60_000
      while (
        run.sinkRunAt.size === 0 ||
        !run.allRunning(instances, Math.max(epoch, ...run.sinkRunAt.keys()))
      ) {
        if (Date.now() > deadline)
          throw new Error(`${run.job}: not running again; log:\n${run.output().slice(-3000)}`)
        await sleep(50)
      }
      epoch = Math.max(...run.sinkRunAt.keys())
      await sleep(1500) // let it run and checkpoint
      const target = instances[(k * 3) % instances.length]!
      const pid = run.seen.get(target)!.pid
      progress.mark()
      const killedAt = performance.now()
      process.kill(pid, "SIGKILL")
      for (;;) {
        if (Date.now() > deadline) throw new Error(`${run.job}: no output after killing ${target}`)
        const next = [...run.sinkRunAt].find(([e, at]) => e > epoch && at > killedAt)
        const out = next ? progress.firstAfter(next[1]) : undefined
        if (next && out !== undefined) {
          kills.push({ instance: target, ms: out - killedAt })
          epoch = next[0]
          break
        }
        await sleep(20)
      }
    }
    const ms = kills.map((x) => x.ms)
    return { kills, p50: percentile(ms, 50), max: Math.max(...ms) }
  } finally {
    producer?.stop()
    progress.stop()
    await run.cleanup([o.stream], [])
  }
}
