/**
 * The orders example writing into PostgreSQL: orders from a JetStream stream -> parse/validate ->
 * keyBy customer -> running total per customer -> one row per output record in a table with no
 * unique key (so a duplicate would be visible), exactly once through the PostgreSQL sink.
 * Names come from the environment as in orders.ts (EXACTOR_ORDERS_JOB, _STREAM, the parallelism and
 * restart variables), and: EXACTOR_ORDERS_TABLE (default `orders_totals`), EXACTOR_PG_URL (the
 * server), EXACTOR_PG_MODE (`prepared`, the default, or `local` for a server without prepared
 * transactions). The sink creates the table if it is missing.
 */
import { defaultJobOptions } from "../../lib/api/JobOptions.ts"
import { pipeline } from "../../lib/api/Pipeline.ts"
import { jetstreamSource } from "../jetstreamSource.ts"
import { type CustomerTotal, parseOrder, runningTotal } from "./orderOperators.ts"
import { postgresSink } from "../postgresSink.ts"

export const ordersJob = process.env.EXACTOR_ORDERS_JOB ?? "orders-pg"
export const ordersStream = process.env.EXACTOR_ORDERS_STREAM ?? "orders"
export const ordersTable = process.env.EXACTOR_ORDERS_TABLE ?? "orders_totals"
const mode = process.env.EXACTOR_PG_MODE === "local" ? "local" : "prepared"

const parallelism = (name: string, fallback: number) => Number(process.env[name] ?? fallback)
const backoff =
  defaultJobOptions.restart.kind === "exponentialBackoff" ? defaultJobOptions.restart : undefined

export default pipeline(ordersJob, {
  checkpoint: { interval: Number(process.env.EXACTOR_CHECKPOINT_INTERVAL ?? 1000) },
  restart: {
    kind: "exponentialBackoff",
    initial: backoff?.initial ?? 200,
    multiplier: backoff?.multiplier ?? 2,
    jitter: backoff?.jitter ?? 0.2,
    max: Number(process.env.EXACTOR_RESTART_MAX_DELAY ?? backoff?.max ?? 10_000),
    attempts: Number(process.env.EXACTOR_RESTART_ATTEMPTS ?? backoff?.attempts ?? 20),
    resetAfter: backoff?.resetAfter ?? 60_000
  }
})
  .source(jetstreamSource<unknown>("orders", { stream: ordersStream, bounded: "atStart" }), {
    parallelism: parallelism("EXACTOR_SOURCE_PARALLELISM", 1)
  })
  .map(parseOrder)
  .keyBy((o) => o.customer)
  .process(runningTotal, { parallelism: parallelism("EXACTOR_TOTAL_PARALLELISM", 2) })
  .sink(
    postgresSink<CustomerTotal>("sink", {
      table: ordersTable,
      columns: ["orderId", "customer", "amount", "total"],
      setup: `CREATE TABLE IF NOT EXISTS "${ordersTable}" ("orderId" bigint NOT NULL, customer text NOT NULL, amount bigint NOT NULL, total bigint NOT NULL)`,
      mode
    }),
    { parallelism: 1 }
  )
