/**
 * The RabbitMQ stream sink as an actor declaration (lib/connectors/rabbitmq-stream/RabbitMqStreamSink.ts
 * does the work): each instance publishes its checkpoint's records to a RabbitMQ stream under its own
 * producer name when the checkpoint is complete, exactly once even across a broker crash.
 * The stream URL is `EXACTOR_STREAM_URL`, else the AMQP broker's host on port 5552.
 */
import { type SinkDeclaration, sink } from "../lib/api/Operator.ts"
import { makeRabbitMqStreamSink } from "../lib/connectors/rabbitmq-stream/RabbitMqStreamSink.ts"
import { streamUrlFor } from "../lib/connectors/rabbitmq-stream/StreamClient.ts"
import type { RabbitMqStreamSinkOptions } from "../lib/connectors/rabbitmq-stream/StreamSinkOptions.ts"

/** Options as a pipeline gives them; URLs, job, sink and instance come from where the actor runs. */
export type RabbitmqStreamSinkOptions = Omit<
  RabbitMqStreamSinkOptions,
  "streamUrl" | "amqpUrl" | "job" | "sink" | "instance"
>

/** A sink declaration that also says its output is a stream (the chaos check reads it that way). */
export type StreamSinkDeclaration<A> = SinkDeclaration<A> & { readonly output: "stream" }

export const rabbitmqStreamSink = <A>(
  name: string,
  options: RabbitmqStreamSinkOptions
): StreamSinkDeclaration<A> => ({
  ...sink<A>(name, (ctx) =>
    makeRabbitMqStreamSink<A>({
      ...options,
      streamUrl: streamUrlFor(ctx.amqpUrl),
      amqpUrl: ctx.amqpUrl,
      job: ctx.job,
      sink: ctx.operator,
      instance: ctx.index
    })
  ),
  output: "stream"
})
