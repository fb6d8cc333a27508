/**
 * The private RabbitMQ node of `exactor chaos --rabbitmq-crashes` as a scoped Effect resource:
 * started on free ports for the run, stopped (by pid, its data directory removed) when the run ends.
 */
import * as Effect from "effect/Effect"
import { type PrivateRabbitMqNode, RabbitMqNodeError, startRabbitMqNode } from "../brokers/RabbitMqNode.ts"
import { causeMessage } from "../internal/causeMessage.ts"

export const privateRabbitMqNode = Effect.acquireRelease(
  Effect.tryPromise({
    try: () => startRabbitMqNode(),
    catch: (cause) =>
      cause instanceof RabbitMqNodeError
        ? cause
        : new RabbitMqNodeError({ reason: causeMessage(cause), log: "" })
  }),
  (node: PrivateRabbitMqNode) => Effect.promise(() => node.stop())
)
