/**
 * `exactor savepoint`'s side of the admin protocol: ask a running job's coordinator for a
 * savepoint and wait for its answer. Invariant: a savepoint the coordinator aborted (checkpoint
 * timeout, recovery) is asked for again, up to `savepointRetrySchedule`; any other refusal is final.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { Subjects } from "../core/Address.ts"
import { decode, EnvelopeDecodeError, encode } from "../runtime/Envelope.ts"
import { causeMessage } from "../internal/causeMessage.ts"
import type { NatsConnection } from "../runtime/Nats.ts"

/**
 * The savepoint was not written: `aborted` when the coordinator took its checkpoint but aborted it
 * (asking again may succeed), else a refusal (job not running, bad request), no answer, or garbage.
 */
export class SavepointFailed extends Data.TaggedError("SavepointFailed")<{
  readonly job: string
  readonly name: string
  readonly reason: string
  readonly aborted: boolean
}> {
  override get message(): string {
    return `savepoint ${this.name} of job ${this.job}: ${this.reason}`
  }
}

/** Attempts at most, when each is aborted. */
export const savepointAttempts = 3

/** After an aborted attempt, the next one 1 s later, up to `savepointAttempts` in all. */
export const savepointRetrySchedule = Schedule.spaced("1 second").pipe(
  Schedule.upTo({ times: savepointAttempts - 1 })
)

/** How long one attempt waits for the coordinator's answer (a checkpoint plus its commit). */
export const savepointAnswerTimeoutMs = 60_000

/** One request: the checkpoint id of the savepoint once it is written. */
const attempt = (nc: NatsConnection, job: string, name: string) =>
  Effect.gen(function* () {
    const reply = yield* Effect.tryPromise({
      try: () =>
        nc.request(new Subjects(job).admin, encode({ k: "run", e: 0, c: "cli", b: { savepoint: name } }), {
          timeout: savepointAnswerTimeoutMs
        }),
      catch: (cause) =>
        new SavepointFailed({
          job,
          name,
          aborted: false,
          reason: `no answer from the coordinator in ${savepointAnswerTimeoutMs} ms (${causeMessage(cause)})`
        })
    })
    const r = decode("admin", reply.data)
    if (r instanceof EnvelopeDecodeError)
      return yield* new SavepointFailed({ job, name, aborted: false, reason: r.message })
    if (r.k !== "reply")
      return yield* new SavepointFailed({ job, name, aborted: false, reason: `unexpected answer ${r.k}` })
    const body = ("b" in r ? r.b : undefined) as { checkpoint?: number; aborted?: boolean } | undefined
    if (!r.ok) {
      const reason = r.err ?? "refused"
      return yield* new SavepointFailed({ job, name, aborted: body?.aborted === true, reason })
    }
    // the answer came off the wire: a checkpoint id that is not a number is no id
    return typeof body?.checkpoint === "number" ? body.checkpoint : -1
  })

/** Asks for savepoint `name`, again after an abort; `onAbort` is told of each abort that is retried. */
export const requestSavepoint = (
  nc: NatsConnection,
  job: string,
  name: string,
  onAbort: (e: SavepointFailed) => Effect.Effect<void> = () => Effect.void
) =>
  Effect.suspend(() => {
    let attempts = 0
    return attempt(nc, job, name).pipe(
      Effect.tapError((e) => (++attempts < savepointAttempts && e.aborted ? onAbort(e) : Effect.void)),
      Effect.retry({ schedule: savepointRetrySchedule, while: (e) => e.aborted })
    )
  })
