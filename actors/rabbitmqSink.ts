/**
 * The RabbitMQ two-phase-commit sink as an actor declaration (lib/connectors/rabbitmq/RabbitMqSink.ts does the work):
 * each instance writes its checkpoint's records in an AMQP transaction and commits it, with its
 * commit marker, only when the checkpoint is complete.
 */
import { makeRabbitMqSink } from "../lib/connectors/rabbitmq/RabbitMqSink.ts"
import type { RabbitMqSinkOptions } from "../lib/connectors/rabbitmq/RabbitMqSinkOptions.ts"
import { type SinkDeclaration, sink } from "../lib/api/Operator.ts"

/** Options as a pipeline gives them; url, job, sink and instance come from where the actor runs. */
export type RabbitmqSinkOptions = Omit<RabbitMqSinkOptions, "url" | "job" | "sink" | "instance">

export const rabbitmqSink = <A>(name: string, options: RabbitmqSinkOptions): SinkDeclaration<A> =>
  sink<A>(name, (ctx) =>
    makeRabbitMqSink<A>({
      ...options,
      url: ctx.amqpUrl,
      job: ctx.job,
      sink: ctx.operator,
      instance: ctx.index
    })
  )
