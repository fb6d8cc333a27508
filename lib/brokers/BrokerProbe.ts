/**
 * Probes that ask whether a broker answers at a URL: NATS must also serve JetStream, RabbitMQ must
 * accept an AMQP connection. Invariant: a probe makes one connection attempt, closes what it opened,
 * and fails within 5 s with a `ProbeFailed` whose `unusable` says whether starting a broker would help.
 * Probes authenticate and use TLS as every other connection does (the `EXACTOR_NATS_*` and
 * `EXACTOR_AMQP_TLS_*` variables); a refused login or bad TLS setting is `unusable` too.
 */
import { jetstreamManager } from "@nats-io/jetstream"
import { connect as natsConnect } from "@nats-io/transport-node"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { AmqpSettingInvalid, amqpConnect } from "../internal/AmqpConnectOptions.ts"
import { causeMessage } from "../internal/causeMessage.ts"
import { NatsSettingInvalid, natsConnectOptions, readNatsSecurity } from "../internal/NatsConnectOptions.ts"

export class ProbeFailed extends Data.TaggedError("ProbeFailed")<{
  readonly reason: string
  /** it answers, but is not usable (NATS without JetStream): starting another one would not help */
  readonly unusable: boolean
}> {}

const probeTimeout = Duration.seconds(5)

/** The broker answered but refused the login or the TLS handshake: another broker would not help. */
const refusedLogin = (cause: unknown): boolean =>
  cause instanceof Error &&
  /authorization|authentication|ACCESS_REFUSED|access to vhost|certificate|self[- ]signed|tls|ssl/i.test(
    cause.message
  )

/** Connects once (2 s connect timeout, no reconnect) and asks JetStream for the account info. */
export const probeNats = (url: string): Effect.Effect<void, ProbeFailed> =>
  Effect.tryPromise({
    try: async () => {
      const security = readNatsSecurity(process.env)
      if (security instanceof NatsSettingInvalid)
        throw new ProbeFailed({ reason: security.message, unusable: true })
      const nc = await natsConnect(
        natsConnectOptions(url, security, { timeout: 2_000, reconnect: false, name: "exactor-brokers" })
      ).catch((cause: unknown) => {
        throw new ProbeFailed({ reason: causeMessage(cause), unusable: refusedLogin(cause) })
      })
      try {
        const jsm = await jetstreamManager(nc).catch((cause: unknown) => {
          throw new ProbeFailed({
            reason: `JetStream is not enabled (${causeMessage(cause)})`,
            unusable: true
          })
        })
        await jsm.getAccountInfo().catch((cause: unknown) => {
          throw new ProbeFailed({
            reason: `JetStream is not enabled (${causeMessage(cause)})`,
            unusable: true
          })
        })
      } finally {
        await nc.close()
      }
    },
    catch: (cause) =>
      cause instanceof ProbeFailed ? cause : new ProbeFailed({ reason: causeMessage(cause), unusable: false })
  }).pipe(
    Effect.timeout(probeTimeout),
    Effect.catchTag("TimeoutError", () =>
      Effect.fail(new ProbeFailed({ reason: "no answer in 5 s", unusable: false }))
    )
  )

/** Opens an AMQP connection (2 s socket timeout) and closes it again. */
export const probeAmqp = (url: string): Effect.Effect<void, ProbeFailed> =>
  Effect.tryPromise({
    try: async () => {
      const conn = await amqpConnect(url, { timeout: 2_000 })
      await conn.close()
    },
    catch: (cause) =>
      new ProbeFailed({
        reason: causeMessage(cause),
        unusable: cause instanceof AmqpSettingInvalid || refusedLogin(cause)
      })
  }).pipe(
    Effect.timeout(probeTimeout),
    Effect.catchTag("TimeoutError", () =>
      Effect.fail(new ProbeFailed({ reason: "no answer in 5 s", unusable: false }))
    )
  )
