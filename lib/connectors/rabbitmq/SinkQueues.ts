/**
 * The RabbitMQ queues a sink instance keeps for itself (its lock and its commit marker, named in
 * RabbitMqSinkWire.ts), and their removal when a finished job is deleted (`exactor delete`).
 * Invariant: a lock queue that another connection holds (a live sink) is never deleted: the removal
 * fails with `SinkQueuesInUse` before deleting anything of that instance. The output queue is the
 * user's data and is left alone.
 */
import type { ChannelModel } from "amqplib"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { amqpConnect } from "../../internal/AmqpConnectOptions.ts"
import { causeMessage } from "../../internal/causeMessage.ts"
import { redactUrl } from "../../internal/redactUrl.ts"
import { lockQueueName, markerQueueName } from "./RabbitMqSinkWire.ts"

export class SinkQueuesInUse extends Data.TaggedError("SinkQueuesInUse")<{
  readonly lock: string
}> {
  override get message(): string {
    return `lock queue ${this.lock} is held by a live sink instance`
  }
}

export class SinkQueuesRemovalFailed extends Data.TaggedError("SinkQueuesRemovalFailed")<{
  readonly url: string
  readonly operation: string
  readonly cause: unknown
}> {
  override get message(): string {
    return `${this.operation} at ${redactUrl(this.url)}: ${causeMessage(this.cause)}`
  }
}

/** A passive declare's answer: the queue is there, absent (404), or exclusively held by another connection (405). */
const probe = async (conn: ChannelModel, queue: string): Promise<"present" | "absent" | "locked"> => {
  const ch = await conn.createChannel()
  ch.on("error", () => undefined)
  try {
    await ch.checkQueue(queue)
    await ch.close()
    return "present"
  } catch (cause) {
    const code = (cause as { code?: unknown }).code
    if (code === 404) return "absent"
    if (code === 405) return "locked"
    throw cause
  }
}

/**
 * Deletes the lock and marker queues of instances 0..parallelism-1 of `sink` in `job`; returns the
 * names of the queues it deleted.
 */
export const deleteSinkQueues = (
  url: string,
  job: string,
  sink: string,
  parallelism: number
): Effect.Effect<ReadonlyArray<string>, SinkQueuesInUse | SinkQueuesRemovalFailed> =>
  Effect.gen(function* () {
    const fail = (operation: string) => (cause: unknown) =>
      new SinkQueuesRemovalFailed({ url, operation, cause })
    const conn = yield* Effect.acquireRelease(
      Effect.tryPromise({ try: () => amqpConnect(url), catch: fail("connect") }),
      (c) => Effect.promise(() => c.close().catch(() => undefined))
    )
    const deleted: Array<string> = []
    for (let i = 0; i < parallelism; i++) {
      const lock = lockQueueName(job, sink, i)
      const marker = markerQueueName(job, sink, i)
      const queues = [lock, marker]
      const found = yield* Effect.tryPromise({
        try: () => Promise.all(queues.map((q) => probe(conn, q))),
        catch: fail(`look for ${queues.join(", ")}`)
      })
      if (found[0] === "locked") return yield* new SinkQueuesInUse({ lock })
      for (let k = 0; k < queues.length; k++) {
        if (found[k] !== "present") continue
        const q = queues[k]!
        yield* Effect.tryPromise({
          try: async () => {
            const ch = await conn.createChannel()
            await ch.deleteQueue(q)
            await ch.close()
          },
          catch: fail(`delete ${q}`)
        })
        deleted.push(q)
      }
    }
    return deleted
  }).pipe(Effect.scoped)
