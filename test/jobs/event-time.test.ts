/**
 * Event time end to end on the real brokers (test/fixtures/windowedOrders.ts): one JetStream split
 * of seeded orders (96 % on time, 2 % allowed-late, 2 % too late; test/oracle/windowInput.ts) into
 * a tumbling, a sliding and a session window at parallelism 2, results and late orders into two
 * RabbitMQ queues. Single split, so the oracle (test/oracle/windowOracle.ts) simulates the run and
 * every result row and late row must equal its simulation exactly: mismatch 0, and lost,
 * duplicated, unexpected, lateWrong and brokenChains 0.
 */
import { connect } from "@nats-io/transport-node"
import * as Effect from "effect/Effect"
import t from "tap"
import { drainQueue } from "../../lib/chaos/OutputCheck.ts"
import { produce } from "../../lib/connectors/jetstream/Producer.ts"
import { exitWithin } from "../harness/checks.ts"
import { amqpUrl, natsUrl, uniqueName } from "../harness/env.ts"
import { jobProcesses, removeJob } from "../harness/job.ts"
import { generateOrders } from "../oracle/windowInput.ts"
import {
  type Assigner,
  checkWindows,
  type LateRow,
  verdictTable,
  type WindowResultRow
} from "../oracle/windowOracle.ts"

const fixture = new URL("../fixtures/windowedOrders.ts", import.meta.url).pathname
const maxDelay = 2000
const lateness = 1000
const emitEvery = 200

const cases: ReadonlyArray<{ readonly text: string; readonly assigner: Assigner; readonly size: number }> = [
  { text: "tumbling:10000", assigner: { kind: "tumbling", size: 10_000 }, size: 10_000 },
  { text: "sliding:30000:10000", assigner: { kind: "sliding", size: 30_000, slide: 10_000 }, size: 30_000 },
  { text: "session:3000", assigner: { kind: "session", gap: 3000 }, size: 3000 }
]

for (const c of cases)
  t.test(
    `${c.assigner.kind} windows over one out-of-order split: exactly the oracle's simulation`,
    async (t) => {
      const [input] = generateOrders({
        seed: 11,
        splits: 1,
        perSplit: 3000,
        customers: 20,
        step: 20,
        start: 1_700_000_000_000,
        maxDelay,
        lateness,
        size: c.size,
        emitEvery
      })
      const job = uniqueName("wjob")
      const stream = uniqueName("timed")
      const queue = uniqueName("windows")
      const lateQueue = uniqueName("late")
      await Effect.runPromise(
        produce({
          natsUrl,
          stream,
          input: { records: input!.map(({ id, customer, amount, at }) => ({ id, customer, amount, at })) }
        })
      )
      const nc = await connect({ servers: natsUrl })
      t.teardown(async () => {
        await removeJob(nc, amqpUrl, job, {
          streams: [stream],
          queues: [queue, lateQueue],
          sinks: ["sink", "late"]
        })
        await nc.close()
      })
      const processes = await jobProcesses(
        job,
        fixture,
        {
          EXACTOR_NATS_URL: natsUrl,
          EXACTOR_AMQP_URL: amqpUrl,
          EXACTOR_ORDERS_JOB: job,
          EXACTOR_ORDERS_STREAM: stream,
          EXACTOR_ORDERS_QUEUE: queue,
          EXACTOR_LATE_QUEUE: lateQueue,
          EXACTOR_WINDOW: c.text,
          EXACTOR_MAX_DELAY: String(maxDelay),
          EXACTOR_LATENESS: String(lateness),
          EXACTOR_CHECKPOINT_INTERVAL: "300"
        },
        nc
      )
      t.teardown(() => processes.stop())
      const run = processes.run()
      const code = await exitWithin(run.exit, 180_000)
      t.equal(code, 0, "the job FINISHED")
      if (code !== 0) t.comment(run.output().slice(-4000))
      const drained = async <A>(q: string) =>
        (await Effect.runPromise(drainQueue(amqpUrl, q))).map((m) => m.body as A)
      const verdict = checkWindows({
        input: input!,
        kind: c.assigner.kind,
        config: { assigner: c.assigner, lateness, maxDelay, emitEvery },
        results: await drained<WindowResultRow>(queue),
        late: await drained<LateRow>(lateQueue),
        singleSplit: true
      })
      t.comment(`\n${verdictTable(verdict)}`)
      t.ok(verdict.ok, `exactly the simulation: ${verdict.results} results, ${verdict.lateRecords} late rows`)
      t.ok(verdict.lateRecords > 0, "some orders were too late for their windows")
    }
  )
