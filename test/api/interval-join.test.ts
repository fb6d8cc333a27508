/**
 * The interval join (lib/api/IntervalJoin.ts), played by the keyed driver: inclusive bounds on both
 * ends (FLINK-33524's boundary), either arrival order, late records of each side to their side
 * output, buffers dropped once nothing can match them, and a randomized check against a brute-force
 * join of the on-time records: every pair in bounds exactly once.
 */
import t from "tap"
import { outputTag } from "../../lib/api/Operator.ts"
import { END_OF_TIME } from "../../lib/api/Watermark.ts"
import { IntervalJoinInvalid, type JoinLate, intervalJoin } from "../../lib/api/IntervalJoin.ts"
import { coProcessAsProcess, Driver, type Tagged } from "../harness/keyedDriver.ts"
import { mulberry32 } from "../oracle/windowInput.ts"

interface Ev {
  readonly k: string
  readonly id: string
}
const leftLate = outputTag<JoinLate<Ev>>("leftLate")
const rightLate = outputTag<JoinLate<Ev>>("rightLate")
const joiner = (lower: number, upper: number) =>
  new Driver(
    coProcessAsProcess(
      intervalJoin<Ev, Ev, string, string>(
        "j",
        { lower, upper, leftLate, rightLate },
        (a, b) => `${a.id}+${b.id}`
      )
    ),
    (r: Tagged<Ev, Ev>) => r.value.k,
    (o, ts) => `${o}@${ts}`
  )
type Joiner = ReturnType<typeof joiner>
const left = (d: Joiner, k: string, id: string, ts: number) => d.record({ input: 1, value: { k, id } }, ts)
const right = (d: Joiner, k: string, id: string, ts: number) => d.record({ input: 2, value: { k, id } }, ts)

t.test("bounds are inclusive on both ends; either side may come first", async (t) => {
  const d = joiner(-2, 3)
  left(d, "k", "a10", 10)
  for (const ts of [7, 8, 10, 13, 14]) right(d, "k", `b${ts}`, ts)
  t.same(d.take(), ["a10+b8@10", "a10+b10@10", "a10+b13@13"], "b.ts − a.ts in [−2, 3] only")
  right(d, "k", "b20", 20)
  left(d, "k", "a17", 17)
  left(d, "k", "a22", 22)
  left(d, "k", "a23", 23)
  t.same(
    d.take(),
    ["a17+b20@20", "a22+b20@22"],
    "a right record that came first joins later left ones (not a23: −3 < −2)"
  )
  right(d, "x", "bx", 18)
  t.same(d.take(), [], "another key joins nothing")
  t.throws(() => intervalJoin("bad", { lower: 5, upper: 1 }, () => 0), IntervalJoinInvalid)
})

t.test("late records go to their side's output, named, and are never joined", async (t) => {
  const d = joiner(0, 5)
  left(d, "k", "a10", 10)
  d.wm(20)
  left(d, "k", "a20", 20)
  right(d, "k", "b12", 12)
  t.same(d.take(), ["wm 20"], "nothing joined: a20 and b12 are late (ts ≤ wm)")
  t.same(
    d.side.map((s) => [
      s.tag,
      (s.value as JoinLate<Ev>).record.id,
      (s.value as JoinLate<Ev>).side,
      (s.value as JoinLate<Ev>).operator
    ]),
    [
      ["leftLate", "a20", "left", "j"],
      ["rightLate", "b12", "right", "j"]
    ]
  )
  t.equal(d.lateRecords, 2)
  t.same([d.states.size, d.timers.length], [0, 0], "a10's buffer dropped at wm 15 ≥ 10 + 5")
})

t.test("randomized: the join equals a brute-force join of the on-time records, each pair once", async (t) => {
  let pairs = 0
  for (let seed = 1; seed <= 200; seed++) {
    const rand = mulberry32(seed)
    const lower = Math.floor(rand() * 21) - 10
    const upper = lower + Math.floor(rand() * 15)
    const d = joiner(lower, upper)
    const onTime: Array<{ side: 1 | 2; k: string; id: string; ts: number }> = []
    let wm = 0
    d.wm(wm)
    for (let i = 0; i < 80; i++) {
      if (rand() < 0.15) {
        wm += Math.floor(rand() * 6)
        d.wm(wm)
        continue
      }
      const side = rand() < 0.5 ? 1 : 2
      const k = `k${Math.floor(rand() * 3)}`
      const id = `${side === 1 ? "a" : "b"}${i}`
      // mostly on time (ts > wm), some late
      const ts = wm + 1 + Math.floor(rand() * 20) - (rand() < 0.1 ? 25 : 0)
      d.record({ input: side, value: { k, id } }, ts)
      if (ts > wm) onTime.push({ side, k, id, ts })
    }
    d.wm(END_OF_TIME)
    const want: Array<string> = []
    for (const a of onTime)
      for (const b of onTime)
        if (a.side === 1 && b.side === 2 && a.k === b.k && a.ts + lower <= b.ts && b.ts <= a.ts + upper)
          want.push(`${a.id}+${b.id}@${Math.max(a.ts, b.ts)}`)
    const got = d.out.map((o) => `${o.value}@${o.ts}`)
    pairs += want.length
    if (JSON.stringify([...got].sort()) !== JSON.stringify([...want].sort())) {
      const extra = got.filter((g) => !want.includes(g))
      const missing = want.filter((w) => !got.includes(w))
      t.fail(
        `seed ${seed} (lower ${lower}, upper ${upper}): extra ${extra.join(" ")}; missing ${missing.join(" ")}; got ${got.length}, want ${want.length}`
      )
      return
    }
    if (d.states.size !== 0 || d.timers.length !== 0) {
      t.fail(`seed ${seed}: state or timers left after END`)
      return
    }
  }
  t.pass(`200 seeds, ${pairs} pairs, each exactly once; no state left after END`)
})
