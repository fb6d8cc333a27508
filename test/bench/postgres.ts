/**
 * The PostgreSQL sink's benchmark (`npm run bench -- pgsink`): records/s of the sink alone (write,
 * snapshot = PREPARE TRANSACTION, commit = COMMIT PREPARED) against a raw `pg` client inserting the
 * same rows, in the same multi-row INSERTs, in local transactions of the same size, on one private
 * cluster in the same run. Rounds alternate (best of each), so neither gets the warm-up alone.
 * Also P1 with the PostgreSQL sink (`npm run bench -- p1pg`): the orders example into a table.
 */
import { fileURLToPath } from "node:url"
import type { NatsConnection } from "@nats-io/transport-node"
import pg from "pg"
import { Effect } from "effect"
import { exactlyOnce, checkOrders } from "../../lib/chaos/OutputCheck.ts"
import { readPostgresOutput } from "../../lib/chaos/PostgresOutputCheck.ts"
import { generateOrder } from "../../lib/connectors/jetstream/Producer.ts"
import { startJob } from "./jobRun.ts"
import { makePostgresSink } from "../../lib/connectors/postgres/PostgresSink.ts"
import { startPostgresServer } from "../../lib/brokers/PostgresServer.ts"

const ordersPostgresModule = fileURLToPath(
  new URL("../../actors/examples/ordersPostgres.ts", import.meta.url)
)

interface Row {
  readonly orderId: number
  readonly customer: string
  readonly amount: number
  readonly total: number
}
const row = (i: number): Row => ({ orderId: i, customer: `c${i % 1000}`, amount: i % 10_000, total: i * 7 })
const columns = ["orderId", "customer", "amount", "total"] as const
const createTable = (t: string) =>
  `CREATE TABLE ${t} ("orderId" bigint NOT NULL, customer text NOT NULL, amount bigint NOT NULL, total bigint NOT NULL)`

/** A raw client: BEGIN, INSERTs of `insertRows` rows, COMMIT per `txSize` rows. */
const raw = async (url: string, table: string, count: number, txSize: number, insertRows: number) => {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  try {
    await c.query(createTable(table))
    const started = performance.now()
    for (let tx = 0; tx < count; tx += txSize) {
      await c.query("BEGIN")
      for (let from = tx; from < Math.min(count, tx + txSize); from += insertRows) {
        const n = Math.min(insertRows, count - from, tx + txSize - from)
        const values: Array<unknown> = []
        const tuples: Array<string> = []
        for (let i = 0; i < n; i++) {
          const r = row(from + i)
          values.push(r.orderId, r.customer, r.amount, r.total)
          tuples.push(`($${i * 4 + 1}, $${i * 4 + 2}, $${i * 4 + 3}, $${i * 4 + 4})`)
        }
        await c.query({
          name: `raw_${n}`,
          text: `INSERT INTO ${table} ("orderId", customer, amount, total) VALUES ${tuples.join(", ")}`,
          values
        })
      }
      await c.query("COMMIT")
    }
    return count / ((performance.now() - started) / 1000)
  } finally {
    await c.end()
  }
}

/** The sink: writes of `writeBatch` records, snapshot + commit every `txSize` records. */
const sink = (url: string, table: string, count: number, txSize: number, writeBatch: number) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const w = yield* makePostgresSink<Row>({
          url,
          job: table,
          sink: "sink",
          instance: 0,
          table,
          columns,
          setup: createTable(table),
          maxTransactionRecords: txSize
        })
        yield* w.restore(undefined)
        const started = performance.now()
        let n = 0
        let inTx = 0
        for (let i = 0; i < count; i += writeBatch) {
          const records: Array<Row> = []
          for (let j = i; j < Math.min(count, i + writeBatch); j++) records.push(row(j))
          yield* w.write(records)
          inTx += records.length
          if (inTx >= txSize || i + writeBatch >= count) {
            n += 1
            yield* w.snapshot(n)
            yield* w.commit(n)
            inTx = 0
          }
        }
        return count / ((performance.now() - started) / 1000)
      })
    )
  )

export interface PgSinkFigures {
  readonly records: number
  readonly txSize: number
  /** records/s of the sink alone (best round) */
  readonly perSecond: number
  /** records/s of the raw client (best round) */
  readonly rawPerSecond: number
  readonly ratioRaw: number
  readonly rounds: { readonly sink: ReadonlyArray<number>; readonly raw: ReadonlyArray<number> }
}

export const pgSinkBench = async (count: number, txSize = 10_000): Promise<PgSinkFigures> => {
  const server = await Effect.runPromise(startPostgresServer({ maxPreparedTransactions: 16 }))
  try {
    const rawRounds: Array<number> = []
    const sinkRounds: Array<number> = []
    for (let round = 0; round < 2; round++) {
      rawRounds.push(await raw(server.url, `bench_raw_${round}`, count, txSize, 1000))
      sinkRounds.push(await sink(server.url, `bench_sink_${round}`, count, txSize, 256))
    }
    const perSecond = Math.max(...sinkRounds)
    const rawPerSecond = Math.max(...rawRounds)
    return {
      records: count,
      txSize,
      perSecond,
      rawPerSecond,
      ratioRaw: perSecond / rawPerSecond,
      rounds: { sink: sinkRounds, raw: rawRounds }
    }
  } finally {
    await server.stop()
  }
}

/** P1 with the PostgreSQL sink: the orders example into a table on a private cluster (prepared mode), first-to-last output rate, checked with SQL. */
export const p1PostgresBench = async (
  nc: NatsConnection,
  o: { readonly job: string; readonly stream: string; readonly count: number }
) => {
  const server = await Effect.runPromise(startPostgresServer({ maxPreparedTransactions: 16 }))
  const table = o.job.toLowerCase().replace(/[^a-z0-9_]/g, "_")
  const run = await startJob(nc, {
    module: ordersPostgresModule,
    job: o.job,
    stream: o.stream,
    env: { EXACTOR_CHECKPOINT_INTERVAL: "1000", EXACTOR_PG_URL: server.url, EXACTOR_ORDERS_TABLE: table }
  })
  const c = new pg.Client({ connectionString: server.url })
  try {
    await c.connect()
    const rows = async () => {
      try {
        return Number((await c.query<{ n: string }>(`SELECT count(*) AS n FROM "${table}"`)).rows[0]?.n ?? 0)
      } catch {
        return 0 // the sink has not created the table yet
      }
    }
    let first: { at: number; n: number } | undefined
    const deadline = Date.now() + 600_000
    let exited = false
    void run.exit.then(() => (exited = true))
    for (;;) {
      const n = await rows()
      if (n > 0 && first === undefined) first = { at: performance.now(), n }
      if (n >= o.count) break
      if ((exited && n < o.count) || Date.now() > deadline)
        throw new Error(`${o.job}: ${n} of ${o.count} rows; log tail:\n${run.output().slice(-3000)}`)
      await new Promise((r) => setTimeout(r, 50))
    }
    const seconds = (performance.now() - first!.at) / 1000
    const exitCode = await run.exit
    const out = await Effect.runPromise(readPostgresOutput(server.url, table))
    const v = checkOrders(
      Array.from({ length: o.count }, (_, i) => generateOrder(i)),
      out.messages
    )
    return {
      records: o.count - first!.n,
      seconds,
      perSecond: (o.count - first!.n) / seconds,
      exitCode,
      exactlyOnce: exactlyOnce(v) && out.counts.duplicateRows === 0 && out.counts.preparedLeft === 0,
      verdict: {
        ok: v.ok,
        lost: v.lost,
        duplicated: v.duplicated,
        unexpected: v.unexpected,
        brokenChains: v.brokenChains
      },
      sql: out.counts
    }
  } finally {
    await c.end().catch(() => undefined)
    await run.cleanup([], [])
    await server.stop()
  }
}
