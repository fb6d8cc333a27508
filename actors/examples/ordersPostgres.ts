/**
 * The orders example writing into PostgreSQL: orders from a JetStream stream -> parse/validate ->
 * keyBy customer -> running total per customer -> one row per output record in a table with no
 * unique key (so a duplicate would be visible), exactly once through the PostgreSQL sink.
 * Names come from the environment as in orders.ts (EXACTOR_ORDERS_JOB, _STREAM, the parallelism and
 * restart variables), and: EXACTOR_ORDERS_TABLE (default `orders_totals`), EXACTOR_PG_URL (the
 * server), EXACTOR_PG_MODE (`prepared`, the default, or `local` for a server without prepared
 * transactions). The sink creates the table if it is missing.
 */
import { pipeline } from "../../lib/api/Stream.ts"
import { jetstreamSource } from "../jetstreamSource.ts"
import { type CustomerTotal, parseOrder, runningTotal, ordersJobOptions } from "./orderOperators.ts"
import { postgresSink } from "../postgresSink.ts"

export const ordersJob = process.env.EXACTOR_ORDERS_JOB ?? "orders-pg"
export const ordersStream = process.env.EXACTOR_ORDERS_STREAM ?? "orders"
export const ordersTable = process.env.EXACTOR_ORDERS_TABLE ?? "orders_totals"
const mode = process.env.EXACTOR_PG_MODE === "local" ? "local" : "prepared"

const parallelism = (name: string, fallback: number) => Number(process.env[name] ?? fallback)
export default pipeline(ordersJob, ordersJobOptions())
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
