/**
 * `exactor chaos` on a job it knows only through its `jobSpec`: the shop graph (three sources, a
 * co-process, a split into two sinks) while sources, keyed operators, both sinks and the
 * coordinator are killed with SIGKILL. The report has one verdict per sink, each exactly once.
 */
import { fileURLToPath } from "node:url"
import t from "tap"
import { chaosInTest } from "../harness/chaos.ts"
import { exactlyOnce } from "../../lib/chaos/OutputCheck.ts"

const shopModule = fileURLToPath(new URL("../../actors/examples/shop.ts", import.meta.url))

t.test("the shop graph under kills of every kind: each sink exactly once", async (t) => {
  const report = await chaosInTest(t, {
    module: shopModule,
    // 40,000: CI's run of 20,000 finished 5 s after the faults began, with 3 faults and no sink kill
    records: 40_000,
    intervalMs: 1200,
    kinds: ["sources", "keyed", "sinks", "coordinator"],
    pause: false
  })
  t.ok(report.finished, `the job FINISHED (state ${report.state}, exit ${report.exitCode})`)
  t.same(
    (report.sinks ?? []).map((s) => s.sink),
    ["review", "totals"],
    "one verdict per sink"
  )
  for (const s of report.sinks ?? [])
    t.ok(exactlyOnce(s.verdict), `${s.sink}: ${s.verdict.ok} of ${s.verdict.attempted} exactly once`)
  t.equal(
    report.sinks?.find((s) => s.sink === "totals")?.verdict.attempted,
    40_000,
    "every order reaches totals"
  )
  for (const kind of ["source", "keyed", "sink", "coordinator"] as const)
    t.ok(report.kills[kind] >= 1, `${report.kills[kind]} kill(s) of a ${kind}`)
  t.ok(report.ok, "the chaos report says exactly once")
})
