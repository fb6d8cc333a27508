/**
 * Options of `jetStreamSource`: their defaults (written once, here), their eager validation, and
 * the default decoder `decodeJson`. Invariant: resolved options have every field filled in and in
 * range; a bad option is a `SourceOptionsInvalid` naming the first bad field.
 */
import { isPositiveInt } from "../../internal/isPositiveInt.ts"
import { DecodeFailure, SourceOptionsInvalid } from "./SourceError.ts"
import { causeMessage } from "../../internal/causeMessage.ts"

export interface JetStreamSourceOptions<A> {
  /** Stream to read. Required, a valid stream name. */
  readonly stream: string
  /** Payload → record, or `DecodeFailure`. Default: UTF-8 JSON, not checked against `A` (validate in `decode`). */
  readonly decode?: (bytes: Uint8Array, seq: number) => A | DecodeFailure
  /**
   * `"fail"` (default): a malformed payload is a `MalformedRecord` error. `"skip-and-count"`:
   * skipped, counted in `malformed()`. `"deadLetter"`: returned as `undecoded` (the source
   * declaration then has the `deadLetter` policy: the payload reaches its `deadLetters` output).
   */
  readonly onMalformed?: "fail" | "skip-and-count" | "deadLetter"
  /** Default unbounded. `"atStart"`: up to the stream's last sequence at the job's first open. `{ records: N }`: the N sequences from the stream's first one at the job's first open. */
  readonly bounded?: "atStart" | { readonly records: number }
  /** Longest `read` waits when nothing is buffered, in ms. Default 50. */
  readonly idleMs?: number
  /** Messages asked for per fetch. Default 1000. */
  readonly fetchSize?: number
  /** Most messages held ahead of `read` (the fetcher waits beyond). Default 4 × `fetchSize`. */
  readonly maxBuffered?: number
  /** How long one fetch waits for messages at the tail, in ms (server minimum 1000). Default 1000. */
  readonly fetchExpiresMs?: number
  /** KV bucket holding the job-wide end of bounded sources. Default `"exactor-source-bounds"`. */
  readonly boundsBucket?: string
  /**
   * Read a partitioned stream: its records are on `<subject>.<k>`, k in 0..partitions-1 (as
   * `exactor produce --partitions` writes them), and each instance reads only the partitions it
   * owns, one consumer each. Absent: instances split the stream by sequence (each reads all of it).
   */
  readonly partitions?: number
  /** The partition subjects' prefix. Default `<stream>.records`. Only with `partitions`. */
  readonly subject?: string
}

export interface ResolvedJetStreamSourceOptions<A> {
  readonly stream: string
  readonly decode: (bytes: Uint8Array, seq: number) => A | DecodeFailure
  readonly skipMalformed: boolean
  readonly deadLetterMalformed: boolean
  readonly bounded: "atStart" | { readonly records: number } | undefined
  readonly idleMs: number
  readonly fetchSize: number
  readonly maxBuffered: number
  readonly fetchExpiresMs: number
  readonly boundsBucket: string
  readonly partitions: number | undefined
  readonly subject: string
}

const utf8 = new TextDecoder("utf-8", { fatal: true })

/** The default decoder: UTF-8 JSON. */
export const decodeJson = <A>(bytes: Uint8Array): A | DecodeFailure => {
  try {
    return JSON.parse(utf8.decode(bytes)) as A
  } catch (e) {
    return new DecodeFailure({ reason: causeMessage(e) })
  }
}

const streamNameOk = /^[^\s.*>/\\]+$/
const bucketNameOk = /^[-\w]+$/
const subjectOk = /^[^\s*>]+$/
/** Most partitions a stream may have: each owned partition is one consumer of its instance. */
export const maxPartitions = 1024

/** Checks every option and fills in defaults; the error names the first bad field. */
export const resolveJetStreamSourceOptions = <A>(
  o: JetStreamSourceOptions<A>
): ResolvedJetStreamSourceOptions<A> | SourceOptionsInvalid => {
  const bad = (field: string, value: unknown, reason: string) =>
    new SourceOptionsInvalid({ field, value, reason })
  if (typeof o.stream !== "string" || o.stream.length === 0)
    return bad("stream", o.stream, "must be a non-empty name")
  if (!streamNameOk.test(o.stream))
    return bad("stream", o.stream, "must not contain whitespace, '.', '*', '>', '/' or '\\'")
  if (
    o.onMalformed !== undefined &&
    o.onMalformed !== "fail" &&
    o.onMalformed !== "skip-and-count" &&
    o.onMalformed !== "deadLetter"
  )
    return bad("onMalformed", o.onMalformed, 'must be "fail", "skip-and-count" or "deadLetter"')
  if (o.bounded !== undefined && o.bounded !== "atStart") {
    if (typeof o.bounded !== "object" || !isPositiveInt(o.bounded.records))
      return bad(
        "bounded.records",
        (o.bounded as { records?: unknown }).records,
        "must be a positive integer"
      )
  }
  if (o.decode !== undefined && typeof o.decode !== "function")
    return bad("decode", o.decode, "must be a function")
  const idleMs = o.idleMs ?? 50
  if (!isPositiveInt(idleMs)) return bad("idleMs", idleMs, "must be a positive integer (ms)")
  const fetchSize = o.fetchSize ?? 1000
  if (!isPositiveInt(fetchSize)) return bad("fetchSize", fetchSize, "must be a positive integer")
  const maxBuffered = o.maxBuffered ?? 4 * fetchSize
  if (!isPositiveInt(maxBuffered) || maxBuffered < fetchSize)
    return bad("maxBuffered", maxBuffered, `must be an integer >= fetchSize (${fetchSize})`)
  const fetchExpiresMs = o.fetchExpiresMs ?? 1000
  if (!Number.isInteger(fetchExpiresMs) || fetchExpiresMs < 1000)
    return bad("fetchExpiresMs", fetchExpiresMs, "must be an integer >= 1000 (the server's minimum)")
  const boundsBucket = o.boundsBucket ?? "exactor-source-bounds"
  if (!bucketNameOk.test(boundsBucket)) return bad("boundsBucket", boundsBucket, "must match [-A-Za-z0-9_]+")
  if (o.partitions !== undefined && (!isPositiveInt(o.partitions) || o.partitions > maxPartitions))
    return bad("partitions", o.partitions, `must be an integer in 1..${maxPartitions}`)
  if (o.subject !== undefined && (o.partitions === undefined || !subjectOk.test(o.subject)))
    return bad(
      "subject",
      o.subject,
      o.partitions === undefined ? "is only used with partitions" : "must be a subject without wildcards"
    )
  if (o.partitions !== undefined && o.bounded !== undefined && o.bounded !== "atStart")
    return bad("bounded", o.bounded, 'must be "atStart" for a partitioned stream')
  return {
    stream: o.stream,
    decode: o.decode ?? decodeJson,
    skipMalformed: o.onMalformed === "skip-and-count",
    deadLetterMalformed: o.onMalformed === "deadLetter",
    bounded: o.bounded,
    idleMs,
    fetchSize,
    maxBuffered,
    fetchExpiresMs,
    boundsBucket,
    partitions: o.partitions,
    subject: o.subject ?? `${o.stream}.records`
  }
}
