/**
 * The typed failures of the RabbitMQ stream source, and `StreamDecodeFailure`, what a decoder
 * returns for a payload that is not a record. Invariant: every error names the stream (a partition
 * stream, for a partitioned source) and the offset or position at fault; a decoder's rejection is a value.
 */
import * as Data from "effect/Data"

/** A recorded position that does not fit this source or instance. */
export class StreamPositionInvalid extends Data.TaggedError("StreamPositionInvalid")<{
  readonly stream: string
  readonly position: unknown
  readonly reason: string
}> {
  override get message(): string {
    return `rabbitmqStreamSource ${this.stream}: cannot resume from position ${JSON.stringify(this.position)}: ${this.reason}`
  }
}

/** A payload that the decoder rejected; the reader stays before it (the position's offset is `offset`). */
export class StreamRecordMalformed extends Data.TaggedError("StreamRecordMalformed")<{
  /** the stream it was read from (`<stream>-<k>` for partition k) */
  readonly stream: string
  readonly offset: number
  readonly partition: number
  readonly reason: string
}> {
  override get message(): string {
    return `stream ${this.stream}: message at offset ${this.offset} (partition ${this.partition}) is not a record: ${this.reason}`
  }
}

/** What a decoder returns for a payload that is not a record. */
export class StreamDecodeFailure extends Data.TaggedClass("StreamDecodeFailure")<{
  readonly reason: string
}> {}
