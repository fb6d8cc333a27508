/**
 * `npm start` / `exactor example [orders|shop]`: an example job end to end on generated input. It
 * makes sure the brokers are up, publishes N generated records into fresh streams, runs every
 * actor as a process with a live view, then drains each RabbitMQ output with an independent
 * consumer and prints a one-screen summary with the exactly-once verdict (one per sink). The
 * orders job is known here; another example says what it needs in its `jobSpec` export.
 */
import { fileURLToPath } from "node:url"
import { jetstreamManager } from "@nats-io/jetstream"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { ordersQueue, ordersStream } from "../../actors/examples/orders.ts"
import { ensureNats, ensureRabbitMq } from "../brokers/Brokers.ts"
import { defaultLogFile, launch, prepareStart, type Urls } from "../process/JobRunner.ts"
import { defaultSupervisorOptions } from "../process/Launcher.ts"
import { type NatsConnection, natsConnection } from "../runtime/Nats.ts"
import { checkOrders, drainQueue, exactlyOnce, formatVerdict, purgeQueue } from "../chaos/OutputCheck.ts"
import type { JobPlan } from "../api/Pipeline.ts"
import { loadPipeline } from "../api/PipelineModule.ts"
import { generateOrder, produce } from "../connectors/jetstream/Producer.ts"
import { ordersPartitioning } from "../connectors/jetstream/Partitioning.ts"
import { checkSpecOutputs, loadJobSpec, produceSpecInputs } from "../chaos/JobSpec.ts"
import { liveView } from "./LiveView.ts"

export interface ExampleOptions {
  readonly orders: number
  readonly view: boolean
  readonly urls: Urls
}

export const exampleModule = fileURLToPath(new URL("../../actors/examples/orders.ts", import.meta.url))

/** Runs the job's processes under the live view; the launcher's result, the view's last figures, seconds. */
const runWithView = (
  module: string,
  plan: JobPlan,
  nc: NatsConnection,
  logFile: string,
  expected: number,
  o: ExampleOptions
) =>
  Effect.scoped(
    Effect.gen(function* () {
      const started = Date.now()
      const view = yield* liveView(nc, plan, expected, o.view)
      const result = yield* launch({
        module,
        plan,
        supervisor: defaultSupervisorOptions,
        urls: o.urls,
        logFile,
        onEvent: view.onLauncherEvent
      })
      return { result, figures: view.snapshot(), seconds: (Date.now() - started) / 1000 }
    })
  )

/** The examples `exactor example <name>` runs. */
export const examples: Readonly<Record<string, string>> = {
  orders: exampleModule,
  shop: fileURLToPath(new URL("../../actors/examples/shop.ts", import.meta.url)),
  // the event-time example with its oracle (the oracle lives in test/: it imports nothing from lib/)
  revenue: fileURLToPath(new URL("../../test/oracle/revenueJob.ts", import.meta.url))
}

export class UnknownExample extends Data.TaggedError("UnknownExample")<{ readonly name: string }> {
  override get message(): string {
    return `no example named ${JSON.stringify(this.name)}: the examples are ${Object.keys(examples).join(", ")}`
  }
}

/** Runs the example `name`; returns the process exit code (0 only if FINISHED and exactly once). */
export const runNamedExample = (name: string, o: ExampleOptions) => {
  const module = examples[name]
  if (module === undefined) return Effect.fail(new UnknownExample({ name }))
  return name === "orders" ? runExample(o) : runSpecExample(module, o)
}

/** An example with a `jobSpec`: its inputs, a run with the live view, one verdict per sink. */
const runSpecExample = (module: string, o: ExampleOptions) =>
  Effect.scoped(
    Effect.gen(function* () {
      yield* ensureNats({ natsUrl: o.urls.natsUrl })
      yield* ensureRabbitMq({ amqpUrl: o.urls.amqpUrl })
      const spec = yield* loadJobSpec(module)
      if (spec === undefined)
        return yield* Effect.fail(new UnknownExample({ name: `${module} (it has no jobSpec export)` }))
      const env = spec.env("example")
      for (const [k, v] of Object.entries(env)) process.env[k] = v
      const plan = yield* loadPipeline(module)
      const job = plan.pipeline.job
      const nc = yield* natsConnection(o.urls.natsUrl, { name: `${job}/example`, job })
      const inputs = spec.inputs(env, o.orders)
      const outputs = spec.outputs(env, o.orders)
      // fresh input: the streams are recreated, the output queues emptied
      yield* Effect.tryPromise(async () => {
        const jsm = await jetstreamManager(nc)
        for (const i of inputs) await jsm.streams.delete(i.stream).catch(() => false)
      })
      for (const q of outputs) yield* purgeQueue(o.urls.amqpUrl, q.queue)
      yield* Console.log(
        `publishing ${inputs.map((i) => `${i.records.length.toLocaleString("en")} records into ${i.stream}`).join(", ")}…`
      )
      yield* produceSpecInputs(spec, env, o.orders, o.urls.natsUrl)
      yield* prepareStart(plan, { kind: "fresh" }, o.urls)
      const logFile = defaultLogFile(job)
      yield* Console.log(
        `running job ${job}: ${plan.instances.length} actor processes + coordinator (logs: ${logFile})`
      )
      // what the sinks must commit in all: what each check expects of an empty queue
      const expected = outputs.reduce((a, q) => a + q.check([], () => []).attempted, 0)
      const { result, figures, seconds } = yield* runWithView(module, plan, nc, logFile, expected, o)
      const sinks = yield* checkSpecOutputs(spec, env, o.orders, o.urls.amqpUrl, (line) =>
        process.stderr.write(`${line}\n`)
      )
      const ok = result.exitCode === 0 && sinks.every((s) => exactlyOnce(s.verdict))
      yield* Console.log(
        [
          "",
          `── summary ${"─".repeat(50)}`,
          `job ${job}: ${result.exitCode === 0 ? "FINISHED" : `FAILED (${result.reason ?? `exit ${result.exitCode}`})`} in ${seconds.toFixed(1)} s`,
          `restarts   ${[...result.restarts.values()].reduce((a, b) => a + b, 0)} process restarts; last epoch ${figures.epoch}, last checkpoint ${figures.lastCheckpoint}`,
          ...sinks.flatMap((s) => [
            "",
            `sink ${s.sink} → RabbitMQ queue ${s.queue}: ${exactlyOnce(s.verdict) ? "exactly once" : "NOT exactly once"}`,
            formatVerdict(s.verdict)
          ]),
          "",
          ok ? "exactly once: yes" : "exactly once: NO",
          `status: npx exactor status ${job}   logs: ${logFile}`
        ].join("\n")
      )
      return ok ? 0 : 1
    })
  )

/** Runs the example; returns the process exit code (0 only if FINISHED and exactly once). */
export const runExample = (o: ExampleOptions) =>
  Effect.scoped(
    Effect.gen(function* () {
      yield* ensureNats({ natsUrl: o.urls.natsUrl })
      yield* ensureRabbitMq({ amqpUrl: o.urls.amqpUrl })
      const plan = yield* loadPipeline(exampleModule)
      const job = plan.pipeline.job
      const nc = yield* natsConnection(o.urls.natsUrl, { name: `${job}/example`, job })
      // fresh input: the stream is recreated, the output queue emptied
      yield* Effect.tryPromise(async () => {
        const jsm = await jetstreamManager(nc)
        await jsm.streams.delete(ordersStream).catch(() => false)
      })
      yield* purgeQueue(o.urls.amqpUrl, ordersQueue)
      yield* Console.log(
        `publishing ${o.orders.toLocaleString("en")} generated orders into stream ${ordersStream}…`
      )
      const partitions = ordersPartitioning()
      const produced = yield* produce({
        natsUrl: o.urls.natsUrl,
        stream: ordersStream,
        input: { generate: { count: o.orders } },
        ...(partitions === undefined ? {} : { partitions })
      })
      yield* prepareStart(plan, { kind: "fresh" }, o.urls)
      const logFile = defaultLogFile(job)
      yield* Console.log(
        `running job ${job}: ${plan.instances.length} actor processes + coordinator (logs: ${logFile})`
      )
      const { result, figures, seconds } = yield* runWithView(exampleModule, plan, nc, logFile, o.orders, o)
      const output = yield* drainQueue(o.urls.amqpUrl, ordersQueue)
      const input = Array.from({ length: o.orders }, (_, i) => generateOrder(i))
      const verdict = checkOrders(input, output)
      const ok = result.exitCode === 0 && exactlyOnce(verdict)
      yield* Console.log(
        [
          "",
          `── summary ${"─".repeat(50)}`,
          `job ${job}: ${result.exitCode === 0 ? "FINISHED" : `FAILED (${result.reason ?? `exit ${result.exitCode}`})`} in ${seconds.toFixed(1)} s`,
          `input      ${produced.published + produced.duplicates} orders in stream ${ordersStream}`,
          `output     ${output.length} messages drained from RabbitMQ queue ${ordersQueue} (${Math.round(output.length / seconds).toLocaleString("en")} records/s end to end)`,
          `restarts   ${[...result.restarts.values()].reduce((a, b) => a + b, 0)} process restarts; last epoch ${figures.epoch}, last checkpoint ${figures.lastCheckpoint}`,
          "",
          formatVerdict(verdict),
          "",
          ok ? "exactly once: yes" : "exactly once: NO",
          `status: npx exactor status ${job}   logs: ${logFile}`
        ].join("\n")
      )
      return ok ? 0 : 1
    })
  )
