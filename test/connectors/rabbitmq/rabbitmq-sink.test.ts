/**
 * The RabbitMQ two-phase-commit sink against the real broker, modelled on Flink's
 * TwoPhaseCommitSinkFunctionTest: nothing is visible before `complete n`, pending checkpoints commit
 * in order, and after kill -9, replays, channel errors and double restores every record is in the
 * output exactly once — checked by an independent consumer counting message ids.
 */
import t from "tap"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import amqp from "amqplib"
import { Data, Effect, Fiber, Schedule } from "effect"
import { makeRabbitMqSink, type RabbitMqSinkWriter } from "../../../lib/connectors/rabbitmq/RabbitMqSink.ts"
import type { RabbitMqSinkOptions } from "../../../lib/connectors/rabbitmq/RabbitMqSinkOptions.ts"
import { markerQueueName, recordMessageId } from "../../../lib/connectors/rabbitmq/RabbitMqSinkWire.ts"
import {
  checkPendingRecords,
  makeTwoPhaseCommitSink,
  type SinkSnapshot,
  type TransactionalResource,
  TransactionInDoubt
} from "../../../lib/runtime/TwoPhaseCommitSink.ts"
import {
  amqpUrl,
  deleteQueues,
  drainQueue,
  queueDepth,
  testJob,
  testQueue,
  verdict
} from "../../harness/rabbitmq.ts"

const fixture = fileURLToPath(new URL("../../fixtures/rabbitmq-sink-child.ts", import.meta.url))
const SINK = "out"
const queues: Array<string> = []
const exchanges: Array<string> = []
t.teardown(() => deleteQueues(queues, exchanges))

/** A fresh job + output queue; both queues are deleted at the end. */
const setup = (name: string, extra: Partial<RabbitMqSinkOptions> = {}) => {
  const job = testJob(name)
  const queue = testQueue(name)
  queues.push(queue, markerQueueName(job, SINK, 0))
  const options: RabbitMqSinkOptions = { url: amqpUrl, job, sink: SINK, instance: 0, queue, ...extra }
  const ids = (n: number, count: number, from = 0) =>
    Array.from({ length: count }, (_, i) => recordMessageId(job, SINK, 0, n, from + i))
  return { job, queue, options, ids }
}
const records = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix}${i}`)

/** Runs `f` with a sink instance opened (and closed afterwards) in this process. */
const withSink = <A>(
  options: RabbitMqSinkOptions,
  f: (w: RabbitMqSinkWriter<unknown>) => Effect.Effect<A, unknown>
): Promise<A> =>
  Effect.runPromise(
    Effect.scoped(Effect.flatMap(makeRabbitMqSink<unknown>(options), f)) as Effect.Effect<A, unknown>
  )

interface Child {
  readonly next: (event: string) => Promise<Record<string, unknown>>
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  readonly kill: () => void
  readonly stop: () => void
  readonly cont: () => void
}
const child = (mode: string, options: RabbitMqSinkOptions, recs: ReadonlyArray<unknown> = []): Child => {
  const config = {
    mode,
    url: options.url,
    job: options.job,
    sink: options.sink,
    queue: options.queue,
    records: recs
  }
  const p = spawn(process.execPath, [fixture], {
    env: { ...process.env, EXACTOR_SINK_CHILD: JSON.stringify(config) },
    stdio: ["ignore", "pipe", "inherit"]
  })
  const events: Array<Record<string, unknown>> = []
  const waiting: Array<() => void> = []
  let buffer = ""
  p.stdout.on("data", (chunk: Buffer) => {
    buffer += chunk.toString("utf8")
    let nl = buffer.indexOf("\n")
    while (nl >= 0) {
      const line = buffer.slice(0, nl)
      buffer = buffer.slice(nl + 1)
      if (line.startsWith("@@")) events.push(JSON.parse(line.slice(2)) as Record<string, unknown>)
      nl = buffer.indexOf("\n")
    }
    for (const w of waiting.splice(0)) w()
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    p.on("exit", (code, signal) => resolve({ code, signal }))
  )
  const next = async (event: string): Promise<Record<string, unknown>> => {
    for (;;) {
      const i = events.findIndex((e) => e.event === event || e.event === "error")
      if (i >= 0) {
        const [e] = events.splice(i, 1)
        if (e?.event === "error") throw new Error(`child failed: ${String(e.message)}`)
        return e ?? {}
      }
      const gone = await Promise.race([
        exited.then(() => true),
        new Promise<false>((r) => waiting.push(() => r(false)))
      ])
      if (gone && !events.some((e) => e.event === event || e.event === "error"))
        throw new Error(`child exited before reporting ${event}`)
    }
  }
  t.teardown(() => void p.kill("SIGKILL"))
  return {
    next,
    exited,
    kill: () => void p.kill("SIGKILL"),
    stop: () => void p.kill("SIGSTOP"),
    cont: () => void p.kill("SIGCONT")
  }
}

t.test(
  "nothing is visible before complete n; commit(n) publishes the transaction once (idempotent)",
  async (t) => {
    const { queue, options, ids, job } = setup("commit")
    await withSink(options, (w) =>
      Effect.gen(function* () {
        yield* w.restore(undefined)
        yield* w.write(records("a", 10))
        const snap = yield* w.snapshot(1)
        t.equal(snap.pending.length, 1)
        t.equal(snap.pending[0]?.records.length, 10, "the snapshot holds the pending transaction's records")
        t.equal(yield* Effect.promise(() => queueDepth(queue)), 0, "pre-committed is not visible")
        yield* w.commit(1)
        yield* w.commit(1)
      })
    )
    const out = await drainQueue(queue)
    t.same(verdict(ids(1, 10), out.counts), { attempted: 10, ok: 10, lost: 0, duplicated: 0, unexpected: 0 })
    t.same(out.bodies, records("a", 10), "bodies are the records' JSON, in order")
    t.ok(
      out.checkpoints.every((c) => c === 1),
      "the message id names the checkpoint"
    )
    const marker = await drainQueue(markerQueueName(job, SINK, 0), 50)
    t.same(marker.bodies, [{ job, sink: SINK, instance: 0, n: 1 }], "the marker queue holds the last commit")
  }
)

t.test(
  "record properties: persistent and the message id by default (under RabbitMQ's 64 bytes), content type and checkpoint header on request",
  async (t) => {
    const propertiesOf = async (extra: Partial<RabbitMqSinkOptions>) => {
      const { queue, options } = setup("props", extra)
      await withSink(options, (w) =>
        Effect.gen(function* () {
          yield* w.restore(undefined)
          yield* w.write([{ a: 1 }])
          yield* w.snapshot(7)
          yield* w.commit(7)
        })
      )
      const conn = await amqp.connect(amqpUrl)
      try {
        const msg = await (await conn.createChannel()).get(queue, { noAck: true })
        if (msg === false) throw new Error(`nothing in ${queue}`)
        return { ...msg.properties, job: options.job }
      } finally {
        await conn.close()
      }
    }
    const lean = await propertiesOf({})
    t.equal(lean.deliveryMode, 2, "persistent")
    t.equal(lean.messageId, recordMessageId(lean.job, SINK, 0, 1, 0))
    t.equal(lean.contentType, undefined, "no content type unless asked")
    t.notOk(lean.headers?.["x-exactor-checkpoint"], "no checkpoint header unless asked")
    const full = await propertiesOf({ contentType: "application/json", checkpointHeader: true })
    t.equal(full.contentType, "application/json")
    t.equal(full.headers?.["x-exactor-checkpoint"], 1, "the transaction's checkpoint id")
  }
)

t.test("several pending checkpoints are committed by one notification, in order", async (t) => {
  const { queue, options, ids } = setup("pending")
  const out1 = await withSink(options, (w) =>
    Effect.gen(function* () {
      yield* w.restore(undefined)
      yield* w.write(records("a", 3))
      yield* w.snapshot(1)
      yield* w.write(records("b", 3))
      yield* w.snapshot(2)
      yield* w.write(records("c", 3))
      const snap = yield* w.snapshot(3)
      t.same(
        snap.pending.map((p) => p.checkpoint),
        [1, 2, 3]
      )
      t.equal(yield* Effect.promise(() => queueDepth(queue)), 0)
      yield* w.commit(2)
      const first = yield* Effect.promise(() => drainQueue(queue))
      yield* w.commit(3)
      return first
    })
  )
  t.same(out1.bodies, [...records("a", 3), ...records("b", 3)], "checkpoints 1 and 2, in order; not 3")
  const out2 = await drainQueue(queue)
  t.same(out2.bodies, records("c", 3))
  const all = new Map([...out1.counts, ...out2.counts])
  t.same(verdict([...ids(1, 3), ...ids(2, 3), ...ids(3, 3)], all).ok, 9)
})

t.test(
  "kill -9 after preCommit, before commit: recoverAndCommit in a new process commits once",
  async (t) => {
    const { queue, options, ids } = setup("kill-precommit")
    const c = child("precommit", options, records("k", 25))
    const { snapshot } = await c.next("snapshot")
    await c.next("ready")
    c.kill()
    t.equal((await c.exited).signal, "SIGKILL")
    t.equal(await queueDepth(queue), 0, "the killed process's transaction is discarded")
    await withSink(options, (w) => w.restore(snapshot as SinkSnapshot))
    const out = await drainQueue(queue)
    t.same(verdict(ids(1, 25), out.counts), { attempted: 25, ok: 25, lost: 0, duplicated: 0, unexpected: 0 })
  }
)

t.test("kill -9 right after tx.commit-ok: recoverAndCommit skips, no duplicate", async (t) => {
  const { queue, options, ids } = setup("kill-committed")
  const c = child("committed", options, records("c", 25))
  const { snapshot } = await c.next("snapshot")
  const exit = await c.exited
  t.equal(exit.signal, "SIGKILL", "the child died by SIGKILL before reporting the commit")
  t.equal(await queueDepth(queue), 25, "its commit did happen")
  await withSink(options, (w) => w.restore(snapshot as SinkSnapshot))
  const out = await drainQueue(queue)
  t.same(verdict(ids(1, 25), out.counts), { attempted: 25, ok: 25, lost: 0, duplicated: 0, unexpected: 0 })
})

t.test("restoring the same snapshot twice (same and new connection) gives no duplicate", async (t) => {
  const { queue, options, ids } = setup("restore-twice")
  const snap = await withSink(options, (w) =>
    Effect.gen(function* () {
      yield* w.restore(undefined)
      yield* w.write(records("r", 7))
      const s = yield* w.snapshot(1)
      yield* w.restore(s)
      yield* w.restore(s)
      return s
    })
  )
  await withSink(options, (w) => w.restore(snap))
  const out = await drainQueue(queue)
  t.same(verdict(ids(1, 7), out.counts), { attempted: 7, ok: 7, lost: 0, duplicated: 0, unexpected: 0 })
})

t.test("a second process cannot take the instance lock while the first holds it (SinkFenced)", async (t) => {
  const { options } = setup("fenced")
  const c = child("hold", options)
  await c.next("locked")
  const err = await withSink({ ...options, lockTimeout: "1 second" }, () => Effect.void).then(
    () => undefined,
    (e: unknown) => e
  )
  t.match(err, { _tag: "SinkFenced", sink: `${options.job}/${SINK}/0` })
  c.kill()
  await c.exited
  await withSink(options, (w) => w.restore(undefined))
  t.pass("after kill -9 of the holder, the lock is taken")
})

t.test("after SIGSTOP of the holder, the broker frees the lock after missed heartbeats (5 s)", async (t) => {
  const { queue, options, ids } = setup("sigstop")
  const c = child("precommit", options, records("s", 5))
  const { snapshot } = await c.next("snapshot")
  await c.next("ready")
  c.stop()
  await withSink(options, (w) => w.restore(snapshot as SinkSnapshot))
  c.cont()
  c.kill()
  const out = await drainQueue(queue)
  t.same(verdict(ids(1, 5), out.counts), { attempted: 5, ok: 5, lost: 0, duplicated: 0, unexpected: 0 })
})

t.test(
  "a channel error mid-transaction: nothing of it visible, then exactly once after recovery",
  async (t) => {
    const exchange = testQueue("x")
    exchanges.push(exchange)
    const { queue, options, ids } = setup("channel-error", { exchange })
    const admin = await amqp.connect(amqpUrl)
    t.teardown(() => admin.close())
    const ach = await admin.createChannel()
    await ach.assertExchange(exchange, "direct", { durable: false })
    await withSink(options, (w) =>
      Effect.gen(function* () {
        yield* w.restore(undefined)
        yield* w.write(records("a", 3))
        const snap1 = yield* w.snapshot(1)
        yield* w.write(records("b", 3))
        yield* Effect.promise(() => ach.deleteExchange(exchange))
        yield* w.write(records("c", 3)).pipe(Effect.ignore)
        const err = yield* Effect.flip(w.snapshot(2))
        t.match(err, { _tag: "SinkChannelError", replyCode: 404 }, "the broker closed the channel (404)")
        t.equal(yield* Effect.promise(() => queueDepth(queue)), 0, "nothing visible")
        yield* Effect.promise(async () => {
          await ach.assertExchange(exchange, "direct", { durable: false })
          await ach.bindQueue(queue, exchange, queue)
        })
        yield* w.restore(snap1)
        yield* w.write([...records("b", 3), ...records("c", 3)])
        yield* w.snapshot(2)
        yield* w.commit(2)
      })
    )
    const out = await drainQueue(queue)
    t.same(verdict([...ids(1, 3), ...ids(2, 6)], out.counts), {
      attempted: 9,
      ok: 9,
      lost: 0,
      duplicated: 0,
      unexpected: 0
    })
    t.same(out.bodies, [...records("a", 3), ...records("b", 3), ...records("c", 3)])
  }
)

t.test(
  "more records than maxTransactionMessages: full() turns true, no transaction over the limit",
  async (t) => {
    const { queue, options } = setup("full", { maxTransactionMessages: 5 })
    await withSink(options, (w) =>
      Effect.gen(function* () {
        yield* w.restore(undefined)
        yield* w.write(records("f", 3))
        t.equal(w.full(), false)
        yield* w.write(records("g", 7))
        t.equal(w.full(), true, "4 records + the marker fill a transaction of 5 messages")
        const s1 = yield* w.snapshot(1)
        t.equal(s1.pending[0]?.records.length, 4)
        t.equal(s1.carry.length, 6, "what did not fit waits in the snapshot's carry")
        t.equal(w.full(), true)
        yield* w.snapshot(2)
        t.equal(w.full(), false)
        const s3 = yield* w.snapshot(3)
        t.same(
          s3.pending.map((p) => p.records.length),
          [4, 4, 2]
        )
        yield* w.commit(3)
      })
    )
    const out = await drainQueue(queue)
    t.same(out.bodies, [...records("f", 3), ...records("g", 7)], "every record once, in order")
    const perTxn = new Map<string, number>()
    for (const id of out.counts.keys()) {
      const n = id.split("/")[3] ?? "?"
      perTxn.set(n, (perTxn.get(n) ?? 0) + 1)
    }
    t.ok(
      [...perTxn.values()].every((c) => c <= 4),
      `no transaction holds more than 4 records: ${JSON.stringify([...perTxn])}`
    )
  }
)

t.test("options are validated eagerly, with an error naming the field", async (t) => {
  const { options } = setup("options")
  const bad = (extra: Partial<RabbitMqSinkOptions>) =>
    withSink({ ...options, ...extra }, () => Effect.void).then(
      () => undefined,
      (e: unknown) => e
    )
  t.match(await bad({ maxTransactionMessages: 1 }), {
    _tag: "SinkOptionsInvalid",
    field: "maxTransactionMessages"
  })
  t.match(await bad({ heartbeatSeconds: 0 }), { _tag: "SinkOptionsInvalid", field: "heartbeatSeconds" })
  t.match(await bad({ url: "http://x" }), { _tag: "SinkOptionsInvalid", field: "url" })
  t.match(await bad({ checkpointHeader: "yes" as never }), {
    _tag: "SinkOptionsInvalid",
    field: "checkpointHeader"
  })
  t.match(await bad({ contentType: 7 as never }), { _tag: "SinkOptionsInvalid", field: "contentType" })
  t.match(await bad({ maxPendingTransactions: 0 }), {
    _tag: "SinkOptionsInvalid",
    field: "maxPendingTransactions"
  })
  t.match(await bad({ job: "a/b" }), { _tag: "SinkOptionsInvalid", field: "job" })
  t.match(await bad({ commitTimeout: -1 }), { _tag: "SinkOptionsInvalid", field: "commitTimeout" })
})

t.test(
  "a commit that times out is in doubt: the connection is dropped, recoverAndCommit resolves it",
  async (t) => {
    // 1 ms is shorter than any persistent tx.commit here, so commits time out after the broker got them
    const { queue, options, ids } = setup("in-doubt", { commitTimeout: "1 millis" })
    await withSink(options, (w) =>
      Effect.gen(function* () {
        yield* w.restore(undefined)
        yield* w.write(records("a", 5))
        yield* w.snapshot(1)
        yield* w.write(records("b", 5))
        yield* w.commit(1)
        yield* w.write(records("c", 5))
        yield* w.snapshot(2)
        yield* w.commit(2)
      })
    )
    const out = await drainQueue(queue)
    t.same(verdict([...ids(1, 5), ...ids(2, 10)], out.counts), {
      attempted: 15,
      ok: 15,
      lost: 0,
      duplicated: 0,
      unexpected: 0
    })
    t.same(out.bodies, [...records("a", 5), ...records("b", 5), ...records("c", 5)])
  }
)

t.test(
  "commits in flight while records go into the next transactions: every record once, also when those commits are in doubt",
  async (t) => {
    const cases: ReadonlyArray<readonly [string, Partial<RabbitMqSinkOptions>]> = [
      ["overlap", {}],
      // 1 ms: every commit on a live transaction times out after the broker got it
      ["overlap-doubt", { commitTimeout: "1 millis" }]
    ]
    for (const [name, extra] of cases) {
      const { queue, options, ids } = setup(name, extra)
      await withSink(options, (w) =>
        Effect.gen(function* () {
          yield* w.restore(undefined)
          const commits: Array<Fiber.Fiber<void, unknown>> = []
          for (let n = 1; n <= 4; n++) {
            yield* w.write(records(`${n}-`, 200))
            yield* w.snapshot(n)
            commits.push(yield* Effect.forkChild(w.commit(n)))
          }
          yield* w.write(records("5-", 200))
          yield* w.snapshot(5)
          yield* w.commit(5)
          for (const c of commits) yield* Fiber.join(c)
        })
      )
      const out = await drainQueue(queue)
      const expected = [1, 2, 3, 4, 5].flatMap((n) => ids(n, 200))
      t.same(
        verdict(expected, out.counts),
        { attempted: 1000, ok: 1000, lost: 0, duplicated: 0, unexpected: 0 },
        `${name}: exactly once`
      )
      t.same(
        out.bodies,
        [1, 2, 3, 4, 5].flatMap((n) => records(`${n}-`, 200)),
        `${name}: in checkpoint order`
      )
    }
  }
)

// ---------------------------------------------------------------------------------------------
// The generic two-phase-commit logic with an in-memory resource (no broker)

class FakeDown extends Data.TaggedError("FakeDown")<{ readonly checkpoint: number }> {}
interface FakeTxn {
  readonly n: number
  readonly records: Array<string>
  checkpoint: number
}
const isRecord = (u: unknown): u is string => typeof u === "string"

/** Commits on live handles are always in doubt (and did not happen); the first `failures` recoveries fail. */
const fakeResource = (failures: number) => {
  const state = { failures, committed: [] as Array<number>, visible: [] as Array<string> }
  const resource: TransactionalResource<FakeTxn, string, FakeDown> = {
    beginTransaction: (n) => Effect.sync(() => ({ n, records: [], checkpoint: -1 })),
    write: (txn, rs) => Effect.sync(() => void txn.records.push(...rs)),
    preCommit: (txn, n, records) =>
      Effect.sync(() => {
        txn.checkpoint = n
        return { records }
      }),
    commit: (txn) =>
      Effect.fail(new TransactionInDoubt({ sink: "fake", checkpoint: txn.checkpoint, cause: "test" })),
    recoverAndCommit: (p) =>
      Effect.suspend(() => {
        if (state.committed.some((c) => c >= p.checkpoint)) return Effect.void
        if (state.failures > 0) {
          state.failures -= 1
          return Effect.fail(new FakeDown({ checkpoint: p.checkpoint }))
        }
        state.committed.push(p.checkpoint)
        state.visible.push(...p.records)
        return Effect.void
      }),
    abort: () => Effect.void,
    isRecord,
    checkPending: checkPendingRecords(isRecord)
  }
  return { resource, state }
}

t.test(
  "generic: a commit that keeps failing fails typed and stays pending; a later commit(n) commits it once",
  async (t) => {
    const { resource, state } = fakeResource(1_000)
    const w = await Effect.runPromise(
      makeTwoPhaseCommitSink(resource, {
        sink: "fake",
        maxTransactionRecords: 10,
        commitRetry: Schedule.recurs(2)
      })
    )
    await Effect.runPromise(w.restore(undefined))
    await Effect.runPromise(w.write(["a", "b"]))
    await Effect.runPromise(w.snapshot(1))
    const err = await Effect.runPromise(Effect.flip(w.commit(1)))
    t.match(err, { _tag: "SinkCommitFailed", checkpoint: 1, cause: { _tag: "FakeDown" } })
    t.equal(state.failures, 1_000 - 3, "the first attempt plus two retries")
    t.same(state.visible, [], "nothing half-committed")
    state.failures = 0
    await Effect.runPromise(w.write(["c"]))
    await Effect.runPromise(w.commit(1))
    await Effect.runPromise(w.commit(1))
    t.same(state.visible, ["a", "b"], "committed once, when the broker came back")
    await Effect.runPromise(w.snapshot(2))
    await Effect.runPromise(w.commit(2))
    t.same(state.visible, ["a", "b", "c"], "the open transaction survived the recovery")
  }
)

t.test(
  "generic: pending transactions recover in creation order; out-of-order snapshots and bad snapshots are typed errors",
  async (t) => {
    const { resource, state } = fakeResource(1)
    const w = await Effect.runPromise(
      makeTwoPhaseCommitSink(resource, { sink: "fake", maxTransactionRecords: 10 })
    )
    await Effect.runPromise(w.restore(undefined))
    for (const [n, r] of [
      [1, "x"],
      [2, "y"],
      [4, "z"]
    ] as const) {
      await Effect.runPromise(w.write([r]))
      await Effect.runPromise(w.snapshot(n))
    }
    t.match(await Effect.runPromise(Effect.flip(w.snapshot(3))), {
      _tag: "SinkCheckpointOutOfOrder",
      last: 4
    })
    await Effect.runPromise(w.commit(4))
    t.same(state.committed, [1, 2, 4])
    t.same(state.visible, ["x", "y", "z"])
    const bad = { checkpoint: 3, pending: [{ checkpoint: 5, txn: 1, records: [] }], carry: [] }
    t.match(await Effect.runPromise(Effect.flip(w.restore(bad))), { _tag: "SinkSnapshotInvalid" })
  }
)

t.test("an unroutable record (basic.return) fails the commit with a typed error", async (t) => {
  const exchange = testQueue("x-unroutable")
  exchanges.push(exchange)
  const { queue, options } = setup("unroutable", { exchange })
  const admin = await amqp.connect(amqpUrl)
  t.teardown(() => admin.close())
  const ach = await admin.createChannel()
  await ach.assertExchange(exchange, "direct", { durable: false })
  await withSink(options, (w) =>
    Effect.gen(function* () {
      yield* w.restore(undefined)
      yield* Effect.promise(() => ach.unbindQueue(queue, exchange, queue))
      yield* w.write(records("u", 3))
      yield* w.snapshot(1)
      const err = yield* Effect.flip(w.commit(1))
      t.match(err, { _tag: "SinkRecordUnroutable", checkpoint: 1, count: 3 })
    })
  )
  t.equal(await queueDepth(queue), 0)
})

t.test("a quorum output queue gets the same exactly-once output", async (t) => {
  const { queue, options, ids } = setup("quorum", { quorum: true })
  await withSink(options, (w) =>
    Effect.gen(function* () {
      yield* w.restore(undefined)
      yield* w.write(records("q", 20))
      yield* w.snapshot(1)
      yield* w.commit(1)
    })
  )
  const out = await drainQueue(queue)
  t.same(verdict(ids(1, 20), out.counts), { attempted: 20, ok: 20, lost: 0, duplicated: 0, unexpected: 0 })
})
