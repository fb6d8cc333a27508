/**
 * NATS connections as scoped Effect resources, and the watch that turns a `disconnect` into a
 * typed error. Core NATS silently drops what a client buffered across a reconnect, so a data
 * connection that disconnects must fail the epoch (DESIGN §2): nothing here hides a reconnect.
 * Authentication and TLS come from the `EXACTOR_NATS_*` variables (internal/NatsConnectOptions);
 * errors show the URL without its password.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { connect, errors, type NatsConnection } from "@nats-io/transport-node"
import { causeMessage } from "../internal/causeMessage.ts"
import {
  jobInboxPrefix,
  natsConnectOptions,
  type NatsSecurity,
  NatsSettingInvalid,
  natsSecurity
} from "../internal/NatsConnectOptions.ts"
import { redactUrl } from "../internal/redactUrl.ts"

export type { NatsConnection }
export { NatsSettingInvalid }

/** Whether a connect failure is the server refusing the credentials (retrying cannot help). */
export const isNatsAuthError = (cause: unknown): boolean =>
  cause instanceof errors.AuthorizationError ||
  cause instanceof errors.UserAuthenticationExpiredError ||
  (cause instanceof Error && /authorization violation|authentication/i.test(cause.message))

/** Whether a connect failure happened in the TLS handshake or TLS negotiation. */
const isTlsError = (cause: unknown): boolean =>
  cause instanceof Error &&
  (/tls|ssl|certificate|self[- ]signed|CERT_|ERR_SSL/i.test(cause.message) ||
    /CERT|SSL|TLS/.test(String((cause as NodeJS.ErrnoException).code ?? "")))

export class NatsUnavailable extends Data.TaggedError("NatsUnavailable")<{
  readonly url: string
  readonly cause: unknown
}> {
  override get message(): string {
    const url = redactUrl(this.url)
    const why = causeMessage(this.cause)
    if (isNatsAuthError(this.cause))
      return `NATS at ${url} refused the connection's credentials (${why}); check EXACTOR_NATS_CREDS, EXACTOR_NATS_NKEY, EXACTOR_NATS_TOKEN or EXACTOR_NATS_USER/EXACTOR_NATS_PASSWORD`
    if (isTlsError(this.cause))
      return `NATS at ${url}: TLS failed (${why}); check EXACTOR_NATS_TLS_CA, EXACTOR_NATS_TLS_CERT, EXACTOR_NATS_TLS_KEY and the tls:// URL`
    return `NATS at ${url} is not reachable (${why}); start it with \`npm run brokers\` or set EXACTOR_NATS_URL`
  }
}

export class NatsDisconnected extends Data.TaggedError("NatsDisconnected")<{
  readonly url: string
  readonly server: string
}> {
  override get message(): string {
    return `NATS connection to ${redactUrl(this.server)} was lost; what was buffered meanwhile is gone`
  }
}

/** Initial connection attempts: 10 tries over about 5 s, then `NatsUnavailable`. */
export const natsConnectSchedule = Schedule.min([
  Schedule.exponential("100 millis", 1.5),
  Schedule.spaced("1 second")
]).pipe(Schedule.upTo({ times: 10 }))

export interface NatsOptions {
  /** Shown in `nats server` connection listings; use the instance id. */
  readonly name: string
  /** Connect attempts before giving up. Default: `natsConnectSchedule`. */
  readonly retry?: boolean
  /** Authentication and TLS. Default: the `EXACTOR_NATS_*` variables of this process, read once. */
  readonly security?: NatsSecurity
  /**
   * The job this connection works for: its request inboxes are then `_INBOX.<job>.…`, not
   * `_INBOX.<random>.…`, so a server can let a job's user receive only its own replies
   * (docs/security.md).
   */
  readonly job?: string
}

/**
 * Connects (retrying with `natsConnectSchedule`, but not after the server refused the credentials)
 * and drains the connection when the scope closes.
 */
export const natsConnection = (
  url: string,
  options: NatsOptions
): Effect.Effect<NatsConnection, NatsUnavailable | NatsSettingInvalid, Scope.Scope> => {
  const attempt = (security: NatsSecurity) =>
    Effect.tryPromise({
      // connect() mutates its options object: build a fresh one per attempt.
      try: () =>
        connect(
          natsConnectOptions(url, security, {
            name: options.name,
            ...(options.job === undefined ? {} : { inboxPrefix: jobInboxPrefix(options.job) }),
            maxReconnectAttempts: -1,
            reconnectTimeWait: 250,
            pingInterval: 5_000,
            maxPingOut: 3
          })
        ),
      catch: (cause) => new NatsUnavailable({ url, cause })
    })
  const connected = Effect.flatMap(
    options.security === undefined ? natsSecurity() : Effect.succeed(options.security),
    (security) =>
      options.retry === false
        ? attempt(security)
        : attempt(security).pipe(
            Effect.retry({ schedule: natsConnectSchedule, while: (e) => !isNatsAuthError(e.cause) })
          )
  )
  return Effect.acquireRelease(connected, (nc) =>
    Effect.promise(() => (nc.isClosed() ? Promise.resolve() : nc.drain().catch(() => nc.close()))).pipe(
      Effect.ignore
    )
  )
}

/** Fails with `NatsDisconnected` at the first `disconnect` status of `nc`; never succeeds. */
export const failOnDisconnect = (nc: NatsConnection, url: string): Effect.Effect<never, NatsDisconnected> =>
  Effect.callback<never, NatsDisconnected>((resume) => {
    const statuses = nc.status()
    let stopped = false
    void (async () => {
      for await (const s of statuses) {
        if (stopped) return
        if (s.type === "disconnect") {
          resume(Effect.fail(new NatsDisconnected({ url, server: s.server })))
          return
        }
      }
    })()
    return Effect.sync(() => {
      stopped = true
    })
  })
