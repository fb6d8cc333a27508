/**
 * The chaos test of the PostgreSQL example (actors/examples/ordersPostgres.ts, prepared mode): the
 * orders job writing one row per running total into a table on a private cluster, while the sink
 * and a keyed operator are killed, an instance is paused, and the PostgreSQL server itself is
 * killed with SIGKILL and restarted (up to twice) under 20,000 orders. Checked with plain SQL: every order exactly once (rows
 * per order id), every chain unbroken, and no prepared transaction left.
 */
import { fileURLToPath } from "node:url"
import t from "tap"
import { chaosInTest } from "../harness/chaos.ts"

const module = fileURLToPath(new URL("../../actors/examples/ordersPostgres.ts", import.meta.url))

t.test("kills, a zombie and PostgreSQL crashes: every order exactly once in the table", async (t) => {
  const report = await chaosInTest(t, {
    module,
    records: 20_000,
    intervalMs: 1000,
    kinds: ["sinks", "keyed"],
    pause: true,
    postgresCrashes: 2
  })
  const v = report.verdict
  t.ok(report.finished, `the job FINISHED (state ${report.state}, exit ${report.exitCode})`)
  t.same(
    { attempted: v.attempted, ok: v.ok, lost: v.lost, duplicated: v.duplicated, unexpected: v.unexpected },
    { attempted: 20_000, ok: 20_000, lost: 0, duplicated: 0, unexpected: 0 },
    "every order exactly once"
  )
  t.equal(v.brokenChains, 0, "one unbroken running-total chain per customer")
  t.equal(report.postgres?.rows, 20_000, "one row per order (SQL count)")
  t.equal(report.postgres?.duplicateRows, 0, "no order id has two rows (SQL GROUP BY)")
  t.equal(report.postgres?.preparedLeft, 0, "pg_prepared_xacts is empty at the end")
  t.ok((report.postgres?.crashes ?? 0) >= 1, `${report.postgres?.crashes} PostgreSQL crash(es) under the job`)
  t.ok(report.ok, "the chaos report says exactly once")
})
