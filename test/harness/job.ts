/**
 * Runs the orders example as a real job for tests: unique job, stream and queue names, N
 * generated orders in JetStream, `exactor run` as a child process (which starts every actor as
 * its own process), a watch on the instances' heartbeats (pids, phases, epochs), and the
 * independent check of the RabbitMQ output. Everything it creates is deleted afterwards.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import { Kvm } from "@nats-io/kv"
import { Objm } from "@nats-io/obj"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { Effect } from "effect"
import type { HeartbeatBody } from "../../lib/runtime/Actor.ts"
import { Subjects } from "../../lib/core/Address.ts"
import { decode, EnvelopeDecodeError } from "../../lib/runtime/Envelope.ts"
import { checkOrders, drainQueue, type OutputMessage, type Verdict } from "../../lib/chaos/OutputCheck.ts"
import { generateOrder, produce } from "../../lib/connectors/jetstream/Producer.ts"
import { ordersPartitioning } from "../../lib/connectors/jetstream/Partitioning.ts"
import { drainStream } from "../../lib/chaos/StreamDrain.ts"
import { writeStreamInput } from "../../lib/connectors/rabbitmq-stream/StreamInput.ts"
import { amqpConnect } from "../../lib/internal/AmqpConnectOptions.ts"
import {
  NatsSettingInvalid,
  natsConnectOptions,
  readNatsSecurity
} from "../../lib/internal/NatsConnectOptions.ts"
import { amqpUrl as sharedAmqpUrl, natsUrl as sharedNatsUrl, uniqueName } from "./env.ts"

export const cli = fileURLToPath(new URL("../../lib/cli/exactor.ts", import.meta.url))
export const ordersModule = fileURLToPath(new URL("../../actors/examples/orders.ts", import.meta.url))

export interface Seen {
  pid: number
  phase: string
  epoch: number
  at: number
  incarnation: string
}

export interface OrdersJob {
  readonly job: string
  readonly stream: string
  readonly queue: string
  readonly orders: number
  readonly env: Readonly<Record<string, string>>
  /** heartbeats and reports seen on the coordinator subject */
  readonly seen: Map<string, Seen>
  readonly reports: Array<{
    readonly k: string
    readonly c: string
    readonly at: number
    readonly b: unknown
  }>
  readonly nc: NatsConnection
  /** starts `exactor run <module> ...args` (or `exactor launch <module> ...` when args[0] is "launch") */
  run(
    args?: ReadonlyArray<string>,
    env?: Readonly<Record<string, string>>
  ): { readonly child: ChildProcess; readonly exit: Promise<number>; output: () => string }
  /** runs another `exactor` command (status, savepoint, ...) to completion, `env` on top of the job's */
  cli(
    args: ReadonlyArray<string>,
    env?: Readonly<Record<string, string>>
  ): Promise<{ readonly code: number; readonly output: string }>
  /** waits until `instance` has a heartbeat with phase running (in an epoch > `afterEpoch`) */
  running(instance: string, afterEpoch?: number, timeoutMs?: number): Promise<Seen>
  /** drains the output (RabbitMQ: until it was idle for `idleMs`, default 1 s) and checks it against the input */
  verdict(idleMs?: number): Promise<Verdict>
  cleanup(): Promise<void>
}

/**
 * tap's process tracking puts its loader into NODE_OPTIONS of every process a test spawns (and
 * puts it back if the test clears it), which doubles each actor's memory; `env -u` drops it
 * just before node starts (exec keeps the pid, so signals still reach node).
 */
const withoutTapLoaders = (args: ReadonlyArray<string>): [string, Array<string>] => [
  "/usr/bin/env",
  ["-u", "NODE_OPTIONS", process.execPath, ...args]
]

export const jetstreamModule = fileURLToPath(new URL("../fixtures/totalsToJetStream.ts", import.meta.url))

/** Reads every record of a stream (the JetStream sink's output). */
const readStream = async (nc: NatsConnection, stream: string): Promise<Array<OutputMessage>> => {
  const jsm = await jetstreamManager(nc)
  const total = (await jsm.streams.info(stream)).state.messages
  const out: Array<OutputMessage> = []
  if (total === 0) return out
  const consumer = await jetstream(nc).consumers.get(stream)
  for await (const m of await consumer.consume()) {
    out.push({ messageId: m.headers?.get("Nats-Msg-Id"), body: m.json() })
    if (out.length >= total) break
  }
  return out
}

/**
 * Deletes what a test job left: its streams, checkpoint buckets, output queues and the lock and
 * marker queues of instance 0 of each sink. Missing ones are fine.
 */
export const removeJob = async (
  nc: NatsConnection,
  amqpUrl: string,
  job: string,
  left: {
    readonly streams: ReadonlyArray<string>
    readonly queues: ReadonlyArray<string>
    readonly sinks: ReadonlyArray<string>
  }
) => {
  const jsm = await jetstreamManager(nc)
  for (const s of left.streams) await jsm.streams.delete(s).catch(() => false)
  await new Kvm(nc)
    .create(`exactor-${job}`)
    .then((kv) => kv.destroy())
    .catch(() => false)
  await new Objm(nc)
    .create(`exactor-${job}`)
    .then((os) => os.destroy())
    .catch(() => false)
  const conn = await amqpConnect(amqpUrl)
  const ch = await conn.createChannel()
  ch.on("error", () => undefined)
  for (const q of left.queues) await ch.deleteQueue(q).catch(() => undefined)
  for (const sink of left.sinks)
    for (const suffix of ["marker", "lock"])
      await ch.deleteQueue(`exactor.${job}.${sink}.0.${suffix}`).catch(() => undefined)
  await conn.close().catch(() => undefined)
}

/** What every job test has: the job's heartbeats and reports, and its `exactor` commands. */
export type JobProcesses = Pick<
  OrdersJob,
  "job" | "env" | "seen" | "reports" | "nc" | "run" | "cli" | "running"
> & {
  /** stops every `exactor` process the test started */
  stop(): Promise<void>
}

/** Watches job `job` on `nc` and runs `module` under `exactor` with `env`. */
export const jobProcesses = async (
  job: string,
  module: string,
  env: Readonly<Record<string, string>>,
  nc: NatsConnection
): Promise<JobProcesses> => {
  const subjects = new Subjects(job)
  const seen = new Map<string, Seen>()
  const reports: OrdersJob["reports"][number][] = []
  nc.subscribe(subjects.coordinator, {
    callback: (_e, m) => {
      const r = decode(subjects.coordinator, m.data)
      if (r instanceof EnvelopeDecodeError) return
      const b = "b" in r ? r.b : undefined
      if (r.k !== "heartbeat") reports.push({ k: r.k, c: r.c, at: Date.now(), b })
      if (r.k === "heartbeat" || r.k === "hello") {
        const hb = b as Partial<HeartbeatBody>
        seen.set(r.c, {
          pid: hb.pid ?? 0,
          phase: hb.phase ?? "?",
          epoch: r.e,
          at: Date.now(),
          incarnation: "i" in r ? String(r.i) : ""
        })
      }
    }
  })
  await nc.flush()
  const children: Array<ChildProcess> = []
  return {
    job,
    env,
    seen,
    reports,
    nc,
    /** SIGTERM lets a launcher stop its actors; what is left after 5 s is killed */
    async stop() {
      const alive = children.filter((c) => c.exitCode === null && c.signalCode === null)
      for (const c of alive) c.kill("SIGTERM")
      const deadline = Date.now() + 5000
      while (alive.some((c) => c.exitCode === null && c.signalCode === null) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 100))
      for (const c of alive) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL")
    },
    run(args = [], extra = {}) {
      const command = args[0] === "launch" ? ["launch", module, ...args.slice(1)] : ["run", module, ...args]
      const child = spawn(...withoutTapLoaders([cli, ...command]), {
        env: { ...process.env, ...env, ...extra },
        stdio: ["ignore", "pipe", "pipe"]
      })
      children.push(child)
      let out = ""
      child.stdout?.on("data", (d: Buffer) => {
        out += d.toString()
      })
      child.stderr?.on("data", (d: Buffer) => {
        out += d.toString()
      })
      const exit = new Promise<number>((resolve) =>
        child.on("exit", (code, signal) => resolve(code ?? (signal ? 128 : 1)))
      )
      return { child, exit, output: () => out }
    },
    cli(args, extra = {}) {
      return new Promise((resolve) => {
        const child = spawn(...withoutTapLoaders([cli, ...args]), {
          env: { ...process.env, ...env, ...extra }
        })
        let output = ""
        child.stdout.on("data", (d: Buffer) => {
          output += d.toString()
        })
        child.stderr.on("data", (d: Buffer) => {
          output += d.toString()
        })
        child.on("exit", (code) => resolve({ code: code ?? 1, output }))
      })
    },
    async running(instance, afterEpoch = 0, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const s = seen.get(instance)
        if (s && s.phase === "running" && s.epoch > afterEpoch) return s
        if (Date.now() > deadline)
          throw new Error(`${instance} not running in an epoch > ${afterEpoch} after ${timeoutMs} ms`)
        await new Promise((r) => setTimeout(r, 50))
      }
    }
  }
}

export const startOrdersJob = async (options: {
  readonly orders: number
  readonly env?: Readonly<Record<string, string>>
  /** `rabbitmq`: actors/examples/orders.ts; `jetstream`: the same job with a JetStream sink (test/fixtures); `rabbitmq-stream`: the output is the RabbitMQ stream EXACTOR_ORDERS_QUEUE (give `module`) */
  readonly output?: "rabbitmq" | "jetstream" | "rabbitmq-stream"
  /** where the orders are written: JetStream (default), or the RabbitMQ streams at `env.EXACTOR_STREAM_URL` (partitioned by EXACTOR_SOURCE_PARTITIONS) */
  readonly input?: "jetstream" | "rabbitmq-stream"
  /** another pipeline module with the same environment knobs (e.g. test/fixtures/benchOrders.ts) */
  readonly module?: string
  /** fixed names (a test that must know them before the job exists, e.g. for broker permissions) */
  readonly names?: { readonly job?: string; readonly stream?: string; readonly outStream?: string }
}): Promise<OrdersJob> => {
  const output = options.output ?? "rabbitmq"
  const module = options.module ?? (output === "rabbitmq" ? ordersModule : jetstreamModule)
  const job = options.names?.job ?? uniqueName("job")
  const stream = options.names?.stream ?? uniqueName("orders")
  const queue = uniqueName("totals")
  const outStream = options.names?.outStream ?? uniqueName("out")
  const env: Record<string, string> = {
    EXACTOR_NATS_URL: sharedNatsUrl,
    EXACTOR_AMQP_URL: sharedAmqpUrl,
    EXACTOR_ORDERS_JOB: job,
    EXACTOR_ORDERS_STREAM: stream,
    EXACTOR_ORDERS_QUEUE: queue,
    EXACTOR_OUTPUT_SUBJECT: `${outStream}.records`,
    ...options.env
  }
  // the brokers of this job: the shared ones unless `env` names others (then this process's
  // EXACTOR_NATS_* / EXACTOR_AMQP_TLS_* variables say how to authenticate, as for the job's processes)
  const natsUrl = env.EXACTOR_NATS_URL ?? sharedNatsUrl
  const amqpUrl = env.EXACTOR_AMQP_URL ?? sharedAmqpUrl
  const partitions = ordersPartitioning(env)
  if (options.input === "rabbitmq-stream")
    await Effect.runPromise(
      writeStreamInput({
        streamUrl: env.EXACTOR_STREAM_URL ?? "",
        stream,
        records: Array.from({ length: options.orders }, (_, i) => generateOrder(i)),
        ...(partitions === undefined ? {} : { partitions })
      })
    )
  else
    await Effect.runPromise(
      produce({
        natsUrl,
        stream,
        input: { generate: { count: options.orders } },
        ...(partitions === undefined ? {} : { partitions })
      })
    )
  const security = readNatsSecurity({ ...process.env, ...env })
  if (security instanceof NatsSettingInvalid) throw security
  const nc = await connect(natsConnectOptions(natsUrl, security, { name: `${job}/test` }))
  if (output === "jetstream")
    await (await jetstreamManager(nc)).streams.add({
      name: outStream,
      subjects: [`${outStream}.>`],
      duplicate_window: 10 * 60 * 1_000_000_000
    })
  const processes = await jobProcesses(job, module, env, nc)
  return {
    ...processes,
    stream,
    queue,
    orders: options.orders,
    async verdict(idleMs) {
      const out =
        output === "rabbitmq"
          ? await Effect.runPromise(drainQueue(amqpUrl, queue, idleMs))
          : output === "rabbitmq-stream"
            ? await Effect.runPromise(drainStream(amqpUrl, queue, options.orders))
            : await readStream(nc, outStream)
      const input = Array.from({ length: options.orders }, (_, i) => generateOrder(i))
      return checkOrders(input, out)
    },
    async cleanup() {
      await processes.stop()
      await removeJob(nc, amqpUrl, job, { streams: [stream, outStream], queues: [queue], sinks: ["sink"] })
      await nc.close()
    }
  }
}
