/**
 * The independent reader of a RabbitMQ stream for the output check: plain AMQP 0-9-1 (prefetch,
 * manual acks, `x-stream-offset: first`), since a stream has no "empty": the drain stops once it has
 * `expected` messages and then nothing more for `idleMs`, or after `idleMs` of silence before that;
 * a read that fails (the node still starting) is tried again, every 2 s for up to 60 s.
 * Invariant: it never writes or deletes; `messageCount` is never used (it lags and counts non-messages).
 */
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { amqpConnect } from "../internal/AmqpConnectOptions.ts"
import { OutputUnreadable, type OutputMessage } from "./OutputCheck.ts"

export interface StreamMessage extends OutputMessage {
  /** the message's offset in the stream (header `x-stream-offset`) */
  readonly offset: number
}

/** Reads `stream` from its first offset; see the module comment for when it stops. */
export const drainStream = (url: string, stream: string, expected: number, idleMs = 2000) =>
  Effect.tryPromise({
    try: async () => {
      const conn = await amqpConnect(url)
      // a channel error (a stream whose node just restarted is "down or inaccessible") is also
      // emitted on the connection: the promise below fails with it instead
      conn.on("error", () => {})
      try {
        const ch = await conn.createChannel()
        await ch.assertQueue(stream, { durable: true, arguments: { "x-queue-type": "stream" } })
        await ch.prefetch(1000)
        const out: Array<StreamMessage> = []
        let last = Date.now()
        const { consumerTag } = await ch.consume(
          stream,
          (msg) => {
            if (!msg) return
            last = Date.now()
            const text = msg.content.toString("utf8")
            let body: unknown
            try {
              body = JSON.parse(text)
            } catch {
              body = text
            }
            const offset = Number(msg.properties.headers?.["x-stream-offset"] ?? -1)
            out.push({ messageId: msg.properties.messageId as string | undefined, body, offset })
            ch.ack(msg)
          },
          { noAck: false, arguments: { "x-stream-offset": "first" } }
        )
        // idle: at the expected count a short quiet proves nothing more is coming; below it, a longer one
        while (Date.now() - last < (out.length >= expected ? idleMs : idleMs * 3))
          await new Promise((r) => setTimeout(r, 50))
        await ch.cancel(consumerTag)
        await ch.close()
        return out
      } finally {
        await conn.close().catch(() => undefined)
      }
    },
    catch: (cause) => new OutputUnreadable({ queue: stream, cause })
  }).pipe(
    // right after a node restart its streams take a few seconds to come back: retried for up to 60 s
    Effect.retry({ schedule: Schedule.spaced("2 seconds"), times: 30 })
  )
