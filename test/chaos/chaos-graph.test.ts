/**
 * `exactor chaos` on a job it knows only through its `jobSpec`: the shop graph (three sources, a
 * co-process, a split into two sinks) while sources, keyed operators, both sinks and the
 * coordinator are killed with SIGKILL. The report has one verdict per sink, each exactly once.
 */
import { randomInt } from "node:crypto"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import t from "tap"
import { runChaos } from "../../lib/chaos/Chaos.ts"
import { formatChaosReport } from "../../lib/chaos/ChaosReport.ts"
import { exactlyOnce } from "../../lib/chaos/OutputCheck.ts"
import { amqpUrl, natsUrl } from "../harness/env.ts"

const shopModule = fileURLToPath(new URL("../../actors/examples/shop.ts", import.meta.url))

t.test("the shop graph under kills of every kind: each sink exactly once", async (t) => {
  const seed = Number(process.env.EXACTOR_CHAOS_SEED ?? randomInt(1, 2 ** 31 - 1))
  t.comment(`seed ${seed} (repeat with EXACTOR_CHAOS_SEED=${seed})`)
  const report = await Effect.runPromise(
    runChaos({
      module: shopModule,
      records: 20_000,
      intervalMs: 1200,
      kinds: ["sources", "keyed", "sinks", "coordinator"],
      pause: false,
      natsRestarts: false,
      seed,
      deadlineMs: 300_000,
      urls: { natsUrl, amqpUrl },
      log: (line) => t.comment(line)
    })
  )
  t.comment(`\n${formatChaosReport(report)}`)
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
    20_000,
    "every order reaches totals"
  )
  for (const kind of ["source", "keyed", "sink", "coordinator"] as const)
    t.ok(report.kills[kind] >= 1, `${report.kills[kind]} kill(s) of a ${kind}`)
  t.ok(report.ok, "the chaos report says exactly once")
})
