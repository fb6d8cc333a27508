/**
 * Control commands over core NATS, which can lose them: each command is a request that is
 * repeated until its instance answers or the command timeout passes (DESIGN §4). Commands are
 * idempotent at the receiver (keyed by epoch and checkpoint), so a repeat is harmless.
 * Invariant: `sendCommand` succeeds only with the instance's answer, and fails with
 * `CommandUnanswered` (naming instance and command) or `CommandRefused` (with its reason). Commands
 * go out tagged with the job's secret (`ControlAuth`), and an answer without a valid tag counts as
 * no answer: someone who reads the traffic can neither command an instance nor answer for it.
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import {
  decode,
  EnvelopeDecodeError,
  encode,
  type ControlEnvelope,
  type ReplyEnvelope
} from "../runtime/Envelope.ts"
import type { ControlAuth } from "../runtime/ControlAuth.ts"
import type { NatsConnection } from "../runtime/Nats.ts"

export class CommandUnanswered extends Data.TaggedError("CommandUnanswered")<{
  readonly instance: string
  readonly command: string
  readonly epoch: number
  readonly waitedMs: number
}> {
  override get message(): string {
    return `${this.instance} did not answer ${this.command} (epoch ${this.epoch}) within ${this.waitedMs} ms`
  }
}

export class CommandRefused extends Data.TaggedError("CommandRefused")<{
  readonly instance: string
  readonly command: string
  readonly epoch: number
  readonly reason: string
}> {
  override get message(): string {
    return `${this.instance} refused ${this.command} (epoch ${this.epoch}): ${this.reason}`
  }
}

/** One attempt waits this long for an answer; attempts repeat every `commandRetrySchedule`. */
export const commandAttemptTimeout = Duration.seconds(2)
export const commandRetrySchedule = Schedule.spaced("200 millis")

/** Sends `command` to `subject` until answered or `timeoutMs` has passed. */
export const sendCommand = (
  nc: NatsConnection,
  auth: ControlAuth,
  subject: string,
  instance: string,
  command: ControlEnvelope,
  timeoutMs: number
): Effect.Effect<ReplyEnvelope, CommandUnanswered | CommandRefused> => {
  const name = command.n === undefined ? command.k : `${command.k} ${command.n}`
  const bytes = encode(command)
  const headers = auth.headers(subject, bytes)
  const attempt = Effect.tryPromise({
    try: () =>
      nc.request(subject, bytes, {
        timeout: Duration.toMillis(commandAttemptTimeout),
        headers
      }),
    catch: () => "no answer" as const
  }).pipe(
    Effect.flatMap((msg): Effect.Effect<ReplyEnvelope, "no answer"> => {
      if (!auth.verifyReply(msg, headers)) return Effect.fail("no answer" as const)
      const reply = decode(subject, msg.data)
      return reply instanceof EnvelopeDecodeError || reply.k !== "reply"
        ? Effect.fail("no answer" as const)
        : Effect.succeed(reply)
    })
  )
  const started = Date.now()
  return attempt.pipe(
    Effect.retry({ schedule: commandRetrySchedule, until: () => Date.now() - started >= timeoutMs }),
    Effect.mapError(
      () =>
        new CommandUnanswered({ instance, command: name, epoch: command.e, waitedMs: Date.now() - started })
    ),
    Effect.flatMap(
      (reply): Effect.Effect<ReplyEnvelope, CommandRefused> =>
        reply.ok
          ? Effect.succeed(reply)
          : Effect.fail(
              new CommandRefused({
                instance,
                command: name,
                epoch: command.e,
                reason: reply.err ?? "no reason given"
              })
            )
    )
  )
}
