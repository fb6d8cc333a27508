/**
 * The bounded out-of-orderness generator (DESIGN-dataflow §2.2, §5): watermarks are a pure function
 * of a split's timestamp sequence, never of how it is batched; `maxTs − maxDelay − 1`, emitted
 * every `emitEvery` ms of event time; its state survives snapshot and restore; bad options are
 * refused naming the field.
 */
import t from "tap"
import { boundedOutOfOrderness, WatermarkStrategyInvalid } from "../../lib/api/Watermark.ts"

/** mulberry32: a small seeded PRNG */
const rng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let x = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
  return ((x ^ (x >>> 14)) >>> 0) / 4294967296
}

const strategy = boundedOutOfOrderness<number>({ timestamp: (x) => x, maxDelay: 2000, emitEvery: 200 })

/** The watermark after each record (undefined where none is emitted), reading `ts` in batches of random size, restoring from a snapshot at every batch boundary. */
const run = (ts: ReadonlyArray<number>, random?: () => number) => {
  let g = strategy.generator()
  const out: Array<number | undefined> = []
  let i = 0
  while (i < ts.length) {
    const size = random === undefined ? ts.length : 1 + Math.floor(random() * 50)
    for (const x of ts.slice(i, i + size)) out.push(g.onEvent(x))
    i += size
    if (random !== undefined) {
      const state = g.snapshot()
      g = strategy.generator()
      g.restore(state)
    }
  }
  return out
}

t.test("watermarks sit after the same records under any batching and any restore", async (t) => {
  const random = rng(7)
  const ts: Array<number> = []
  for (let i = 0; i < 5000; i++) ts.push(-1_000_000 + i * 37 - Math.floor(random() * 3000))
  const reference = run(ts)
  for (let k = 0; k < 5; k++) t.same(run(ts, rng(100 + k)), reference, `batching ${k}`)
  t.ok(reference.filter((w) => w !== undefined).length > 100, "it emits watermarks")
})

t.test("maxTs − maxDelay − 1, at most once per emitEvery of event time, never down", async (t) => {
  const g = strategy.generator()
  t.equal(g.onEvent(10_000), 7_999, "the first record sets the first watermark")
  t.equal(g.onEvent(10_100), undefined, "100 ms later: not yet (emitEvery 200)")
  t.equal(g.onEvent(9_000), undefined, "an older record raises nothing")
  t.equal(g.onEvent(10_199), undefined, "a watermark 199 ms past the last: not yet")
  t.equal(g.onEvent(10_200), 8_199, "200 ms past the last: emitted")
  t.equal(g.onEvent(10_150), undefined, "a record behind the highest: nothing")
})

t.test("bad options are refused, naming the field", async (t) => {
  t.throws(
    () => boundedOutOfOrderness({ timestamp: () => 0, maxDelay: undefined as unknown as number }),
    WatermarkStrategyInvalid
  )
  t.throws(() => boundedOutOfOrderness({ timestamp: () => 0, maxDelay: -1 }), /maxDelay/)
  t.throws(() => boundedOutOfOrderness({ timestamp: () => 0, maxDelay: 10, emitEvery: 0 }), /emitEvery/)
  t.throws(() => strategy.generator().restore("x"), /generator state/)
})
