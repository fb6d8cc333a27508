/**
 * The typed failures of the RabbitMQ stream connector (sink and client), one tagged class each.
 * Invariant: every error names its sink instance (`<job>/<sink>/<i>`) or its stream, and the
 * operation that failed; `StreamSinkError` is the union of the sink's.
 */
import * as Data from "effect/Data"
import { causeMessage } from "../../internal/causeMessage.ts"

export class StreamOptionsInvalid extends Data.TaggedError("StreamOptionsInvalid")<{
  readonly field: string
  readonly value: unknown
  readonly reason: string
}> {
  override get message(): string {
    return `rabbitmqStream: ${this.field} ${this.reason} (got ${JSON.stringify(this.value) ?? String(this.value)})`
  }
}

/** A stream-protocol call failed, was refused, or did not answer within its timeout. */
export class StreamCallFailed extends Data.TaggedError("StreamCallFailed")<{
  /** the sink instance or source reading the stream */
  readonly owner: string
  readonly stream: string
  readonly operation: string
  /** set when the call did not answer in time */
  readonly timeoutMs: number | undefined
  readonly cause: unknown
}> {
  override get message(): string {
    const why =
      this.timeoutMs === undefined ? causeMessage(this.cause) : `no answer within ${this.timeoutMs} ms`
    return `${this.owner}: ${this.operation} on stream ${this.stream} failed: ${why}`
  }
}

/** The broker answered a publish with PublishError (any code: the js client mis-decodes its ids). */
export class StreamPublishFailed extends Data.TaggedError("StreamPublishFailed")<{
  readonly sink: string
  readonly stream: string
  readonly checkpoint: number
  readonly code: number
}> {
  override get message(): string {
    return `${this.sink}: the broker refused a publish of checkpoint ${this.checkpoint} to stream ${this.stream} (code ${this.code})`
  }
}

/** Another connection holds the sink instance's exclusive lock queue and did not free it within `lockTimeout`. */
export class StreamSinkFenced extends Data.TaggedError("StreamSinkFenced")<{
  readonly sink: string
  readonly lock: string
  readonly lockTimeoutMs: number
}> {
  override get message(): string {
    return `${this.sink}: lock queue ${this.lock} is held by another connection (waited ${this.lockTimeoutMs} ms)`
  }
}

/** The connection holding the instance lock is gone: this process may be a zombie and must not publish. */
export class StreamSinkLockLost extends Data.TaggedError("StreamSinkLockLost")<{
  readonly sink: string
  readonly lock: string
  readonly cause: unknown
}> {
  override get message(): string {
    return `${this.sink}: lost the lock ${this.lock} (${causeMessage(this.cause)}); not publishing`
  }
}

/** A record with no JSON form. */
export class StreamRecordUnencodable extends Data.TaggedError("StreamRecordUnencodable")<{
  readonly sink: string
  readonly index: number
  readonly reason: string
}> {
  override get message(): string {
    return `${this.sink}: record ${this.index} of the batch cannot be encoded: ${this.reason}`
  }
}

export type StreamSinkError =
  | StreamOptionsInvalid
  | StreamCallFailed
  | StreamPublishFailed
  | StreamSinkFenced
  | StreamSinkLockLost
  | StreamRecordUnencodable
