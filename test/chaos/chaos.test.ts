/**
 * The chaos test: the orders job (RabbitMQ sink) on 100k generated orders while a source, a keyed
 * operator, the sink and the coordinator are killed with SIGKILL (a fault every ~1.2 s) and one
 * instance is paused past the heartbeat timeout (a zombie). Exactly-once must hold: the job
 * FINISHES, and lost, duplicated and unexpected are 0 with every running-total chain unbroken.
 */
import { fileURLToPath } from "node:url"
import t from "tap"
import { chaosInTest } from "../harness/chaos.ts"

const ordersModule = fileURLToPath(new URL("../../actors/examples/orders.ts", import.meta.url))

t.test("kills of every kind and a zombie: the output is still exactly once", async (t) => {
  const report = await chaosInTest(t, {
    module: ordersModule,
    records: 100_000,
    intervalMs: 1200,
    kinds: ["sources", "keyed", "sinks", "coordinator"],
    pause: true
  })
  const v = report.verdict
  t.ok(report.finished, `the job FINISHED (state ${report.state}, exit ${report.exitCode})`)
  t.same(
    { attempted: v.attempted, ok: v.ok, lost: v.lost, duplicated: v.duplicated, unexpected: v.unexpected },
    { attempted: 100_000, ok: 100_000, lost: 0, duplicated: 0, unexpected: 0 },
    "every order exactly once"
  )
  t.equal(v.brokenChains, 0, `one unbroken running-total chain per customer (${v.customers} customers)`)
  for (const kind of ["source", "keyed", "sink", "coordinator"] as const)
    t.ok(report.kills[kind] >= 1, `${report.kills[kind]} kill(s) of a ${kind}`)
  t.ok(report.longPauses >= 1, `${report.longPauses} pause(s) past the heartbeat timeout (zombies)`)
  t.ok(report.recoveries >= 1, `${report.recoveries} recoveries`)
  t.ok(report.ok, "the chaos report says exactly once")
})
