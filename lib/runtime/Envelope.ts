/**
 * The one wire format of exactor: every NATS message is a msgpack-encoded envelope
 * `{ k: kind, e: epoch, c: channel/sender, ... }` (DESIGN §2).
 * Invariant: `decode` never throws and never lets a malformed message through; it returns a
 * typed `EnvelopeDecodeError` that names what was wrong.
 */
import * as Data from "effect/Data"
import { causeMessage } from "../internal/causeMessage.ts"
import { packr } from "../internal/msgpack.ts"

/** Data plane: what travels on a mailbox subject, in `seq` order per (epoch, channel). */
export interface BatchEnvelope {
  readonly k: "batch"
  readonly e: number
  readonly c: string
  readonly s: number
  readonly r: ReadonlyArray<unknown>
  /** the records' event times (ms), one per record, iff the stream carries event time */
  readonly t?: ReadonlyArray<number>
  /** a watermark that follows the records (it closed the batch) */
  readonly w?: number
}
/** A watermark when no batch was open to carry it; needs no credit. */
export interface WatermarkEnvelope {
  readonly k: "wm"
  readonly e: number
  readonly c: string
  readonly s: number
  readonly w: number
}
/** The channel's watermark status: `on` true, the sender is idle and sends no watermarks. */
export interface IdleEnvelope {
  readonly k: "idle"
  readonly e: number
  readonly c: string
  readonly s: number
  readonly on: boolean
}
export interface BarrierEnvelope {
  readonly k: "barrier"
  readonly e: number
  readonly c: string
  readonly s: number
  /** checkpoint id */
  readonly n: number
}
export interface EosEnvelope {
  readonly k: "eos"
  readonly e: number
  readonly c: string
  readonly s: number
}
export type DataEnvelope = BatchEnvelope | BarrierEnvelope | EosEnvelope | WatermarkEnvelope | IdleEnvelope

/** Credit: receiver `c` allows its upstream to send batches with batch number < `g`. */
export interface CreditEnvelope {
  readonly k: "credit"
  readonly e: number
  readonly c: string
  readonly g: number
}

/** Commands of the coordinator to one instance (request/reply on the control subject). */
export type ControlKind = "restore" | "run" | "trigger" | "complete" | "abort" | "stop"
export interface ControlEnvelope {
  readonly k: ControlKind
  readonly e: number
  /** the coordinator's incarnation */
  readonly c: string
  /** checkpoint id, where the command has one */
  readonly n?: number
  readonly b?: unknown
}
export interface ReplyEnvelope {
  readonly k: "reply"
  readonly e: number
  readonly c: string
  readonly ok: boolean
  readonly b?: unknown
  readonly err?: string
}

/** Reports of instances (and of the launcher) to the coordinator. */
export type ReportKind = "hello" | "heartbeat" | "ack" | "fail" | "finished" | "exited" | "wantCheckpoint"
export interface ReportEnvelope {
  readonly k: ReportKind
  readonly e: number
  /** the reporting instance, e.g. `count#1` */
  readonly c: string
  /** incarnation id of the reporting process */
  readonly i: string
  readonly n?: number
  readonly b?: unknown
}

/**
 * A request of the coordinator to the launchers of its job (published, not answered): SIGKILL the
 * process of instance `t`, which stopped answering (a wedged process is restarted like a dead one).
 * A plain envelope like the control commands, so that it can carry the job's HMAC tag the same way.
 */
export interface LauncherEnvelope {
  readonly k: "kill"
  readonly e: number
  /** who asks: `coordinator` */
  readonly c: string
  /** the instance to kill, e.g. `sink#0` */
  readonly t: string
  /** its pid as its heartbeats said, if known: a process restarted since (another pid) is left alone */
  readonly pid?: number
  /** why, for the launcher's log */
  readonly why?: string
}

export type Envelope =
  | DataEnvelope
  | CreditEnvelope
  | ControlEnvelope
  | ReplyEnvelope
  | ReportEnvelope
  | LauncherEnvelope
export type Kind = Envelope["k"]

export class EnvelopeDecodeError extends Data.TaggedError("EnvelopeDecodeError")<{
  readonly subject: string
  readonly reason: string
}> {
  override get message(): string {
    return `malformed message on ${this.subject}: ${this.reason}`
  }
}

export const encode = (envelope: Envelope): Uint8Array => packr.pack(envelope)

/** Longest sender, channel or incarnation id taken off the wire (ids are short tokens and UUIDs). */
export const maxIdLength = 256

type FieldCheck = (v: unknown) => boolean
/** A whole number that survives msgpack and JS arithmetic: 0 <= v <= 2^53 - 1 (no floats like 1e300, no BigInt). */
const nat: FieldCheck = (v) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0
const str: FieldCheck = (v) => typeof v === "string" && v.length > 0 && v.length <= maxIdLength
const bool: FieldCheck = (v) => typeof v === "boolean"
const array: FieldCheck = (v) => Array.isArray(v)
/** An event time or watermark: a safe integer, negative ones before 1970. */
const int: FieldCheck = (v) => typeof v === "number" && Number.isSafeInteger(v)

/** Required fields per kind beyond `k`, `e` and `c`; `n` is optional on control and report kinds. */
const required: Record<Kind, Readonly<Record<string, FieldCheck>>> = {
  batch: { s: nat, r: array },
  wm: { s: nat, w: int },
  idle: { s: nat, on: bool },
  barrier: { s: nat, n: nat },
  eos: { s: nat },
  credit: { g: nat },
  restore: {},
  run: {},
  trigger: { n: nat },
  complete: { n: nat },
  abort: { n: nat },
  stop: {},
  reply: { ok: bool },
  hello: { i: str },
  heartbeat: { i: str },
  ack: { i: str, n: nat },
  fail: { i: str },
  finished: { i: str },
  exited: { i: str },
  wantCheckpoint: { i: str },
  kill: { t: str }
}

/** What a value is, for a reason text: its type, or a short quote of a string or number. */
const describe = (v: unknown): string =>
  v === null
    ? "null"
    : Array.isArray(v)
      ? "an array"
      : v instanceof Uint8Array
        ? "bytes"
        : typeof v === "string"
          ? JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)
          : typeof v === "number"
            ? `number ${v}`
            : typeof v

/** Why a batch's optional `t` and `w` are wrong, if they are: one safe integer per record, an integer watermark. */
const timeFieldsProblem = (o: Record<string, unknown>): string | undefined => {
  if (o.w !== undefined && !int(o.w)) return `field w (watermark) is not an integer (got ${describe(o.w)})`
  if (o.t === undefined) return undefined
  if (!Array.isArray(o.t)) return `field t (timestamps) is not an array (got ${describe(o.t)})`
  const r = o.r as ReadonlyArray<unknown>
  if (o.t.length !== r.length) return `field t has ${o.t.length} timestamps for ${r.length} records`
  for (let i = 0; i < o.t.length; i++)
    if (!int(o.t[i])) return `field t[${i}] is not an integer timestamp (got ${describe(o.t[i])})`
  return undefined
}

/** Decodes and validates one message. Never throws. */
export const decode = (subject: string, bytes: Uint8Array): Envelope | EnvelopeDecodeError => {
  let value: unknown
  try {
    value = packr.unpack(bytes)
  } catch (cause) {
    return new EnvelopeDecodeError({
      subject,
      reason: `not msgpack (${causeMessage(cause)})`
    })
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return new EnvelopeDecodeError({ subject, reason: `expected a map, got ${describe(value)}` })
  const o = value as Record<string, unknown>
  const kind = o.k
  if (typeof kind !== "string" || !Object.hasOwn(required, kind))
    return new EnvelopeDecodeError({ subject, reason: `unknown kind (got ${describe(kind)})` })
  if (!nat(o.e))
    return new EnvelopeDecodeError({
      subject,
      reason: `${kind}: field e (epoch) missing or invalid (got ${describe(o.e)})`
    })
  if (!str(o.c))
    return new EnvelopeDecodeError({
      subject,
      reason: `${kind}: field c (channel/sender) missing or invalid (got ${describe(o.c)})`
    })
  const fields = required[kind as Kind]
  for (const name in fields) {
    if (!fields[name]!(o[name]))
      return new EnvelopeDecodeError({
        subject,
        reason: `${kind}: field ${name} missing or invalid (got ${describe(o[name])})`
      })
  }
  if (o.n !== undefined && !nat(o.n))
    return new EnvelopeDecodeError({
      subject,
      reason: `${kind}: field n (checkpoint) is not a whole number (got ${describe(o.n)})`
    })
  if (kind === "batch") {
    const problem = timeFieldsProblem(o)
    if (problem !== undefined) return new EnvelopeDecodeError({ subject, reason: `batch: ${problem}` })
  }
  if (kind === "reply" && o.err !== undefined && typeof o.err !== "string")
    return new EnvelopeDecodeError({
      subject,
      reason: `reply: field err is not a string (got ${describe(o.err)})`
    })
  return o as unknown as Envelope
}

export const isData = (e: Envelope): e is DataEnvelope =>
  e.k === "batch" || e.k === "barrier" || e.k === "eos" || e.k === "wm" || e.k === "idle"
