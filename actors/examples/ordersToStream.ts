/**
 * The orders example with a RabbitMQ stream as its output: orders `{id, customer, amount}` from a JetStream stream -> parse/validate ->
 * keyBy customer -> running total per customer -> the RabbitMQ stream EXACTOR_ORDERS_QUEUE (default `orders-totals-stream`), exactly once even across a RabbitMQ node crash (named-producer deduplication).
 * Output records: `{orderId, customer, amount, total}`. Names come from the environment, so tests
 * and the chaos harness can run it side by side: EXACTOR_ORDERS_JOB (default `orders-stream`),
 * EXACTOR_ORDERS_STREAM (`orders`), and
 * EXACTOR_SOURCE_PARALLELISM (1: each JetStream source instance reads the whole stream and keeps
 * its share, so more instances cost CPU rather than add it), EXACTOR_TOTAL_PARALLELISM (2), EXACTOR_CHECKPOINT_INTERVAL (1000 ms),
 * EXACTOR_MAX_TRANSACTION_MESSAGES (the sink's default, 10 000), and for `exactor chaos` the restart strategy's budget and backoff cap: EXACTOR_RESTART_ATTEMPTS (20),
 * EXACTOR_RESTART_MAX_DELAY (10 000 ms).
 */
import { pipeline } from "../../lib/api/Stream.ts"
import { jetstreamSource } from "../jetstreamSource.ts"
import { type CustomerTotal, parseOrder, runningTotal, ordersJobOptions } from "./orderOperators.ts"
import { rabbitmqStreamSink } from "../rabbitmqStreamSink.ts"

export const ordersJob = process.env.EXACTOR_ORDERS_JOB ?? "orders-stream"
export const ordersStream = process.env.EXACTOR_ORDERS_STREAM ?? "orders"
/** the output stream */
export const ordersQueue = process.env.EXACTOR_ORDERS_QUEUE ?? "orders-totals-stream"
export type { CustomerTotal, Order } from "./orderOperators.ts"

const parallelism = (name: string, fallback: number) => Number(process.env[name] ?? fallback)

export default pipeline(ordersJob, ordersJobOptions())
  .source(jetstreamSource<unknown>("orders", { stream: ordersStream, bounded: "atStart" }), {
    parallelism: parallelism("EXACTOR_SOURCE_PARALLELISM", 1)
  })
  .map(parseOrder)
  .keyBy((o) => o.customer)
  .process(runningTotal, { parallelism: parallelism("EXACTOR_TOTAL_PARALLELISM", 2) })
  .sink(
    rabbitmqStreamSink<CustomerTotal>("sink", {
      stream: ordersQueue,
      ...(process.env.EXACTOR_MAX_TRANSACTION_MESSAGES
        ? { maxTransactionRecords: Number(process.env.EXACTOR_MAX_TRANSACTION_MESSAGES) }
        : {})
    }),
    { parallelism: 1 }
  )
