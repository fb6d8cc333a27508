/**
 * The RabbitMQ stream sink against a private RabbitMQ node (started once for this file, killed with
 * SIGKILL and restarted by the tests): nothing is visible before `complete n`; a node crash in the
 * middle of a commit, with or without the sink process surviving it, leaves every record exactly once
 * and in order; a SIGSTOP'd zombie is fenced and neither loses nor swallows a record. Every check
 * drains the stream with plain AMQP 0-9-1, independent of the sink.
 */
import t, { type Test } from "tap"
import { spawn } from "node:child_process"
import { existsSync, readdirSync, statSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect, Exit, Fiber, Scope } from "effect"
import { type PrivateRabbitMqNode, startRabbitMqNode } from "../../../lib/brokers/RabbitMqNode.ts"
import { drainStream } from "../../../lib/chaos/StreamDrain.ts"
import {
  makeRabbitMqStreamSink,
  type RabbitMqStreamSinkWriter,
  type StreamPending
} from "../../../lib/connectors/rabbitmq-stream/RabbitMqStreamSink.ts"
import { olderThan311, streamClientCompatible } from "../../../lib/connectors/rabbitmq-stream/StreamClient.ts"
import {
  type RabbitMqStreamSinkOptions,
  resolveStreamSinkOptions
} from "../../../lib/connectors/rabbitmq-stream/StreamSinkOptions.ts"
import type { SinkSnapshot } from "../../../lib/runtime/TwoPhaseCommitSink.ts"
import { testJob, testQueue } from "../../harness/rabbitmq.ts"

const fixture = fileURLToPath(new URL("../../fixtures/stream-sink-child.ts", import.meta.url))

let node: PrivateRabbitMqNode
t.before(async () => {
  node = await startRabbitMqNode()
})
t.teardown(() => node?.stop())

const setup = (name: string, extra: Partial<RabbitMqStreamSinkOptions> = {}): RabbitMqStreamSinkOptions => ({
  streamUrl: `rabbitmq-stream://guest:guest@127.0.0.1:${node.streamPort}/`,
  amqpUrl: node.amqpUrl,
  job: testJob(name),
  sink: "out",
  instance: 0,
  stream: testQueue(name),
  ...extra
})
const records = (prefix: string, from: number, count: number) =>
  Array.from({ length: count }, (_, i) => `${prefix}${from + i}`)
/** Records of ~100 bytes, so that a commit of 100,000 takes long enough to be killed in its middle. */
const padded = (prefix: string, from: number, count: number) =>
  Array.from({ length: count }, (_, i) => `${prefix}${from + i}`.padEnd(100, "."))

/** An open sink in a scope the test closes itself (closing it = the sink process is gone). */
const openSink = async (options: RabbitMqStreamSinkOptions) => {
  const scope = Effect.runSync(Scope.make())
  const writer = await Effect.runPromise(
    Scope.provide(scope)(makeRabbitMqStreamSink<unknown>(options)) as Effect.Effect<
      RabbitMqStreamSinkWriter<unknown>,
      unknown
    >
  )
  const run = <A>(e: Effect.Effect<A, unknown>) => Effect.runPromise(e)
  return { writer, run, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

/** The stream's bodies, in stream order. */
const drained = async (stream: string, expected: number) =>
  (await Effect.runPromise(drainStream(node.amqpUrl, stream, expected, 1500))).map((m) => m.body)

/** Bytes in the segment files of `stream` on the private node (0 before it has any). */
const segmentBytes = (stream: string): number => {
  const root = join(node.dataDir, "stream")
  let total = 0
  for (const dir of existsSync(root) ? readdirSync(root) : []) {
    if (!dir.startsWith(`__${stream}_`)) continue
    for (const f of readdirSync(join(root, dir)))
      if (f.endsWith(".segment")) total += statSync(join(root, dir, f)).size
  }
  return total
}

/** Resolves once the node has written `bytes` of `stream` to its segment files (part of a commit, not all of it). */
const written = async (stream: string, bytes: number) => {
  while (segmentBytes(stream) < bytes) await new Promise((r) => setTimeout(r, 2))
}

t.test("the client's internals the compatibility step replaces are still there", async (t) => {
  t.ok(streamClientCompatible(), "Connection.prototype.exchangeCommandVersions reads peerProperties.version")
  t.ok(olderThan311("3.10.8"))
  t.notOk(olderThan311("3.11.0"))
  t.notOk(olderThan311("3.13.7"))
  t.notOk(olderThan311("4.0.1"))
})

t.test("options are validated eagerly, with an error naming the field", async (t) => {
  const o = setup("options")
  for (const [field, value] of [
    ["streamUrl", "amqp://x"],
    ["amqpUrl", "http://x"],
    ["job", "a/b"],
    ["instance", -1],
    ["stream", "amq.x"],
    ["maxTransactionRecords", 0],
    ["heartbeatSeconds", 0],
    ["commitTimeout", -1]
  ] as const) {
    const exit = await Effect.runPromiseExit(resolveStreamSinkOptions({ ...o, [field]: value }))
    t.ok(Exit.isFailure(exit) && String(exit.cause).includes(field), `${field} rejected`)
  }
})

t.test("records of checkpoint n appear only after commit n, exactly once and in order", async (t) => {
  const o = setup("basic")
  const s = await openSink(o)
  await s.run(s.writer.restore(undefined))
  await s.run(s.writer.write(records("a", 0, 500)))
  const snap1 = await s.run(s.writer.snapshot(1))
  t.equal(snap1.pending[0]?.firstId, 1, "publishing ids start at 1")
  await s.run(s.writer.write(records("a", 500, 500)))
  const snap2 = await s.run(s.writer.snapshot(2))
  t.equal(snap2.pending[1]?.firstId, 501, "and continue across checkpoints")
  t.same(await drained(o.stream, 0), [], "nothing visible before complete")
  await s.run(s.writer.commit(2))
  // restoring the same snapshot again republishes both: the broker drops the duplicates
  await s.run(s.writer.restore(snap2))
  await s.close()
  t.same(await drained(o.stream, 1000), records("a", 0, 1000), "1000 records once each, in order")
})

/**
 * Pre-commits `n` padded records as checkpoint 1 on a fresh stream and starts commit 1; once part of it
 * is on disk, SIGSTOPs the node (from then on no confirm can leave it) and SIGKILLs it. Up to 3 tries,
 * each on a new stream: a try whose commit had already finished at the SIGSTOP proves nothing.
 */
const commitKilledMidway = async (t: Test, name: string, prefix: string, n: number) => {
  for (let attempt = 1; ; attempt++) {
    const o = setup(`${name}-${attempt}`, { maxTransactionRecords: n })
    const s = await openSink(o)
    await s.run(s.writer.restore(undefined))
    await s.run(s.writer.write(padded(prefix, 0, n)))
    const snap = (await s.run(s.writer.snapshot(1))) as SinkSnapshot<StreamPending>
    const commit = Effect.runFork(s.writer.commit(1))
    await written(o.stream, 100_000)
    node.pause()
    const midway = commit.pollUnsafe() === undefined
    await node.kill()
    if (midway || attempt === 3) {
      t.ok(midway, `the commit was still running when the node died (try ${attempt})`)
      return { o, s, snap, commit }
    }
    t.comment(`try ${attempt}: the commit finished before the node was stopped; again on a new stream`)
    await Effect.runPromise(Fiber.interrupt(commit))
    await s.close()
    await node.restart()
  }
}

t.test(
  "kill -9 of the RabbitMQ node in the middle of a commit: the commit waits out the restart; exactly once",
  async (t) => {
    const n = 100_000
    const { o, s, commit } = await commitKilledMidway(t, "crash-commit", "c", n)
    await node.restart()
    const exit = await Effect.runPromise(Fiber.await(commit))
    t.ok(Exit.isSuccess(exit), "the commit completed after the restart")
    await s.run(s.writer.write(padded("c", n, 100)))
    await s.run(s.writer.snapshot(2))
    await s.run(s.writer.commit(2))
    await s.close()
    const out = await drained(o.stream, n + 100)
    t.equal(
      out.length,
      n + 100,
      `no record lost or duplicated (${out.length} of ${n + 100}, ${new Set(out).size} distinct)`
    )
    t.same(out, padded("c", 0, n + 100), "in order")
  }
)

t.test(
  "kill -9 of the node mid-commit and of the sink: a new instance restores the snapshot; exactly once",
  async (t) => {
    const n = 100_000
    const { o, s: a, snap, commit } = await commitKilledMidway(t, "crash-both", "d", n)
    await Effect.runPromise(Fiber.interrupt(commit))
    await a.close()
    await node.restart()
    const b = await openSink(o)
    await b.run(b.writer.restore(snap))
    await b.run(b.writer.write(padded("d", n, 100)))
    const snap2 = await b.run(b.writer.snapshot(2))
    t.equal(snap2.pending.at(-1)?.firstId, n + 1, "ids continue after the restored checkpoint")
    await b.run(b.writer.commit(2))
    await b.close()
    const out = await drained(o.stream, n + 100)
    t.equal(
      out.length,
      n + 100,
      `no record lost or duplicated (${out.length} of ${n + 100}, ${new Set(out).size} distinct)`
    )
    t.same(out, padded("d", 0, n + 100), "in order")
  }
)

t.test("a node crash after a completed commit: the next commit reconnects; exactly once", async (t) => {
  const o = setup("crash-after")
  const s = await openSink(o)
  await s.run(s.writer.restore(undefined))
  await s.run(s.writer.write(records("e", 0, 500)))
  await s.run(s.writer.snapshot(1))
  await s.run(s.writer.commit(1))
  await node.kill()
  await node.restart()
  await s.run(s.writer.write(records("e", 500, 500)))
  await s.run(s.writer.snapshot(2))
  await s.run(s.writer.commit(2))
  await s.close()
  t.same(await drained(o.stream, 1000), records("e", 0, 1000), "1000 records once each, in order")
})

interface Child {
  readonly next: (event: string) => Promise<Record<string, unknown>>
  readonly send: (line: string) => void
  readonly signal: (s: NodeJS.Signals) => void
  readonly exited: Promise<void>
}
const child = (options: RabbitMqStreamSinkOptions, recs: ReadonlyArray<unknown>): Child => {
  const p = spawn(process.execPath, [fixture], {
    env: { ...process.env, EXACTOR_STREAM_SINK_CHILD: JSON.stringify({ options, records: recs }) },
    stdio: ["pipe", "pipe", "inherit"]
  })
  const events: Array<Record<string, unknown>> = []
  const waiting: Array<() => void> = []
  let buffer = ""
  p.stdout.setEncoding("utf8")
  p.stdout.on("data", (chunk: string) => {
    buffer += chunk
    for (let i = buffer.indexOf("\n"); i >= 0; i = buffer.indexOf("\n")) {
      const line = buffer.slice(0, i)
      buffer = buffer.slice(i + 1)
      if (line.startsWith("@@")) events.push(JSON.parse(line.slice(2)) as Record<string, unknown>)
      for (const w of waiting.splice(0)) w()
    }
  })
  const exited = new Promise<void>((resolve) => p.once("exit", () => resolve()))
  const next = async (event: string): Promise<Record<string, unknown>> => {
    for (;;) {
      const i = events.findIndex((e) => e.event === event || e.event === "error")
      if (i >= 0) return events.splice(i, 1)[0] as Record<string, unknown>
      await new Promise<void>((resolve) => waiting.push(resolve))
    }
  }
  return { next, send: (line) => p.stdin.write(`${line}\n`), signal: (s) => p.kill(s), exited }
}

t.test("a SIGSTOP'd zombie is fenced after SIGCONT: no record lost, none swallowed", async (t) => {
  const o = setup("zombie", {
    heartbeatSeconds: 2,
    lockTimeout: "3 seconds",
    commitRetryTimeout: "2 seconds"
  })
  // the zombie pre-commits ids 1..1000 with its own records, then stops before its commit
  const zombie = child(o, records("z", 0, 1000))
  const ready = await zombie.next("ready")
  t.equal(ready.event, "ready", "the zombie pre-committed checkpoint 1")
  zombie.signal("SIGSTOP")
  // the new instance: waits for the broker to free the lock (missed heartbeats), starts fresh
  const b = await openSink({ ...o, lockTimeout: "60 seconds" })
  await b.run(b.writer.restore(undefined))
  await b.run(b.writer.write(records("b", 0, 100)))
  await b.run(b.writer.snapshot(1))
  await b.run(b.writer.commit(1))
  // the zombie wakes up and tries to commit its ids 1..1000, which would swallow b's next 900
  zombie.signal("SIGCONT")
  zombie.send("commit")
  const outcome = await zombie.next("committed")
  t.equal(outcome.event, "error", "the zombie's commit failed")
  t.match(String(outcome.message), /lock|held by another/, `fenced: ${String(outcome.message)}`)
  await zombie.exited
  await b.run(b.writer.write(records("b", 100, 1000)))
  await b.run(b.writer.snapshot(2))
  await b.run(b.writer.commit(2))
  await b.close()
  const out = await drained(o.stream, 1100)
  t.same(
    out,
    records("b", 0, 1100),
    "the live instance's 1100 records, once each, in order; none of the zombie's"
  )
})
