/**
 * AmqpTx against the real RabbitMQ: tx.commit makes the publishes visible, tx.rollback and a
 * closed channel discard them, errors are typed. These fail if an amqplib upgrade breaks the
 * wrapping of its internal `rpc` (renamed, other method ids, other reply shape).
 */
import t from "tap"
import amqp from "amqplib"
import { Effect } from "effect"
import { batchSocketWrites } from "../../../lib/connectors/rabbitmq/AmqpSocket.ts"
import {
  AmqpTxError,
  TxMethod,
  txCommit,
  txRollback,
  txSelect
} from "../../../lib/connectors/rabbitmq/AmqpTx.ts"
import { amqpUrl, deleteQueues, drainQueue, queueDepth, testQueue } from "../../harness/rabbitmq.ts"

const queues: Array<string> = []
t.teardown(() => deleteQueues(queues))

const withChannel = async <A>(f: (ch: amqp.Channel, queue: string) => Promise<A>): Promise<A> => {
  const queue = testQueue("tx")
  queues.push(queue)
  const conn = await amqp.connect(amqpUrl)
  conn.on("error", () => {})
  try {
    const ch = await conn.createChannel()
    ch.on("error", () => {})
    await ch.assertQueue(queue, { durable: true })
    return await f(ch, queue)
  } finally {
    await conn.close().catch(() => {})
  }
}
const publish = (ch: amqp.Channel, queue: string, ids: ReadonlyArray<string>) => {
  for (const id of ids)
    ch.sendToQueue(queue, Buffer.from(JSON.stringify(id)), { messageId: id, persistent: true })
}

t.test("the method ids are AMQP 0-9-1's tx class (90) methods", async (t) => {
  t.equal(TxMethod.Select, (90 << 16) | 10)
  t.equal(TxMethod.Commit, (90 << 16) | 20)
  t.equal(TxMethod.Rollback, (90 << 16) | 30)
  t.equal(TxMethod.CommitOk, TxMethod.Commit + 1)
})

t.test(
  "commit makes the messages visible; rollback does not (amqplib rpc wrapping still works)",
  async (t) => {
    await withChannel(async (ch, queue) => {
      await Effect.runPromise(txSelect(ch))
      publish(ch, queue, ["a", "b"])
      await Effect.runPromise(txRollback(ch))
      t.equal(await queueDepth(queue), 0, "rolled-back publishes are not in the queue")
      publish(ch, queue, ["c", "d", "e"])
      t.equal(await queueDepth(queue), 0, "uncommitted publishes are not visible")
      await Effect.runPromise(txCommit(ch))
      const out = await drainQueue(queue, 100)
      t.same([...out.counts.keys()].sort(), ["c", "d", "e"], "exactly the committed publishes")
      t.equal(out.total, 3)
    })
  }
)

t.test("publishes left uncommitted when the channel closes are discarded", async (t) => {
  await withChannel(async (ch, queue) => {
    await Effect.runPromise(txSelect(ch))
    publish(ch, queue, ["x"])
    await ch.close()
    t.equal(await queueDepth(queue), 0)
  })
})

t.test("tx.commit without tx.select is a typed AmqpTxError with the server's reply code", async (t) => {
  await withChannel(async (ch) => {
    const err = await Effect.runPromise(Effect.flip(txCommit(ch)))
    t.ok(err instanceof AmqpTxError)
    t.equal(err.operation, "commit")
    t.equal(err.replyCode, 406, "PRECONDITION_FAILED: the channel is not transactional")
  })
})

t.test("on a closed channel it fails typed, without a reply code", async (t) => {
  await withChannel(async (ch) => {
    await ch.close()
    const err = await Effect.runPromise(Effect.flip(txSelect(ch)))
    t.equal(err._tag, "AmqpTxError")
    t.equal(err.operation, "select")
    t.equal(err.replyCode, undefined)
  })
})

t.test(
  "batched socket writes: a muxer pass goes out in few writes, every message arrives in order",
  async (t) => {
    const queue = testQueue("batched")
    queues.push(queue)
    const conn = await amqp.connect(amqpUrl)
    conn.on("error", () => {})
    try {
      t.ok(batchSocketWrites(conn), "amqplib still has the muxer and socket this relies on")
      t.ok(batchSocketWrites(conn), "idempotent")
      // count the socket's writes (one per syscall: _write for one chunk, _writev for a corked batch)
      const socket = (
        conn.connection as unknown as { stream: Record<string, (...a: Array<unknown>) => void> }
      ).stream
      let writes = 0
      for (const name of ["_write", "_writev"]) {
        const original = socket[name]!.bind(socket)
        socket[name] = (...a) => {
          writes++
          original(...a)
        }
      }
      const ch = await conn.createChannel()
      await ch.assertQueue(queue, { durable: false })
      const ids = Array.from({ length: 2000 }, (_, i) => `m${i}`)
      writes = 0
      publish(ch, queue, ids)
      await ch.checkQueue(queue) // a round trip after the publishes
      t.ok(writes < 100, `2000 publishes went out in ${writes} socket writes (< 100)`)
      const drained = await drainQueue(queue)
      t.same(drained.bodies, ids, "all 2000 arrived, in order")
    } finally {
      await conn.close().catch(() => {})
    }
  }
)
