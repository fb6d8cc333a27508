import t from "tap"
import type { Manifest, ObjectHandle } from "../../lib/checkpoint/Manifest.ts"
import { double, out, src, total } from "../fixtures/numberOperators.ts"
import { type JobPlan, validatePipeline } from "../../lib/api/Pipeline.ts"
import { pipeline } from "../../lib/api/Stream.ts"
import { rescaleProblem, restoreBody } from "../../lib/checkpoint/RestorePlan.ts"

/** numbers -> double -> keyBy -> total -> out, with these parallelisms. */
const planOf = (p: { numbers: number; double: number; total: number; out: number }): JobPlan => {
  const plan = validatePipeline(
    pipeline("j")
      .source(src, { parallelism: p.numbers })
      .map(double, { parallelism: p.double, partitioning: "rebalance" })
      .keyBy((n) => n % 10)
      .process(total, { parallelism: p.total })
      .sink(out, { parallelism: p.out })
  )
  if (!("instances" in plan)) throw plan
  return plan
}

const handle = (instance: string): ObjectHandle => ({
  kind: "object",
  name: `ckpt/7/${instance}`,
  size: 1,
  digest: "SHA-256=x"
})

/** Checkpoint 7 of a run with 2 sources, 2 doubles, 2 totals, 1 sink; `double` has no state. */
const manifest: Manifest = {
  job: "j",
  checkpoint: 7,
  epoch: 3,
  createdAt: 0,
  kind: "checkpoint",
  handles: Object.fromEntries(
    ["numbers#0", "numbers#1", "total#0", "total#1", "out#0"].map((i) => [i, handle(i)])
  ),
  parallelism: { numbers: 2, double: 2, total: 2, out: 1 }
}

t.test("without a manifest every instance restores empty state", async (t) => {
  const plan = planOf({ numbers: 2, double: 2, total: 2, out: 1 })
  for (const id of plan.instances.map(String)) t.same(restoreBody(plan, undefined, id), { handles: [] }, id)
  t.equal(rescaleProblem(plan, undefined), undefined)
})

t.test("a keyed instance gets every handle of its operator, any other only its own", async (t) => {
  const plan = planOf({ numbers: 2, double: 2, total: 3, out: 1 })
  const restored = (id: string) => restoreBody(plan, manifest, id)
  t.same(restored("numbers#1"), { checkpoint: 7, handles: [handle("numbers#1")] })
  t.same(restored("out#0"), { checkpoint: 7, handles: [handle("out#0")] })
  t.same(restored("double#0"), { checkpoint: 7, handles: [] }, "a stateless instance has no handle")
  for (const id of ["total#0", "total#1", "total#2"])
    t.same(restored(id), { checkpoint: 7, handles: [handle("total#0"), handle("total#1")] }, id)
})

t.test("only keyed and stateless operators can change parallelism", async (t) => {
  t.equal(rescaleProblem(planOf({ numbers: 2, double: 2, total: 2, out: 1 }), manifest), undefined, "same")
  t.equal(rescaleProblem(planOf({ numbers: 2, double: 4, total: 5, out: 1 }), manifest), undefined)
  t.equal(
    rescaleProblem(planOf({ numbers: 3, double: 2, total: 2, out: 1 }), manifest),
    "cannot change the parallelism of source numbers from 2 to 3 when restoring checkpoint 7: only keyed operators, stateless ones and partitioned sources can be rescaled"
  )
  t.match(
    rescaleProblem(planOf({ numbers: 2, double: 2, total: 2, out: 2 }), manifest),
    /^cannot change the parallelism of sink out from 1 to 2 /
  )
  const { out: _, ...withoutOut } = manifest.parallelism
  t.equal(
    rescaleProblem(planOf({ numbers: 2, double: 2, total: 2, out: 2 }), {
      ...manifest,
      parallelism: withoutOut
    }),
    undefined,
    "an operator the manifest does not know is not a rescale"
  )
})

t.test(
  "a source that merges positions restores from every handle of its operator and can be rescaled",
  async (t) => {
    const merging = {
      ...src,
      mergePositions: (_ctx: unknown, positions: ReadonlyArray<unknown>) => positions
    }
    const plan = validatePipeline(
      pipeline("j")
        .source(merging, { parallelism: 3 })
        .map(double, { parallelism: 2, partitioning: "rebalance" })
        .keyBy((n) => n % 10)
        .process(total, { parallelism: 2 })
        .sink(out, { parallelism: 1 })
    )
    if (!("instances" in plan)) throw plan
    t.equal(rescaleProblem(plan, manifest), undefined, "2 -> 3 sources is no problem")
    for (const id of ["numbers#0", "numbers#1", "numbers#2"])
      t.same(
        restoreBody(plan, manifest, id),
        { checkpoint: 7, handles: [handle("numbers#0"), handle("numbers#1")] },
        id
      )
  }
)
