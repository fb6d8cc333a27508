/**
 * The PostgreSQL sink in prepared mode (PREPARE TRANSACTION / COMMIT PREPARED) against a private,
 * killable cluster with max_prepared_transactions set: the exactly-once cases of sinkCases.ts, and
 * the eager checks (options naming the field, a clear error on a server that cannot prepare).
 */
import t from "tap"
import { Effect } from "effect"
import { makePostgresSink } from "../../../lib/connectors/postgres/PostgresSink.ts"
import { startPostgresServer, type TestPostgresServer } from "../../harness/postgres.ts"
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
