/**
 * What the runtime sees of a source instance: the `SourceReader` it drains, the `SourceContext` it
 * is opened in, and the `JetStreamPosition` it records. Invariant: a position is msgpack-able and a
 * reader opened with it continues right after the last record `read` returned.
 */
import type * as Effect from "effect/Effect"
import type { SourceError } from "./SourceError.ts"

export interface SourceReader<A> {
  /** Up to `max` records after the current position. `end` is true when a bounded source has nothing more (now and ever). Must not block for long when nothing is available: wait at most `idle` (e.g. 50 ms) and return what it has (possibly empty). */
  readonly read: (max: number) => Effect.Effect<
    {
      readonly records: ReadonlyArray<A>
      readonly end: boolean
      /** payloads it could not decode, in order (`onMalformed: "deadLetter"` only) */
      readonly undecoded?: ReadonlyArray<UndecodedRecord>
    },
    SourceError
  >
  /** msgpack-able position of the last record returned by read; after a restore, a new reader opened with this position continues right after it. */
  readonly position: () => SourcePosition
}
/** A payload the source read but could not decode: its text, why, and its stream position. */
export interface UndecodedRecord {
  readonly record: string
  readonly reason: string
  /** `jetstream:<stream>` */
  readonly input: string
  readonly position: { readonly seq: number; readonly partition?: number }
}

export interface SourceContext {
  readonly job: string
  readonly operator: string
  readonly index: number
  readonly parallelism: number
  readonly natsUrl: string
}

/** Where a JetStream source instance is; msgpack-able (numbers only, no undefined values). */
export interface JetStreamPosition {
  /** stream sequence of the last record `read` returned (or skipped as malformed); 0 before the first */
  readonly seq: number
  /** last stream sequence of a bounded source, fixed job-wide at first open; absent when unbounded */
  readonly end?: number
  /** the split this position belongs to */
  readonly index: number
  readonly parallelism: number
}
/**
 * Where a partitioned JetStream source instance is: the last stream sequence read from each
 * partition it owns; msgpack-able. Positions of all instances together cover every partition, so
 * they can be merged and re-split for another parallelism.
 */
export interface PartitionedPosition {
  /** the stream's partition count */
  readonly partitions: number
  /** `[partition, last stream sequence read or skipped]` for every partition this instance owns */
  readonly at: ReadonlyArray<readonly [number, number]>
  /** bounded: the last sequence of every partition (index = partition), fixed job-wide at first open */
  readonly ends?: ReadonlyArray<number>
}

export type SourcePosition = JetStreamPosition | PartitionedPosition
