import t from "tap"
import { Aligner } from "../../lib/runtime/Aligner.ts"

/** Feeds (channel, item) pairs through an aligner the way the actor loop does. */
const run = (
  channels: number,
  input: ReadonlyArray<readonly [number, string]>,
  abortAt?: { after: number; n: number }
) => {
  const a = new Aligner<readonly [number, string]>(channels)
  const processed: Array<string> = []
  const queue = [...input]
  let step = 0
  while (queue.length > 0) {
    const [channel, item] = queue.shift()!
    step++
    if (a.isBlocked(channel)) a.hold(channel, [channel, item])
    else if (item.startsWith("B")) {
      const out = a.onBarrier(channel, Number(item.slice(1)))
      if (out.kind === "aligned") processed.push(`snapshot ${out.n}`)
      queue.unshift(...out.released)
    } else processed.push(item)
    if (abortAt && step === abortAt.after) {
      processed.push(`abort ${abortAt.n}`)
      queue.unshift(...a.abort(abortAt.n))
    }
  }
  return { processed, aligner: a }
}

t.test("two inputs, barrier first on channel 0: channel 0 is held until channel 1 delivers it", async (t) => {
  const { processed } = run(2, [
    [0, "a1"],
    [0, "B1"],
    [0, "a2"],
    [1, "b1"],
    [0, "a3"],
    [1, "B1"],
    [1, "b2"]
  ])
  t.same(processed, ["a1", "b1", "snapshot 1", "a2", "a3", "b2"])
})

t.test("two inputs, barrier first on channel 1", async (t) => {
  const { processed } = run(2, [
    [1, "B1"],
    [1, "b1"],
    [0, "a1"],
    [0, "B1"],
    [0, "a2"]
  ])
  t.same(processed, ["a1", "snapshot 1", "b1", "a2"])
})

t.test("three inputs in every order: nothing after a barrier is processed before the snapshot", async (t) => {
  const orders = [
    [0, 1, 2],
    [0, 2, 1],
    [1, 0, 2],
    [1, 2, 0],
    [2, 0, 1],
    [2, 1, 0]
  ]
  for (const order of orders) {
    const input: Array<readonly [number, string]> = []
    for (const c of order) input.push([c, `pre${c}`], [c, "B7"], [c, `post${c}`])
    const { processed } = run(3, input)
    const snap = processed.indexOf("snapshot 7")
    t.ok(snap >= 0, `order ${order}: aligned`)
    t.ok(
      [0, 1, 2].every((c) => processed.indexOf(`pre${c}`) < snap && processed.indexOf(`post${c}`) > snap),
      `order ${order}: pre before, post after the snapshot`
    )
  }
})

t.test("held records are released in their order, and a second barrier re-blocks", async (t) => {
  const { processed } = run(2, [
    [0, "B1"],
    [0, "x1"],
    [0, "x2"],
    [0, "B2"],
    [0, "x3"],
    [1, "B1"],
    [1, "y1"],
    [1, "B2"],
    [1, "y2"]
  ])
  t.same(processed, ["snapshot 1", "x1", "x2", "y1", "snapshot 2", "x3", "y2"])
})

t.test("abort releases the channels and later barriers of it are ignored", async (t) => {
  const { processed, aligner } = run(
    2,
    [
      [0, "B1"],
      [0, "x1"],
      [0, "x2"],
      [1, "y1"],
      [1, "B1"],
      [1, "y2"]
    ],
    { after: 4, n: 1 }
  )
  t.same(processed, ["y1", "abort 1", "x1", "x2", "y2"], "no snapshot of the aborted checkpoint")
  t.equal(aligner.aligning, undefined)
  t.equal(aligner.heldCount(), 0)
})

t.test("a later barrier on an unblocked channel supersedes the pending one", async (t) => {
  const { processed } = run(2, [
    [0, "B1"],
    [0, "x1"],
    [1, "B2"],
    [0, "B2"],
    [1, "y"]
  ])
  t.same(processed, ["x1", "snapshot 2", "y"])
})

t.test("a single input aligns at once", async (t) => {
  const { processed } = run(1, [
    [0, "a"],
    [0, "B3"],
    [0, "b"],
    [0, "B3"]
  ])
  t.same(processed, ["a", "snapshot 3", "b"])
})
