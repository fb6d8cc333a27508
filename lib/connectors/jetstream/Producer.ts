/**
 * The input producer: publishes records into a JetStream stream idempotently, from an NDJSON file or
 * from a deterministic generator of orders, creating the stream (file storage) when it is absent.
 * Invariant: every record carries a deterministic msgID (`<stream>/<line>` or `<stream>/<id>`), so a
 * re-run within the stream's duplicate window stores nothing twice; acks are awaited, 1000 in flight.
 * An NDJSON file is validated whole before its first publish: a bad line means nothing is published.
 * With `partitions`, each record goes to `<subject>.<k>`, k = murmur3(key) mod count.
 */
import { createReadStream } from "node:fs"
import { createInterface } from "node:readline"
import {
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  StorageType
} from "@nats-io/jetstream"
import { nanos } from "@nats-io/transport-node"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { brokerUrlsFromEnv } from "../../brokers/BrokerUrls.ts"
import { maxPartitions } from "./JetStreamSourceOptions.ts"
import { type Partitioning, partitionOf } from "./Partitioning.ts"
import {
  type NatsConnection,
  type NatsSettingInvalid,
  natsConnection,
  type NatsUnavailable
} from "../../runtime/Nats.ts"
import { causeMessage } from "../../internal/causeMessage.ts"

/** An option that is missing or out of range. */
export class ProducerOptionsInvalid extends Data.TaggedError("ProducerOptionsInvalid")<{
  readonly field: string
  readonly value: unknown
  readonly reason: string
}> {
  override get message(): string {
    return `produce: ${this.field} ${this.reason} (got ${String(this.value)})`
  }
}

/** An NDJSON line that is not JSON (the first one; `badLines` counts them all). Nothing was published. */
export class MalformedInputLine extends Data.TaggedError("MalformedInputLine")<{
  readonly file: string
  readonly line: number
  readonly reason: string
  readonly badLines: number
}> {
  override get message(): string {
    const more = this.badLines > 1 ? ` (and ${this.badLines - 1} more bad lines)` : ""
    return `${this.file}:${this.line}: not a JSON record: ${this.reason}${more}; nothing was published`
  }
}

/** The input file cannot be read. */
export class InputUnreadable extends Data.TaggedError("InputUnreadable")<{
  readonly file: string
  readonly cause: unknown
}> {
  override get message(): string {
    const why = causeMessage(this.cause)
    return `cannot read ${this.file}: ${why}`
  }
}

/** A JetStream call that failed: stream lookup or creation, or a publish whose ack did not come. */
export class PublishFailed extends Data.TaggedError("PublishFailed")<{
  readonly stream: string
  readonly operation: string
  /** msgID of the publish that failed, if it was one */
  readonly msgID?: string
  /** acks received before the failure; re-running is safe (msgIDs deduplicate) */
  readonly acked: number
  readonly cause: unknown
}> {
  override get message(): string {
    const why = causeMessage(this.cause)
    const id = this.msgID === undefined ? "" : ` (msgID ${this.msgID})`
    return `stream ${this.stream}: ${this.operation}${id} failed after ${this.acked} acks: ${why}; re-running is safe`
  }
}

export type ProducerError =
  | ProducerOptionsInvalid
  | MalformedInputLine
  | InputUnreadable
  | PublishFailed
  | NatsUnavailable
  | NatsSettingInvalid

/** One generated order; `amount` is in cents. */
export interface Order {
  readonly id: number
  readonly customer: string
  readonly amount: number
}

export interface GenerateInput {
  /** Number of orders; ids 0 .. count-1. */
  readonly count: number
  /** Seed of the generator. Default 1. */
  readonly seed?: number
  /** Number of distinct customers. Default 1000. */
  readonly customers?: number
}

export interface ProduceOptions {
  /** NATS server. Default: `EXACTOR_NATS_URL`, else `nats://127.0.0.1:4222`. */
  readonly natsUrl?: string
  /** Stream to publish into (created when absent). Required. */
  readonly stream: string
  /** Subject to publish on. Default `<stream>.records`; a created stream binds this subject, else `<stream>.>`. */
  readonly subject?: string
  /**
   * The records: an NDJSON file (msgID `<stream>/<line number>`), generated orders (msgID
   * `<stream>/<id>`), or values in memory, each published as JSON (msgID `<stream>/<index>`;
   * `firstIndex` numbers them from there, so a later batch appends instead of deduplicating).
   */
  readonly input:
    | { readonly file: string }
    | { readonly generate: GenerateInput }
    | { readonly records: ReadonlyArray<unknown>; readonly firstIndex?: number }
  /** Publishes awaiting their ack at once. Default 1000. */
  readonly inFlight?: number
  /** Duplicate window of a created stream, in ms. Default 120000 (the server's). */
  readonly duplicateWindowMs?: number
  /**
   * Spread the records over `count` partition subjects `<subject>.<k>`, k = murmur3(record[key])
   * mod count (the hash of key groups), for a source that reads with `partitions: count`. A created
   * stream then binds `<subject>.*`. Absent: every record on `subject`.
   */
  readonly partitions?: Partitioning
}

export interface ProduceResult {
  readonly stream: string
  /** acks of newly stored messages */
  readonly published: number
  /** acks with `duplicate: true` (already stored under the same msgID) */
  readonly duplicates: number
  /** highest stream sequence acked (a duplicate's ack carries the original's sequence) */
  readonly lastSeq: number
}

// ---------------------------------------------------------------------------------------------
// Generator

/** mulberry32 step: a 32-bit integer → a 32-bit integer, well mixed. */
const mix = (a: number): number => {
  let t = (a + 0x6d2b79f5) | 0
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return (t ^ (t >>> 14)) >>> 0
}

/** Order `i` of the generator with `seed`: the same on every call, so tests compute totals without reading. */
export const generateOrder = (i: number, seed = 1, customers = 1000): Order => {
  const h1 = mix((Math.imul(seed, 0x9e3779b1) ^ i) | 0)
  const h2 = mix(h1 ^ 0x85ebca6b)
  const width = Math.max(4, String(customers - 1).length)
  return {
    id: i,
    customer: `c${String(h1 % customers).padStart(width, "0")}`,
    amount: 1 + (h2 % 100_000)
  }
}

// ---------------------------------------------------------------------------------------------
// Publishing

interface Outgoing {
  readonly msgID: string
  readonly data: Uint8Array
  /** the record's partition, when partitioned */
  readonly partition?: number
}

const streamNameOk = /^[^\s.*>/\\]+$/
const isPositiveInt = (n: unknown): n is number => typeof n === "number" && Number.isInteger(n) && n > 0

const validate = (o: ProduceOptions): ProducerOptionsInvalid | undefined => {
  const bad = (field: string, value: unknown, reason: string) =>
    new ProducerOptionsInvalid({ field, value, reason })
  if (typeof o.stream !== "string" || o.stream.length === 0)
    return bad("stream", o.stream, "must be a non-empty name")
  if (!streamNameOk.test(o.stream))
    return bad("stream", o.stream, "must not contain whitespace, '.', '*', '>', '/' or '\\'")
  if (o.subject !== undefined && (o.subject.length === 0 || /[\s*>]/.test(o.subject)))
    return bad("subject", o.subject, "must be a concrete subject (no wildcards, no whitespace)")
  if (o.inFlight !== undefined && !isPositiveInt(o.inFlight))
    return bad("inFlight", o.inFlight, "must be >= 1")
  if (o.duplicateWindowMs !== undefined && !isPositiveInt(o.duplicateWindowMs))
    return bad("duplicateWindowMs", o.duplicateWindowMs, "must be a positive integer (ms)")
  if (o.partitions !== undefined) {
    if (!isPositiveInt(o.partitions.count) || o.partitions.count > maxPartitions)
      return bad("partitions", o.partitions.count, `must be an integer in 1..${maxPartitions}`)
    if (typeof o.partitions.key !== "string" || o.partitions.key.length === 0)
      return bad("key", o.partitions.key, "must name a field of the records")
  }
  if ("file" in o.input) {
    if (typeof o.input.file !== "string" || o.input.file.length === 0)
      return bad("input.file", o.input.file, "must be a path")
  } else if ("records" in o.input) {
    if (!Array.isArray(o.input.records)) return bad("input.records", o.input.records, "must be an array")
  } else {
    const g = o.input.generate
    if (!Number.isInteger(g.count) || g.count < 0)
      return bad("input.generate.count", g.count, "must be an integer >= 0")
    if (g.seed !== undefined && !Number.isInteger(g.seed))
      return bad("input.generate.seed", g.seed, "must be an integer")
    if (g.customers !== undefined && !isPositiveInt(g.customers))
      return bad("input.generate.customers", g.customers, "must be >= 1")
    if (o.partitions !== undefined && !["id", "customer", "amount"].includes(o.partitions.key))
      return bad("key", o.partitions.key, "must be a field of the generated orders: id, customer or amount")
  }
  return undefined
}

const lines = (file: string) =>
  createInterface({
    input: createReadStream(file, { encoding: "utf8" }),
    crlfDelay: Number.POSITIVE_INFINITY
  })

/** Reads the whole file; fails with the first bad line (and how many there are). Blank lines are skipped. */
const validateFile = (file: string, partitions: ProduceOptions["partitions"]) =>
  Effect.tryPromise({
    try: async () => {
      let n = 0
      let first: { line: number; reason: string } | undefined
      let badLines = 0
      for await (const text of lines(file)) {
        n++
        if (text.trim().length === 0) continue
        try {
          const record: unknown = JSON.parse(text)
          const k = partitions === undefined ? 0 : partitionOf(record, partitions)
          if (typeof k === "string") throw new Error(k)
        } catch (e) {
          badLines++
          first ??= { line: n, reason: causeMessage(e) }
        }
      }
      return first === undefined ? undefined : { ...first, badLines }
    },
    catch: (cause) => new InputUnreadable({ file, cause })
  }).pipe(
    Effect.flatMap((bad) =>
      bad === undefined ? Effect.void : Effect.fail(new MalformedInputLine({ file, ...bad }))
    )
  )

/**
 * The records of an input as values, for a writer other than JetStream (the RabbitMQ stream input):
 * a file is validated whole first, as `produce` does, so a bad line means nothing is returned.
 */
export const readInputRecords = (
  input: ProduceOptions["input"],
  partitions?: ProduceOptions["partitions"]
): Effect.Effect<Array<unknown>, MalformedInputLine | InputUnreadable> => {
  if ("generate" in input) {
    const g = input.generate
    return Effect.succeed(Array.from({ length: g.count }, (_, i) => generateOrder(i, g.seed, g.customers)))
  }
  if ("records" in input) return Effect.succeed([...input.records])
  const file = input.file
  return validateFile(file, partitions).pipe(
    Effect.andThen(
      Effect.tryPromise({
        try: async () => {
          const records: Array<unknown> = []
          for await (const text of lines(file)) if (text.trim().length > 0) records.push(JSON.parse(text))
          return records
        },
        catch: (cause) => new InputUnreadable({ file, cause })
      })
    )
  )
}

async function* fileRecords(
  file: string,
  stream: string,
  partitions: ProduceOptions["partitions"]
): AsyncGenerator<Outgoing> {
  const enc = new TextEncoder()
  let n = 0
  for await (const text of lines(file)) {
    n++
    if (text.trim().length === 0) continue
    const data = enc.encode(text)
    // validated whole before the first publish: the key is there
    yield partitions === undefined
      ? { msgID: `${stream}/${n}`, data }
      : { msgID: `${stream}/${n}`, data, partition: partitionOf(JSON.parse(text), partitions) as number }
  }
}

/** Values as JSON messages, msgID `<stream>/<index>`; `what` names them in a partitioning error. */
function* valueRecords(
  values: Iterable<unknown>,
  stream: string,
  partitions: ProduceOptions["partitions"],
  what: string,
  firstIndex = 0
): Generator<Outgoing> {
  const enc = new TextEncoder()
  let i = firstIndex
  for (const value of values) {
    const data = enc.encode(JSON.stringify(value))
    if (partitions === undefined) yield { msgID: `${stream}/${i}`, data }
    else {
      const k = partitionOf(value, partitions)
      if (typeof k === "string") throw new Error(`${what} ${k}`)
      yield { msgID: `${stream}/${i}`, data, partition: k }
    }
    i++
  }
}

function* generatedOrders(g: GenerateInput): Generator<Order> {
  for (let i = 0; i < g.count; i++) yield generateOrder(i, g.seed, g.customers)
}

/** The stream, created with file storage when absent (a concurrent creator's stream is fine too). */
const ensureStream = (jsm: JetStreamManager, o: ProduceOptions) =>
  Effect.tryPromise({
    try: async () => {
      const exists = () =>
        jsm.streams.info(o.stream).then(
          () => true,
          (e: unknown) => {
            if (e instanceof Error && /stream not found/i.test(e.message)) return false
            throw e
          }
        )
      if (await exists()) return
      try {
        await jsm.streams.add({
          name: o.stream,
          subjects: [
            o.partitions !== undefined && o.subject !== undefined
              ? `${o.subject}.*`
              : (o.subject ?? `${o.stream}.>`)
          ],
          storage: StorageType.File,
          duplicate_window: nanos(o.duplicateWindowMs ?? 120_000)
        })
      } catch (cause) {
        if (!(await exists())) throw cause
      }
    },
    catch: (cause) => new PublishFailed({ stream: o.stream, operation: "create the stream", acked: 0, cause })
  })

/**
 * A publish whose ack does not come (a busy or restarting server) is repeated with the same msgID,
 * which the stream deduplicates: up to `publishTries` tries, `publishBackoffMs` × try apart.
 * (A plain loop: it runs per record inside the publishing window, where an Effect per record would
 * cost more than the publish.)
 */
export const publishTries = 5
export const publishBackoffMs = 200

const publishWithRetry = async (js: JetStreamClient, subject: string, r: Outgoing) => {
  for (let attempt = 1; ; attempt++) {
    try {
      return await js.publish(subject, r.data, { msgID: r.msgID, timeout: 10_000 })
    } catch (cause) {
      if (attempt >= publishTries) throw cause
      await new Promise((resolve) => setTimeout(resolve, publishBackoffMs * attempt))
    }
  }
}

/** Publishes everything with a sliding window of `inFlight` unacked publishes, in one plain async loop. */
const publishAll = (
  js: JetStreamClient,
  stream: string,
  subject: string,
  records: Iterable<Outgoing> | AsyncIterable<Outgoing>,
  inFlight: number
) =>
  Effect.tryPromise({
    try: async (signal) => {
      let published = 0
      let duplicates = 0
      let lastSeq = 0
      let failed: { msgID: string; cause: unknown } | undefined
      const window = new Set<Promise<void>>()
      for await (const r of records) {
        if (failed !== undefined || signal.aborted) break
        const to = r.partition === undefined ? subject : `${subject}.${r.partition}`
        const p: Promise<void> = publishWithRetry(js, to, r).then(
          (ack) => {
            if (ack.duplicate) duplicates++
            else published++
            if (ack.seq > lastSeq) lastSeq = ack.seq
            window.delete(p)
          },
          (cause: unknown) => {
            failed ??= { msgID: r.msgID, cause }
            window.delete(p)
          }
        )
        window.add(p)
        if (window.size >= inFlight) await Promise.race(window)
      }
      await Promise.all(window)
      if (failed !== undefined) return { failed, acked: published + duplicates }
      return { result: { stream, published, duplicates, lastSeq } satisfies ProduceResult }
    },
    catch: (cause) => new PublishFailed({ stream, operation: "publish", acked: 0, cause })
  }).pipe(
    Effect.flatMap((r) =>
      "result" in r
        ? Effect.succeed(r.result)
        : Effect.fail(
            new PublishFailed({
              stream,
              operation: "publish",
              msgID: r.failed.msgID,
              acked: r.acked,
              cause: r.failed.cause
            })
          )
    )
  )

/** Publishes `options.input` into `options.stream`; see the module comment for the guarantees. */
export const produce = (options: ProduceOptions): Effect.Effect<ProduceResult, ProducerError> =>
  Effect.scoped(
    Effect.gen(function* () {
      const invalid = validate(options)
      if (invalid !== undefined) return yield* invalid
      const { stream, input } = options
      if ("file" in input) yield* validateFile(input.file, options.partitions)
      const url = options.natsUrl ?? brokerUrlsFromEnv().natsUrl
      const nc: NatsConnection = yield* natsConnection(url, { name: `exactor-produce/${stream}` })
      const jsm = yield* Effect.tryPromise({
        try: () => jetstreamManager(nc),
        catch: (cause) => new PublishFailed({ stream, operation: "reach JetStream", acked: 0, cause })
      })
      yield* ensureStream(jsm, options)
      const subject = options.subject ?? `${stream}.records`
      const records =
        "file" in input
          ? fileRecords(input.file, stream, options.partitions)
          : "records" in input
            ? valueRecords(input.records, stream, options.partitions, "records", input.firstIndex)
            : valueRecords(generatedOrders(input.generate), stream, options.partitions, "generated orders")
      return yield* publishAll(jetstream(nc), stream, subject, records, options.inFlight ?? 1000)
    })
  )
