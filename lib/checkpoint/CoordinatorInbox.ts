/**
 * The coordinator's inbox: reports from instances on the coordinator subject, savepoint requests
 * on the admin subject and a tick every 100 ms, merged into one queue that one loop reads.
 * Invariant: only report kinds reach the queue (anything else is rejected: counted in `rejects`,
 * logged, dropped), a report without a valid tag of the job's secret (`ControlAuth`) is never
 * queued as one (only counted), and an admin request that is neither `{ savepoint: name }` nor
 * `{ cancel: true, savepoint?: name }` is refused at once (and counted), never queued.
 */
import type { Msg } from "@nats-io/transport-node"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import type { Subjects } from "../core/Address.ts"
import type { ControlAuth } from "../runtime/ControlAuth.ts"
import { decode, EnvelopeDecodeError, encode, type ReportEnvelope } from "../runtime/Envelope.ts"
import type { NatsConnection } from "../runtime/Nats.ts"
import type { RejectedMessages } from "../runtime/RejectedMessages.ts"

export type CoordinatorEvent =
  | { readonly kind: "report"; readonly report: ReportEnvelope }
  | { readonly kind: "tick" }
  | { readonly kind: "admin"; readonly msg: Msg; readonly name: string }
  /** stop the job; with `savepoint`, right after that savepoint is written and committed */
  | { readonly kind: "cancel"; readonly msg: Msg; readonly savepoint: string | undefined }
  | { readonly kind: "finalCommitted"; readonly n: number; readonly epoch: number }
  /** a message on the coordinator subject without a valid tag: the `count`th so far */
  | { readonly kind: "unauthenticated"; readonly count: number }

/**
 * Subscribes to both subjects (until the scope closes), flushes, and starts the tick; `epoch` is
 * read when a malformed admin request is refused; `rejects` counts and logs what is rejected;
 * reports must carry `auth`'s tag.
 */
export const coordinatorInbox = (
  nc: NatsConnection,
  subjects: Subjects,
  epoch: () => number,
  rejects: RejectedMessages,
  auth: ControlAuth
) =>
  Effect.gen(function* () {
    const events = yield* Queue.unbounded<CoordinatorEvent>()
    let unauthenticated = 0
    const subscribe = (subject: string, f: (msg: Msg) => void) =>
      Effect.acquireRelease(
        Effect.sync(() => nc.subscribe(subject, { callback: (_e, msg) => f(msg) })),
        (s) => Effect.sync(() => s.unsubscribe())
      )
    yield* subscribe(subjects.coordinator, (msg) => {
      if (!auth.verifyMsg(msg)) {
        unauthenticated++
        rejects.reject(
          new EnvelopeDecodeError({ subject: subjects.coordinator, reason: "not authenticated (job secret)" })
        )
        Queue.offerUnsafe(events, { kind: "unauthenticated", count: unauthenticated })
        return
      }
      const r = decode(subjects.coordinator, msg.data)
      if (r instanceof EnvelopeDecodeError) return rejects.reject(r)
      if (
        r.k === "hello" ||
        r.k === "heartbeat" ||
        r.k === "ack" ||
        r.k === "fail" ||
        r.k === "finished" ||
        r.k === "exited" ||
        r.k === "wantCheckpoint"
      )
        Queue.offerUnsafe(events, { kind: "report", report: r })
      else
        rejects.reject(
          new EnvelopeDecodeError({
            subject: subjects.coordinator,
            reason: `kind ${r.k} does not belong on the coordinator subject`
          })
        )
    })
    yield* subscribe(subjects.admin, (msg) => {
      const r = decode(subjects.admin, msg.data)
      const body = r instanceof EnvelopeDecodeError || !("b" in r) ? undefined : r.b
      const { savepoint, cancel } = (body ?? {}) as { savepoint?: unknown; cancel?: unknown }
      if (cancel === true && (savepoint === undefined || typeof savepoint === "string"))
        Queue.offerUnsafe(events, { kind: "cancel", msg, savepoint })
      else if (typeof savepoint === "string")
        Queue.offerUnsafe(events, { kind: "admin", msg, name: savepoint })
      else {
        rejects.reject(
          r instanceof EnvelopeDecodeError
            ? r
            : new EnvelopeDecodeError({
                subject: subjects.admin,
                reason: "expected { savepoint: name } or { cancel: true, savepoint?: name }"
              })
        )
        if (msg.reply)
          msg.respond(
            encode({
              k: "reply",
              e: epoch(),
              c: "coordinator",
              ok: false,
              err: "expected { savepoint: name } or { cancel: true, savepoint?: name }"
            })
          )
      }
    })
    yield* Effect.promise(() => nc.flush())
    yield* Effect.forkScoped(
      Effect.sync(() => Queue.offerUnsafe(events, { kind: "tick" })).pipe(
        Effect.repeat(Schedule.spaced("100 millis"))
      )
    )
    return events
  })
