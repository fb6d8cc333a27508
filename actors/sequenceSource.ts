/**
 * A generated source, as Flink's DataGeneratorSource: record n is `make(n)` for n = 0, 1, 2, …,
 * split between instances by n mod parallelism. Its position is the next n, so it replays exactly
 * after a restore: the source for tests and benchmarks of the runtime without an input broker.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { type SourceDeclaration, source } from "../lib/api/Operator.ts"

export interface SequenceSourceOptions<A> {
  /** record n; must be the same for the same n in every run (the replay depends on it) */
  readonly make: (n: number) => A
  /** how many records in all instances together; omitted: unbounded */
  readonly count?: number
  /** most records per second per instance; omitted: as fast as the pipeline takes them */
  readonly ratePerSecond?: number
}

/** A snapshot position this source cannot continue from. */
export class SequencePositionInvalid extends Data.TaggedError("SequencePositionInvalid")<{
  readonly source: string
  readonly position: unknown
  readonly reason: string
}> {
  override get message(): string {
    return `sequence source ${this.source}: cannot resume from ${JSON.stringify(this.position)}: ${this.reason}`
  }
}

interface SequencePosition {
  /** the next n this instance emits */
  readonly next: number
  readonly parallelism: number
}

const isPosition = (p: unknown): p is SequencePosition =>
  typeof p === "object" &&
  p !== null &&
  Number.isSafeInteger((p as SequencePosition).next) &&
  Number.isSafeInteger((p as SequencePosition).parallelism)

export const sequenceSource = <A>(name: string, options: SequenceSourceOptions<A>): SourceDeclaration<A> =>
  source<A>(name, (ctx, position) =>
    Effect.gen(function* () {
      const p = ctx.parallelism
      if (position !== undefined && !isPosition(position))
        return yield* new SequencePositionInvalid({
          source: name,
          position,
          reason: "not { next, parallelism }"
        })
      if (position !== undefined && (position.parallelism !== p || position.next % p !== ctx.index))
        return yield* new SequencePositionInvalid({
          source: name,
          position,
          reason: `instance ${ctx.index} of ${p} cannot take it (sequence sources do not rescale)`
        })
      const count = options.count ?? Number.POSITIVE_INFINITY
      let next = position?.next ?? ctx.index
      const startedAt = Date.now()
      const startedFrom = next
      /** records the rate limit allows now */
      const allowed = (max: number) => {
        if (options.ratePerSecond === undefined) return max
        const due = Math.floor(((Date.now() - startedAt) / 1000) * options.ratePerSecond)
        return Math.min(max, due - (next - startedFrom) / p)
      }
      return {
        read: (max: number) =>
          Effect.gen(function* () {
            let n = allowed(max)
            // only a rate limit holds records back: wait about one record's time
            if (n <= 0 && next < count && options.ratePerSecond !== undefined) {
              yield* Effect.sleep(Math.ceil(1000 / options.ratePerSecond))
              n = allowed(max)
            }
            const records: Array<A> = []
            for (let i = 0; i < n && next < count; i++, next += p) records.push(options.make(next))
            return { records, end: next >= count }
          }),
        position: (): SequencePosition => ({ next, parallelism: p })
      }
    })
  )
