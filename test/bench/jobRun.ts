/**
 * Jobs for the benchmarks: input streams filled at full speed or at a steady rate, `exactor run`
 * of a pipeline module as a child process with unique names, and what a benchmark observes of it
 * from outside: heartbeats (pid, phase, epoch, counters), control commands to the sink (the `run`
 * of each epoch), the coordinator's status record, and the RSS of every actor process.
 * Everything a run creates (streams, buckets, queues, processes) is removed by `cleanup`.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { jetstreamManager, StorageType } from "@nats-io/jetstream"
import { Kvm } from "@nats-io/kv"
import { Objm } from "@nats-io/obj"
import type { NatsConnection } from "@nats-io/transport-node"
import amqp from "amqplib"
import { Effect } from "effect"
import type { HeartbeatBody } from "../../lib/runtime/Actor.ts"
import { InstanceId, Subjects } from "../../lib/core/Address.ts"
import { CheckpointStore } from "../../lib/checkpoint/CheckpointStore.ts"
import type { JobStatus } from "../../lib/checkpoint/JobStatus.ts"
import { decode, EnvelopeDecodeError } from "../../lib/runtime/Envelope.ts"
import { generateOrder } from "../../lib/connectors/jetstream/Producer.ts"
import { ordersPartitioning, recordSubject } from "../../lib/connectors/jetstream/Partitioning.ts"
import { cli } from "../harness/job.ts"
import { amqpUrl, natsUrl } from "../harness/env.ts"

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** The bench's orders are partitioned as the orders job reads them (`EXACTOR_SOURCE_PARTITIONS`). */
const partitioning = ordersPartitioning()

const publishOrders = async (nc: NatsConnection, stream: string, from: number, to: number) => {
  for (let i = from; i < to; i++) {
    const order = generateOrder(i)
    nc.publish(recordSubject(`${stream}.records`, order, partitioning), JSON.stringify(order))
    if (i % 1000 === 999) await nc.flush()
  }
  await nc.flush()
}

/** Creates `stream` (file storage) and, fast (core publish, no acks), fills it with orders 0..count-1. */
export const createInput = async (nc: NatsConnection, stream: string, count: number) => {
  const jsm = await jetstreamManager(nc)
  await jsm.streams.add({ name: stream, subjects: [`${stream}.>`], storage: StorageType.File })
  await publishOrders(nc, stream, 0, count)
  const deadline = Date.now() + 60_000
  for (;;) {
    const stored = (await jsm.streams.info(stream)).state.messages
    if (stored >= count) return
    if (Date.now() > deadline) throw new Error(`stream ${stream}: ${stored} of ${count} orders stored`)
    await sleep(50)
  }
}

/** Publishes orders from..∞ into `stream` at `perSecond`, in 10 ms steps, until stopped. */
export const steadyProducer = (nc: NatsConnection, stream: string, perSecond: number, from = 0) => {
  let next = from
  const started = performance.now()
  const timer = setInterval(() => {
    const due = from + Math.floor(((performance.now() - started) / 1000) * perSecond)
    for (; next < due; next++) {
      const order = generateOrder(next)
      nc.publish(recordSubject(`${stream}.records`, order, partitioning), JSON.stringify(order))
    }
  }, 10)
  return {
    stop: () => clearInterval(timer),
    published: () => next - from
  }
}

/** VmRSS of a process in MB, or undefined when it is gone. */
export const rssMb = (pid: number): number | undefined => {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
    return m ? Number(m[1]) / 1024 : undefined
  } catch {
    return undefined
  }
}

const isOurs = (pid: number, module: string): boolean => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(module)
  } catch {
    return false
  }
}

export interface Seen {
  readonly pid: number
  readonly phase: string
  readonly epoch: number
  readonly recordsOut: number
  /** a sink's time in commit this epoch, ms (TaskStats.commitMs) */
  readonly commitMs: number
  readonly at: number
}

export interface JobRun {
  readonly job: string
  readonly child: ChildProcess
  readonly exit: Promise<number>
  /** latest heartbeat per instance */
  readonly seen: Map<string, Seen>
  /** when the sink got `run` of each epoch (ms, performance.now()) */
  readonly sinkRunAt: Map<number, number>
  output(): string
  status(): Promise<JobStatus | undefined>
  /** true when every instance of `instances` is running in an epoch >= `epoch` */
  allRunning(instances: ReadonlyArray<string>, epoch?: number): boolean
  /** interrupts `exactor run` (which stops its children), then makes sure every actor is gone */
  stop(): Promise<void>
  /** stop, then delete the job's buckets and sink queues and the given streams and queues */
  cleanup(streams: ReadonlyArray<string>, queues: ReadonlyArray<string>): Promise<void>
}

export interface JobRunOptions {
  readonly module: string
  readonly job: string
  readonly stream: string
  readonly queue?: string
  readonly env?: Readonly<Record<string, string>>
  readonly args?: ReadonlyArray<string>
}

export const startJob = async (nc: NatsConnection, o: JobRunOptions): Promise<JobRun> => {
  const subjects = new Subjects(o.job)
  const seen = new Map<string, Seen>()
  const sinkRunAt = new Map<number, number>()
  const subs = [
    nc.subscribe(subjects.coordinator, {
      callback: (_e, m) => {
        const r = decode(subjects.coordinator, m.data)
        if (r instanceof EnvelopeDecodeError || (r.k !== "heartbeat" && r.k !== "hello")) return
        const hb = ("b" in r ? r.b : undefined) as Partial<HeartbeatBody> | undefined
        seen.set(r.c, {
          pid: hb?.pid ?? 0,
          phase: hb?.phase ?? "?",
          epoch: r.e,
          recordsOut: hb?.recordsOut ?? 0,
          commitMs: hb?.commitMs ?? 0,
          at: performance.now()
        })
      }
    })
  ]
  const sinkControl = subjects.control(InstanceId.make("sink", 0))
  subs.push(
    nc.subscribe(sinkControl, {
      callback: (_e, m) => {
        const r = decode(sinkControl, m.data)
        if (r instanceof EnvelopeDecodeError || r.k !== "run" || sinkRunAt.has(r.e)) return
        sinkRunAt.set(r.e, performance.now())
      }
    })
  )
  await nc.flush()
  const env = {
    EXACTOR_NATS_URL: natsUrl,
    EXACTOR_AMQP_URL: amqpUrl,
    EXACTOR_ORDERS_JOB: o.job,
    EXACTOR_ORDERS_STREAM: o.stream,
    EXACTOR_ORDERS_QUEUE: o.queue ?? `${o.job}-out`,
    ...o.env
  }
  const child = spawn(process.execPath, [cli, "run", o.module, "--max-restarts", "100", ...(o.args ?? [])], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let out = ""
  const keep = (d: Buffer) => {
    out = (out + d.toString()).slice(-20_000)
  }
  child.stdout?.on("data", keep)
  child.stderr?.on("data", keep)
  const exit = new Promise<number>((resolve) =>
    child.on("exit", (code, signal) => resolve(code ?? (signal ? 128 : 1)))
  )
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGINT")
      await Promise.race([exit, sleep(8000)])
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
    }
    for (const s of seen.values()) if (s.pid > 0 && isOurs(s.pid, o.module)) process.kill(s.pid, "SIGKILL")
    for (const s of subs) s.unsubscribe()
  }
  return {
    job: o.job,
    child,
    exit,
    seen,
    sinkRunAt,
    output: () => out,
    status: () =>
      Effect.runPromise(
        CheckpointStore.open(nc, o.job).pipe(Effect.flatMap((s) => s.readStatus()))
      ) as Promise<JobStatus | undefined>,
    allRunning: (instances, epoch = 0) =>
      instances.every((i) => {
        const s = seen.get(i)
        return s !== undefined && s.phase === "running" && s.epoch >= epoch
      }),
    stop,
    async cleanup(streams, queues) {
      await stop()
      const jsm = await jetstreamManager(nc)
      for (const s of streams) await jsm.streams.delete(s).catch(() => false)
      await new Kvm(nc)
        .create(`exactor-${o.job}`)
        .then((kv) => kv.destroy())
        .catch(() => false)
      await new Objm(nc)
        .create(`exactor-${o.job}`)
        .then((os) => os.destroy())
        .catch(() => false)
      await new Kvm(nc)
        .create("exactor-source-bounds", { history: 1 })
        .then((kv) => kv.purge(`${o.job}.orders.${o.stream}`))
        .catch(() => false)
      const conn = await amqp.connect(amqpUrl)
      const ch = await conn.createChannel()
      ch.on("error", () => undefined)
      for (const q of [...queues, `exactor.${o.job}.sink.0.marker`, `exactor.${o.job}.sink.0.lock`])
        await ch.deleteQueue(q).catch(() => undefined)
      await conn.close().catch(() => undefined)
    }
  }
}

/** Instances of the bench/orders topology (2 sources, 2 parse, 2 total, 1 sink). */
export const instances = ["orders#0", "orders#1", "parse#0", "parse#1", "total#0", "total#1", "sink#0"]

/** The p-th percentile (nearest rank) of `xs`. */
export const percentile = (xs: ReadonlyArray<number>, p: number): number => {
  if (xs.length === 0) return Number.NaN
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}
