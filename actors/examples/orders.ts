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
 * EXACTOR_DEAD_LETTERS=1 turns on dead letters: an order `parse` rejects, and a payload the source
 * cannot decode, goes to the queue EXACTOR_DEAD_LETTER_QUEUE (`<queue>-dead-letters`) as a
 * `DeadLetter` instead of failing the job.
 */
import { type DeadLetter, deadLetters, withDeadLetters } from "../../lib/api/Operator.ts"
import { pipeline } from "../../lib/api/Stream.ts"
import { ordersPartitioning } from "../../lib/connectors/jetstream/Partitioning.ts"
import { jetstreamSource } from "../jetstreamSource.ts"
import { type CustomerTotal, parseOrder, runningTotal, ordersJobOptions } from "./orderOperators.ts"
import { rabbitmqSink } from "../rabbitmqSink.ts"
import { ordersDeadLetterSpec } from "./ordersDeadLetterCheck.ts"

export const ordersJob = process.env.EXACTOR_ORDERS_JOB ?? "orders"
export const ordersStream = process.env.EXACTOR_ORDERS_STREAM ?? "orders"
export const ordersQueue = process.env.EXACTOR_ORDERS_QUEUE ?? "orders-totals"
export type { CustomerTotal, Order } from "./orderOperators.ts"

const parallelism = (name: string, fallback: number) => Number(process.env[name] ?? fallback)
const partitioning = ordersPartitioning()

/** EXACTOR_DEAD_LETTERS=1: malformed orders (and undecodable payloads) go to a dead-letter queue */
const deadLettersOn = process.env.EXACTOR_DEAD_LETTERS === "1"
export const deadLetterQueue = process.env.EXACTOR_DEAD_LETTER_QUEUE ?? `${ordersQueue}-dead-letters`

const builder = pipeline(ordersJob, ordersJobOptions())
const orders = builder.source(
  jetstreamSource<unknown>("orders", {
    stream: ordersStream,
    bounded: "atStart",
    ...(partitioning === undefined ? {} : { partitions: partitioning.count }),
    ...(deadLettersOn ? { onMalformed: "deadLetter" as const } : {})
  }),
  { parallelism: parallelism("EXACTOR_SOURCE_PARALLELISM", 2) }
)
const parsed = orders.map(deadLettersOn ? withDeadLetters(parseOrder) : parseOrder)
parsed
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
if (deadLettersOn)
  parsed
    .sideOutput(deadLetters)
    .union(orders.sideOutput(deadLetters))
    .sink(rabbitmqSink<DeadLetter>("deadLetters", { queue: deadLetterQueue }), { parallelism: 1 })

export default builder.build()

/** for `exactor chaos`: with dead letters on, 1 % malformed input and a check of both queues */
export const jobSpec = deadLettersOn ? ordersDeadLetterSpec : undefined
