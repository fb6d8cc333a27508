/**
 * Bodies of control commands and reports come off the wire: whatever a decoded `b` holds, the
 * checks and the status update that read it never throw, and a view keeps fields of its own types.
 */
import { isDeepStrictEqual } from "node:util"
import fc from "fast-check"
import t from "tap"
import { ackBodyProblem } from "../../lib/checkpoint/CheckpointTracker.ts"
import { applyHeartbeat, newInstanceView } from "../../lib/checkpoint/JobStatus.ts"
import { restoreBodyProblem } from "../../lib/runtime/Actor.ts"
import { decode, type Envelope, EnvelopeDecodeError, encode } from "../../lib/runtime/Envelope.ts"

/** Any body a forger can send, after a trip through msgpack (as a receiver sees it). */
const body = fc
  .oneof(
    fc.anything({ withBigInt: true, withDate: true, withTypedArray: true, withNullPrototype: true }),
    fc.record(
      {
        phase: fc.oneof(fc.constantFrom("running", "idle", "hacked"), fc.anything()),
        recordsIn: fc.oneof(fc.double(), fc.anything()),
        host: fc.oneof(fc.string({ maxLength: 400 }), fc.anything()),
        rejected: fc.oneof(fc.nat(), fc.anything()),
        handles: fc.oneof(fc.array(fc.anything()), fc.anything()),
        checkpoint: fc.oneof(fc.integer(), fc.double(), fc.anything()),
        alignmentMs: fc.oneof(fc.double(), fc.anything()),
        durationMs: fc.oneof(fc.double(), fc.anything())
      },
      { requiredKeys: [] }
    )
  )
  .map((b) => {
    try {
      const r = decode("x", encode({ k: "heartbeat", e: 0, c: "a#0", i: "i", b } as Envelope))
      return r instanceof EnvelopeDecodeError ? undefined : (r as { b?: unknown }).b
    } catch {
      return undefined // msgpackr cannot encode it (a BigInt beyond 64 bits): nobody can send it
    }
  })

t.test(
  "restore, ack and heartbeat bodies: checked without an exception, views keep their types",
  async (t) => {
    const types = Object.entries(newInstanceView("a#0")).map(([k, v]) => [k, typeof v])
    fc.assert(
      fc.property(body, (b) => {
        const restore = restoreBodyProblem(b)
        const ack = ackBodyProblem(b)
        if (restore !== undefined && typeof restore !== "string") throw new Error("restore check")
        if (ack !== undefined && typeof ack !== "string") throw new Error("ack check")
        const v = newInstanceView("a#0")
        applyHeartbeat(v, b as never, 1000)
        const after = Object.entries(v).map(([k, x]) => [k, typeof x])
        if (!isDeepStrictEqual(after, types))
          throw new Error(`a view field changed type: ${JSON.stringify(after)}`)
        if (!["unknown", "idle", "restoring", "restored", "running", "failed"].includes(v.phase))
          throw new Error(`phase ${String(v.phase)}`)
        for (const [k, x] of Object.entries(v))
          if (typeof x === "number" && !Number.isFinite(x)) throw new Error(`${k} is ${x}`)
      }),
      { numRuns: 2000 }
    )
    t.pass("2000 hostile bodies")
  }
)

t.test("what the sender really sends passes the checks", async (t) => {
  t.equal(restoreBodyProblem(undefined), undefined, "no body: empty state")
  t.equal(restoreBodyProblem({ handles: [] }), undefined)
  t.equal(restoreBodyProblem({ checkpoint: 4, handles: [{ kind: "object" }], committed: 120 }), undefined)
  t.match(restoreBodyProblem({ handles: 5 }), /handles is not an array/)
  t.match(restoreBodyProblem({ handles: [], checkpoint: -1 }), /checkpoint is not a whole number/)
  t.equal(ackBodyProblem({ handle: undefined, alignmentMs: 0, durationMs: 3 }), undefined)
  t.equal(
    ackBodyProblem({ handle: { kind: "inline" }, alignmentMs: 2.5, durationMs: -1, committed: 10 }),
    undefined
  )
  t.match(ackBodyProblem({ alignmentMs: "soon", durationMs: 1 }), /alignmentMs is not a duration/)
  t.match(ackBodyProblem({ alignmentMs: 1, durationMs: 1, handle: 7 }), /handle is not a map/)
  t.match(ackBodyProblem(null), /not a map/)
})
