/**
 * The RabbitMQ sink's options, their defaults (written once, here) and their validation at start-up.
 * Invariant: `resolveOptions` yields a complete `Resolved` (every default applied, the lock and marker
 * queue names derived) or fails with `SinkOptionsInvalid` naming the first bad field.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { redactUrl } from "../../internal/redactUrl.ts"
import { SinkOptionsInvalid } from "./RabbitMqSinkErrors.ts"
import { lockQueueName, markerQueueName } from "./RabbitMqSinkWire.ts"

export interface RabbitMqSinkOptions {
  /** AMQP URL (`amqp://` or `amqps://`). Required. */
  readonly url: string
  /** Job name; part of queue names and record ids (no `/`, no whitespace). Required. */
  readonly job: string
  /** Sink operator name; part of queue names and record ids (no `/`, no whitespace). Required. */
  readonly sink: string
  /** Index of this sink instance (integer >= 0). Required. */
  readonly instance: number
  /** Output queue, declared durable with no length limit. Required. */
  readonly queue: string
  /** Exchange records are published to. Default `""` (the default exchange). A named exchange must already exist; the queue is bound to it with `routingKey`. */
  readonly exchange?: string
  /** Routing key of every record. Default: `queue`. */
  readonly routingKey?: string
  /** Declare the output queue as a quorum queue (replicated; recommended in production). Default `false` (classic durable). */
  readonly quorum?: boolean
  /** Publishes per AMQP transaction, the commit marker included, so a transaction holds at most this minus 1 records. Default 10,000 (RabbitMQ's `channel_tx_message_max`); at least 2. */
  readonly maxTransactionMessages?: number
  /** How long `tx.commit` (and a publish waiting for `drain`) may take before it is in doubt. Default 10 seconds. */
  readonly commitTimeout?: Duration.Input
  /** AMQP heartbeat in seconds (1–60). Default 5: after a SIGSTOP'd holder, the broker frees the lock only after missed heartbeats (~2.5× this). */
  readonly heartbeatSeconds?: number
  /** How long to keep retrying to take the instance lock before failing with SinkFenced. Default 30 seconds. */
  readonly lockTimeout?: Duration.Input
  /** Pre-committed transactions beyond which input waits while a commit is in flight (the next transaction fills during a commit). Default 2; at least 1. */
  readonly maxPendingTransactions?: number
  /** `content_type` of every record (e.g. `"application/json"`). Default: none (see `recordProperties`). */
  readonly contentType?: string
  /** Also put the checkpoint id in header `x-exactor-checkpoint` (it is always the 4th part of `messageId`). Default `false` (see `recordProperties`). */
  readonly checkpointHeader?: boolean
}

export interface Resolved {
  readonly url: string
  readonly job: string
  readonly sink: string
  readonly instance: number
  readonly id: string
  readonly queue: string
  readonly exchange: string
  readonly routingKey: string
  readonly quorum: boolean
  readonly maxRecords: number
  readonly commitTimeoutMs: number
  readonly heartbeatSeconds: number
  readonly lockTimeoutMs: number
  readonly lock: string
  readonly marker: string
  readonly contentType: string | undefined
  readonly checkpointHeader: boolean
  readonly maxPendingTransactions: number
}

const millisOf = (field: string, input: Duration.Input | undefined, fallback: number) => {
  if (input === undefined) return Effect.succeed(fallback)
  const d = Duration.fromInput(input)
  if (Option.isNone(d) || !Duration.isFinite(d.value) || Duration.toMillis(d.value) <= 0)
    return Effect.fail(
      new SinkOptionsInvalid({ field, value: input, reason: "must be a finite positive duration" })
    )
  return Effect.succeed(Duration.toMillis(d.value))
}

/** Applies defaults and checks every option, failing with the first bad field. */
export const resolveOptions = (o: RabbitMqSinkOptions): Effect.Effect<Resolved, SinkOptionsInvalid> =>
  Effect.gen(function* () {
    const bad = (field: string, value: unknown, reason: string) =>
      Effect.fail(new SinkOptionsInvalid({ field, value, reason }))
    const url = typeof o.url === "string" && URL.canParse(o.url) ? new URL(o.url) : undefined
    if (!url || (url.protocol !== "amqp:" && url.protocol !== "amqps:"))
      return yield* bad(
        "url",
        typeof o.url === "string" ? redactUrl(o.url) : o.url,
        "must be an amqp:// or amqps:// URL"
      )
    const token = /^[^/\s]{1,100}$/
    if (typeof o.job !== "string" || !token.test(o.job))
      return yield* bad("job", o.job, "must be 1-100 chars without / or whitespace")
    if (typeof o.sink !== "string" || !token.test(o.sink))
      return yield* bad("sink", o.sink, "must be 1-100 chars without / or whitespace")
    if (!Number.isSafeInteger(o.instance) || o.instance < 0)
      return yield* bad("instance", o.instance, "must be an integer >= 0")
    if (
      typeof o.queue !== "string" ||
      o.queue.length === 0 ||
      Buffer.byteLength(o.queue) > 255 ||
      o.queue.startsWith("amq.")
    )
      return yield* bad("queue", o.queue, "must be a queue name of 1-255 bytes not starting with amq.")
    const exchange = o.exchange ?? ""
    if (typeof exchange !== "string" || Buffer.byteLength(exchange) > 255)
      return yield* bad("exchange", o.exchange, "must be a string of at most 255 bytes")
    const routingKey = o.routingKey ?? o.queue
    if (typeof routingKey !== "string" || Buffer.byteLength(routingKey) > 255)
      return yield* bad("routingKey", o.routingKey, "must be a string of at most 255 bytes")
    const quorum = o.quorum ?? false
    if (typeof quorum !== "boolean") return yield* bad("quorum", o.quorum, "must be a boolean")
    const maxMessages = o.maxTransactionMessages ?? 10_000
    if (!Number.isSafeInteger(maxMessages) || maxMessages < 2)
      return yield* bad("maxTransactionMessages", o.maxTransactionMessages, "must be an integer >= 2")
    const heartbeatSeconds = o.heartbeatSeconds ?? 5
    if (!Number.isInteger(heartbeatSeconds) || heartbeatSeconds < 1 || heartbeatSeconds > 60)
      return yield* bad("heartbeatSeconds", o.heartbeatSeconds, "must be an integer from 1 to 60")
    const contentType = o.contentType
    if (
      contentType !== undefined &&
      (typeof contentType !== "string" || Buffer.byteLength(contentType) > 255)
    )
      return yield* bad("contentType", o.contentType, "must be a string of at most 255 bytes")
    const checkpointHeader = o.checkpointHeader ?? false
    if (typeof checkpointHeader !== "boolean")
      return yield* bad("checkpointHeader", o.checkpointHeader, "must be a boolean")
    const maxPendingTransactions = o.maxPendingTransactions ?? 2
    if (!Number.isSafeInteger(maxPendingTransactions) || maxPendingTransactions < 1)
      return yield* bad("maxPendingTransactions", o.maxPendingTransactions, "must be an integer >= 1")
    const commitTimeoutMs = yield* millisOf("commitTimeout", o.commitTimeout, 10_000)
    const lockTimeoutMs = yield* millisOf("lockTimeout", o.lockTimeout, 30_000)
    url.searchParams.set("heartbeat", String(heartbeatSeconds))
    return {
      url: url.toString(),
      job: o.job,
      sink: o.sink,
      instance: o.instance,
      id: `${o.job}/${o.sink}/${o.instance}`,
      queue: o.queue,
      exchange,
      routingKey,
      quorum,
      maxRecords: maxMessages - 1,
      commitTimeoutMs,
      heartbeatSeconds,
      lockTimeoutMs,
      lock: lockQueueName(o.job, o.sink, o.instance),
      marker: markerQueueName(o.job, o.sink, o.instance),
      contentType,
      checkpointHeader,
      maxPendingTransactions
    }
  })
