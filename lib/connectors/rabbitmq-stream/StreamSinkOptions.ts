/**
 * The RabbitMQ stream sink's options, their defaults (written once, here) and their validation at
 * start-up. Invariant: `resolveStreamSinkOptions` yields every field resolved (the producer name and
 * the lock queue derived from job, sink and instance) or fails with `StreamOptionsInvalid` naming the field.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { redactUrl } from "../../internal/redactUrl.ts"
import { parseStreamUrl, type StreamEndpoint } from "./StreamClient.ts"
import { StreamOptionsInvalid } from "./StreamErrors.ts"

export interface RabbitMqStreamSinkOptions {
  /** Stream-protocol URL, `rabbitmq-stream://user:pass@host:5552/vhost` (TLS: `rabbitmq-stream+tls://…:5551/vhost`). Required. */
  readonly streamUrl: string
  /** AMQP URL of the same broker: the instance's exclusive lock queue lives there. Required. */
  readonly amqpUrl: string
  /** Job name (no `/`, no whitespace). Required. */
  readonly job: string
  /** Sink operator name (no `/`, no whitespace). Required. */
  readonly sink: string
  /** Index of this sink instance (integer >= 0). Required. */
  readonly instance: number
  /** Output stream; created if missing. Required. */
  readonly stream: string
  /** Records per transaction (one checkpoint's publish). Default 10,000; at least 1. */
  readonly maxTransactionRecords?: number
  /** How long a publish may wait for its confirms, and every other call for its answer. Default 10 seconds. */
  readonly commitTimeout?: Duration.Input
  /** How long to keep retrying to take the instance lock before failing with StreamSinkFenced. Default 30 seconds. */
  readonly lockTimeout?: Duration.Input
  /** How long a commit in doubt keeps being retried (every 500 ms) before the epoch fails. Default 90 seconds: a RabbitMQ node restart fits in it. */
  readonly commitRetryTimeout?: Duration.Input
  /** AMQP and stream heartbeat in seconds (1-60). Default 5: a SIGSTOP'd holder loses the lock after ~2.5x this. */
  readonly heartbeatSeconds?: number
}

export interface ResolvedStreamSink {
  readonly endpoint: StreamEndpoint
  readonly amqpUrl: string
  readonly job: string
  readonly sink: string
  readonly instance: number
  /** `<job>/<sink>/<i>`: names the instance in errors, and is its producer name on the stream */
  readonly id: string
  readonly producerName: string
  readonly stream: string
  readonly lock: string
  readonly maxRecords: number
  readonly timeoutMs: number
  readonly lockTimeoutMs: number
  readonly commitRetryTimeoutMs: number
  readonly heartbeatSeconds: number
}

/** `exactor.<job>.<sink>.<i>.stream-lock`: the exclusive queue that fences one stream sink instance. */
export const streamLockQueueName = (job: string, sink: string, instance: number): string =>
  `exactor.${job}.${sink}.${instance}.stream-lock`

/** `<job>/<sink>/<i>`: the producer name (deduplication reference) of one sink instance. */
export const streamProducerName = (job: string, sink: string, instance: number): string =>
  `${job}/${sink}/${instance}`

const millisOf = (field: string, input: Duration.Input | undefined, fallback: number) => {
  if (input === undefined) return Effect.succeed(fallback)
  const d = Duration.fromInput(input)
  if (Option.isNone(d) || !Duration.isFinite(d.value) || Duration.toMillis(d.value) <= 0)
    return Effect.fail(
      new StreamOptionsInvalid({ field, value: input, reason: "must be a finite positive duration" })
    )
  return Effect.succeed(Duration.toMillis(d.value))
}

/** Stream names: what RabbitMQ accepts as a queue name, 1-255 bytes, not `amq.`. */
export const validStreamName = (s: unknown): s is string =>
  typeof s === "string" && s.length > 0 && Buffer.byteLength(s) <= 255 && !s.startsWith("amq.")

export const resolveStreamSinkOptions = (
  o: RabbitMqStreamSinkOptions
): Effect.Effect<ResolvedStreamSink, StreamOptionsInvalid> =>
  Effect.gen(function* () {
    const bad = (field: string, value: unknown, reason: string) =>
      Effect.fail(new StreamOptionsInvalid({ field, value, reason }))
    const endpoint = typeof o.streamUrl === "string" ? parseStreamUrl(o.streamUrl) : undefined
    if (endpoint === undefined)
      return yield* bad(
        "streamUrl",
        typeof o.streamUrl === "string" ? redactUrl(o.streamUrl) : o.streamUrl,
        "must be a rabbitmq-stream:// or rabbitmq-stream+tls://user:pass@host:port/vhost URL"
      )
    const amqp = typeof o.amqpUrl === "string" && URL.canParse(o.amqpUrl) ? new URL(o.amqpUrl) : undefined
    if (!amqp || (amqp.protocol !== "amqp:" && amqp.protocol !== "amqps:"))
      return yield* bad("amqpUrl", o.amqpUrl, "must be an amqp:// or amqps:// URL")
    const token = /^[^/\s]{1,80}$/
    if (typeof o.job !== "string" || !token.test(o.job))
      return yield* bad("job", o.job, "must be 1-80 chars without / or whitespace")
    if (typeof o.sink !== "string" || !token.test(o.sink))
      return yield* bad("sink", o.sink, "must be 1-80 chars without / or whitespace")
    if (!Number.isSafeInteger(o.instance) || o.instance < 0)
      return yield* bad("instance", o.instance, "must be an integer >= 0")
    if (!validStreamName(o.stream))
      return yield* bad("stream", o.stream, "must be a stream name of 1-255 bytes not starting with amq.")
    const maxRecords = o.maxTransactionRecords ?? 10_000
    if (!Number.isSafeInteger(maxRecords) || maxRecords < 1)
      return yield* bad("maxTransactionRecords", o.maxTransactionRecords, "must be an integer >= 1")
    const heartbeatSeconds = o.heartbeatSeconds ?? 5
    if (!Number.isInteger(heartbeatSeconds) || heartbeatSeconds < 1 || heartbeatSeconds > 60)
      return yield* bad("heartbeatSeconds", o.heartbeatSeconds, "must be an integer from 1 to 60")
    const timeoutMs = yield* millisOf("commitTimeout", o.commitTimeout, 10_000)
    const lockTimeoutMs = yield* millisOf("lockTimeout", o.lockTimeout, 30_000)
    const commitRetryTimeoutMs = yield* millisOf("commitRetryTimeout", o.commitRetryTimeout, 90_000)
    amqp.searchParams.set("heartbeat", String(heartbeatSeconds))
    return {
      endpoint,
      amqpUrl: amqp.toString(),
      job: o.job,
      sink: o.sink,
      instance: o.instance,
      id: streamProducerName(o.job, o.sink, o.instance),
      producerName: streamProducerName(o.job, o.sink, o.instance),
      stream: o.stream,
      lock: streamLockQueueName(o.job, o.sink, o.instance),
      maxRecords,
      timeoutMs,
      lockTimeoutMs,
      commitRetryTimeoutMs,
      heartbeatSeconds
    }
  })
