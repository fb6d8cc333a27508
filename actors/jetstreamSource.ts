/**
 * The JetStream source as an actor declaration: reads a stream from the position in its snapshot
 * (see lib/connectors/jetstream/JetStreamSource.ts for how parallel instances split the stream and how a bounded
 * source fixes its end). With `onMalformed: "deadLetter"` its undecodable payloads reach
 * `stream.sideOutput(deadLetters)`. A fresh run of the job forgets the previous run's bounded end. With
 * `partitions`, the source can be rescaled on restore: each instance gets the partitions it owns.
 */
import * as Effect from "effect/Effect"
import { clearBoundedEnd } from "../lib/connectors/jetstream/BoundedEnd.ts"
import {
  mergePartitionedPositions,
  jetStreamSource as reader
} from "../lib/connectors/jetstream/JetStreamSource.ts"
import type { JetStreamSourceOptions } from "../lib/connectors/jetstream/JetStreamSourceOptions.ts"
import { natsConnection } from "../lib/runtime/Nats.ts"
import { type SourceDeclaration, source, withDeadLetters } from "../lib/api/Operator.ts"
import type { JetStreamPosition } from "../lib/connectors/jetstream/SourceReader.ts"

export const jetstreamSource = <A>(
  name: string,
  options: JetStreamSourceOptions<A>
): SourceDeclaration<A> => {
  const r = reader(options)
  const partitions = options.partitions
  const declaration = source<A>(
    name,
    (ctx, position) => r.open(ctx, position as JetStreamPosition | undefined),
    (ctx) =>
      Effect.scoped(
        Effect.gen(function* () {
          const nc = yield* natsConnection(ctx.natsUrl, { name: `${ctx.job}/${name}/reset`, job: ctx.job })
          yield* clearBoundedEnd(nc, ctx, options)
        })
      ),
    // a partitioned stream's positions are per partition: they can be re-split for another parallelism
    partitions === undefined
      ? undefined
      : (ctx, positions) => mergePartitionedPositions(partitions, ctx, positions)
  )
  // payloads it cannot decode go to its deadLetters output
  return options.onMalformed === "deadLetter" ? withDeadLetters(declaration) : declaration
}
