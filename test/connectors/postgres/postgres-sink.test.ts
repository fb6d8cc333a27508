/**
 * The PostgreSQL sink in prepared mode (PREPARE TRANSACTION / COMMIT PREPARED) against a private,
 * killable cluster with max_prepared_transactions set: the exactly-once cases of sinkCases.ts, and
 * the eager checks (options naming the field, a clear error on a server that cannot prepare).
 */
import t from "tap"
import { Effect, Fiber } from "effect"
import { makePostgresSink } from "../../../lib/connectors/postgres/PostgresSink.ts"
import { preparedGids, sql, startPostgresServer, type TestPostgresServer } from "../../harness/postgres.ts"
import { sinkCases } from "./sinkCases.ts"

let server: TestPostgresServer | undefined
t.before(async () => {
  server = await Effect.runPromise(startPostgresServer({ maxPreparedTransactions: 16 }))
})
t.teardown(() => server?.stop())

sinkCases(t, "prepared", () => server!)

t.test("options are validated eagerly, with an error naming the field", async (t) => {
  const open = (o: Record<string, unknown>) =>
    Effect.runPromise(
      Effect.scoped(
        Effect.flip(
          makePostgresSink({
            url: server!.url,
            job: "j",
            sink: "s",
            instance: 0,
            table: "t",
            columns: ["v"],
            ...o
          })
        )
      )
    )
  t.match((await open({ url: "http://x" })).message, /url must be a postgres/)
  t.match((await open({ table: undefined })).message, /table or write is required/)
  t.match((await open({ columns: [] })).message, /columns must be a non-empty list/)
  t.match((await open({ mode: "xa" })).message, /mode must be "prepared" or "local"/)
  t.match((await open({ job: "x".repeat(95), sink: "y".repeat(95) })).message, /too long for a 200-byte/)
})

t.test(
  "a user-supplied statement (an upsert) runs once per record in the prepared transaction",
  async (t) => {
    const table = `upsert_${Date.now().toString(36)}`
    const url = server!.url
    const job = `upsert-${Date.now().toString(36)}`
    await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const w = yield* makePostgresSink<{ k: string; n: number }>({
            url,
            job,
            sink: "out",
            instance: 0,
            setup: `CREATE TABLE IF NOT EXISTS ${table} (k text PRIMARY KEY, n int NOT NULL)`,
            write: {
              sql: `INSERT INTO ${table} (k, n) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET n = ${table}.n + EXCLUDED.n`,
              params: (r) => [r.k, r.n]
            }
          })
          yield* w.restore(undefined)
          yield* w.write([
            { k: "a", n: 1 },
            { k: "b", n: 2 },
            { k: "a", n: 10 }
          ])
          yield* w.snapshot(1)
          yield* w.commit(1)
        })
      )
    )
    t.same(await sql(url, `SELECT k, n FROM ${table} ORDER BY k`), [
      { k: "a", n: 11 },
      { k: "b", n: 2 }
    ])
    t.same(await preparedGids(url), [])
  }
)

t.test("an interrupted write (a new epoch) leaves no row outside the transaction", async (t) => {
  const table = `interrupt_${Date.now().toString(36)}`
  const url = server!.url
  await sql(url, `CREATE TABLE ${table} (v text)`)
  await Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const w = yield* makePostgresSink<{ v: string }>({
          url,
          job: `int-${Date.now().toString(36)}`,
          sink: "out",
          instance: 0,
          table,
          columns: ["v"],
          insertBatchRows: 50
        })
        yield* w.restore(undefined)
        const rows = Array.from({ length: 20_000 }, (_, i) => ({ v: `i${i}` }))
        const write = yield* Effect.forkChild(w.write(rows))
        yield* Effect.sleep("30 millis")
        yield* Fiber.interrupt(write)
        // the runtime's next step after a new epoch: restore, which rolls the open transaction back
        yield* w.restore(undefined)
      })
    )
  )
  t.same(
    await sql(url, `SELECT count(*)::int AS n FROM ${table}`),
    [{ n: 0 }],
    "no row escaped the transaction"
  )
  t.same(await preparedGids(url), [])
})
