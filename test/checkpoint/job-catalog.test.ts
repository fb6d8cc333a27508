/**
 * What `exactor jobs` says of a status record (pure): ended jobs are never stale, a job that is not
 * ended is stale once its coordinator stopped writing, and a job without a status is UNKNOWN.
 */
import t from "tap"
import { isRunning, staleAfterMs, summarize } from "../../lib/checkpoint/JobCatalog.ts"
import type { JobStatus } from "../../lib/checkpoint/JobStatus.ts"

const now = 1_000_000
const status = (state: JobStatus["state"], updatedAt: number): Partial<JobStatus> => ({
  job: "j",
  state,
  epoch: 3,
  startedAt: now - 60_000,
  updatedAt
})

t.test("a fresh RUNNING status is running, with its latest checkpoint", async (t) => {
  const s = summarize("j", status("RUNNING", now - 500), { checkpoint: 12 }, now)
  t.match(s, { state: "RUNNING", epoch: 3, latestCheckpoint: 12, stale: false })
  t.equal(isRunning(s), true)
})

t.test("a RUNNING status its coordinator stopped writing is stale, not running", async (t) => {
  const s = summarize("j", status("RUNNING", now - staleAfterMs - 1), undefined, now)
  t.equal(s.stale, true)
  t.equal(isRunning(s), false)
})

t.test("ended jobs are never stale nor running", async (t) => {
  for (const state of ["FINISHED", "FAILED", "CANCELLED"] as const) {
    const s = summarize("j", status(state, now - 3_600_000), { checkpoint: 0 }, now)
    t.equal(s.stale, false, state)
    t.equal(isRunning(s), false, state)
    t.equal(s.latestCheckpoint, undefined, `${state}: checkpoint 0 (a fresh start's empty manifest) is none`)
  }
})

t.test("no status record: UNKNOWN", async (t) => {
  const s = summarize("j", undefined, undefined, now)
  t.match(s, { state: "UNKNOWN", stale: false })
  t.equal(isRunning(s), false)
})
