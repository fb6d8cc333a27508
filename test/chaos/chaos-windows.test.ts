/**
 * `exactor chaos` on the event-time example (test/oracle/revenueJob.ts: two sources, tumbling,
 * sliding and session windows, an interval join, one late queue): SIGKILLs of sources, window instances, sinks and
 * the coordinator, a window instance killed while it fires a burst of timers, and SIGSTOP zombies, while the oracle checks every window from the input alone.
 * Each window sink and the join sink must be exactly once by their oracles (lost, duplicated, unexpected, lateWrong,
 * brokenChains all 0) and the late sink must hold each late row once.
 */
import { fileURLToPath } from "node:url"
import t from "tap"
import { chaosInTest } from "../harness/chaos.ts"
import { exactlyOnce } from "../../lib/chaos/OutputCheck.ts"

const revenueModule = fileURLToPath(new URL("../oracle/revenueJob.ts", import.meta.url))

t.test("event-time windows under kills and zombies: every window exactly once by the oracle", async (t) => {
  const report = await chaosInTest(t, {
    module: revenueModule,
    records: 20_000,
    intervalMs: 2000,
    maxFaults: 12,
    firingKills: 1,
    kinds: ["sources", "keyed", "sinks", "coordinator"],
    pause: true
  })
  t.ok(report.finished, `the job FINISHED (state ${report.state}, exit ${report.exitCode})`)
  t.same(
    (report.sinks ?? []).map((s) => s.sink),
    ["tumbling-sink", "sliding-sink", "sessions-sink", "join-sink", "late-sink"],
    "one verdict per sink"
  )
  for (const s of report.sinks ?? [])
    t.ok(exactlyOnce(s.verdict), `${s.sink}: ${s.verdict.ok} of ${s.verdict.attempted} exactly once`)
  const kills = Object.values(report.kills).reduce((a, n) => a + n, 0)
  t.ok(kills >= 1, `${kills} kills (${JSON.stringify(report.kills)}), ${report.recoveries} recoveries`)
  // a burst comes at the end of input at the latest (END fires every window left), so one is hit
  t.equal(report.firingKills, 1, "a keyed instance (window or join) killed while firing timers")
  t.ok(report.ok, "the chaos report says exactly once")
})
