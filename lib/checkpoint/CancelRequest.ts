/**
 * `exactor cancel`'s side of the admin protocol: ask a running job's coordinator to stop it, with
 * or without a final savepoint, and wait for its answer. Invariant: success means the coordinator
 * has stopped the job (CANCELLED); with a savepoint, that savepoint is written and committed and
 * nothing after its barrier is, so a run from it is exactly-once.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { Subjects } from "../core/Address.ts"
import { causeMessage } from "../internal/causeMessage.ts"
import { decode, EnvelopeDecodeError, encode } from "../runtime/Envelope.ts"
import type { NatsConnection } from "../runtime/Nats.ts"

/** The job was not cancelled: no coordinator answered, or it refused (with its reason). */
export class CancelFailed extends Data.TaggedError("CancelFailed")<{
  readonly job: string
  readonly savepoint: string | undefined
  readonly reason: string
}> {
  override get message(): string {
    return `cancel of job ${this.job}${this.savepoint === undefined ? "" : ` with savepoint ${this.savepoint}`}: ${this.reason}`
  }
}

/** How long the CLI waits for the coordinator's answer (a savepoint's checkpoint plus its commit). */
export const cancelAnswerTimeoutMs = 60_000

/** Asks the coordinator to cancel; returns the savepoint's checkpoint id when one was taken. */
export const requestCancel = (
  nc: NatsConnection,
  job: string,
  savepoint: string | undefined
): Effect.Effect<{ readonly checkpoint: number | undefined }, CancelFailed> =>
  Effect.gen(function* () {
    const fail = (reason: string) => new CancelFailed({ job, savepoint, reason })
    const reply = yield* Effect.tryPromise({
      try: () =>
        nc.request(
          new Subjects(job).admin,
          encode({
            k: "run",
            e: 0,
            c: "cli",
            b: { cancel: true, ...(savepoint === undefined ? {} : { savepoint }) }
          }),
          { timeout: cancelAnswerTimeoutMs }
        ),
      catch: (cause) =>
        fail(`no answer from the coordinator in ${cancelAnswerTimeoutMs} ms (${causeMessage(cause)})`)
    })
    const r = decode("admin", reply.data)
    if (r instanceof EnvelopeDecodeError) return yield* fail(r.message)
    if (r.k !== "reply") return yield* fail(`unexpected answer ${r.k}`)
    if (!r.ok) return yield* fail(r.err ?? "refused")
    const body = ("b" in r ? r.b : undefined) as { checkpoint?: number } | undefined
    // the answer came off the wire: a checkpoint id that is not a number is no id
    return { checkpoint: typeof body?.checkpoint === "number" ? body.checkpoint : undefined }
  })
