/**
 * The JetStream sink (actors/jetstreamSink.ts) against the real NATS server: a checkpoint's records
 * are published in windows awaiting their acks, so a commit is interruptible between windows, and a
 * recommit (restore) publishes each record at most once more, deduplicated by its msgID.
 */
import { jetstreamManager } from "@nats-io/jetstream"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import t from "tap"
import { Effect, Exit, Fiber, Scope } from "effect"
import { jetstreamSink } from "../../../actors/jetstreamSink.ts"
import type { OperatorContext, SinkWriter } from "../../../lib/api/Operator.ts"
import { natsUrl, uniqueName } from "../../harness/env.ts"

let nc: NatsConnection
const streams: Array<string> = []
const N = 20_000

t.before(async () => {
  nc = await connect({ servers: natsUrl })
})
t.teardown(async () => {
  const jsm = await jetstreamManager(nc)
  for (const s of streams) await jsm.streams.delete(s).catch(() => false)
  await nc.drain()
})

/** A fresh output stream and a sink writer publishing into it, open until `scope` closes. */
const openSink = async (publishWindow: number) => {
  const stream = uniqueName("sinkout")
  streams.push(stream)
  await (await jetstreamManager(nc)).streams.add({ name: stream, subjects: [`${stream}.>`] })
  const ctx: OperatorContext = {
    job: uniqueName("job"),
    operator: "sink",
    index: 0,
    parallelism: 1,
    natsUrl,
    amqpUrl: ""
  }
  const scope = await Effect.runPromise(Scope.make())
  const writer = (await Effect.runPromise(
    jetstreamSink<{ readonly i: number }>("sink", { subject: `${stream}.records`, publishWindow })
      .open(ctx)
      .pipe(Scope.provide(scope))
  )) as SinkWriter<unknown>
  const count = async () => (await (await jetstreamManager(nc)).streams.info(stream)).state.messages
  return { stream, writer, count, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

const records = Array.from({ length: N }, (_, i) => ({ i }))

t.test("a large checkpoint is committed window by window, and a recommit adds nothing", async (t) => {
  const { writer, count, close } = await openSink(500)
  t.teardown(close)
  await Effect.runPromise(writer.write(records))
  const snapshot = await Effect.runPromise(writer.snapshot(1))
  await Effect.runPromise(writer.commit(1))
  t.equal(await count(), N, `all ${N} records are in the stream`)
  await Effect.runPromise(writer.restore(snapshot as never))
  t.equal(await count(), N, "the restore's recommit was deduplicated: still every record once")
})

t.test(
  "an interrupted commit stops between windows; the restore commits the rest, each record once",
  async (t) => {
    const { stream, writer, count, close } = await openSink(100)
    t.teardown(close)
    await Effect.runPromise(writer.write(records))
    const snapshot = await Effect.runPromise(writer.snapshot(1))
    // interrupt the commit as soon as its first record is in the stream
    let first: () => void = () => {}
    const published = new Promise<void>((resolve) => {
      first = resolve
    })
    const sub = nc.subscribe(`${stream}.records`, { max: 1, callback: () => first() })
    await nc.flush()
    const fiber = Effect.runFork(writer.commit(1))
    await published
    sub.unsubscribe()
    await Effect.runPromise(Fiber.interrupt(fiber))
    const partial = await count()
    t.ok(partial < N, `the interrupted commit published ${partial} of ${N} records, not all of them`)
    await Effect.runPromise(writer.restore(snapshot as never))
    t.equal(await count(), N, "after the restore's recommit every record is in the stream exactly once")
  }
)
