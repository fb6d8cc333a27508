/**
 * `exactor ui [--port 8081] [--host 127.0.0.1]`: the web view of every job on this NATS server and
 * its `/metrics`, until interrupted; `withWebView` is what `exactor run --ui` wraps a run in.
 */
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { Command, Flag } from "effect/cli"
import type { BrokerUrls } from "../brokers/BrokerUrls.ts"
import { defaultObservePort, serveObserver } from "../observe/ObserveServer.ts"
import { natsConnection } from "../runtime/Nats.ts"

export const portFlag = (name: string) =>
  Flag.Int(name).pipe(
    Flag.withDescription("the web view's port (0: a free port the system picks)"),
    Flag.withDefault(defaultObservePort)
  )

/** Runs `effect` with the web view served beside it (when `enabled`), printing its URL on stderr. */
export const withWebView = <A, E, R>(
  urls: BrokerUrls,
  enabled: boolean,
  port: number,
  effect: Effect.Effect<A, E, R>
) =>
  enabled
    ? Effect.scoped(
        Effect.gen(function* () {
          const nc = yield* natsConnection(urls.natsUrl, { name: "exactor/ui" })
          const served = yield* serveObserver(nc, { port })
          yield* Console.error(`web view: ${served.url}   metrics: ${served.url}/metrics`)
          return yield* effect
        })
      )
    : effect

export const uiCommand = (urls: BrokerUrls) =>
  Command.make(
    "ui",
    {
      port: portFlag("port"),
      host: Flag.String("host").pipe(
        Flag.withDescription("the address to listen on"),
        Flag.withDefault("127.0.0.1")
      )
    },
    (f) =>
      Effect.scoped(
        Effect.gen(function* () {
          const nc = yield* natsConnection(urls.natsUrl, { name: "exactor/ui" })
          const served = yield* serveObserver(nc, { port: f.port, host: f.host })
          yield* Console.log(`web view: ${served.url}   metrics: ${served.url}/metrics   (Ctrl-C stops)`)
          return yield* Effect.never
        })
      )
  ).pipe(
    Command.withDescription(
      "Serve the web view (jobs, graph, checkpoints, recoveries) and Prometheus /metrics of every job"
    )
  )
