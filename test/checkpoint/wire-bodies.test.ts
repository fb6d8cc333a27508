/**
 * Bodies of control commands and reports come off the wire: whatever a decoded `b` holds, the
 * checks and the status update that read it never throw, and a view keeps fields of its own types.
 */
import { isDeepStrictEqual } from "node:util"
import fc from "fast-check"
import t from "tap"
import { ackBodyProblem } from "../../lib/checkpoint/CheckpointTracker.ts"
import {
  applyHeartbeat,
  eventTimeByOperator,
  eventTimeRows,
  newInstanceView
} from "../../lib/checkpoint/JobStatus.ts"
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
        durationMs: fc.oneof(fc.double(), fc.anything()),
        watermark: fc.oneof(fc.integer(), fc.double(), fc.anything()),
        idle: fc.oneof(fc.boolean(), fc.anything()),
        timers: fc.oneof(fc.nat(), fc.anything())
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
        // the event-time fields are optional: present only with the right type
        const optional: Record<string, string> = {
          watermark: "number",
          idle: "boolean",
          idleInputs: "number",
          timers: "number",
          lateRecords: "number",
          droppedTimers: "number",
          firing: "boolean"
        }
        const after = Object.entries(v)
          .filter(([k, x]) => {
            if (!(k in optional)) return true
            if (typeof x !== optional[k]) throw new Error(`${k} is ${typeof x}`)
            return false
          })
          .map(([k, x]) => [k, typeof x])
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

t.test(
  "event time in a status: per operator the min watermark, its lag, idle inputs, timers, late records",
  async (t) => {
    const views = ["w#0", "w#1", "src#0", "plain#0"].map((id) => newInstanceView(id))
    applyHeartbeat(views[0]!, { watermark: 10_000, timers: 4, lateRecords: 2, idleInputs: 1 } as never, 0)
    applyHeartbeat(views[1]!, { watermark: 7000, timers: 1, firing: true } as never, 0)
    applyHeartbeat(views[2]!, { watermark: Number.MAX_SAFE_INTEGER, idle: true } as never, 0)
    applyHeartbeat(views[3]!, { recordsIn: 5 } as never, 0)
    const ops = eventTimeByOperator(views, 12_000)
    t.same(
      ops.map((o) => [
        o.operator,
        o.watermark,
        o.lagMs,
        o.idle,
        o.idleInputs,
        o.timers,
        o.lateRecords,
        o.firing
      ]),
      [
        ["w", 7000, 5000, 0, 1, 5, 2, 1],
        ["src", Number.MAX_SAFE_INTEGER, 0, 1, 0, 0, 0, 0]
      ],
      "an operator without event time has no row"
    )
    const rows = eventTimeRows(ops)
    t.match(rows[1], /^w\s+1970-01-01T00:00:07\.000Z\s+5\.0 s\s+0\s+1\s+5\s+2\s+0\s+1$/)
    t.match(rows[2], /^src\s+END\s+1/)
    t.same(eventTimeRows([]), [], "no table without event time")
  }
)
