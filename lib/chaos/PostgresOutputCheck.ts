/**
 * The independent check of a PostgreSQL output (the orders example writing into a table): plain
 * SQL over a fresh `pg` connection, nothing of the sink. It reads every row for the Jepsen-style
 * verdict of OutputCheck.ts, counts rows per order id with GROUP BY (a duplicate is a second row:
 * the table has no unique key), and counts the prepared transactions still pending.
 * Invariant: exactly once here means the verdict is clean, no order id has two rows, and nothing is left prepared.
 */
import pg from "pg"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { causeMessage } from "../internal/causeMessage.ts"
import type { OutputMessage } from "./OutputCheck.ts"

export class PostgresOutputUnreadable extends Data.TaggedError("PostgresOutputUnreadable")<{
  readonly table: string
  readonly cause: unknown
}> {
  override get message(): string {
    return `cannot read output table ${this.table}: ${causeMessage(this.cause)}`
  }
}

/** What plain SQL says of the table, beside the verdict. */
export interface PostgresOutputCounts {
  readonly rows: number
  readonly distinctOrders: number
  /** rows beyond the first per order id (`count(*) - 1` summed over order ids with more than one row) */
  readonly duplicateRows: number
  /** rows of `pg_prepared_xacts` at the end (any transaction left prepared holds locks) */
  readonly preparedLeft: number
}

export const postgresOutputOk = (c: PostgresOutputCounts): boolean =>
  c.duplicateRows === 0 && c.preparedLeft === 0

/** Reads the orders example's output table (`"orderId", customer, amount, total`) as messages, and the SQL counts. */
export const readPostgresOutput = (url: string, table: string) =>
  Effect.tryPromise({
    try: async () => {
      const c = new pg.Client({ connectionString: url })
      c.on("error", () => undefined)
      await c.connect()
      try {
        const t = `"${table.replace(/"/g, '""')}"`
        const rows = await c.query<{ orderId: string; customer: string; amount: string; total: string }>(
          `SELECT "orderId", customer, amount, total FROM ${t}`
        )
        const per = await c.query<{ rows: string; orders: string; dups: string }>(
          `SELECT coalesce(sum(n), 0) AS rows, count(*) AS orders, coalesce(sum(n - 1), 0) AS dups FROM (SELECT "orderId", count(*) AS n FROM ${t} GROUP BY "orderId") g`
        )
        const prepared = await c.query<{ n: string }>("SELECT count(*) AS n FROM pg_prepared_xacts")
        const messages: Array<OutputMessage> = rows.rows.map((r) => ({
          messageId: undefined,
          body: {
            orderId: Number(r.orderId),
            customer: r.customer,
            amount: Number(r.amount),
            total: Number(r.total)
          }
        }))
        const counts: PostgresOutputCounts = {
          rows: Number(per.rows[0]?.rows ?? 0),
          distinctOrders: Number(per.rows[0]?.orders ?? 0),
          duplicateRows: Number(per.rows[0]?.dups ?? 0),
          preparedLeft: Number(prepared.rows[0]?.n ?? 0)
        }
        return { messages, counts }
      } finally {
        await c.end().catch(() => undefined)
      }
    },
    catch: (cause) => new PostgresOutputUnreadable({ table, cause })
  })
