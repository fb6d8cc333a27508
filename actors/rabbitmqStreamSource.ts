/**
 * The RabbitMQ stream source as an actor declaration (lib/connectors/rabbitmq-stream/RabbitMqStreamSource.ts
 * does the work): reads one stream, or with `partitions` the streams `<stream>-<k>`, from the offsets
 * in its snapshot. A fresh run of the job forgets the previous run's bounded ends. Positions are per
 * partition, so the source can be rescaled on restore: each instance gets the partitions it owns.
 * The stream URL is `EXACTOR_STREAM_URL`, else the AMQP broker's host on port 5552.
 */
import * as Effect from "effect/Effect"
import { type SourceDeclaration, source } from "../lib/api/Operator.ts"
import { clearStreamEnds } from "../lib/connectors/rabbitmq-stream/StreamBoundedEnd.ts"
import { streamUrlFor } from "../lib/connectors/rabbitmq-stream/StreamClient.ts"
import {
  mergeStreamPositions,
  rabbitMqStreamSource as reader
} from "../lib/connectors/rabbitmq-stream/RabbitMqStreamSource.ts"
import type { RabbitMqStreamSourceOptions } from "../lib/connectors/rabbitmq-stream/StreamSourceOptions.ts"
import { natsConnection } from "../lib/runtime/Nats.ts"

/** Options as a pipeline gives them; the stream URL comes from where the actor runs. */
export type RabbitmqStreamSourceOptions<A> = Omit<RabbitMqStreamSourceOptions<A>, "streamUrl">

/** A source declaration that also names its input streams (`exactor chaos` writes its input there). */
export type StreamSourceDeclaration<A> = SourceDeclaration<A> & {
  readonly input: { readonly kind: "rabbitmq-stream"; readonly stream: string; readonly partitions?: number }
}

export const rabbitmqStreamSource = <A>(
  name: string,
  options: RabbitmqStreamSourceOptions<A>
): StreamSourceDeclaration<A> => {
  const partitions = options.partitions ?? 1
  const declaration = source<A>(
    name,
    (ctx, position) => reader<A>({ ...options, streamUrl: streamUrlFor(ctx.amqpUrl) }).open(ctx, position),
    (ctx) =>
      Effect.scoped(
        Effect.gen(function* () {
          const nc = yield* natsConnection(ctx.natsUrl, { name: `${ctx.job}/${name}/reset`, job: ctx.job })
          yield* clearStreamEnds(nc, ctx, options)
        })
      ),
    // positions are per partition: they can be re-split for another parallelism
    (ctx, positions) => mergeStreamPositions(partitions, ctx, positions)
  )
  return {
    ...declaration,
    input: {
      kind: "rabbitmq-stream",
      stream: options.stream,
      ...(options.partitions === undefined ? {} : { partitions: options.partitions })
    }
  }
}
