/**
 * The programs of the processes a launcher starts: one actor instance, or the coordinator. The
 * lean entry `cli/child.ts` runs them (and so do `exactor actor|coordinator`); this module and
 * what it imports is all an actor process loads, so keep the CLI and broker start-up out of it.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type * as Runtime from "effect/Runtime"
import { runActor } from "../runtime/Actor.ts"
import { InstanceId, InvalidInstanceId } from "../core/Address.ts"
import type { BrokerUrls } from "../brokers/BrokerUrls.ts"
import { CheckpointStore } from "../checkpoint/CheckpointStore.ts"
import { runCoordinator } from "../checkpoint/Coordinator.ts"
import { jobAuth } from "./JobSecret.ts"
import { ExitCode, exitWithSupervisor } from "./Launcher.ts"
import { natsConnection } from "../runtime/Nats.ts"
import { loadPipeline } from "../api/PipelineModule.ts"
import { logLayer } from "../runtime/LogFormat.ts"

/** What both kinds of process start with: the supervisor link, the pipeline, the job's secret, NATS and the job's store. */
const openJob = (module: string, urls: BrokerUrls, processName: string) =>
  Effect.gen(function* () {
    exitWithSupervisor()
    const plan = yield* loadPipeline(module)
    const auth = yield* jobAuth(plan.pipeline.job)
    const nc = yield* natsConnection(urls.natsUrl, {
      name: `${plan.pipeline.job}/${processName}`,
      job: plan.pipeline.job
    })
    const store = yield* CheckpointStore.open(nc, plan.pipeline.job)
    return { plan, auth, nc, store }
  })

/** One actor instance (`count#1`) of the pipeline in `module`, until it is stopped. */
export const actorProcess = (module: string, instance: string, urls: BrokerUrls) =>
  Effect.scoped(
    Effect.gen(function* () {
      const id = InstanceId.parse(instance)
      if (id instanceof InvalidInstanceId) return yield* id
      const { plan, auth, nc, store } = yield* openJob(module, urls, String(id))
      yield* runActor({ plan, id, nc, store, auth, ...urls }).pipe(
        Effect.annotateLogs({ job: plan.pipeline.job, instance: String(id) })
      )
    })
  ).pipe(Effect.provide(logLayer()))

/** The coordinator of the pipeline in `module`; its exit code says how the job ended. */
export const coordinatorProcess = (module: string, urls: BrokerUrls) =>
  Effect.scoped(
    Effect.gen(function* () {
      const { plan, auth, nc, store } = yield* openJob(module, urls, "coordinator")
      const result = yield* runCoordinator({ plan, nc, store, auth }).pipe(
        Effect.annotateLogs({ job: plan.pipeline.job, instance: "coordinator" })
      )
      process.exitCode =
        result.state === "FINISHED"
          ? ExitCode.finished
          : result.state === "CANCELLED"
            ? ExitCode.cancelled
            : ExitCode.failed
    })
  ).pipe(Effect.provide(logLayer()))

/** `runMain` teardown: the exit code set by the program, 130 when interrupted, else 1. */
export const exitCodeTeardown: Runtime.Teardown = (exit, onExit) => {
  if (exit._tag === "Success") return onExit(Number(process.exitCode ?? 0))
  return onExit(Cause.hasInterruptsOnly(exit.cause) ? 130 : 1)
}
