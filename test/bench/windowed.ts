/**
 * The windowed benchmark (issue 16): the event-time example (test/oracle/revenueJob.ts: two
 * JetStream sources, tumbling, sliding and session windows, an interval join, five RabbitMQ 2PC sinks) end to end on
 * `records` generated orders. The rate is input records over the time from the coordinator's `run`
 * of epoch 1 to the first source to the job's exit (FINISHED: every window fired and committed, the
 * job stopped), so it includes the final checkpoint and the shutdown; the output is checked by the
 * window oracle.
 */
import type { NatsConnection } from "@nats-io/transport-node"
import { Effect } from "effect"
import { checkSpecOutputs, produceSpecInputs, sumVerdicts } from "../../lib/chaos/JobSpec.ts"
import { exactlyOnce } from "../../lib/chaos/OutputCheck.ts"
import { InstanceId, Subjects } from "../../lib/core/Address.ts"
import { decode, EnvelopeDecodeError } from "../../lib/runtime/Envelope.ts"
import { amqpUrl, uniqueName } from "../harness/env.ts"
import { jobSpec } from "../oracle/revenueJob.ts"
import { type CpuReading, cpuOver, readCpu } from "./cpu.ts"
import { startJob } from "./jobRun.ts"

const revenueModule = new URL("../oracle/revenueJob.ts", import.meta.url).pathname

export interface WindowedFigures {
  readonly records: number
  readonly seconds: number
  readonly perSecond: number
  readonly exitCode: number
  readonly exactlyOnce: boolean
  readonly results: number
  /** CPU µs per input record by process group (operators, coordinator, nats, rabbitmq), first to last reading */
  readonly cpuMicros: Readonly<Record<string, number>>
}

export const windowedBench = async (
  nc: NatsConnection,
  natsUrl: string,
  records: number,
  profileDir?: string
): Promise<WindowedFigures> => {
  const tag = uniqueName("w").replace(/[^a-zA-Z0-9]/g, "")
  const env = jobSpec.env(tag)
  await Effect.runPromise(produceSpecInputs(jobSpec, env, records, natsUrl))
  const streams = jobSpec.inputs(env, records).map((i) => i.stream)
  const queues = jobSpec.outputs(env, records).map((o) => o.queue)
  const job = env.EXACTOR_REVENUE_JOB!
  const control = new Subjects(job).control(InstanceId.make("orders-a", 0))
  let first: number | undefined
  const sub = nc.subscribe(control, {
    callback: (_e, m) => {
      const r = decode(control, m.data)
      if (!(r instanceof EnvelopeDecodeError) && r.k === "run" && first === undefined)
        first = performance.now()
    }
  })
  await nc.flush()
  const run = await startJob(nc, {
    module: revenueModule,
    job,
    stream: streams[0]!,
    env: {
      ...env,
      EXACTOR_CHECKPOINT_INTERVAL: "1000",
      ...(profileDir ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profileDir}` } : {})
    }
  })
  try {
    // CPU readings every 200 ms while the job runs: the last one before its processes exit
    const readings: Array<CpuReading> = []
    const timer = setInterval(() => {
      if (first !== undefined) readings.push(readCpu())
    }, 200)
    const exitCode = await run.exit
    const exited = performance.now()
    clearInterval(timer)
    // per process up to its last reading: the job's processes exit one by one at its end
    const cpuMicros: Record<string, number> = {}
    for (const [g, sec] of cpuOver(readings)) cpuMicros[g] = (sec * 1e6) / records
    const sinks = await Effect.runPromise(
      checkSpecOutputs(jobSpec, env, records, amqpUrl, (l) => console.error(l))
    )
    const seconds = (exited - (first ?? exited)) / 1000
    return {
      records,
      seconds,
      perSecond: records / seconds,
      exitCode,
      exactlyOnce: exitCode === 0 && sinks.every((s) => exactlyOnce(s.verdict)),
      results: sumVerdicts(sinks.map((s) => s.verdict)).attempted,
      cpuMicros
    }
  } finally {
    sub.unsubscribe()
    await run.cleanup(streams, queues)
  }
}
