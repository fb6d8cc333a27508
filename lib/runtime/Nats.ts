/**
 * NATS connections as scoped Effect resources, and the watch that turns a `disconnect` into a
 * typed error. Core NATS silently drops what a client buffered across a reconnect, so a data
 * connection that disconnects must fail the epoch (DESIGN §2): nothing here hides a reconnect.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { causeMessage } from "../internal/causeMessage.ts"

export type { NatsConnection }

export class NatsUnavailable extends Data.TaggedError("NatsUnavailable")<{
  readonly url: string
  readonly cause: unknown
}> {
  override get message(): string {
    const why = causeMessage(this.cause)
    return `NATS at ${this.url} is not reachable (${why}); start it with \`npm run brokers\` or set EXACTOR_NATS_URL`
  }
}

export class NatsDisconnected extends Data.TaggedError("NatsDisconnected")<{
  readonly url: string
  readonly server: string
}> {
  override get message(): string {
    return `NATS connection to ${this.server} was lost; what was buffered meanwhile is gone`
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
}

/** Connects (retrying with `natsConnectSchedule`) and drains the connection when the scope closes. */
export const natsConnection = (
  url: string,
  options: NatsOptions
): Effect.Effect<NatsConnection, NatsUnavailable, Scope.Scope> => {
  const attempt = Effect.tryPromise({
    // connect() mutates its options object: build a fresh one per attempt.
    try: () =>
      connect({
        servers: url,
        name: options.name,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        pingInterval: 5_000,
        maxPingOut: 3
      }),
    catch: (cause) => new NatsUnavailable({ url, cause })
  })
  return Effect.acquireRelease(
    options.retry === false ? attempt : attempt.pipe(Effect.retry(natsConnectSchedule)),
    (nc) =>
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
