#!/usr/bin/env node
/**
 * lib/cli/ — the command line and its views (live view, status formatting). May import anything.
 *
 * The `exactor` command line: run a job on this host, launch part of a job, the actor and
 * coordinator processes themselves, status, savepoints, producing input, and the example.
 * Exit codes: 0 done/FINISHED, 1 error, 2 job FAILED, 3 restart intensity exceeded, 4 job CANCELLED,
 * 130 interrupted.
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import { runMain } from "@effect/platform-node/NodeRuntime"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import { Argument, Command, Flag } from "effect/cli"
import { brokerUrlsFromEnv } from "../brokers/BrokerUrls.ts"
import { actorProcess, coordinatorProcess, exitCodeTeardown } from "../process/ChildProcesses.ts"
import { CheckpointStore } from "../checkpoint/CheckpointStore.ts"
import type { JobStatus } from "../checkpoint/JobStatus.ts"
import { defaultSupervisorOptions, ExitCode } from "../process/Launcher.ts"
import { launch, parseInstances, prepareStart, type StartFrom } from "../process/JobRunner.ts"
import { logLayer } from "../runtime/LogFormat.ts"
import { natsConnection } from "../runtime/Nats.ts"
import { loadPipeline } from "../api/PipelineModule.ts"
import { produce, readInputRecords } from "../connectors/jetstream/Producer.ts"
import { streamUrlFor } from "../connectors/rabbitmq-stream/StreamClient.ts"
import { writeStreamInput } from "../connectors/rabbitmq-stream/StreamInput.ts"
import { partitionStreams } from "../connectors/rabbitmq-stream/StreamPartitioning.ts"
import { requestSavepoint } from "../checkpoint/SavepointRequest.ts"
import { formatStatus } from "./formatStatus.ts"
import { lifecycleCommands } from "./lifecycleCommands.ts"
import { portFlag, uiCommand, withWebView } from "./uiCommand.ts"

const urls = brokerUrlsFromEnv()

const setExit = (code: number) => Effect.sync(() => (process.exitCode = code))

const moduleArg = Argument.String("pipeline-module").pipe(
  Argument.withDescription(
    "a .ts/.js file whose default export is a pipeline, e.g. actors/examples/orders.ts"
  )
)
const jobArg = Argument.String("job").pipe(Argument.withDescription("the job name (the pipeline's name)"))
const supervisorFlags = {
  maxRestarts: Flag.Int("max-restarts").pipe(
    Flag.withDescription("R: restarts allowed within the restart window before the job fails"),
    Flag.withDefault(defaultSupervisorOptions.maxRestarts)
  ),
  restartWindow: Flag.Int("restart-window").pipe(
    Flag.withDescription("T: the restart window, in seconds"),
    Flag.withDefault(defaultSupervisorOptions.restartWindowMs / 1000)
  )
}
const supervisorOf = (f: { maxRestarts: number; restartWindow: number }) => ({
  ...defaultSupervisorOptions,
  maxRestarts: f.maxRestarts,
  restartWindowMs: f.restartWindow * 1000
})

const run = Command.make(
  "run",
  {
    module: moduleArg,
    fromCheckpoint: Flag.Int("from-checkpoint").pipe(
      Flag.withDescription(
        "start from this completed checkpoint (keyed operators may have another parallelism)"
      ),
      Flag.optional
    ),
    fromSavepoint: Flag.String("from-savepoint").pipe(
      Flag.withDescription("start from this savepoint"),
      Flag.optional
    ),
    resume: Flag.Boolean("resume").pipe(
      Flag.withDescription("go on from the job's latest completed checkpoint instead of starting afresh"),
      Flag.withDefault(false)
    ),
    ui: Flag.Boolean("ui").pipe(
      Flag.withDescription("also serve the web view and /metrics while the job runs"),
      Flag.withDefault(false)
    ),
    uiPort: portFlag("ui-port"),
    ...supervisorFlags
  },
  (f) =>
    Effect.gen(function* () {
      const plan = yield* loadPipeline(f.module)
      const from: StartFrom = Option.isSome(f.fromCheckpoint)
        ? { kind: "checkpoint", n: f.fromCheckpoint.value }
        : Option.isSome(f.fromSavepoint)
          ? { kind: "savepoint", name: f.fromSavepoint.value }
          : f.resume
            ? { kind: "resume" }
            : { kind: "fresh" }
      yield* prepareStart(plan, from, urls)
      const result = yield* withWebView(
        urls,
        f.ui,
        f.uiPort,
        launch({ module: f.module, plan, supervisor: supervisorOf(f), urls })
      )
      yield* Console.error(
        result.exitCode === 0
          ? `job ${plan.pipeline.job} FINISHED`
          : result.exitCode === ExitCode.cancelled
            ? `job ${plan.pipeline.job} CANCELLED`
            : `job ${plan.pipeline.job} FAILED: ${result.reason ?? ""}`
      )
      yield* setExit(result.exitCode)
    })
).pipe(
  Command.withDescription("Run every actor of a pipeline as a process on this host, under the supervisor")
)

const launchCmd = Command.make(
  "launch",
  {
    module: moduleArg,
    instances: Flag.String("instances").pipe(
      Flag.withDescription(
        "comma-separated instances to start here, e.g. count#0,count#1 (and `coordinator`)"
      )
    ),
    ...supervisorFlags
  },
  (f) =>
    Effect.gen(function* () {
      const plan = yield* loadPipeline(f.module)
      const instances = parseInstances(plan, f.instances)
      if ("_tag" in instances) return yield* instances
      // the host that runs the coordinator starts a run that goes on from the latest checkpoint
      if (instances.includes("coordinator")) yield* prepareStart(plan, { kind: "resume" }, urls)
      const result = yield* launch({ module: f.module, plan, instances, supervisor: supervisorOf(f), urls })
      yield* setExit(result.exitCode)
    })
).pipe(Command.withDescription("Start some instances of a job on this host (several hosts share one job)"))

const actor = Command.make(
  "actor",
  { module: moduleArg, instance: Flag.String("instance").pipe(Flag.withDescription("e.g. count#1")) },
  (f) => actorProcess(f.module, f.instance, urls)
).pipe(Command.withDescription("One actor process (run/launch start these through lib/cli/child.ts)"))

const coordinator = Command.make("coordinator", { module: moduleArg }, (f) =>
  coordinatorProcess(f.module, urls)
).pipe(
  Command.withDescription("The coordinator process of a job (run/launch start it through lib/cli/child.ts)")
)

const withStore = <A, E>(job: string, f: (store: CheckpointStore) => Effect.Effect<A, E>) =>
  Effect.scoped(
    Effect.gen(function* () {
      const nc = yield* natsConnection(urls.natsUrl, { name: `${job}/cli`, job })
      const store = yield* CheckpointStore.open(nc, job)
      return yield* f(store)
    })
  )

const status = Command.make(
  "status",
  {
    job: jobArg,
    metrics: Flag.Boolean("metrics").pipe(
      Flag.withDescription("print the same figures as Prometheus metrics (text exposition format)"),
      Flag.withDefault(false)
    )
  },
  (f) =>
    withStore(f.job, (store) =>
      Effect.gen(function* () {
        const s = yield* store.readStatus()
        if (s === undefined) {
          yield* Console.log(`job ${f.job}: no status yet (never run here?)`)
          return yield* setExit(1)
        }
        yield* Console.log(f.metrics ? ((s as JobStatus).metrics ?? "") : formatStatus(s as JobStatus))
      })
    )
).pipe(
  Command.withDescription("Print a job's state: instances, records in/out, restarts, epoch, last checkpoints")
)

const savepoint = Command.make(
  "savepoint",
  {
    job: jobArg,
    name: Flag.String("name").pipe(Flag.withDescription("savepoint name (default sp-<time>)"), Flag.optional)
  },
  (f) =>
    Effect.scoped(
      Effect.gen(function* () {
        const nc = yield* natsConnection(urls.natsUrl, { name: `${f.job}/cli`, job: f.job })
        const name = Option.getOrElse(f.name, () => `sp-${new Date().toISOString().replace(/[-:.TZ]/g, "")}`)
        const taken = yield* Effect.result(
          requestSavepoint(nc, f.job, name, (e) => Console.error(`${e.message}; asking again`))
        )
        if (Result.isFailure(taken)) {
          yield* Console.error(`savepoint failed: ${taken.failure.message}`)
          return yield* setExit(1)
        }
        yield* Console.log(`savepoint ${name} written (checkpoint ${taken.success})`)
      })
    )
).pipe(Command.withDescription("Take a savepoint of a running job (kept until deleted)"))

const savepoints = Command.make(
  "savepoints",
  {
    job: jobArg,
    delete: Flag.String("delete").pipe(Flag.withDescription("delete this savepoint"), Flag.optional)
  },
  (f) =>
    withStore(f.job, (store) =>
      Effect.gen(function* () {
        if (Option.isSome(f.delete)) {
          yield* store.deleteSavepoint(f.delete.value)
          return yield* Console.log(`savepoint ${f.delete.value} deleted`)
        }
        const list = yield* store.listSavepoints()
        if (list.length === 0) return yield* Console.log(`job ${f.job} has no savepoints`)
        for (const m of list)
          yield* Console.log(
            `${(m.name ?? "").padEnd(28)} checkpoint ${m.checkpoint}  ${new Date(m.createdAt).toISOString()}`
          )
      })
    )
).pipe(Command.withDescription("List a job's savepoints, or delete one"))

const produceCmd = Command.make(
  "produce",
  {
    stream: Argument.String("stream"),
    file: Flag.String("file").pipe(
      Flag.withDescription("an NDJSON file, one record per line"),
      Flag.optional
    ),
    generate: Flag.Int("generate").pipe(
      Flag.withDescription("generate N orders {id, customer, amount}"),
      Flag.optional
    ),
    seed: Flag.Int("seed").pipe(Flag.withDefault(1)),
    customers: Flag.Int("customers").pipe(Flag.withDefault(1000)),
    partitions: Flag.Int("partitions").pipe(
      Flag.withDescription("spread records over P partition subjects <stream>.records.<k> (needs --key)"),
      Flag.optional
    ),
    key: Flag.String("key").pipe(
      Flag.withDescription("the field whose value picks a record's partition: murmur3(value) mod P"),
      Flag.optional
    ),
    to: Flag.Literals("to", ["jetstream", "rabbitmq-stream"]).pipe(
      Flag.withDescription(
        "jetstream (default), or the RabbitMQ stream(s) <stream> / <stream>-<k> a rabbitmqStreamSource reads"
      ),
      Flag.withDefault("jetstream")
    )
  },
  (f) =>
    Effect.gen(function* () {
      const input = Option.isSome(f.file)
        ? { file: f.file.value }
        : Option.isSome(f.generate)
          ? { generate: { count: f.generate.value, seed: f.seed, customers: f.customers } }
          : undefined
      if (!input) {
        yield* Console.error("produce needs --file <ndjson> or --generate <count>")
        return yield* setExit(ExitCode.usage)
      }
      if (Option.isSome(f.partitions) !== Option.isSome(f.key)) {
        yield* Console.error("produce: --partitions and --key go together")
        return yield* setExit(ExitCode.usage)
      }
      const partitions =
        Option.isSome(f.partitions) && Option.isSome(f.key)
          ? { partitions: { count: f.partitions.value, key: f.key.value } }
          : {}
      if (f.to === "rabbitmq-stream") {
        const records = yield* readInputRecords(input, partitions.partitions)
        yield* writeStreamInput({
          streamUrl: streamUrlFor(urls.amqpUrl),
          stream: f.stream,
          records,
          ...partitions
        })
        return yield* Console.log(
          `${f.stream}: ${records.length} records written to ${partitionStreams(f.stream, partitions.partitions?.count).join(", ")}`
        )
      }
      const r = yield* produce({ natsUrl: urls.natsUrl, stream: f.stream, input, ...partitions })
      yield* Console.log(
        `${r.stream}: ${r.published} published, ${r.duplicates} already there, last sequence ${r.lastSeq}`
      )
    })
).pipe(Command.withDescription("Publish records into a JetStream stream, idempotently (msgID per record)"))

const example = Command.make(
  "example",
  {
    name: Argument.String("example").pipe(
      Argument.withDescription(
        "which example: orders (the default), shop (a graph with two sinks) or revenue (event-time windows)"
      ),
      Argument.withDefault("orders")
    ),
    orders: Flag.Int("orders").pipe(
      Flag.withDescription("orders to generate (records, for shop)"),
      Flag.withDefault(100_000)
    ),
    view: Flag.Boolean("view").pipe(
      Flag.withDescription("live terminal view"),
      Flag.withDefault(process.stdout.isTTY === true)
    )
  },
  (f) =>
    Effect.promise(() => import("./example.ts")).pipe(
      Effect.flatMap(({ runNamedExample }) =>
        runNamedExample(f.name, { orders: f.orders, view: f.view, urls })
      ),
      Effect.flatMap(setExit)
    )
).pipe(
  Command.withDescription(
    "Run an example job (orders, or the graph shop) on generated input, with a live view and a summary (npm start)"
  )
)

const chaos = Command.make(
  "chaos",
  {
    module: moduleArg,
    records: Flag.Int("records").pipe(
      Flag.withDescription("orders to generate (bounded input)"),
      Flag.withDefault(100_000)
    ),
    interval: Flag.Int("interval").pipe(
      Flag.withDescription("mean ms between faults"),
      Flag.withDefault(1500)
    ),
    maxFaults: Flag.Int("max-faults").pipe(
      Flag.withDescription("stop injecting after this many faults; the job then runs on to its end"),
      Flag.optional
    ),
    firingKills: Flag.Int("firing-kills").pipe(
      Flag.withDescription(
        "also kill -9 a keyed instance the moment its heartbeat says it fires a burst of timers, up to N times"
      ),
      Flag.withDefault(0)
    ),
    kinds: Flag.String("kinds").pipe(
      Flag.withDescription("what to kill: sources,keyed,sinks,coordinator,operators"),
      Flag.withDefault("sources,keyed,sinks,coordinator,operators")
    ),
    pause: Flag.Boolean("pause").pipe(
      Flag.withDescription("also SIGSTOP/SIGCONT pauses (zombies), some longer than the heartbeat timeout"),
      Flag.withDefault(true)
    ),
    natsRestarts: Flag.Boolean("nats-restarts").pipe(
      Flag.withDescription("run against a private nats-server on a random port and restart it as a fault"),
      Flag.withDefault(false)
    ),
    rabbitmqCrashes: Flag.Int("rabbitmq-crashes").pipe(
      Flag.withDescription("run against a private RabbitMQ node and kill -9 / restart it this many times"),
      Flag.withDefault(0)
    ),
    postgresCrashes: Flag.Int("postgres-crashes").pipe(
      Flag.withDescription(
        "the module writes into PostgreSQL: run it on a private cluster, kill -9 and restart that server N times, check the table with SQL"
      ),
      Flag.optional
    ),
    seed: Flag.Int("seed").pipe(Flag.withDescription("seed of the fault schedule (printed)"), Flag.optional),
    duration: Flag.String("duration").pipe(
      Flag.withDescription("deadline for the job to finish, e.g. 90s, 10m"),
      Flag.withDefault("10m")
    ),
    json: Flag.String("json").pipe(
      Flag.withDescription("the report file"),
      Flag.withDefault("exactor-chaos-report.json")
    )
  },
  (f) =>
    Effect.promise(() => import("./chaos.ts")).pipe(
      Effect.flatMap(({ runChaosCli }) =>
        runChaosCli({
          ...f,
          seed: Option.getOrUndefined(f.seed),
          postgresCrashes: Option.getOrUndefined(f.postgresCrashes),
          maxFaults: Option.getOrUndefined(f.maxFaults),
          firingKills: f.firingKills,
          urls
        })
      ),
      Effect.flatMap(setExit)
    )
).pipe(
  Command.withDescription(
    "Run a pipeline on generated input while killing and pausing its processes; check exactly-once"
  )
)

const exactor = Command.make("exactor").pipe(
  Command.withDescription("exactor: exactly-once stream pipelines of actors on NATS and RabbitMQ"),
  Command.withSubcommands([
    run,
    launchCmd,
    status,
    savepoint,
    savepoints,
    produceCmd,
    example,
    chaos,
    ...lifecycleCommands(urls),
    uiCommand(urls),
    actor,
    coordinator
  ])
)

runMain(Command.run(exactor, { version: "0.1.0" }).pipe(Effect.provide([NodeServices.layer, logLayer()])), {
  teardown: exitCodeTeardown
})
