/**
 * The job under chaos, on the brokers' side: unique names, the `exactor run` child in its own
 * process group (so that every actor process it starts can be stopped with it), and the removal
 * of everything the run created. Invariant: only that group is ever signalled, and a stopped
 * (SIGSTOP) member is continued before it is asked to terminate.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { closeSync, openSync } from "node:fs"
import { jetstreamManager } from "@nats-io/jetstream"
import { Kvm } from "@nats-io/kv"
import { Objm } from "@nats-io/obj"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type { Urls } from "../process/JobRunner.ts"
import { cliEntry } from "../process/Launcher.ts"
import { natsConnection } from "../runtime/Nats.ts"
import type { JobPlan } from "../api/Pipeline.ts"
import { lockQueueName, markerQueueName } from "../connectors/rabbitmq/RabbitMqSinkWire.ts"
import { causeMessage } from "../internal/causeMessage.ts"
import { amqpConnect } from "../internal/AmqpConnectOptions.ts"

export class ChaosSetupFailed extends Data.TaggedError("ChaosSetupFailed")<{
  readonly step: string
  readonly cause: unknown
}> {
  override get message(): string {
    return `chaos: ${this.step} failed: ${causeMessage(this.cause)}`
  }
}

export interface ChaosNames {
  readonly job: string
  readonly stream: string
  readonly queue: string
  /** a job with a jobSpec: every input stream and output queue (`stream`, `queue` list them for the report) */
  readonly streams?: ReadonlyArray<string>
  readonly queues?: ReadonlyArray<string>
}

/** `chaos-<tag>`, `chaos-orders-<tag>`, `chaos-totals-<tag>`: unique per run. */
export const chaosNames = (): ChaosNames => {
  const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 36 ** 4).toString(36)}`
  return { job: `chaos-${tag}`, stream: `chaos-orders-${tag}`, queue: `chaos-totals-${tag}` }
}

export const io = <A>(step: string, f: () => Promise<A>) =>
  Effect.tryPromise({ try: f, catch: (cause) => new ChaosSetupFailed({ step, cause }) })

/** `exactor run <module>` with a generous restart intensity, output to `logPath`; stopped with the scope. */
export const spawnRun = (module: string, env: Readonly<Record<string, string>>, logPath: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const logFd = openSync(logPath, "a")
      try {
        return spawn(
          process.execPath,
          [cliEntry, "run", module, "--max-restarts", "1000", "--restart-window", "60"],
          {
            detached: true,
            stdio: ["ignore", logFd, logFd],
            env: { ...process.env, ...env }
          }
        )
      } finally {
        closeSync(logFd)
      }
    }),
    (c) => Effect.promise(() => stopGroup(c))
  )

/** SIGCONT (a paused process cannot die of SIGTERM), SIGTERM, then SIGKILL the whole group. */
export const stopGroup = async (child: ChildProcess): Promise<void> => {
  const pid = child.pid
  if (pid === undefined) return
  const group = (signal: NodeJS.Signals) => {
    try {
      process.kill(-pid, signal)
    } catch {
      // the group is gone already
    }
  }
  group("SIGCONT")
  if (child.exitCode === null && child.signalCode === null) {
    group("SIGTERM")
    const deadline = Date.now() + 10_000
    while (child.exitCode === null && child.signalCode === null && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100))
  }
  group("SIGKILL")
}

/** Deletes the job's stream, buckets and queues on the shared brokers; a failure is logged, not hidden. */
/** Deletes these queues or streams on the AMQP broker (missing ones are fine); never fails. */
export const deleteQueues = (amqpUrl: string, queues: ReadonlyArray<string>) =>
  Effect.promise(async () => {
    const conn = await amqpConnect(amqpUrl).catch(() => undefined)
    if (!conn) return
    try {
      const ch = await conn.createChannel()
      for (const q of queues) await ch.deleteQueue(q)
    } catch {
      // a broker that went away leaves them; nothing more to do here
    } finally {
      await conn.close().catch(() => undefined)
    }
  })

export const cleanupJob = (
  urls: Urls,
  log: (line: string) => void,
  natsUrl: string,
  plan: JobPlan,
  names: ChaosNames
) =>
  Effect.scoped(
    Effect.gen(function* () {
      const nc = yield* natsConnection(natsUrl, { name: `${names.job}/chaos-cleanup` })
      yield* io("deleting the input stream and the job's buckets", async () => {
        const jsm = await jetstreamManager(nc)
        for (const stream of names.streams ?? [names.stream])
          await jsm.streams.delete(stream).catch(() => false)
        await (await new Kvm(nc).create(`exactor-${names.job}`)).destroy()
        await (await new Objm(nc).create(`exactor-${names.job}`)).destroy()
      })
      yield* io("deleting the output, lock and marker queues", async () => {
        const conn = await amqpConnect(urls.amqpUrl)
        try {
          const ch = await conn.createChannel()
          for (const queue of names.queues ?? [names.queue]) await ch.deleteQueue(queue)
          for (const id of plan.instances)
            if (plan.operator.get(id.operator)?.declaration.kind === "sink")
              for (const q of [
                lockQueueName(names.job, id.operator, id.index),
                markerQueueName(names.job, id.operator, id.index)
              ])
                await ch.deleteQueue(q)
        } finally {
          await conn.close().catch(() => undefined)
        }
      })
    })
  ).pipe(Effect.catch((e) => Effect.sync(() => log(`cleanup: ${e.message}`))))
