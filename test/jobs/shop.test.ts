/**
 * The shop example, a graph job (union of two sources, a keyed co-process fed by a third, a split
 * into two sinks), end to end on the real brokers: both output queues exactly once, also when the
 * co-process and each sink are killed with SIGKILL mid-run.
 */
import t, { type Test } from "tap"
import type { Verdict } from "../../lib/chaos/OutputCheck.ts"
import { killAfterCheckpoint, status } from "../harness/checks.ts"
import { startShopJob, type ShopJob } from "../harness/shop.ts"

const exactlyOnce = (t: Test, name: string, v: Verdict, n: number, chains: boolean) => {
  t.same(
    { attempted: v.attempted, ok: v.ok, lost: v.lost, duplicated: v.duplicated, unexpected: v.unexpected },
    { attempted: n, ok: n, lost: 0, duplicated: 0, unexpected: 0 },
    `${name}: every record exactly once (${v.examples.join("; ") || "no examples"})`
  )
  if (chains)
    t.equal(v.brokenChains, 0, `${name}: one unbroken running-total chain per customer (${v.customers})`)
}

const checkBoth = async (t: Test, job: ShopJob, orders: number) => {
  const v = await job.verdicts()
  t.ok(v.review.attempted > 0 && v.review.attempted < orders, `${v.review.attempted} orders to review`)
  exactlyOnce(t, "review", v.review, v.review.attempted, false)
  exactlyOnce(t, "totals", v.totals, orders, true)
}

t.test("the shop graph runs to FINISHED: review and totals exactly once", async (t) => {
  const job = await startShopJob({ web: 3000, store: 300 })
  t.teardown(() => job.cleanup())
  const run = job.run()
  const code = await run.exit
  t.equal(code, 0, "the job FINISHED")
  if (code !== 0) t.comment(run.output().slice(-3000))
  const s = await status(job)
  t.equal(s?.state, "FINISHED")
  t.equal(
    s?.instances.length,
    12,
    "12 instances (3 sources, parse, parseTier, 2 enrich, 2 route, total, 2 sinks)"
  )
  await checkBoth(t, job, 3300)
})

t.test("kill -9 of the co-process and of each sink mid-run: both queues exactly once", async (t) => {
  const job = await startShopJob({
    web: 40_000,
    store: 4_000,
    env: { EXACTOR_CHECKPOINT_INTERVAL: "300" }
  })
  t.teardown(() => job.cleanup())
  const run = job.run()
  for (const victim of ["enrich#1", "review#0", "totals#0"]) await killAfterCheckpoint(t, job, victim)
  const code = await run.exit
  t.equal(code, 0, "the job FINISHED")
  if (code !== 0) t.comment(run.output().slice(-3000))
  await checkBoth(t, job, 44_000)
})
