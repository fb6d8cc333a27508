/**
 * Hostile bytes against the envelope decoder (property-based, fast-check): random bytes, random
 * msgpack maps of envelope fields, valid envelopes with one field removed or retyped, truncated,
 * bit-flipped and spliced encodings. Every answer must be a typed `EnvelopeDecodeError` naming the
 * subject, or an envelope whose fields check out and that re-encodes to itself; never an exception.
 */
import { isDeepStrictEqual } from "node:util"
import fc from "fast-check"
import t from "tap"
import {
  decode,
  type Envelope,
  EnvelopeDecodeError,
  encode,
  maxIdLength
} from "../../lib/runtime/Envelope.ts"

const subject = "exactor.fuzz.in.count.0"
const dataKinds = ["batch", "barrier", "eos"]
const controlKinds = ["restore", "run", "trigger", "complete", "abort", "stop"]
const reportKinds = ["hello", "heartbeat", "ack", "fail", "finished", "exited", "wantCheckpoint"]
const kinds = new Set([...dataKinds, "credit", ...controlKinds, "reply", ...reportKinds])

const nat = (v: unknown) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0
const id = (v: unknown) => typeof v === "string" && v.length > 0 && v.length <= maxIdLength

/** An oracle written apart from the decoder: what a decoded envelope must satisfy. */
const problem = (e: Envelope): string | undefined => {
  const o = e as unknown as Record<string, unknown>
  if (typeof o.k !== "string" || !kinds.has(o.k)) return "kind"
  if (!nat(o.e)) return "e"
  if (!id(o.c)) return "c"
  if (o.n !== undefined && !nat(o.n)) return "n"
  if (dataKinds.includes(o.k) && !nat(o.s)) return "s"
  if (o.k === "batch" && !Array.isArray(o.r)) return "r"
  if ((o.k === "barrier" || o.k === "trigger" || o.k === "complete" || o.k === "abort") && !nat(o.n))
    return "n"
  if (o.k === "credit" && !nat(o.g)) return "g"
  if (o.k === "reply" && typeof o.ok !== "boolean") return "ok"
  if (o.k === "reply" && o.err !== undefined && typeof o.err !== "string") return "err"
  if (reportKinds.includes(o.k) && !id(o.i)) return "i"
  if (o.k === "ack" && !nat(o.n)) return "n"
  return undefined
}

let checked = 0
let accepted = 0
let rejected = 0

/**
 * The value with every binary field as a plain array of its bytes: msgpackr decodes `bin` as a
 * Buffer from a Buffer (what `encode` returns) and as a Uint8Array from a Uint8Array (what NATS
 * hands over), the same bytes under two prototypes.
 */
const plain = (v: unknown): unknown => {
  if (v instanceof Uint8Array) return { bin: Array.from(v) }
  if (Array.isArray(v)) return v.map(plain)
  if (v !== null && typeof v === "object")
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]))
  return v
}

/** Decodes `bytes` and checks the answer; a string says what went wrong. */
const verdict = (bytes: Uint8Array): string | undefined => {
  checked++
  let r: Envelope | EnvelopeDecodeError
  try {
    r = decode(subject, bytes)
  } catch (cause) {
    return `decode threw: ${String(cause)}`
  }
  if (r instanceof EnvelopeDecodeError) {
    rejected++
    if (r._tag !== "EnvelopeDecodeError") return "untagged error"
    if (r.subject !== subject) return `error names subject ${r.subject}`
    if (typeof r.reason !== "string" || r.reason.length === 0 || r.reason.length > 400)
      return `bad reason ${r.reason}`
    return r.message.includes(subject) ? undefined : "message does not name the subject"
  }
  accepted++
  const wrong = problem(r)
  if (wrong !== undefined) return `accepted an envelope with a bad field ${wrong}: ${String(bytes)}`
  let again: Envelope | EnvelopeDecodeError
  try {
    again = decode(subject, encode(r))
  } catch (cause) {
    return `re-encoding threw: ${String(cause)}`
  }
  if (again instanceof EnvelopeDecodeError) return `re-encoded envelope rejected: ${again.reason}`
  return isDeepStrictEqual(plain(again), plain(r)) ? undefined : "re-encoded envelope differs"
}

const holds = (bytes: Uint8Array) => {
  const v = verdict(bytes)
  if (v !== undefined) throw new Error(v)
}

// ---- arbitraries ----------------------------------------------------------------------------

const instance = fc
  .tuple(fc.constantFrom("src", "parse", "count", "sink"), fc.nat(7))
  .map(([o, i]) => `${o}#${i}`)
const small = fc.nat(1_000_000)
const record = fc.oneof(
  fc.string(),
  fc.integer(),
  fc.record({ id: fc.nat(), customer: fc.string({ maxLength: 8 }), amount: fc.double({ noNaN: true }) })
)
/**
 * A body that round-trips: no `__proto__` key anywhere (fast-check makes them on purpose), since
 * msgpackr's decoder renames that key to `__proto_` so that no message can set a prototype (CI's
 * seed -1938746506 sent `{"__proto__": null}` and got `{"__proto_": null}` back).
 */
const noProtoKey = (v: unknown): boolean =>
  typeof v !== "object" || v === null
    ? true
    : Array.isArray(v)
      ? v.every(noProtoKey)
      : Object.keys(v).every((k) => k !== "__proto__" && noProtoKey((v as Record<string, unknown>)[k]))
const body = fc.oneof(fc.constant(undefined), fc.jsonValue({ maxDepth: 2 }).filter(noProtoKey))

/** Every kind of envelope as exactor sends it. */
const validEnvelope: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.record({
    k: fc.constant("batch"),
    e: small,
    c: instance,
    s: small,
    r: fc.array(record, { maxLength: 8 })
  }),
  fc.record({ k: fc.constant("barrier"), e: small, c: instance, s: small, n: small }),
  fc.record({ k: fc.constant("eos"), e: small, c: instance, s: small }),
  fc.record({ k: fc.constant("credit"), e: small, c: instance, g: small }),
  fc.record(
    { k: fc.constantFrom(...controlKinds), e: small, c: fc.uuid(), n: small, b: body },
    { requiredKeys: ["k", "e", "c", "n"] }
  ),
  fc.record(
    { k: fc.constant("reply"), e: small, c: instance, ok: fc.boolean(), b: body, err: fc.string() },
    { requiredKeys: ["k", "e", "c", "ok"] }
  ),
  fc.record(
    { k: fc.constantFrom(...reportKinds), e: small, c: instance, i: fc.uuid(), n: small, b: body },
    { requiredKeys: ["k", "e", "c", "i", "n"] }
  )
)

/** Values that break one field or another: wrong type, out of range, too long, exotic msgpack. */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    -1,
    1.5,
    -0,
    2 ** 53,
    1e300,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    "",
    "x".repeat(maxIdLength + 1),
    null,
    true,
    false,
    [],
    {},
    2n ** 63n,
    -(2n ** 63n),
    new Uint8Array([1, 2, 3]),
    new Date(0),
    "batch",
    "__proto__",
    "constructor"
  ),
  fc.integer(),
  fc.double(),
  fc.string({ maxLength: 12 }),
  fc.jsonValue({ maxDepth: 2 }),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n })
)

const fieldName = fc.constantFrom("k", "e", "c", "s", "r", "n", "g", "ok", "b", "err", "i", "x")

/** A valid envelope with one field removed, replaced by a hostile value, or added. */
const mutatedEnvelope = fc
  .tuple(validEnvelope, fc.constantFrom("remove", "set"), fieldName, hostileValue)
  .map(([env, op, field, value]) => {
    const out: Record<string, unknown> = { ...env }
    if (op === "remove") delete out[field]
    else out[field] = value
    return out
  })

/** A map of envelope-like fields with arbitrary values (the decoder must not assume any shape). */
const randomMap = fc.dictionary(fieldName, hostileValue, { maxKeys: 8 })

const bytesOf = (v: unknown): Uint8Array => encode(v as Envelope)
const validBytes = validEnvelope.map(bytesOf)

const truncated = validBytes.chain((b) => fc.nat(Math.max(0, b.length - 1)).map((n) => b.subarray(0, n)))

const bitFlipped = validBytes.chain((b) =>
  fc.array(fc.tuple(fc.nat(b.length - 1), fc.nat(7)), { minLength: 1, maxLength: 4 }).map((flips) => {
    const out = Uint8Array.from(b)
    for (const [at, bit] of flips) out[at]! ^= 1 << bit
    return out
  })
)

/** Valid bytes with random bytes written over, inserted into, or appended to them. */
const spliced = validBytes.chain((b) =>
  fc
    .tuple(fc.nat(b.length), fc.uint8Array({ minLength: 1, maxLength: 8 }), fc.constantFrom("over", "insert"))
    .map(([at, junk, how]) => {
      const tail = how === "over" ? b.subarray(Math.min(b.length, at + junk.length)) : b.subarray(at)
      const out = new Uint8Array(at + junk.length + tail.length)
      out.set(b.subarray(0, at))
      out.set(junk, at)
      out.set(tail, at + junk.length)
      return out
    })
)

// ---- properties -----------------------------------------------------------------------------

const runs = (name: string, arb: fc.Arbitrary<Uint8Array>, numRuns: number) =>
  t.test(`${name}: ${numRuns} messages`, async (t) => {
    const before = checked
    fc.assert(
      fc.property(arb, (bytes) => {
        holds(bytes)
      }),
      { numRuns }
    )
    t.equal(checked - before, numRuns, `${numRuns} decoded without an exception`)
  })

runs("random bytes", fc.uint8Array({ maxLength: 96 }), 30_000)
runs(
  "random bytes after a map header",
  fc.uint8Array({ maxLength: 64 }).map((b) => Uint8Array.of(0x84, ...b)),
  10_000
)
runs("random maps of envelope fields", randomMap.map(bytesOf), 15_000)
runs("valid envelopes with one field removed or retyped", mutatedEnvelope.map(bytesOf), 20_000)
runs("truncated valid envelopes", truncated, 10_000)
runs("bit-flipped valid envelopes", bitFlipped, 20_000)
runs("spliced valid envelopes", spliced, 10_000)

t.test("extension types the encoder never writes are refused, naming the type", async (t) => {
  // A batch {k, e, c, s, r: [x]} with x spliced in as raw msgpack.
  const batchWith = (x: number[]) =>
    Uint8Array.from([...encode({ k: "batch", e: 1, c: "src#0", s: 1, r: [] }).slice(0, -1), 0x91, ...x])
  const refused: ReadonlyArray<[string, number[]]> = [
    ["0x65 (Error)", [0xc7, 3, 0x65, 0x92, 0xa1, 0x78]],
    ["0x65 (Error)", [0xd4, 0x65, 0x00]],
    ["0x73 (Set)", [0xc7, 2, 0x73, 0x91, 0x01]],
    ["0x78 (RegExp)", [0xc7, 5, 0x78, 0x92, 0xa1, 0x61, 0xa1, 0x67]],
    ["0x74 (typed array)", [0xd5, 0x74, 0x01, 0x07]],
    ["0x42 (BigInt)", [0xd4, 0x42, 0x07]]
  ]
  for (const [name, x] of refused) {
    const r = decode(subject, batchWith(x))
    t.ok(r instanceof EnvelopeDecodeError && r.reason.includes(name), `${name} refused: ${String(r)}`)
  }
  const dated = decode(subject, batchWith([0xd6, 0xff, 0, 0, 0, 0]))
  t.same(
    dated instanceof EnvelopeDecodeError ? dated.reason : (dated as unknown as { r: unknown[] }).r,
    [new Date(0)],
    "Date kept"
  )
  // CI's seed 867092629: a spliced batch whose record held an Error that re-encoded as an array.
  const ci = decode(
    subject,
    Buffer.from(
      "de0005a16ba56261746368a165ce000a2696a163a57372632332a173ce000a1a95a17298ce3ab842c0a82f6965454f61" +
        "5341d2a6cfb9b2de0003a26964ce3c5e45d3a8637573746f6d0000d46572a3456e48a6616d6f756e74cb1dfb61444794" +
        "b337de0003a26964ce58237c26a8637573746f6d6572a2674aa6616d6f756e74cbee687b54c8df4b5cd2819dde58d299" +
        "b58df5d2ce6832d5",
      "hex"
    )
  )
  t.ok(ci instanceof EnvelopeDecodeError && ci.reason.includes("0x65 (Error)"), "CI's case refused")
})

t.test("every valid envelope decodes to itself (no false rejections)", async (t) => {
  fc.assert(
    fc.property(validEnvelope, (env) => {
      checked++
      const r = decode(subject, bytesOf(env))
      if (r instanceof EnvelopeDecodeError) throw new Error(`rejected a valid envelope: ${r.reason}`)
      const expected = JSON.parse(JSON.stringify(env)) as unknown
      if (!isDeepStrictEqual(JSON.parse(JSON.stringify(r)), expected)) throw new Error("decoded differently")
    }),
    { numRuns: 5_000 }
  )
  t.pass("5000 valid envelopes accepted as they were sent")
})

t.test("hand-made hostile msgpack: deep nesting, huge length headers, extensions, odd keys", async (t) => {
  const cases: Record<string, Uint8Array> = {
    empty: new Uint8Array(0),
    "deeply nested arrays": new Uint8Array(200_000).fill(0x91),
    "deeply nested maps": Uint8Array.from({ length: 100_000 }, (_, i) => (i % 2 === 0 ? 0x81 : 0xa0)),
    "array32 claiming 4 billion items": Uint8Array.of(0xdd, 0xff, 0xff, 0xff, 0xff, 0x01),
    "map32 claiming 4 billion entries": Uint8Array.of(0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 0x6b),
    "str32 claiming 4 GB": Uint8Array.of(0xdb, 0xff, 0xff, 0xff, 0xff, 0x61),
    "bin32 claiming 4 GB": Uint8Array.of(0xc6, 0xff, 0xff, 0xff, 0xff, 0x61),
    "uint64 epoch": Uint8Array.of(
      0x82,
      0xa1,
      0x6b,
      0xa3,
      0x65,
      0x6f,
      0x73,
      0xa1,
      0x65,
      0xcf,
      0xff,
      0xff,
      0xff,
      0xff,
      0xff,
      0xff,
      0xff,
      0xff
    ),
    "bigint kind": Uint8Array.of(0x81, 0xa1, 0x6b, 0xcf, 0, 0, 0, 0, 0, 0, 0, 1),
    "non-string key": Uint8Array.of(0x81, 0x90, 0x01),
    "map key": Uint8Array.of(0x81, 0x80, 0x01),
    "__proto__ key": Uint8Array.of(
      0x81,
      0xa9,
      ...new TextEncoder().encode("__proto__"),
      0x81,
      0xa1,
      0x6b,
      0xa3,
      0x65,
      0x6f,
      0x73
    ),
    "never-used byte 0xc1": Uint8Array.of(0xc1),
    "timestamp extension": Uint8Array.of(0xd6, 0xff, 0, 0, 0, 0),
    "invalid date": Uint8Array.of(0xd4, 0xff, 0x00),
    "unknown extension": Uint8Array.of(0xd4, 0x01, 0x00),
    "record extension": Uint8Array.of(0xd4, 0x72, 0x00),
    "float NaN epoch": bytesOf({ k: "eos", e: Number.NaN, c: "a#0", s: 0 }),
    "trailing garbage": Uint8Array.of(...bytesOf({ k: "eos", e: 0, c: "a#0", s: 0 }), 0xc1, 0xff)
  }
  for (const extension of [0x00, 0x42, 0x62, 0x65, 0x70, 0x73, 0x74, 0x78, 0xff])
    for (const len of [0, 1, 4])
      cases[`extension 0x${extension.toString(16)} of ${len} bytes`] = Uint8Array.of(
        0xc7,
        len,
        extension,
        ...new Uint8Array(len).fill(0x90)
      )
  for (const [name, bytes] of Object.entries(cases)) t.equal(verdict(bytes), undefined, name)
})

t.test("the fuzz tests above threw at least 100,000 messages at the decoder", async (t) => {
  t.ok(
    checked >= 100_000,
    `${checked} messages (${accepted} accepted as valid envelopes, ${rejected} rejected)`
  )
  t.ok(accepted > 1000 && rejected > 1000, "both valid and malformed answers were exercised")
})
