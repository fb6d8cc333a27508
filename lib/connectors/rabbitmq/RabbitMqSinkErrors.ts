/**
 * The typed failures of the RabbitMQ two-phase-commit sink (lib/connectors/rabbitmq/RabbitMqSink.ts), one tagged class each.
 * Invariant: every error names its instance, `sink` being the instance id `<job>/<sink>/<i>` (and
 * `checkpoint` the transaction's id); `RabbitMqSinkError` is the union of all of them.
 */
import * as Data from "effect/Data"
import { causeMessage } from "../../internal/causeMessage.ts"

export class SinkOptionsInvalid extends Data.TaggedError("SinkOptionsInvalid")<{
  readonly field: string
  readonly value: unknown
  readonly reason: string
}> {
  override get message(): string {
    return `rabbitMqSink: ${this.field} ${this.reason} (got ${JSON.stringify(this.value) ?? String(this.value)})`
  }
}
export class SinkConnectFailed extends Data.TaggedError("SinkConnectFailed")<{
  readonly sink: string
  readonly url: string
  readonly cause: unknown
}> {
  override get message(): string {
    return `${this.sink}: cannot connect to ${this.url}: ${causeMessage(this.cause)}`
  }
}
/** Another connection holds the instance lock (RESOURCE_LOCKED) and did not free it within `lockTimeout`. */
export class SinkFenced extends Data.TaggedError("SinkFenced")<{
  readonly sink: string
  readonly lock: string
  readonly lockTimeoutMs: number
}> {
  override get message(): string {
    return `${this.sink}: lock queue ${this.lock} is held by another connection (waited ${this.lockTimeoutMs} ms)`
  }
}
export class SinkConnectionLost extends Data.TaggedError("SinkConnectionLost")<{
  readonly sink: string
  readonly checkpoint: number
  readonly cause: unknown
}> {
  override get message(): string {
    return `${this.sink}: connection lost (transaction ${this.checkpoint}): ${causeMessage(this.cause)}`
  }
}
/** A channel operation failed or the server closed the channel (e.g. 404 exchange gone, 406 precondition). */
export class SinkChannelError extends Data.TaggedError("SinkChannelError")<{
  readonly sink: string
  readonly checkpoint: number
  readonly operation: string
  readonly replyCode: number | undefined
  readonly cause: unknown
}> {
  override get message(): string {
    const code = this.replyCode === undefined ? "" : ` [${this.replyCode}]`
    return `${this.sink}: ${this.operation} failed (transaction ${this.checkpoint})${code}: ${causeMessage(this.cause)}`
  }
}
/** `tx.commit` or a publish waiting for `drain` took longer than `commitTimeout` (`blocked`: a resource alarm blocks the connection). */
export class SinkTimeout extends Data.TaggedError("SinkTimeout")<{
  readonly sink: string
  readonly checkpoint: number
  readonly operation: "commit" | "publish"
  readonly timeoutMs: number
  readonly blocked: boolean
}> {
  override get message(): string {
    const b = this.blocked ? " (connection blocked by the broker)" : ""
    return `${this.sink}: ${this.operation} of transaction ${this.checkpoint} took over ${this.timeoutMs} ms${b}`
  }
}
/**
 * Records came back unroutable (`basic.return`, mandatory): routing is decided at publish (e.g. the
 * exchange had no matching binding), the returns arrive only at commit. The routable part and the
 * marker are committed (AMQP cannot undo that), so this must fail the job loudly: a recovery would
 * see the marker and skip.
 */
export class SinkRecordUnroutable extends Data.TaggedError("SinkRecordUnroutable")<{
  readonly sink: string
  readonly checkpoint: number
  readonly count: number
  readonly messageIds: ReadonlyArray<string>
}> {
  override get message(): string {
    return `${this.sink}: ${this.count} record(s) of transaction ${this.checkpoint} unroutable, e.g. ${this.messageIds.slice(0, 3).join(", ")}`
  }
}
export class SinkRecordUnencodable extends Data.TaggedError("SinkRecordUnencodable")<{
  readonly sink: string
  readonly index: number
  readonly reason: string
}> {
  override get message(): string {
    return `${this.sink}: record ${this.index} of the batch has no JSON form: ${this.reason}`
  }
}
export class SinkMarkerInvalid extends Data.TaggedError("SinkMarkerInvalid")<{
  readonly sink: string
  readonly queue: string
  readonly body: string
}> {
  override get message(): string {
    return `${this.sink}: marker queue ${this.queue} holds something that is not this instance's marker: ${this.body.slice(0, 200)}`
  }
}

export type RabbitMqSinkError =
  | SinkOptionsInvalid
  | SinkConnectFailed
  | SinkFenced
  | SinkConnectionLost
  | SinkChannelError
  | SinkTimeout
  | SinkRecordUnroutable
  | SinkRecordUnencodable
  | SinkMarkerInvalid
