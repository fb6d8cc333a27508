/**
 * The PostgreSQL sink in local mode (records in the snapshot, one local transaction with the
 * commit-log row at `complete n`) against a private cluster started with the server's default
 * max_prepared_transactions = 0: the same exactly-once cases as prepared mode (sinkCases.ts), and
 * the clear start-up error of prepared mode on such a server.
 */
import t from "tap"
import { Effect } from "effect"
import { makePostgresSink } from "../../../lib/connectors/postgres/PostgresSink.ts"
import { startPostgresServer, type TestPostgresServer } from "../../harness/postgres.ts"
import { sinkCases } from "./sinkCases.ts"

let server: TestPostgresServer | undefined
t.before(async () => {
  server = await Effect.runPromise(startPostgresServer({ maxPreparedTransactions: 0 }))
})
t.teardown(() => server?.stop())

t.test(
  "prepared mode on a server with max_prepared_transactions = 0 fails at start, saying what to set",
  async (t) => {
    const e = await Effect.runPromise(
      Effect.scoped(
        Effect.flip(
          makePostgresSink({ url: server!.url, job: "j", sink: "s", instance: 0, table: "t", columns: ["v"] })
        )
      )
    )
    t.equal(e._tag, "PgSinkPreparedTransactionsDisabled")
    t.match(
      e.message,
      /set max_prepared_transactions to at least 3 .* restart the server, or use .*mode: "local"/
    )
  }
)

sinkCases(t, "local", () => server!)
