/**
 * What a restore in a new epoch starts from: which manifest (a savepoint, a given checkpoint or
 * the latest completed one), whether this plan may restore it, and the handles each instance loads.
 * Invariant: only keyed operators, stateless ones and sources that merge positions change
 * parallelism across a restore; their instances get every handle of their operator, any other
 * instance only its own.
 */
import * as Effect from "effect/Effect"
import type { RestoreBody } from "../runtime/Actor.ts"
import type { CheckpointStore } from "./CheckpointStore.ts"
import type { Manifest } from "./Manifest.ts"
import type { JobPlan } from "../api/Pipeline.ts"

/** Where a job restores from: a savepoint, else a checkpoint, else the latest completed checkpoint. */
export interface RestoreFrom {
  readonly fromCheckpoint?: number
  readonly fromSavepoint?: string
}

/** The manifest a recovery restores (undefined: empty state). */
export const chooseManifest = (store: CheckpointStore, from: RestoreFrom) =>
  Effect.gen(function* () {
    if (from.fromSavepoint !== undefined) return yield* store.readSavepoint(from.fromSavepoint)
    if (from.fromCheckpoint !== undefined) return yield* store.readCheckpoint(from.fromCheckpoint)
    return (yield* store.readLatest())?.manifest
  })

/** Whether an operator's instances restore from every handle of the operator (and so can be rescaled). */
const rescalable = (plan: JobPlan, op: string): boolean => {
  const d = plan.operator.get(op)!.declaration
  return (
    d.kind === "process" || d.kind === "coProcess" || (d.kind === "source" && d.mergePositions !== undefined)
  )
}

/** The handles instance `id` restores from `m` (all of its operator's for rescalable operators). */
export const restoreBody = (plan: JobPlan, m: Manifest | undefined, id: string): RestoreBody => {
  if (!m) return { handles: [] }
  const op = id.slice(0, id.lastIndexOf("#"))
  const all = rescalable(plan, op)
  const handles = Object.entries(m.handles)
    .filter(([k]) => (all ? k.slice(0, k.lastIndexOf("#")) === op : k === id))
    .map(([, h]) => h)
  const committed = m.committed?.[id]
  return { checkpoint: m.checkpoint, handles, ...(committed === undefined ? {} : { committed }) }
}

/** Why `plan` cannot restore `m`, if it cannot: only keyed operators and merging sources can change parallelism. */
export const rescaleProblem = (plan: JobPlan, m: Manifest | undefined): string | undefined => {
  if (!m) return undefined
  for (const [op, node] of plan.operator) {
    const before = m.parallelism[op]
    const kind = node.declaration.kind
    const fixed = kind === "sink" || (kind === "source" && !rescalable(plan, op))
    if (before !== undefined && before !== node.parallelism && fixed)
      return `cannot change the parallelism of ${kind} ${op} from ${before} to ${node.parallelism} when restoring checkpoint ${m.checkpoint}: only keyed operators, stateless ones and partitioned sources can be rescaled`
  }
  return undefined
}
