/**
 * The orders example from RabbitMQ to RabbitMQ: orders `{id, customer, amount}` from RabbitMQ
 * streams -> parse/validate -> keyBy customer -> running total per customer -> the RabbitMQ stream
 * EXACTOR_ORDERS_QUEUE (default `orders-totals-stream`), exactly once even across a RabbitMQ node crash.
 * Output records: `{orderId, customer, amount, total}`. Names come from the environment, so tests
 * and the chaos harness can run it side by side: EXACTOR_ORDERS_JOB (default `orders-rmq-stream`),
 * EXACTOR_ORDERS_STREAM (`orders`: with EXACTOR_SOURCE_PARTITIONS P > 0, default 4, the input is the
 * streams `orders-0` … `orders-<P-1>`, routed by customer (`streamPartitionOf`); 0: the one stream
 * `orders`), EXACTOR_SOURCE_PARALLELISM (1; at most P), EXACTOR_TOTAL_PARALLELISM (2),
 * EXACTOR_CHECKPOINT_INTERVAL (1000 ms), EXACTOR_MAX_TRANSACTION_MESSAGES (the sink's default,
 * 10 000), and for `exactor chaos` EXACTOR_RESTART_ATTEMPTS (20) and EXACTOR_RESTART_MAX_DELAY (10 000 ms).
 * The source reads up to each stream's last offset at the job's first start (bounded "atStart").
 */
import { pipeline } from "../../lib/api/Stream.ts"
import { rabbitmqStreamSource } from "../rabbitmqStreamSource.ts"
import { rabbitmqStreamSink } from "../rabbitmqStreamSink.ts"
import { type CustomerTotal, ordersJobOptions, parseOrder, runningTotal } from "./orderOperators.ts"

export const ordersJob = process.env.EXACTOR_ORDERS_JOB ?? "orders-rmq-stream"
export const ordersStream = process.env.EXACTOR_ORDERS_STREAM ?? "orders"
/** the output stream */
export const ordersQueue = process.env.EXACTOR_ORDERS_QUEUE ?? "orders-totals-stream"
/** the input's partition streams (0: the one stream `ordersStream`) */
export const ordersStreamPartitions = Number(process.env.EXACTOR_SOURCE_PARTITIONS ?? 4)
export type { CustomerTotal, Order } from "./orderOperators.ts"

const parallelism = (name: string, fallback: number) => Number(process.env[name] ?? fallback)

export default pipeline(ordersJob, ordersJobOptions())
  .source(
    rabbitmqStreamSource<unknown>("orders", {
      stream: ordersStream,
      bounded: "atStart",
      ...(ordersStreamPartitions === 0 ? {} : { partitions: ordersStreamPartitions })
    }),
    { parallelism: parallelism("EXACTOR_SOURCE_PARALLELISM", 1) }
  )
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
