/**
 * Event time end to end on the real brokers (test/fixtures/windowedOrders.ts): seeded orders (96 %
 * on time, 2 % allowed-late, 2 % too late; test/oracle/windowInput.ts) from JetStream into one
 * window operator at parallelism 2, results and late orders into two RabbitMQ queues, checked by
 * the independent oracle (test/oracle/windowOracle.ts).
 * - One split, tumbling, sliding and session windows: every result row and late row equals the
 *   oracle's simulation exactly (mismatch 0, and lost, duplicated, unexpected, lateWrong 0); the
 *   sliding case takes its timestamps from `assignTimestamps` after the source, whose instance is
 *   killed once.
 * - T8: a savepoint at window parallelism 2, restored at 3, watermarks 5 s of event time apart:
 *   still exactly the simulation. (Without the restored watermark floor it printed brokenChains 4,
 *   "firings 1,1"; without timers in the snapshot, lost 787.)
 * - T3: a window instance kills itself (once) at its 100th onTimer, mid-burst: after recovery,
 *   still exactly the simulation. (Without timers in the snapshot: lost 508.)
 * - T5: source B waits for its last records (idleTimeout 500 ms): A's windows still fire and
 *   commit, a window instance is killed in the pause, B resumes ahead of A; exactly once at the end.
 * - T6: two sources blocked on credit ~10 s each with idleTimeout 100 ms never report idle, and
 *   no on-time order is late. (Counting the time blocked in routing as idle made them report idle.)
 */
import { existsSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import * as Effect from "effect/Effect"
import t, { type Test } from "tap"
import { drainQueue } from "../../lib/chaos/OutputCheck.ts"
import { Subjects } from "../../lib/core/Address.ts"
import type { HeartbeatBody } from "../../lib/runtime/Actor.ts"
import { decode, EnvelopeDecodeError } from "../../lib/runtime/Envelope.ts"
import { produce } from "../../lib/connectors/jetstream/Producer.ts"
import { exitWithin, killAfterCheckpoint, status, until } from "../harness/checks.ts"
import { amqpUrl, natsUrl, uniqueName } from "../harness/env.ts"
import { jobProcesses, removeJob } from "../harness/job.ts"
import { generateOrders, type InputOrder } from "../oracle/windowInput.ts"
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
const defaultEmitEvery = 200

const cases: ReadonlyArray<{ readonly text: string; readonly assigner: Assigner; readonly size: number }> = [
  { text: "tumbling:10000", assigner: { kind: "tumbling", size: 10_000 }, size: 10_000 },
  { text: "sliding:30000:10000", assigner: { kind: "sliding", size: 30_000, slide: 10_000 }, size: 30_000 },
  { text: "session:3000", assigner: { kind: "session", gap: 3000 }, size: 3000 }
]

/**
 * Publishes one split (two: one stream each, read by two sources), starts the fixture on them;
 * `verdict` drains both queues through the oracle, exact in single-split mode.
 */
const windowJob = async (
  t: Test,
  c: (typeof cases)[number],
  o: {
    readonly perSplit: number
    readonly extra?: Readonly<Record<string, string>>
    readonly emitEvery?: number
    readonly splits?: 1 | 2
    /** the input instead of generating it */
    readonly inputs?: ReadonlyArray<ReadonlyArray<InputOrder>>
    /** the last split's last `held` records are published only by `publishHeld` */
    readonly held?: number
  }
) => {
  const emitEvery = o.emitEvery ?? defaultEmitEvery
  const splits = o.inputs?.length ?? o.splits ?? 1
  const extra = o.extra ?? {}
  const inputs =
    o.inputs ??
    generateOrders({
      seed: 11,
      splits,
      perSplit: o.perSplit,
      customers: 20,
      step: 20,
      start: 1_700_000_000_000,
      maxDelay,
      lateness,
      size: c.size,
      emitEvery
    })
  const job = uniqueName("wjob")
  const streams = inputs.map(() => uniqueName("timed"))
  const queue = uniqueName("windows")
  const lateQueue = uniqueName("late")
  const publish = (stream: string, records: ReadonlyArray<InputOrder>, firstIndex = 0) =>
    Effect.runPromise(
      produce({
        natsUrl,
        stream,
        input: {
          records: records.map(({ id, customer, amount, at }) => ({ id, customer, amount, at })),
          firstIndex
        }
      })
    )
  const held = o.held ?? 0
  for (const [i, stream] of streams.entries())
    await publish(
      stream,
      i === streams.length - 1 ? inputs[i]!.slice(0, inputs[i]!.length - held) : inputs[i]!
    )
  const last = inputs.at(-1)!
  const publishHeld = () => publish(streams.at(-1)!, last.slice(last.length - held), last.length - held)
  const nc = await connect({ servers: natsUrl })
  t.teardown(async () => {
    await removeJob(nc, amqpUrl, job, {
      streams,
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
      EXACTOR_ORDERS_STREAM: streams[0]!,
      ...(streams[1] === undefined ? {} : { EXACTOR_ORDERS_STREAM_B: streams[1] }),
      EXACTOR_ORDERS_QUEUE: queue,
      EXACTOR_LATE_QUEUE: lateQueue,
      EXACTOR_WINDOW: c.text,
      EXACTOR_MAX_DELAY: String(maxDelay),
      EXACTOR_LATENESS: String(lateness),
      EXACTOR_EMIT_EVERY: String(emitEvery),
      EXACTOR_CHECKPOINT_INTERVAL: "300",
      ...extra
    },
    nc
  )
  t.teardown(() => processes.stop())
  const drained = async <A>(q: string) =>
    (await Effect.runPromise(drainQueue(amqpUrl, q))).map((m) => m.body as A)
  const verdict = async () => {
    const v = checkWindows({
      input: inputs.flat(),
      kind: c.assigner.kind,
      config: { assigner: c.assigner, lateness, maxDelay, emitEvery },
      results: await drained<WindowResultRow>(queue),
      late: await drained<LateRow>(lateQueue),
      singleSplit: splits === 1
    })
    t.comment(`\n${verdictTable(v)}`)
    return v
  }
  return { job, nc, processes, verdict, publishHeld }
}

/** Watches a job's heartbeats: the instances that ever said idle, each source's largest credit wait. */
const heartbeats = (nc: NatsConnection, job: string) => {
  const idle = new Set<string>()
  const creditWaitMs = new Map<string, number>()
  const subjects = new Subjects(job)
  nc.subscribe(subjects.coordinator, {
    callback: (_e, m) => {
      const r = decode(subjects.coordinator, m.data)
      if (r instanceof EnvelopeDecodeError || r.k !== "heartbeat" || !("b" in r)) return
      const b = r.b as Partial<HeartbeatBody>
      if (b.idle === true) idle.add(r.c)
      if (r.c.startsWith("orders") && typeof b.creditWaitMs === "number")
        creditWaitMs.set(r.c, Math.max(creditWaitMs.get(r.c) ?? 0, b.creditWaitMs))
    }
  })
  return { idle, creditWaitMs }
}

/** What the sinks of a job have committed, per its status. */
const committedBy = async (nc: NatsConnection, job: string, sink: string) =>
  ((await status({ nc, job }))?.instances ?? [])
    .filter((i) => i.id.startsWith(`${sink}#`))
    .reduce((a, i) => a + i.recordsCommitted, 0)

for (const c of cases)
  t.test(
    c.assigner.kind === "sliding"
      ? "sliding windows over one out-of-order split, timestamps from assignTimestamps (its instance killed once): exactly the oracle's simulation"
      : `${c.assigner.kind} windows over one out-of-order split: exactly the oracle's simulation`,
    async (t) => {
      // sliding: the source has no watermarks; an assignTimestamps operator after a pace map gives
      // them per instance (one, so in the split's order), and its generator survives a kill
      const assigned = c.assigner.kind === "sliding"
      const { processes, verdict } = await windowJob(t, c, {
        perSplit: 3000,
        ...(assigned ? { extra: { EXACTOR_ASSIGN_TIMESTAMPS: "1", EXACTOR_PACE_MS: "1" } } : {})
      })
      const run = processes.run()
      if (assigned) await killAfterCheckpoint(t, processes, "assignTimestamps#0")
      const code = await exitWithin(run.exit, 180_000)
      t.equal(code, 0, "the job FINISHED")
      if (code !== 0) t.comment(run.output().slice(-4000))
      const v = await verdict()
      t.ok(v.ok, `exactly the simulation: ${v.results} results, ${v.lateRecords} late rows`)
      t.ok(v.lateRecords > 0, "some orders were too late for their windows")
    }
  )

t.test(
  "T8: a savepoint at window parallelism 2, restored at 3: still exactly the simulation (timers and watermarks follow the key groups)",
  async (t) => {
    // watermarks 5 s of event time apart (250 orders): the restored run reads orders too late for
    // windows already cleaned up before its first watermark, so a watermark restored at −∞ would
    // take them in and fire those windows a second time (FLINK-36663's shape, T4)
    const { job, nc, processes, verdict } = await windowJob(t, cases[0]!, {
      perSplit: 10_000,
      extra: { EXACTOR_PACE_MS: "1" },
      emitEvery: 5000
    })
    const first = processes.run()
    await processes.running("window#1")
    await until(
      "a completed checkpoint",
      async () => ((await status({ nc, job }))?.checkpoints.completed ?? 0) >= 1
    )
    const cancelled = await processes.cli(["cancel", job, "--savepoint", "wide"])
    t.equal(cancelled.code, 0, cancelled.output)
    t.equal(await exitWithin(first.exit), 4, "the first run ends CANCELLED after the savepoint")
    const committed = await committedBy(nc, job, "sink")
    t.ok(committed > 0, `the first run committed ${committed} window results before the savepoint`)
    const wider = processes.run(["--from-savepoint", "wide"], { EXACTOR_WINDOW_PARALLELISM: "3" })
    const code = await exitWithin(wider.exit, 240_000)
    t.equal(code, 0, "the run from the savepoint with 3 window instances FINISHED")
    if (code !== 0) t.comment(wider.output().slice(-3000))
    t.same(
      ((await status({ nc, job }))?.instances ?? [])
        .filter((i) => i.id.startsWith("window#"))
        .map((i) => i.id)
        .sort(),
      ["window#0", "window#1", "window#2"],
      "3 window instances"
    )
    const v = await verdict()
    t.ok(v.ok, `exactly the simulation across both runs: ${v.results} results, ${v.lateRecords} late rows`)
    t.ok(committed < v.results, "the restored run wrote the rest")
  }
)

t.test(
  "T6: backpressure is not idleness: sources blocked on credit far longer than idleTimeout never go idle, no on-time order is late",
  async (t) => {
    const idleTimeout = 100
    const { job, nc, processes, verdict } = await windowJob(t, cases[0]!, {
      perSplit: 1000,
      splits: 2,
      extra: {
        EXACTOR_IDLE_TIMEOUT: String(idleTimeout),
        EXACTOR_PACE_MS: "5",
        EXACTOR_BATCH_SIZE: "32",
        EXACTOR_CREDIT_WINDOW: "1"
      }
    })
    const { idle, creditWaitMs } = heartbeats(nc, job)
    const run = processes.run()
    const code = await exitWithin(run.exit, 180_000)
    t.equal(code, 0, "the job FINISHED")
    if (code !== 0) t.comment(run.output().slice(-4000))
    const waits = [...creditWaitMs.values()]
    t.ok(
      waits.length === 2 && waits.every((w) => w > 20 * idleTimeout),
      `both sources waited for credit: ${[...creditWaitMs].map(([i, w]) => `${i} ${w} ms`).join(", ")} (idleTimeout ${idleTimeout} ms)`
    )
    t.same([...idle], [], "no instance ever reported idle")
    const v = await verdict()
    t.ok(
      v.ok,
      `exactly once by the oracle (lateWrong ${v.lateWrong}): ${v.results} results, ${v.lateRecords} late rows`
    )
  }
)

t.test(
  "T3: a window instance killed in the middle of a firing burst: after recovery no window is lost or fired twice",
  async (t) => {
    const flag = join(tmpdir(), `${uniqueName("die")}.flag`)
    t.teardown(() => rmSync(flag, { force: true }))
    const { job, nc, processes, verdict } = await windowJob(t, cases[0]!, {
      perSplit: 3000,
      extra: { EXACTOR_DIE_AT_TIMER: "100", EXACTOR_DIE_FLAG: flag }
    })
    const run = processes.run()
    const code = await exitWithin(run.exit, 180_000)
    t.equal(code, 0, "the job FINISHED")
    if (code !== 0) t.comment(run.output().slice(-4000))
    t.ok(
      existsSync(flag),
      `a window instance killed itself at its 100th onTimer (pid ${existsSync(flag) ? readFileSync(flag, "utf8").trim() : "?"})`
    )
    const s = await status({ nc, job })
    t.ok((s?.recoveries ?? 0) >= 1, `${s?.recoveries} recoveries (last: ${s?.lastRecoveryReason})`)
    const v = await verdict()
    t.ok(v.ok, `exactly the simulation: ${v.results} results, ${v.lateRecords} late rows`)
  }
)

t.test(
  "T5: an idle partition: while source B waits for records, A's windows fire and commit (a window instance killed meanwhile); B resumes ahead; conservation at the end",
  async (t) => {
    const start = 1_700_000_000_000
    const gen = (seed: number, perSplit: number, from: number) =>
      generateOrders({
        seed,
        splits: 1,
        perSplit,
        customers: 20,
        step: 20,
        start: from,
        maxDelay,
        lateness,
        size: 10_000,
        emitEvery: defaultEmitEvery
      })[0]!
    const a = gen(21, 3000, start)
    // B: 300 orders, a pause, then 700 whose event times are ahead of all of A's
    const b = [...gen(22, 300, start), ...gen(23, 700, start + 3000 * 20 + 20_000)].map((r, i) => ({
      ...r,
      id: `1-${i}`,
      split: 1
    }))
    const { job, nc, processes, verdict, publishHeld } = await windowJob(t, cases[0]!, {
      perSplit: 0,
      inputs: [a, b],
      held: 700,
      extra: { EXACTOR_IDLE_TIMEOUT: "500", EXACTOR_PACE_MS: "3", EXACTOR_ORDERS_B_RECORDS: "1000" }
    })
    const { idle } = heartbeats(nc, job)
    const run = processes.run()
    await until("source B idle", () => idle.has("orders-b#0"), 60_000)
    await killAfterCheckpoint(t, processes, "window#0")
    // B's watermark can reach at most its highest timestamp so far − maxDelay − 1; a window
    // operator a whole window past that has left B out of its minimum, and fired what came due
    const bMark = Math.max(...b.slice(0, 300).map((r) => r.at)) - maxDelay - 1
    const windowMark = async () =>
      Math.min(
        ...((await status({ nc, job }))?.instances ?? [])
          .filter((i) => i.id.startsWith("window#"))
          .map((i) => i.watermark ?? Number.MIN_SAFE_INTEGER)
      )
    const passed = await until(
      "the windows' watermark a window past B's",
      async () => {
        const w = await windowMark()
        return w > bMark + 10_000 ? w : undefined
      },
      60_000
    )
    t.ok(
      passed > bMark + 10_000,
      `while B was idle the windows' watermark went ${passed - bMark} ms past B's highest possible one`
    )
    const before = await committedBy(nc, job, "sink")
    const done = (await status({ nc, job }))?.checkpoints.completed ?? 0
    await until(
      "a checkpoint in the pause",
      async () => ((await status({ nc, job }))?.checkpoints.completed ?? 0) > done
    )
    const during = await until("the pause's results committed", async () => {
      const n = await committedBy(nc, job, "sink")
      return n > before ? n : undefined
    })
    t.ok(during > before, `${during} window results committed before B resumed`)
    await publishHeld()
    const code = await exitWithin(run.exit, 180_000)
    t.equal(code, 0, "the job FINISHED after B's last 700 orders")
    if (code !== 0) t.comment(run.output().slice(-4000))
    const v = await verdict()
    t.ok(v.ok, `exactly once by the oracle: ${v.results} results, ${v.lateRecords} late rows`)
  }
)
