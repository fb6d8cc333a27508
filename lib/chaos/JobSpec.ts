/**
 * What `exactor chaos` needs to run a job it does not know, as a pipeline module declares it in
 * its `jobSpec` export: the environment that names a run's streams and queues, the records of
 * each input stream, and for each sink the check of what its queue must hold, computed from the
 * input alone (never from the runtime). The orders examples need none: chaos knows their shape.
 * Invariant: a spec's checks see only the drained output and the records the spec generated.
 */
import { pathToFileURL } from "node:url"
import * as Effect from "effect/Effect"
import type { Partitioning } from "../connectors/jetstream/Partitioning.ts"
import { produce } from "../connectors/jetstream/Producer.ts"
import { ChaosSetupFailed } from "./ChaosJob.ts"
import { drainQueue, type OutputMessage, type Verdict } from "./OutputCheck.ts"

export type SpecEnv = Readonly<Record<string, string>>

export interface JobSpec {
  /** the environment of a run tagged `tag` (letters, digits): the module takes its names from it */
  readonly env: (tag: string) => SpecEnv
  /**
   * the JetStream streams to fill for about `records` records in all, with their records (and
   * the partitioning to write them with, for a source that reads partitions)
   */
  readonly inputs: (
    env: SpecEnv,
    records: number
  ) => ReadonlyArray<{
    readonly stream: string
    readonly records: ReadonlyArray<unknown>
    readonly partitions?: Partitioning
  }>
  /** each sink's RabbitMQ queue and the check of its drained messages */
  readonly outputs: (
    env: SpecEnv,
    records: number
  ) => ReadonlyArray<{
    readonly sink: string
    readonly queue: string
    /** `output` is this sink's queue; `outputOf` gives another sink's (a check may need both) */
    readonly check: (
      output: ReadonlyArray<OutputMessage>,
      outputOf: (sink: string) => ReadonlyArray<OutputMessage>
    ) => Verdict
  }>
}

/** One sink's verdict in a chaos run. */
export interface SinkVerdict {
  readonly sink: string
  readonly queue: string
  readonly verdict: Verdict
}

const isSpec = (x: unknown): x is JobSpec =>
  typeof x === "object" &&
  x !== null &&
  typeof (x as JobSpec).env === "function" &&
  typeof (x as JobSpec).inputs === "function" &&
  typeof (x as JobSpec).outputs === "function"

/**
 * The `jobSpec` export of `module`, or undefined if it has none. Read from a separate instance of
 * the module (a query on its URL), so the module proper is first evaluated after the spec's
 * environment is set and takes its names from it.
 */
export const loadJobSpec = (module: string) =>
  Effect.tryPromise({
    try: async () => {
      const m = (await import(`${pathToFileURL(module).href}?jobSpec`)) as { readonly jobSpec?: unknown }
      if (m.jobSpec === undefined) return undefined
      if (!isSpec(m.jobSpec)) throw new Error("its jobSpec export is not { env, inputs, outputs } functions")
      return m.jobSpec
    },
    catch: (cause) => new ChaosSetupFailed({ step: `reading the job spec of ${module}`, cause })
  })

/** Publishes every input of the spec into its JetStream stream. */
export const produceSpecInputs = (spec: JobSpec, env: SpecEnv, records: number, natsUrl: string) =>
  Effect.forEach(
    spec.inputs(env, records),
    (input) =>
      produce({
        natsUrl,
        stream: input.stream,
        input: { records: input.records },
        ...(input.partitions === undefined ? {} : { partitions: input.partitions })
      }),
    { discard: true }
  )

/** Drains every sink's queue, then checks each; an unreadable queue counts as all lost. */
export const checkSpecOutputs = (
  spec: JobSpec,
  env: SpecEnv,
  records: number,
  amqpUrl: string,
  log: (line: string) => void
) =>
  Effect.gen(function* () {
    const outputs = spec.outputs(env, records)
    const drained = new Map<string, ReadonlyArray<OutputMessage>>()
    for (const o of outputs)
      drained.set(
        o.sink,
        yield* drainQueue(amqpUrl, o.queue).pipe(
          Effect.catch((e) =>
            Effect.sync(() => {
              log(`chaos: ${e.message} (counted as lost)`)
              return [] as ReadonlyArray<OutputMessage>
            })
          )
        )
      )
    const outputOf = (sink: string) => drained.get(sink) ?? []
    return outputs.map(
      (o): SinkVerdict => ({ sink: o.sink, queue: o.queue, verdict: o.check(outputOf(o.sink), outputOf) })
    )
  })

/** The sum of several sinks' verdicts (exactly once iff every one is). */
export const sumVerdicts = (vs: ReadonlyArray<Verdict>): Verdict => ({
  attempted: vs.reduce((a, v) => a + v.attempted, 0),
  ok: vs.reduce((a, v) => a + v.ok, 0),
  lost: vs.reduce((a, v) => a + v.lost, 0),
  duplicated: vs.reduce((a, v) => a + v.duplicated, 0),
  unexpected: vs.reduce((a, v) => a + v.unexpected, 0),
  customers: Math.max(0, ...vs.map((v) => v.customers)),
  brokenChains: vs.reduce((a, v) => a + v.brokenChains, 0),
  ...optionalSum(vs, "lateWrong"),
  ...optionalSum(vs, "mismatch"),
  examples: vs.flatMap((v) => v.examples).slice(0, 5)
})

/** The sum of a counter only some verdicts carry (absent when none does). */
const optionalSum = (vs: ReadonlyArray<Verdict>, k: "lateWrong" | "mismatch") =>
  vs.some((v) => v[k] !== undefined) ? { [k]: vs.reduce((a, v) => a + (v[k] ?? 0), 0) } : {}
