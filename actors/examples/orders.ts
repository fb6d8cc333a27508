/**
 * The example job: orders `{id, customer, amount}` from a JetStream stream -> parse/validate ->
 * keyBy customer -> running total per customer -> RabbitMQ, exactly once.
 * Output records: `{orderId, customer, amount, total}`. Names come from the environment, so tests
 * and the chaos harness can run it side by side: EXACTOR_ORDERS_JOB (default `orders`),
 * EXACTOR_ORDERS_STREAM (`orders`), EXACTOR_ORDERS_QUEUE (`orders-totals`), and
 * EXACTOR_SOURCE_PARTITIONS (4: the stream's orders are on 4 partition subjects by customer, as
 * `exactor produce --partitions 4 --key customer` writes them; 0: one subject),
 * EXACTOR_SOURCE_PARALLELISM (2: each instance reads its own partitions), EXACTOR_TOTAL_PARALLELISM (2), EXACTOR_CHECKPOINT_INTERVAL (1000 ms),
 * EXACTOR_MAX_TRANSACTION_MESSAGES (the sink's default, 10 000), and for `exactor chaos` the restart strategy's budget and backoff cap: EXACTOR_RESTART_ATTEMPTS (20),
 * EXACTOR_RESTART_MAX_DELAY (10 000 ms).
 */
import { pipeline } from "../../lib/api/Stream.ts"
import { ordersPartitioning } from "../../lib/connectors/jetstream/Partitioning.ts"
import { jetstreamSource } from "../jetstreamSource.ts"
import { type CustomerTotal, parseOrder, runningTotal, ordersJobOptions } from "./orderOperators.ts"
import { rabbitmqSink } from "../rabbitmqSink.ts"

export const ordersJob = process.env.EXACTOR_ORDERS_JOB ?? "orders"
export const ordersStream = process.env.EXACTOR_ORDERS_STREAM ?? "orders"
export const ordersQueue = process.env.EXACTOR_ORDERS_QUEUE ?? "orders-totals"
export type { CustomerTotal, Order } from "./orderOperators.ts"

const parallelism = (name: string, fallback: number) => Number(process.env[name] ?? fallback)
const partitioning = ordersPartitioning()

export default pipeline(ordersJob, ordersJobOptions())
  .source(
    jetstreamSource<unknown>("orders", {
      stream: ordersStream,
      bounded: "atStart",
      ...(partitioning === undefined ? {} : { partitions: partitioning.count })
    }),
    { parallelism: parallelism("EXACTOR_SOURCE_PARALLELISM", 2) }
  )
  .map(parseOrder)
  .keyBy((o) => o.customer)
  .process(runningTotal, { parallelism: parallelism("EXACTOR_TOTAL_PARALLELISM", 2) })
  .sink(
    rabbitmqSink<CustomerTotal>("sink", {
      queue: ordersQueue,
      ...(process.env.EXACTOR_MAX_TRANSACTION_MESSAGES
        ? { maxTransactionMessages: Number(process.env.EXACTOR_MAX_TRANSACTION_MESSAGES) }
        : {})
    }),
    { parallelism: 1 }
  )
