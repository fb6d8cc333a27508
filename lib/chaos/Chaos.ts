/**
 * lib/chaos/ — the chaos harness: the experiment (this file), its job, the nemesis that kills and
 * pauses processes, the independent output check and the Jepsen-style report. Imports process/ and
 * everything below it, brokers/ and connectors/ (to produce input and drain output).
 *
 * `exactor chaos`: runs a pipeline of the orders shape (it takes its names from
 * EXACTOR_ORDERS_JOB/STREAM/QUEUE) on a bounded generated input under `exactor run`, kills and
 * pauses its processes (and restarts a private NATS server) at random while it runs, then drains
 * the RabbitMQ output with an independent consumer and gives a Jepsen-style verdict.
 * Invariant: no fault before every instance runs; at most two faults per completed checkpoint
 * (so the job always makes progress); everything created (names, processes, server) is removed.
 */
import { writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type { HeartbeatBody } from "../runtime/Actor.ts"
import { Subjects } from "../core/Address.ts"
import { ensureNats, ensureRabbitMq } from "../brokers/Brokers.ts"
import { type ChaosReport, type FaultEvent, type MemorySample, reportOk } from "./ChaosReport.ts"
import { CheckpointStore } from "../checkpoint/CheckpointStore.ts"
import type { JobStatus } from "../checkpoint/JobStatus.ts"
import { decode, EnvelopeDecodeError } from "../runtime/Envelope.ts"
import type { Urls } from "../process/JobRunner.ts"
import {
  ChaosSetupFailed,
  chaosNames,
  cleanupJob,
  deleteQueues,
  io,
  spawnRun,
  stopGroup
} from "./ChaosJob.ts"
import { natsConnection } from "../runtime/Nats.ts"
import { NatsServer, type TestNatsServer } from "../brokers/NatsServer.ts"
import {
  FaultSchedule,
  type FaultSlot,
  jobProcesses,
  type KilledKind,
  killedKindOf,
  Prng,
  rssKiB,
  signalProcess,
  type TargetKind
} from "./Nemesis.ts"
import { checkSpecOutputs, loadJobSpec, produceSpecInputs, sumVerdicts } from "./JobSpec.ts"
import { checkOrders, drainQueue, type OutputMessage, type OutputUnreadable } from "./OutputCheck.ts"
import {
  type PostgresOutputCounts,
  type PostgresOutputUnreadable,
  readPostgresOutput
} from "./PostgresOutputCheck.ts"
import { privateRabbitMqNode } from "./PrivateRabbitMq.ts"
import { drainStream } from "./StreamDrain.ts"
import { scopedPostgresServer } from "../brokers/PostgresServer.ts"
import type { JobPlan } from "../api/Pipeline.ts"
import { loadPipeline } from "../api/PipelineModule.ts"
import { generateOrder, produce } from "../connectors/jetstream/Producer.ts"
import { ordersPartitioning } from "../connectors/jetstream/Partitioning.ts"
import { streamUrlFor } from "../connectors/rabbitmq-stream/StreamClient.ts"
import { writeStreamInput } from "../connectors/rabbitmq-stream/StreamInput.ts"
import { partitionStreams } from "../connectors/rabbitmq-stream/StreamPartitioning.ts"
import { redactUrl } from "../internal/redactUrl.ts"

export interface ChaosOptions {
  readonly module: string
  readonly records: number
  /** mean ms between faults */
  readonly intervalMs: number
  /**
   * stop injecting after this many faults (default: no limit), so the job then runs undisturbed to
   * its end: faults that come faster than a loaded machine recovers would never let it finish
   */
  readonly maxFaults?: number
  readonly kinds: ReadonlyArray<TargetKind>
  /**
   * kill -9 a keyed instance the moment its heartbeat says it is firing a burst of timers (at the end
   * of input, after a restore), up to this many times (default 0), besides the schedule's faults
   */
  readonly firingKills?: number
  /** SIGSTOP/SIGCONT pauses too, every other one (the first too) longer than the heartbeat timeout */
  readonly pause: boolean
  /** run against a private nats-server and restart it as one of the faults */
  readonly natsRestarts: boolean
  /** run against a private RabbitMQ node and kill -9 / restart it this many times during the run (default 0) */
  readonly rabbitmqCrashes?: number
  /**
   * set: the module writes into PostgreSQL (the orders example's table, named by EXACTOR_ORDERS_TABLE):
   * run it against a private cluster (max_prepared_transactions 0 when EXACTOR_PG_MODE=local), crash
   * that server (SIGKILL + restart) this many times as faults, and check the table with plain SQL
   */
  readonly postgresCrashes?: number
  readonly seed: number
  /** the job must finish within this many ms of its start */
  readonly deadlineMs: number
  readonly urls: Urls
  /** progress lines (a fault, the job's end) */
  readonly log: (line: string) => void
}

export class ChaosOptionInvalid extends Data.TaggedError("ChaosOptionInvalid")<{
  readonly field: string
  readonly value: unknown
  readonly rule: string
}> {
  override get message(): string {
    return `chaos option ${this.field} = ${JSON.stringify(this.value)} is invalid: ${this.rule}`
  }
}

const validate = (o: ChaosOptions): ChaosOptionInvalid | undefined => {
  const whole = (field: string, value: number, min: number) =>
    Number.isInteger(value) && value >= min
      ? undefined
      : new ChaosOptionInvalid({ field, value, rule: `a whole number >= ${min}` })
  return (
    whole("records", o.records, 1) ??
    whole("interval", o.intervalMs, 50) ??
    (o.maxFaults === undefined ? undefined : whole("maxFaults", o.maxFaults, 1)) ??
    whole("duration", o.deadlineMs, 1000) ??
    whole("rabbitmqCrashes", o.rabbitmqCrashes ?? 0, 0) ??
    whole("firingKills", o.firingKills ?? 0, 0) ??
    (o.postgresCrashes === undefined ? undefined : whole("postgres-crashes", o.postgresCrashes, 0)) ??
    (o.kinds.length === 0 &&
    !o.pause &&
    !o.natsRestarts &&
    (o.rabbitmqCrashes ?? 0) === 0 &&
    !(o.postgresCrashes ?? 0)
      ? new ChaosOptionInvalid({ field: "kinds", value: o.kinds, rule: "nothing to target" })
      : undefined)
  )
}

const kindOf = (plan: JobPlan, name: string): TargetKind => {
  if (name === "coordinator") return "coordinator"
  const kind = plan.operator.get(name.slice(0, name.lastIndexOf("#")))?.declaration.kind
  return kind === "source"
    ? "sources"
    : kind === "process" || kind === "coProcess"
      ? "keyed"
      : kind === "sink"
        ? "sinks"
        : "operators"
}

/** The input streams a RabbitMQ stream source names in its declaration (actors/rabbitmqStreamSource.ts), if the job has one. */
const streamInputOf = (plan: JobPlan): { readonly partitions?: number } | undefined => {
  for (const op of plan.operator.values()) {
    const input = (
      op.declaration as { readonly input?: { readonly kind?: unknown; readonly partitions?: number } }
    ).input
    if (op.declaration.kind === "source" && input?.kind === "rabbitmq-stream")
      return input.partitions === undefined ? {} : { partitions: input.partitions }
  }
  return undefined
}

/** What the watchers have seen so far (heartbeats, the status record, /proc). */
interface Watch {
  readonly seen: Map<string, { phase: string; epoch: number }>
  /** per coordinator pid, its latest status */
  readonly statusByPid: Map<number, JobStatus>
  status: JobStatus | undefined
  latestCheckpoint: number
  maxEpoch: number
  memory: MemorySample
}

const sample = (runPid: number): MemorySample => {
  const out: Record<string, { pid: number; rssKiB: number }> = {}
  for (const p of jobProcesses(runPid).values()) {
    const rss = rssKiB(p.pid)
    if (rss !== undefined) out[p.name] = { pid: p.pid, rssKiB: rss }
  }
  return out
}

/** Runs one chaos experiment and returns its report (`ok` says whether it passed). */
export const runChaos = (o: ChaosOptions) =>
  Effect.scoped(
    Effect.gen(function* () {
      const invalid = validate(o)
      if (invalid) return yield* invalid
      // a module that is not of the orders shape says what chaos needs in its jobSpec export
      const spec = yield* loadJobSpec(o.module)
      if (spec && (o.postgresCrashes !== undefined || (o.rabbitmqCrashes ?? 0) > 0))
        return yield* new ChaosOptionInvalid({
          field: "module",
          value: o.module,
          rule: "a module with a jobSpec runs with kills, pauses and NATS restarts only (no broker crashes)"
        })
      const orderNames = chaosNames()
      const specEnv = spec?.env(orderNames.job.slice("chaos-".length))
      const pgServer =
        o.postgresCrashes === undefined
          ? undefined
          : yield* scopedPostgresServer({
              maxPreparedTransactions: process.env.EXACTOR_PG_MODE === "local" ? 0 : 64
            })
      const table = orderNames.queue.replace(/-/g, "_")
      if (pgServer) process.env.EXACTOR_ORDERS_TABLE = table
      const server: TestNatsServer | undefined = o.natsRestarts ? yield* NatsServer.scoped : undefined
      const natsUrl = server?.url ?? o.urls.natsUrl
      if (!server) yield* ensureNats({ natsUrl })
      const rabbitCrashes = o.rabbitmqCrashes ?? 0
      const rabbit = rabbitCrashes > 0 ? yield* privateRabbitMqNode : undefined
      const urls: Urls = rabbit ? { ...o.urls, amqpUrl: rabbit.amqpUrl } : o.urls
      if (!rabbit) yield* ensureRabbitMq({ amqpUrl: urls.amqpUrl })
      process.env.EXACTOR_ORDERS_JOB = orderNames.job
      process.env.EXACTOR_ORDERS_STREAM = orderNames.stream
      process.env.EXACTOR_ORDERS_QUEUE = orderNames.queue
      for (const [k, v] of Object.entries(specEnv ?? {})) process.env[k] = v
      const plan = yield* loadPipeline(o.module)
      const specInputs = spec && specEnv ? spec.inputs(specEnv, o.records).map((i) => i.stream) : []
      const specQueues = spec && specEnv ? spec.outputs(specEnv, o.records).map((q) => q.queue) : []
      const names =
        spec === undefined
          ? orderNames
          : {
              job: plan.pipeline.job,
              stream: specInputs.join(", "),
              queue: specQueues.join(", "),
              streams: specInputs,
              queues: specQueues
            }
      if (plan.pipeline.job !== names.job || (specEnv && !Object.values(specEnv).includes(names.job)))
        return yield* new ChaosOptionInvalid({
          field: "module",
          value: o.module,
          rule: `its job is named ${plan.pipeline.job}, not from ${spec ? "its jobSpec's env" : "EXACTOR_ORDERS_JOB"} (or it was loaded before in this process)`
        })
      // runs before a private server stops (finalizers run in reverse order)
      yield* Effect.addFinalizer(() => cleanupJob(urls, o.log, natsUrl, plan, names))
      const streamOutput = [...plan.operator.values()].some(
        (op) => (op.declaration as { readonly output?: unknown }).output === "stream"
      )
      o.log(
        `chaos: seed ${o.seed}; job ${names.job} on ${redactUrl(natsUrl)}; publishing ${spec ? `about ${o.records} records into streams` : `${o.records} orders into`} ${names.stream}`
      )
      // a RabbitMQ stream source (actors/rabbitmqStreamSource.ts) names its input streams: written there
      const streamInput = streamInputOf(plan)
      const streamUrl = rabbit
        ? `rabbitmq-stream://guest:guest@127.0.0.1:${rabbit.streamPort}/`
        : streamUrlFor(urls.amqpUrl)
      if (spec && specEnv) yield* produceSpecInputs(spec, specEnv, o.records, natsUrl)
      else if (streamInput) {
        yield* Effect.addFinalizer(() =>
          deleteQueues(urls.amqpUrl, partitionStreams(names.stream, streamInput.partitions))
        )
        yield* writeStreamInput({
          streamUrl,
          stream: names.stream,
          records: Array.from({ length: o.records }, (_, i) => generateOrder(i)),
          ...(streamInput.partitions === undefined
            ? {}
            : { partitions: { count: streamInput.partitions, key: "customer" } })
        })
      } else {
        const partitions = ordersPartitioning()
        yield* produce({
          natsUrl,
          stream: names.stream,
          input: { generate: { count: o.records } },
          ...(partitions === undefined ? {} : { partitions })
        })
      }

      const nc = yield* natsConnection(natsUrl, { name: `${names.job}/chaos` })
      const store = yield* CheckpointStore.open(nc, names.job)
      const subjects = new Subjects(names.job)
      const watch: Watch = {
        seen: new Map(),
        statusByPid: new Map(),
        status: undefined,
        latestCheckpoint: 0,
        maxEpoch: 0,
        memory: {}
      }
      /** set once the faults begin: a heartbeat that says `firing` (instance, pid) */
      let onFiring: ((name: string, pid: number) => void) | undefined
      const sub = nc.subscribe(subjects.coordinator, {
        callback: (_e, m) => {
          const r = decode(subjects.coordinator, m.data)
          if (r instanceof EnvelopeDecodeError || (r.k !== "heartbeat" && r.k !== "hello")) return
          const hb = ("b" in r ? r.b : undefined) as Partial<HeartbeatBody> | undefined
          watch.seen.set(r.c, { phase: hb?.phase ?? "?", epoch: r.e })
          watch.maxEpoch = Math.max(watch.maxEpoch, r.e)
          if (hb?.firing === true && hb.pid !== undefined) onFiring?.(r.c, hb.pid)
        }
      })
      yield* Effect.addFinalizer(() => Effect.sync(() => sub.unsubscribe()))
      yield* io("subscribing to heartbeats", () => nc.flush())
      const instances = plan.instances.map(String)
      const allRunning = () =>
        instances.every((i) => {
          const s = watch.seen.get(i)
          return s?.phase === "running" && s.epoch === watch.maxEpoch
        })

      // `exactor run` in its own process group, its output (every process, prefixed) in a log file
      const logPath = join(tmpdir(), `exactor-chaos-${names.job}.log`)
      const child = yield* spawnRun(
        o.module,
        {
          EXACTOR_NATS_URL: natsUrl,
          EXACTOR_AMQP_URL: urls.amqpUrl,
          ...(rabbit ? { EXACTOR_STREAM_URL: streamUrl } : {}),
          // the job's restart strategy must outlast the faults: many attempts, a short backoff cap
          EXACTOR_RESTART_ATTEMPTS: "100000",
          EXACTOR_RESTART_MAX_DELAY: "2000",
          ...(pgServer ? { EXACTOR_PG_URL: pgServer.url, EXACTOR_ORDERS_TABLE: table } : {})
        },
        logPath
      )
      const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
      const runPid = child.pid ?? 0
      const startedAt = Date.now()
      let exitCode: number | null | "running" = "running"
      void exit.then((c) => {
        exitCode = c
      })
      o.log(`chaos: exactor run started (pid ${runPid}); logs: ${logPath}`)

      // A read that fails (NATS restarting, the bucket not there yet) is simply made again at the next poll.
      const poll = Effect.gen(function* () {
        const s = (yield* store.readStatus().pipe(Effect.orElseSucceed(() => undefined))) as
          | JobStatus
          | undefined
        if (s) {
          watch.status = s
          watch.statusByPid.set(s.pid, s)
          watch.maxEpoch = Math.max(watch.maxEpoch, s.epoch)
        }
        const latest = yield* store.readLatest().pipe(Effect.orElseSucceed(() => undefined))
        if (latest) watch.latestCheckpoint = Math.max(watch.latestCheckpoint, latest.manifest.checkpoint)
        if (exitCode === "running") {
          const m = sample(runPid)
          // the end figure is the last sample with every process up (not one taken while they stop)
          if (Object.keys(m).length === instances.length + 1) watch.memory = m
        }
      })
      const poller = yield* Effect.forkScoped(
        Effect.forever(poll.pipe(Effect.andThen(Effect.sleep("500 millis"))))
      )
      const deadlineAt = startedAt + o.deadlineMs
      const sleepMs = (ms: number) => Effect.sleep(Math.max(0, ms))
      const until = (cond: () => boolean) =>
        Effect.gen(function* () {
          while (!cond() && exitCode === "running" && Date.now() < deadlineAt) yield* sleepMs(100)
          return cond()
        })

      const started = yield* until(allRunning)
      const t0 = Date.now()
      const firstEpoch = watch.maxEpoch
      const memoryStart = started ? sample(runPid) : {}
      if (started)
        o.log(
          `chaos: every instance runs (epoch ${firstEpoch}) after ${((t0 - startedAt) / 1000).toFixed(1)} s; faults begin`
        )

      const rng = new Prng(o.seed)
      const slots: Array<FaultSlot> = [
        ...o.kinds.map((kind) => ({ fault: "kill" as const, kind })),
        ...(o.pause ? [{ fault: "pause" as const }] : []),
        ...(server ? [{ fault: "natsRestart" as const }] : []),
        ...(pgServer && (o.postgresCrashes ?? 0) > 0 ? [{ fault: "postgresCrash" as const }] : [])
      ]
      const schedule = new FaultSchedule(slots, rng)
      const kills: Record<KilledKind, number> = { source: 0, keyed: 0, sink: 0, coordinator: 0, other: 0 }
      const faults: Array<FaultEvent> = []
      let pauses = 0
      let longPauses = 0
      let natsRestarts = 0
      let postgresCrashes = 0
      /** the first fault is a postgres crash, injected as soon as every instance runs */
      let postgresFirst = slots.some((s) => s.fault === "postgresCrash")
      /** the next slot, past postgres crashes once all of them are done */
      const nextSlot = (): FaultSlot | undefined => {
        if (postgresFirst) {
          postgresFirst = false
          return { fault: "postgresCrash" }
        }
        for (let i = 0; i <= slots.length; i++) {
          const s = schedule.next()
          if (s?.fault !== "postgresCrash" || postgresCrashes < (o.postgresCrashes ?? 0)) return s
        }
        return undefined
      }
      const hbTimeout = plan.options.heartbeatTimeout
      const targetsOf = (kinds: ReadonlyArray<TargetKind>) =>
        [...jobProcesses(runPid).values()].filter((p) => kinds.includes(kindOf(plan, p.name)))
      /** kills per process name: a kill goes to one of the least-killed processes of its kind, so every sink of a graph is hit */
      const killedByName = new Map<string, number>()
      const leastKilled = <P extends { readonly name: string }>(ps: ReadonlyArray<P>) => {
        const fewest = Math.min(...ps.map((p) => killedByName.get(p.name) ?? 0))
        return ps.filter((p) => (killedByName.get(p.name) ?? 0) === fewest)
      }

      /** One fault; a target that is being restarted right now is waited for (up to 5 s). */
      const inject = (slot: FaultSlot) =>
        Effect.gen(function* () {
          const at = Date.now() - t0
          if (slot.fault === "postgresCrash" && pgServer) {
            // never left down by the end of the run: the restart completes even if the nemesis is interrupted
            yield* Effect.uninterruptible(
              io("crashing and restarting the private postgres", async () => {
                await pgServer.kill()
                await pgServer.restart()
              })
            )
            postgresCrashes++
            faults.push({ at, fault: "postgresCrash", target: "postgres" })
            return o.log(`chaos: ${(at / 1000).toFixed(1)} s kill -9 postgres (and restart)`)
          }
          if (slot.fault === "natsRestart") {
            yield* io("restarting the private nats-server", () => server!.restart())
            natsRestarts++
            faults.push({ at, fault: "natsRestart", target: "nats-server" })
            return o.log(`chaos: ${(at / 1000).toFixed(1)} s restart nats-server`)
          }
          const kinds =
            slot.fault === "kill" ? [slot.kind] : o.kinds.length > 0 ? o.kinds : (["keyed"] as const)
          const giveUp = Date.now() + 5000
          for (;;) {
            const candidates = targetsOf(kinds)
            const target = rng.pick(slot.fault === "kill" ? leastKilled(candidates) : candidates)
            if (target && slot.fault === "kill") {
              const sent = signalProcess(target, "SIGKILL")
              if (typeof sent !== "boolean") return yield* sent
              if (!sent) continue
              killedByName.set(target.name, (killedByName.get(target.name) ?? 0) + 1)
              kills[killedKindOf[slot.kind]]++
              faults.push({ at, fault: "kill", target: target.name, pid: target.pid })
              return o.log(`chaos: ${(at / 1000).toFixed(1)} s kill -9 ${target.name} (pid ${target.pid})`)
            }
            if (target && slot.fault === "pause") {
              const long = pauses % 2 === 0 // every other pause makes a zombie, the first one too
              const ms = Math.round(hbTimeout * (long ? rng.between(1.3, 2) : rng.between(0.2, 0.7)))
              const sent = signalProcess(target, "SIGSTOP")
              if (typeof sent !== "boolean") return yield* sent
              if (!sent) continue
              o.log(
                `chaos: ${(at / 1000).toFixed(1)} s pause ${target.name} (pid ${target.pid}) for ${ms} ms`
              )
              yield* Effect.sleep(ms).pipe(
                Effect.ensuring(Effect.sync(() => signalProcess(target, "SIGCONT")))
              )
              pauses++
              if (ms > hbTimeout) longPauses++
              faults.push({ at, fault: "pause", target: target.name, pid: target.pid, ms })
              return
            }
            if (Date.now() > giveUp || exitCode !== "running")
              return o.log(`chaos: no ${kinds.join("/")} process to hit`)
            yield* sleepMs(100)
          }
        })

      const nemesis = Effect.gen(function* () {
        let progressAt = watch.latestCheckpoint
        let withoutProgress = 0
        let faults = 0
        for (;;) {
          if (o.maxFaults !== undefined && faults >= o.maxFaults)
            return o.log(`chaos: ${faults} faults injected (maxFaults); the job runs on undisturbed`)
          // a postgres crash comes first and at once, so that even a short job sees one
          if (!postgresFirst) yield* sleepMs(o.intervalMs * rng.between(0.5, 1.5))
          if (withoutProgress >= 2) yield* until(() => watch.latestCheckpoint > progressAt)
          if (exitCode !== "running" || Date.now() >= deadlineAt) return
          if (watch.latestCheckpoint > progressAt) {
            progressAt = watch.latestCheckpoint
            withoutProgress = 0
          }
          const slot = nextSlot()
          if (slot) {
            yield* inject(slot)
            faults++
          }
          withoutProgress++
        }
      })
      const nemesisFiber = started ? yield* Effect.forkScoped(nemesis) : undefined
      // --firing-kills: a keyed instance killed in the middle of a burst of timers
      let firingKills = 0
      if (started && (o.firingKills ?? 0) > 0)
        onFiring = (name, pid) => {
          if (firingKills >= (o.firingKills ?? 0) || exitCode !== "running") return
          const target = jobProcesses(runPid).get(name)
          if (target?.pid !== pid || kindOf(plan, name) !== "keyed") return
          if (signalProcess(target, "SIGKILL") !== true) return
          const at = Date.now() - t0
          firingKills++
          kills.keyed++
          killedByName.set(name, (killedByName.get(name) ?? 0) + 1)
          faults.push({ at, fault: "kill", target: name, pid, firing: true })
          o.log(`chaos: ${(at / 1000).toFixed(1)} s kill -9 ${name} (pid ${pid}) while it fires timers`)
        }

      // --rabbitmq-crashes: kill -9 the private node N times, each after a checkpoint completed since the last one
      let rabbitmqCrashes = 0
      const crashRng = new Prng(o.seed + 1)
      const crasher = Effect.gen(function* () {
        if (!rabbit) return
        let progressAt = watch.latestCheckpoint
        while (rabbitmqCrashes < rabbitCrashes) {
          yield* sleepMs(o.intervalMs * crashRng.between(1, 3))
          yield* until(() => watch.latestCheckpoint > progressAt)
          if (exitCode !== "running" || Date.now() >= deadlineAt) return
          progressAt = watch.latestCheckpoint
          const at = Date.now() - t0
          yield* io("killing the private RabbitMQ node", () => rabbit.kill())
          o.log(`chaos: ${(at / 1000).toFixed(1)} s kill -9 rabbitmq node; restarting it`)
          yield* io("restarting the private RabbitMQ node", () => rabbit.restart())
          rabbitmqCrashes++
          faults.push({ at, fault: "rabbitmqCrash", target: "rabbitmq-node" })
          o.log(`chaos: ${((Date.now() - t0) / 1000).toFixed(1)} s rabbitmq node up again`)
        }
      })
      const crasherFiber = started && rabbit ? yield* Effect.forkScoped(crasher) : undefined

      const code = yield* Effect.promise(() => exit).pipe(
        Effect.timeoutOption(Math.max(0, deadlineAt - Date.now())),
        Effect.map((c) => (c._tag === "Some" ? c.value : null))
      )
      const wallMs = Date.now() - startedAt
      if (nemesisFiber) yield* Fiber.interrupt(nemesisFiber)
      if (crasherFiber) yield* Fiber.interrupt(crasherFiber)
      const memoryEnd = watch.memory
      if (code === null) o.log(`chaos: deadline of ${o.deadlineMs / 1000} s passed; stopping the job`)
      yield* Effect.promise(() => stopGroup(child))
      yield* Fiber.interrupt(poller)
      yield* poll
      // a node killed mid-restart by the interrupt above comes back up before the drain
      if (rabbit && rabbit.pid === undefined)
        yield* io("restarting the private RabbitMQ node", () => rabbit.restart())
      let pgCounts: PostgresOutputCounts | undefined
      const read = spec
        ? Effect.succeed([])
        : pgServer
          ? readPostgresOutput(pgServer.url, table).pipe(
              Effect.map(({ messages, counts }) => {
                pgCounts = counts
                return messages
              })
            )
          : streamOutput
            ? drainStream(urls.amqpUrl, names.queue, o.records)
            : drainQueue(urls.amqpUrl, names.queue)
      const output: ReadonlyArray<OutputMessage> = yield* (
        read as Effect.Effect<ReadonlyArray<OutputMessage>, OutputUnreadable | PostgresOutputUnreadable>
      ).pipe(
        Effect.catch((e) =>
          Effect.sync(() => {
            o.log(`chaos: ${e.message} (counted as lost)`)
            return []
          })
        )
      )
      const sinks =
        spec && specEnv ? yield* checkSpecOutputs(spec, specEnv, o.records, urls.amqpUrl, o.log) : undefined
      const verdict = sinks
        ? sumVerdicts(sinks.map((v) => v.verdict))
        : checkOrders(
            Array.from({ length: o.records }, (_, i) => generateOrder(i)),
            output
          )
      const s = watch.status
      const perCoordinator = [...watch.statusByPid.values()]
      const report: Omit<ChaosReport, "ok"> = {
        module: o.module,
        ...names,
        natsUrl,
        seed: o.seed,
        records: o.records,
        intervalMs: o.intervalMs,
        kinds: o.kinds,
        pause: o.pause,
        natsRestartsEnabled: o.natsRestarts,
        deadlineMs: o.deadlineMs,
        finished: code === 0 && s?.state === "FINISHED",
        exitCode: code,
        state: s?.state,
        reason: code === null ? `not finished within ${o.deadlineMs / 1000} s` : s?.reason,
        verdict,
        ...(sinks ? { sinks } : {}),
        kills,
        firingKills,
        pauses,
        longPauses,
        natsRestarts,
        ...(rabbit
          ? {
              rabbitmqCrashes: {
                done: rabbitmqCrashes,
                asked: rabbitCrashes,
                output: streamOutput ? ("stream" as const) : ("queue" as const)
              }
            }
          : {}),
        ...(pgServer
          ? {
              postgres: {
                url: pgServer.url,
                table,
                crashes: postgresCrashes,
                ...(pgCounts ?? { rows: 0, distinctOrders: 0, duplicateRows: 0, preparedLeft: -1 })
              }
            }
          : {}),
        faults,
        recoveries: Math.max(0, watch.maxEpoch - firstEpoch),
        epochs: { first: firstEpoch, last: watch.maxEpoch },
        checkpoints: {
          completed: perCoordinator.reduce((a, c) => a + c.checkpoints.completed, 0),
          aborted: perCoordinator.reduce((a, c) => a + c.checkpoints.aborted, 0),
          latest: watch.latestCheckpoint
        },
        wallMs,
        memory: { start: memoryStart, end: memoryEnd },
        log: logPath
      }
      return { ...report, ok: reportOk(report) } satisfies ChaosReport
    })
  )

/** Writes the report as JSON. */
export const writeReport = (file: string, report: ChaosReport) =>
  Effect.try({
    try: () => writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`),
    catch: (cause) => new ChaosSetupFailed({ step: `writing the report ${file}`, cause })
  })
