/**
 * Options of `rabbitMqStreamSource`: their defaults (written once, here), their eager validation,
 * and the default decoder `decodeJsonRecord`. Invariant: resolved options have every field filled in
 * and in range; a bad option is a `StreamOptionsInvalid` naming the first bad field.
 */
import { causeMessage } from "../../internal/causeMessage.ts"
import { isPositiveInt } from "../../internal/isPositiveInt.ts"
import { redactUrl } from "../../internal/redactUrl.ts"
import { parseStreamUrl, type StreamEndpoint } from "./StreamClient.ts"
import { StreamOptionsInvalid } from "./StreamErrors.ts"
import { StreamDecodeFailure } from "./StreamSourceErrors.ts"
import { maxStreamPartitions, partitionStreams } from "./StreamPartitioning.ts"

export interface RabbitMqStreamSourceOptions<A> {
  /** Stream-protocol URL, `rabbitmq-stream://user:pass@host:5552/vhost` (TLS: `rabbitmq-stream+tls://…:5551/vhost`). Required. */
  readonly streamUrl: string
  /** Stream to read; with `partitions`, the prefix of the partition streams `<stream>-<k>`. Required. */
  readonly stream: string
  /**
   * Read a partitioned input: its records are in the streams `<stream>-0` … `<stream>-<P-1>`, routed
   * by key (`streamPartitionOf`), and each instance reads only the partitions it owns. Absent: the
   * one stream `stream`, read by one instance.
   */
  readonly partitions?: number
  /** Default unbounded. `"atStart"`: up to each stream's last offset at the job's first open. */
  readonly bounded?: "atStart"
  /** Payload → record, or `StreamDecodeFailure`. Default: UTF-8 JSON, not checked against `A`. */
  readonly decode?: (bytes: Uint8Array, offset: number) => A | StreamDecodeFailure
  /** `"fail"` (default): a malformed payload is a `StreamRecordMalformed` error. `"skip-and-count"`: skipped, counted. */
  readonly onMalformed?: "fail" | "skip-and-count"
  /** Longest `read` waits when nothing is buffered, in ms. Default 50. */
  readonly idleMs?: number
  /** Most messages held ahead of `read` per partition (the consumer then waits, granting no credit). Default 4000. */
  readonly maxBuffered?: number
  /** How long every stream-protocol call may take, in ms. Default 10 000. */
  readonly timeoutMs?: number
  /** How long the last chunk of a stream may take to arrive when its last offset is asked; silence means empty. Default 2000 ms. */
  readonly lastOffsetWaitMs?: number
  /** KV bucket (NATS) holding the job-wide ends of bounded sources. Default `"exactor-source-bounds"`. */
  readonly boundsBucket?: string
}

export interface ResolvedStreamSourceOptions<A> {
  readonly endpoint: StreamEndpoint
  readonly stream: string
  /** partition k's stream, index = k */
  readonly streams: ReadonlyArray<string>
  readonly partitions: number
  readonly bounded: "atStart" | undefined
  readonly decode: (bytes: Uint8Array, offset: number) => A | StreamDecodeFailure
  readonly skipMalformed: boolean
  readonly idleMs: number
  readonly maxBuffered: number
  readonly timeoutMs: number
  readonly lastOffsetWaitMs: number
  readonly boundsBucket: string
}

const utf8 = new TextDecoder("utf-8", { fatal: true })

/** The default decoder: UTF-8 JSON. */
export const decodeJsonRecord = <A>(bytes: Uint8Array): A | StreamDecodeFailure => {
  try {
    return JSON.parse(utf8.decode(bytes)) as A
  } catch (e) {
    return new StreamDecodeFailure({ reason: causeMessage(e) })
  }
}

const streamNameOk = /^[^\s/\\]{1,200}$/
const bucketNameOk = /^[-\w]+$/

/** Checks every option and fills in defaults; the error names the first bad field. */
export const resolveStreamSourceOptions = <A>(
  o: RabbitMqStreamSourceOptions<A>
): ResolvedStreamSourceOptions<A> | StreamOptionsInvalid => {
  const bad = (field: string, value: unknown, reason: string) =>
    new StreamOptionsInvalid({ field, value, reason })
  const endpoint = typeof o.streamUrl === "string" ? parseStreamUrl(o.streamUrl) : undefined
  if (endpoint === undefined)
    return bad(
      "streamUrl",
      typeof o.streamUrl === "string" ? redactUrl(o.streamUrl) : o.streamUrl,
      "must be a rabbitmq-stream:// or rabbitmq-stream+tls://user:pass@host:port/vhost URL"
    )
  if (typeof o.stream !== "string" || !streamNameOk.test(o.stream))
    return bad("stream", o.stream, "must be 1-200 characters without whitespace, '/' or '\\'")
  if (o.partitions !== undefined && (!isPositiveInt(o.partitions) || o.partitions > maxStreamPartitions))
    return bad("partitions", o.partitions, `must be an integer in 1..${maxStreamPartitions}`)
  if (o.bounded !== undefined && o.bounded !== "atStart")
    return bad("bounded", o.bounded, 'must be "atStart"')
  if (o.decode !== undefined && typeof o.decode !== "function")
    return bad("decode", o.decode, "must be a function")
  if (o.onMalformed !== undefined && o.onMalformed !== "fail" && o.onMalformed !== "skip-and-count")
    return bad("onMalformed", o.onMalformed, 'must be "fail" or "skip-and-count"')
  const idleMs = o.idleMs ?? 50
  if (!isPositiveInt(idleMs)) return bad("idleMs", idleMs, "must be a positive integer (ms)")
  const maxBuffered = o.maxBuffered ?? 4000
  if (!isPositiveInt(maxBuffered)) return bad("maxBuffered", maxBuffered, "must be a positive integer")
  const timeoutMs = o.timeoutMs ?? 10_000
  if (!isPositiveInt(timeoutMs)) return bad("timeoutMs", timeoutMs, "must be a positive integer (ms)")
  const lastOffsetWaitMs = o.lastOffsetWaitMs ?? 2000
  if (!isPositiveInt(lastOffsetWaitMs))
    return bad("lastOffsetWaitMs", lastOffsetWaitMs, "must be a positive integer (ms)")
  const boundsBucket = o.boundsBucket ?? "exactor-source-bounds"
  if (!bucketNameOk.test(boundsBucket)) return bad("boundsBucket", boundsBucket, "must match [-A-Za-z0-9_]+")
  return {
    endpoint,
    stream: o.stream,
    streams: partitionStreams(o.stream, o.partitions),
    partitions: o.partitions ?? 1,
    bounded: o.bounded,
    decode: o.decode ?? decodeJsonRecord,
    skipMalformed: o.onMalformed === "skip-and-count",
    idleMs,
    maxBuffered,
    timeoutMs,
    lastOffsetWaitMs,
    boundsBucket
  }
}
