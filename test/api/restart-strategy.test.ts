import t from "tap"
import { decideRestart } from "../../lib/api/RestartStrategy.ts"

t.test("fixed delay allows exactly `attempts` restarts", async (t) => {
  const s = { kind: "fixedDelay", delay: 100, attempts: 2 } as const
  t.same(decideRestart(s, [1]), { restart: true, delayMs: 100 })
  t.same(decideRestart(s, [1, 2]), { restart: true, delayMs: 100 })
  const third = decideRestart(s, [1, 2, 3])
  t.equal(third.restart, false)
  t.match(third.restart ? "" : third.reason, /restart budget exhausted: 2 restarts/)
})

t.test("exponential backoff grows, is capped, and jitters within bounds", async (t) => {
  const s = {
    kind: "exponentialBackoff",
    initial: 100,
    max: 1000,
    multiplier: 2,
    jitter: 0.2,
    attempts: 10,
    resetAfter: 60_000
  } as const
  const delays = [1, 2, 3, 4, 5, 6].map((k) => {
    const d = decideRestart(
      s,
      Array.from({ length: k }, (_, i) => i),
      0.5
    )
    return d.restart ? d.delayMs : -1
  })
  t.same(delays, [100, 200, 400, 800, 1000, 1000])
  const low = decideRestart(s, [1], 0)
  const high = decideRestart(s, [1], 0.999999)
  t.equal(low.restart && low.delayMs, 80)
  t.equal(high.restart && high.delayMs, 120)
  t.equal(
    decideRestart(
      s,
      Array.from({ length: 11 }, (_, i) => i)
    ).restart,
    false
  )
})

t.test("exponential backoff starts again after a quiet spell of resetAfter", async (t) => {
  const s = {
    kind: "exponentialBackoff",
    initial: 100,
    max: 1000,
    multiplier: 2,
    jitter: 0,
    attempts: 3,
    resetAfter: 1000
  } as const
  const d = (failures: Array<number>) => {
    const r = decideRestart(s, failures)
    return r.restart ? r.delayMs : "fail"
  }
  t.equal(d([0, 10, 20]), 400, "third in a row")
  t.equal(d([0, 10, 20, 30]), "fail", "a fourth in a row exceeds attempts")
  t.equal(d([0, 10, 20, 5000]), 100, "after 5 s of quiet the count starts again")
})

t.test("failure rate counts only failures within the interval", async (t) => {
  const s = { kind: "failureRate", maxFailures: 2, interval: 1000, delay: 50 } as const
  t.same(decideRestart(s, [0, 100]), { restart: true, delayMs: 50 })
  t.equal(decideRestart(s, [0, 100, 200]).restart, false)
  t.same(decideRestart(s, [0, 100, 1500]), { restart: true, delayMs: 50 })
})
