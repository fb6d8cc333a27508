/**
 * Loading a pipeline module: the file a user passes to `exactor run|launch|chaos`, whose default
 * export is a `Pipeline`. Every actor process loads the same module, so declarations (functions)
 * never travel over the wire. Invariant: what is returned has passed `validatePipeline`.
 */
import { resolve } from "node:path"
import { pathToFileURL } from "node:url"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type { InvalidJobOption } from "./JobOptions.ts"
import { type JobPlan, type Pipeline, type PipelineInvalid, validatePipeline } from "./Pipeline.ts"
import { causeMessage } from "../internal/causeMessage.ts"

export class PipelineLoadError extends Data.TaggedError("PipelineLoadError")<{
  readonly module: string
  readonly reason: string
}> {
  override get message(): string {
    return `cannot load pipeline module ${this.module}: ${this.reason}`
  }
}

const isPipeline = (u: unknown): u is Pipeline =>
  typeof u === "object" &&
  u !== null &&
  typeof (u as Pipeline).job === "string" &&
  Array.isArray((u as Pipeline).operators) &&
  Array.isArray((u as Pipeline).edges)

/** Imports `module` and validates its default export. */
export const loadPipeline = (
  module: string
): Effect.Effect<JobPlan, PipelineLoadError | PipelineInvalid | InvalidJobOption> =>
  Effect.gen(function* () {
    const url = pathToFileURL(resolve(module)).href
    const loaded = yield* Effect.tryPromise({
      try: () => import(url) as Promise<{ readonly default?: unknown }>,
      catch: (cause) => new PipelineLoadError({ module, reason: causeMessage(cause) })
    })
    const p = loaded.default
    if (!isPipeline(p))
      return yield* new PipelineLoadError({
        module,
        reason: "its default export is not a pipeline (export default pipeline(...)...sink(...))"
      })
    const plan = validatePipeline(p)
    if ("_tag" in plan) return yield* plan
    return plan
  })
