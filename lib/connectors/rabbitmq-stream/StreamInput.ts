/**
 * Writes records into a RabbitMQ stream input (one stream, or the partition streams `<stream>-<k>`
 * routed by key), for tests, examples and chaos runs. Invariant: each stream's records are stored
 * once, in the given order, confirmed before `writeStreamInput` returns; the streams are created if
 * missing, and a second write appends after the first (the named producer continues its ids).
 */
import * as Effect from "effect/Effect"
import { ensureStream, openNamedProducer } from "./StreamClient.ts"
import { StreamOptionsInvalid } from "./StreamErrors.ts"
import type { StreamCallFailed, StreamPublishFailed } from "./StreamErrors.ts"
import { partitionStreams, streamPartitionOf } from "./StreamPartitioning.ts"
import { parseStreamUrl } from "./StreamClient.ts"

export const writeStreamInput = (o: {
  readonly streamUrl: string
  readonly stream: string
  readonly records: ReadonlyArray<unknown>
  /** route by the field `key` over `count` partition streams; absent: the one stream */
  readonly partitions?: { readonly count: number; readonly key: string }
  readonly timeoutMs?: number
}): Effect.Effect<void, StreamOptionsInvalid | StreamCallFailed | StreamPublishFailed> =>
  Effect.gen(function* () {
    const endpoint = parseStreamUrl(o.streamUrl)
    if (endpoint === undefined)
      return yield* new StreamOptionsInvalid({
        field: "streamUrl",
        value: o.streamUrl,
        reason: "is no stream URL"
      })
    const timeoutMs = o.timeoutMs ?? 30_000
    const streams = partitionStreams(o.stream, o.partitions?.count)
    const bodies: Array<Array<Buffer>> = streams.map(() => [])
    for (let i = 0; i < o.records.length; i++) {
      const r = o.records[i]
      const k = o.partitions === undefined ? 0 : streamPartitionOf(r, o.partitions)
      if (typeof k === "string")
        return yield* new StreamOptionsInvalid({ field: `records[${i}]`, value: r, reason: k })
      bodies[k]!.push(Buffer.from(JSON.stringify(r)))
    }
    const owner = `input ${o.stream}`
    for (let k = 0; k < streams.length; k++) {
      const stream = streams[k]!
      yield* ensureStream(owner, stream, endpoint, timeoutMs)
      yield* Effect.acquireUseRelease(
        openNamedProducer({
          owner,
          stream,
          name: `exactor-input/${stream}`,
          endpoint,
          timeoutMs,
          heartbeatSeconds: 10
        }),
        (p) =>
          Effect.gen(function* () {
            const all = bodies[k]!
            let next = (yield* p.lastStored) + 1n
            for (let i = 0; i < all.length; i += 5000) {
              const batch = all.slice(i, i + 5000)
              yield* p.publish(0, next, batch)
              next += BigInt(batch.length)
            }
          }),
        (p) => p.close
      )
    }
  })
