import t from "tap"
import { END_OF_TIME, START_OF_TIME } from "../../lib/api/Watermark.ts"
import { type ChannelStatus, WatermarkValve } from "../../lib/runtime/WatermarkValve.ts"

t.test("w on channel c: c.wm = max(c.wm, w); ignored while idle and once ended", async (t) => {
  const v = new WatermarkValve(3)
  t.same(v.onWatermark(0, 10), {}, "channel 1 and 2 still hold the minimum")
  t.equal(v.channelWatermark(0), 10)
  t.same(v.onWatermark(0, 7), {}, "a lower watermark does not lower the channel")
  t.equal(v.channelWatermark(0), 10)
  v.onIdle(1, true)
  t.equal(v.status(1), "idle")
  t.same(v.onWatermark(1, 50), {}, "ignored while idle")
  t.equal(v.channelWatermark(1), START_OF_TIME)
  v.onEnded(2)
  t.equal(v.status(2), "ended")
  t.equal(v.channelWatermark(2), END_OF_TIME)
  t.same(v.onWatermark(2, 5), {}, "ignored once ended")
  t.equal(v.channelWatermark(2), END_OF_TIME)
  t.equal(v.watermark, 10, "only channel 0 is active: its watermark")
})

t.test(
  "output watermark: min over active aligned; none active → max over idle; all ended → END",
  async (t) => {
    const v = new WatermarkValve(3)
    v.onWatermark(0, 30)
    v.onWatermark(1, 20)
    t.same(v.onWatermark(2, 25), { watermark: 20 }, "min over the three")
    t.same(v.onWatermark(1, 40), { watermark: 25 })
    t.same(v.onIdle(2, true), { watermark: 30 }, "an idle channel leaves the minimum")
    t.same(v.onIdle(0, true), { watermark: 40 }, "channel 1 alone")
    t.same(v.onIdle(1, true), { idle: true }, "all idle: max over them is 40, not higher")
    t.equal(v.watermark, 40)
    const w = new WatermarkValve(2)
    w.onEnded(0)
    t.same(w.onEnded(1), { watermark: END_OF_TIME }, "all ended → END")
    t.equal(w.idle, false)
  }
)

t.test(
  "ended ≠ active: with some idle and the rest ended the output is the max over the idle, not END (FLINK-38477)",
  async (t) => {
    const v = new WatermarkValve(2)
    v.onWatermark(0, 10)
    t.same(v.onWatermark(1, 12), { watermark: 10 })
    t.same(v.onIdle(1, true), {}, "channel 0 alone, already at 10")
    t.same(v.onEnded(0), { watermark: 12, idle: true }, "max over the idle channel, and the output goes idle")
    t.equal(v.watermark, 12)
    t.not(v.watermark, END_OF_TIME)
    t.same(v.onIdle(1, false), { idle: false }, "the idle channel resumes: output active again")
    t.same(v.onWatermark(1, 20), { watermark: 20 }, "and it drives the output alone")
    t.same(v.onEnded(1), { watermark: END_OF_TIME }, "only when it ends too: END")
  }
)

t.test(
  "a finished source's END watermark is its end: with another channel idle the output stays below END (FLINK-38477; T5 found it)",
  async (t) => {
    const v = new WatermarkValve(2)
    v.onWatermark(0, 10)
    v.onWatermark(1, 12)
    v.onIdle(1, true)
    t.same(v.onWatermark(0, END_OF_TIME), { watermark: 12, idle: true }, "max over the idle channel, not END")
    t.equal(v.status(0), "ended", "the channel counts as ended")
    t.same(v.onEnded(0), {}, "its end of stream after the END watermark changes nothing")
    t.same(v.onIdle(1, false), { idle: false })
    t.same(v.onWatermark(1, END_OF_TIME), { watermark: END_OF_TIME }, "END once every channel has ended")
  }
)

t.test("no regression: the output never decreases; a channel below it stays unaligned", async (t) => {
  const v = new WatermarkValve(2)
  v.onWatermark(0, 100)
  v.onIdle(1, true)
  t.equal(v.watermark, 100)
  t.same(v.onIdle(1, false), {}, "channel 1 resumes at START_OF_TIME, behind the output")
  t.equal(v.watermark, 100, "not lowered")
  t.same(v.onWatermark(0, 150), { watermark: 150 }, "channel 1 is unaligned: channel 0 alone sets the output")
  t.same(v.onWatermark(1, 120), {}, "still behind: not counted, not lowering")
  t.equal(v.watermark, 150)
})

t.test(
  "output status: idle iff no active channel and at least one idle, returned only on change",
  async (t) => {
    const v = new WatermarkValve(3)
    t.equal(v.idle, false)
    t.same(v.onIdle(0, true), {})
    t.same(v.onIdle(0, true), {}, "the same status twice changes nothing")
    t.equal(v.idleChannels, 1)
    t.same(v.onEnded(1), {})
    t.same(v.onIdle(2, true), { idle: true }, "no active left, two idle")
    t.equal(v.idle, true)
    t.equal(v.idleChannels, 2)
    t.same(v.onIdle(0, false), { idle: false })
    t.same(v.onIdle(2, false), {}, "output already active")
    t.same(v.onIdle(1, true), {}, "an ended channel does not go idle")
    t.equal(v.status(1), "ended")
    t.equal(v.idleChannels, 0)
  }
)

t.test("union, two inputs: an idle input does not hold back the other (FLINK-18934)", async (t) => {
  // input 1 on channels 0 and 1, input 2 on channels 2 and 3, one valve over all four
  const v = new WatermarkValve(4)
  v.onIdle(2, true)
  v.onIdle(3, true)
  v.onWatermark(0, 50)
  t.same(v.onWatermark(1, 60), { watermark: 50 }, "input 2 idle: min over input 1 alone")
  t.equal(v.idle, false)
  v.onIdle(2, false)
  t.same(v.onWatermark(0, 70), { watermark: 60 }, "channel 2 resumed behind: unaligned until it catches up")
  t.same(v.onWatermark(2, 65), {}, "caught up: counted again; channel 1 still holds 60")
  t.same(v.onWatermark(1, 80), { watermark: 65 }, "now channel 2 holds the output back")
})

t.test("going idle: the advanced watermark and `idle on` in one output", async (t) => {
  const v = new WatermarkValve(2)
  v.onWatermark(0, 10)
  v.onWatermark(1, 30)
  t.equal(v.watermark, 10)
  t.same(v.onIdle(1, true), {}, "channel 0 still active at 10")
  t.same(v.onIdle(0, true), { watermark: 30, idle: true }, "max over the idle ones, then idle on")
  t.equal(v.watermark, 30)
  t.equal(v.idle, true)
})

t.test("restore floor: every channel starts at the floor, active and aligned", async (t) => {
  const v = new WatermarkValve(2, 1000)
  t.equal(v.watermark, 1000)
  t.equal(v.channelWatermark(0), 1000)
  t.equal(v.channelWatermark(1), 1000)
  t.same(v.onWatermark(0, 900), {}, "below the floor: ignored")
  t.same(v.onWatermark(0, 1500), {}, "channel 1 is at the floor and aligned: it holds the output")
  t.same(v.onWatermark(1, 1200), { watermark: 1200 })
  const idle = new WatermarkValve(2, 1000)
  idle.onIdle(0, true)
  t.same(idle.onIdle(1, true), { idle: true }, "all idle after restore: the floor, not lower")
  t.equal(idle.watermark, 1000)
})

t.test("union of two inputs as one valve = min(input 1, input 2) without idleness", async (t) => {
  const one = new WatermarkValve(5)
  const in1 = new WatermarkValve(2)
  const in2 = new WatermarkValve(3)
  const rand = lcg(7)
  for (let i = 0; i < 500; i++) {
    const c = rand() % 5
    const w = rand() % 1000
    one.onWatermark(c, w)
    if (c < 2) in1.onWatermark(c, w)
    else in2.onWatermark(c - 2, w)
    if (one.watermark !== Math.min(in1.watermark, in2.watermark)) {
      t.fail(`step ${i}: ${one.watermark} ≠ min(${in1.watermark}, ${in2.watermark})`)
      return
    }
  }
  t.pass("equal at every step")
})

t.test("idle then resume behind: unaligned until it catches up, then aligned again", async (t) => {
  const v = new WatermarkValve(2)
  v.onWatermark(0, 10)
  v.onWatermark(1, 10)
  v.onIdle(1, true)
  v.onWatermark(0, 100)
  t.equal(v.watermark, 100)
  v.onIdle(1, false)
  t.same(v.onWatermark(1, 50), {}, "behind: not counted")
  t.same(v.onWatermark(0, 200), { watermark: 200 }, "channel 0 alone moves the output")
  t.same(v.onWatermark(1, 210), {}, "caught up with 200: aligned again; min(200, 210) = 200")
  t.same(v.onWatermark(0, 300), { watermark: 210 }, "now channel 1 holds the output back")
})

t.test("all ended → END", async (t) => {
  const v = new WatermarkValve(3)
  v.onWatermark(0, 5)
  v.onIdle(1, true)
  t.same(v.onEnded(0), {}, "channel 2 is still active at START")
  t.same(v.onEnded(2), { idle: true }, "the idle channel keeps the output from END: idle")
  t.same(v.onEnded(1), { watermark: END_OF_TIME, idle: false }, "the last one ends: END, not idle")
  t.same(v.onEnded(1), {}, "a second eos changes nothing")
  t.equal(v.watermark, END_OF_TIME)
})

t.test("some idle and the rest ended → not END", async (t) => {
  const v = new WatermarkValve(3)
  v.onIdle(0, true)
  v.onEnded(1)
  t.same(v.onEnded(2), { idle: true })
  t.equal(v.watermark, START_OF_TIME, "max over the idle channel, which never had a watermark")
  t.equal(v.idleChannels, 1)
})

t.test("bad arguments are rejected with a RangeError", async (t) => {
  t.throws(() => new WatermarkValve(0), RangeError)
  t.throws(() => new WatermarkValve(2, 1.5), RangeError)
  t.throws(() => new WatermarkValve(2).onWatermark(2, 1), RangeError)
})

/** A small LCG (Numerical Recipes constants): the same sequence for a seed on every run. */
function lcg(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s >>> 8
  }
}

/** The rules written out directly: a channel counts iff it is active and at or above the last output. */
class Reference {
  readonly wm: Array<number>
  readonly status: Array<ChannelStatus>
  out: number
  idle = false
  constructor(channels: number, floor: number) {
    this.wm = new Array<number>(channels).fill(floor)
    this.status = new Array<ChannelStatus>(channels).fill("active")
    this.out = floor
  }
  apply(op: Op): void {
    const { c } = op
    if (op.kind === "wm" && this.status[c] === "active") this.wm[c] = Math.max(this.wm[c]!, op.w)
    if (op.kind === "idle" && this.status[c] !== "ended") this.status[c] = op.on ? "idle" : "active"
    if (op.kind === "ended") {
      this.status[c] = "ended"
      this.wm[c] = END_OF_TIME
    }
    const channels = this.wm.map((wm, i) => ({ wm, status: this.status[i] }))
    const active = channels.filter((x) => x.status === "active")
    const idle = channels.filter((x) => x.status === "idle")
    const counted = active.filter((x) => x.wm >= this.out)
    let candidate = this.out
    if (active.length > 0) {
      if (counted.length > 0) candidate = Math.min(...counted.map((x) => x.wm))
    } else if (idle.length > 0) candidate = Math.max(...idle.map((x) => x.wm))
    else candidate = END_OF_TIME
    this.out = Math.max(this.out, candidate)
    this.idle = active.length === 0 && idle.length > 0
  }
}

type Op =
  | { readonly kind: "wm"; readonly c: number; readonly w: number }
  | { readonly kind: "idle"; readonly c: number; readonly on: boolean }
  | { readonly kind: "ended"; readonly c: number }

t.test("never regresses and equals the reference under random operations", async (t) => {
  let steps = 0
  for (let seed = 1; seed <= 200; seed++) {
    const rand = lcg(seed)
    const channels = 1 + (rand() % 5)
    const floor = rand() % 2 === 0 ? START_OF_TIME : rand() % 500
    const v = new WatermarkValve(channels, floor)
    const ref = new Reference(channels, floor)
    let clock = 0
    let prevOut = v.watermark
    let prevIdle = v.idle
    for (let i = 0; i < 300; i++) {
      const c = rand() % channels
      const r = rand() % 100
      clock += rand() % 20
      const op: Op =
        r < 70
          ? { kind: "wm", c, w: clock - (rand() % 200) }
          : r < 98
            ? { kind: "idle", c, on: rand() % 2 === 0 }
            : { kind: "ended", c }
      const got =
        op.kind === "wm" ? v.onWatermark(c, op.w) : op.kind === "idle" ? v.onIdle(c, op.on) : v.onEnded(c)
      ref.apply(op)
      steps++
      const where = `seed ${seed} step ${i} ${JSON.stringify(op)}`
      const problems: Array<string> = []
      if (v.watermark < prevOut) problems.push(`regressed ${prevOut} → ${v.watermark}`)
      if (v.watermark !== ref.out) problems.push(`watermark ${v.watermark} ≠ reference ${ref.out}`)
      if (v.idle !== ref.idle) problems.push(`idle ${v.idle} ≠ reference ${ref.idle}`)
      if (got.watermark !== (v.watermark > prevOut ? v.watermark : undefined))
        problems.push(`returned watermark ${got.watermark} for ${prevOut} → ${v.watermark}`)
      if (got.idle !== (v.idle !== prevIdle ? v.idle : undefined))
        problems.push(`returned idle ${got.idle} for ${prevIdle} → ${v.idle}`)
      let idleChannels = 0
      for (let k = 0; k < channels; k++) {
        if (v.status(k) !== ref.status[k]) problems.push(`channel ${k} status ${v.status(k)}`)
        if (v.channelWatermark(k) !== ref.wm[k]) problems.push(`channel ${k} wm ${v.channelWatermark(k)}`)
        if (ref.status[k] === "idle") idleChannels++
      }
      if (v.idleChannels !== idleChannels) problems.push(`idleChannels ${v.idleChannels} ≠ ${idleChannels}`)
      if (problems.length > 0) {
        t.fail(`${where}: ${problems.join("; ")}`)
        return
      }
      prevOut = v.watermark
      prevIdle = v.idle
    }
  }
  t.pass(`${steps} operations over 200 seeds: monotone and equal to the reference`)
})
