/**
 * The errors a source reader fails with, as tagged classes carrying the stream (or option) and the
 * sequence or position at fault, and `DecodeFailure`, what a decoder returns for a bad payload.
 * Invariant: a JetStream source fails only with a `SourceError`; a decoder's rejection is a value.
 */
import * as Data from "effect/Data"
import type { NatsSettingInvalid, NatsUnavailable } from "../../runtime/Nats.ts"
import { causeMessage } from "../../internal/causeMessage.ts"

/** An option (or a field of the source context) that is missing or out of range. */
export class SourceOptionsInvalid extends Data.TaggedError("SourceOptionsInvalid")<{
  readonly field: string
  readonly value: unknown
  readonly reason: string
}> {
  override get message(): string {
    return `jetStreamSource: ${this.field} ${this.reason} (got ${String(this.value)})`
  }
}

/** A recorded position that does not fit this source or instance. */
export class SourcePositionInvalid extends Data.TaggedError("SourcePositionInvalid")<{
  readonly stream: string
  readonly position: unknown
  readonly reason: string
}> {
  override get message(): string {
    return `stream ${this.stream}: cannot resume from position ${JSON.stringify(this.position)}: ${this.reason}`
  }
}

/** A payload that the decoder rejected; the reader stays before it (`position().seq === seq - 1`, modulo the split). */
export class MalformedRecord extends Data.TaggedError("MalformedRecord")<{
  readonly stream: string
  readonly seq: number
  readonly reason: string
  /** the partition it was read from, for a partitioned stream */
  readonly partition?: number
}> {
  override get message(): string {
    const where = this.partition === undefined ? "" : ` (partition ${this.partition})`
    return `stream ${this.stream}: message at sequence ${this.seq}${where} is not a record: ${this.reason}`
  }
}

/** A JetStream call that failed (stream missing, consumer lost for good, KV unavailable). */
export class SourceReadFailed extends Data.TaggedError("SourceReadFailed")<{
  readonly stream: string
  readonly operation: string
  readonly cause: unknown
}> {
  override get message(): string {
    const why = causeMessage(this.cause)
    return `stream ${this.stream}: ${this.operation} failed: ${why}`
  }
}

export type SourceError =
  | SourceOptionsInvalid
  | SourcePositionInvalid
  | MalformedRecord
  | SourceReadFailed
  | NatsUnavailable
  | NatsSettingInvalid

/** What a decoder returns for a payload that is not a record. */
export class DecodeFailure extends Data.TaggedClass("DecodeFailure")<{ readonly reason: string }> {}
