/**
 * The HTTP server of `exactor ui` (and `run --ui`): the web view (a static page, its script and
 * uPlot straight from node_modules, no build step), `/api/jobs` (every job's latest status),
 * `/events` (server-sent events: each status as its coordinator writes it) and `/metrics`
 * (Prometheus text format). Invariant: everything it serves comes from the status feed; it never
 * asks an instance, and closing its scope closes the server.
 */
import { readFileSync } from "node:fs"
import type { AddressInfo } from "node:net"
import { createRequire } from "node:module"
import { serve } from "@hono/node-server"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { Hono } from "hono"
import { streamSSE } from "hono/streaming"
import type { JobStatus } from "../checkpoint/JobStatus.ts"
import { causeMessage } from "../internal/causeMessage.ts"
import type { NatsConnection } from "../runtime/Nats.ts"
import { prometheusExport } from "./PrometheusExport.ts"
import { statusFeed } from "./StatusFeed.ts"

export class ObserveServerFailed extends Data.TaggedError("ObserveServerFailed")<{
  readonly host: string
  readonly port: number
  readonly cause: unknown
}> {
  override get message(): string {
    return `web view: cannot listen on ${this.host}:${this.port}: ${causeMessage(this.cause)}`
  }
}

export class ObserveOptionsInvalid extends Data.TaggedError("ObserveOptionsInvalid")<{
  readonly field: string
  readonly value: unknown
}> {
  override get message(): string {
    return `web view: ${this.field} must be an integer from 0 to 65535 (got ${String(this.value)})`
  }
}

export interface ObserveOptions {
  /** default 8081; 0 picks a free port */
  readonly port?: number
  /** default 127.0.0.1 */
  readonly host?: string
}

export const defaultObservePort = 8081

const here = (file: string) => new URL(`./static/${file}`, import.meta.url)
const uplot = (file: string) => createRequire(import.meta.url).resolve(`uplot/dist/${file}`)

/** A status as the page needs it: without the coordinator's own metrics text. */
const forPage = (s: JobStatus) => {
  const { metrics: _metrics, ...rest } = s
  return rest
}

/** Serves the web view and `/metrics` until the scope closes; returns the URL it listens on. */
export const serveObserver = (nc: NatsConnection, options: ObserveOptions = {}) =>
  Effect.gen(function* () {
    const port = options.port ?? defaultObservePort
    const host = options.host ?? "127.0.0.1"
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      return yield* new ObserveOptionsInvalid({ field: "port", value: port })
    const feed = yield* statusFeed(nc)
    const registry = prometheusExport(feed)
    const files = {
      page: readFileSync(here("index.html"), "utf8"),
      script: readFileSync(here("app.js"), "utf8"),
      style: readFileSync(here("style.css"), "utf8"),
      uplotScript: readFileSync(uplot("uPlot.iife.min.js"), "utf8"),
      uplotStyle: readFileSync(uplot("uPlot.min.css"), "utf8")
    }
    const app = new Hono()
    app.get("/", (c) => c.html(files.page))
    app.get("/app.js", (c) => c.body(files.script, 200, { "content-type": "text/javascript; charset=utf-8" }))
    app.get("/style.css", (c) => c.body(files.style, 200, { "content-type": "text/css; charset=utf-8" }))
    app.get("/vendor/uPlot.js", (c) =>
      c.body(files.uplotScript, 200, { "content-type": "text/javascript; charset=utf-8" })
    )
    app.get("/vendor/uPlot.css", (c) =>
      c.body(files.uplotStyle, 200, { "content-type": "text/css; charset=utf-8" })
    )
    app.get("/api/jobs", (c) => c.json([...feed.statuses().values()].map(forPage)))
    app.get("/metrics", async (c) =>
      c.body(await registry.metrics(), 200, { "content-type": registry.contentType })
    )
    app.get("/events", (c) =>
      streamSSE(c, async (stream) => {
        const queue: Array<JobStatus> = [...feed.statuses().values()]
        let wake: (() => void) | undefined
        const unsubscribe = feed.subscribe((s) => {
          queue.push(s)
          wake?.()
        })
        stream.onAbort(() => {
          unsubscribe()
          wake?.()
        })
        while (!stream.aborted) {
          while (queue.length > 0) {
            const s = queue.shift()!
            await stream.writeSSE({ event: "status", data: JSON.stringify(forPage(s)) })
          }
          await new Promise<void>((resolve) => {
            wake = resolve
            // a comment line every 15 s keeps proxies from closing an idle stream
            setTimeout(resolve, 15_000)
          })
          wake = undefined
          if (queue.length === 0 && !stream.aborted) await stream.write(": keep-alive\n\n")
        }
        unsubscribe()
      })
    )
    const server = yield* Effect.acquireRelease(
      Effect.callback<ReturnType<typeof serve>, ObserveServerFailed>((resume) => {
        const s = serve({ fetch: app.fetch, port, hostname: host }, () => resume(Effect.succeed(s)))
        s.once("error", (cause) => resume(Effect.fail(new ObserveServerFailed({ host, port, cause }))))
      }),
      (s) =>
        Effect.callback<void>((resume) => {
          // SSE streams stay open: end them so that close returns
          ;(s as { closeAllConnections?: () => void }).closeAllConnections?.()
          s.close(() => resume(Effect.void))
        })
    )
    const address = server.address() as AddressInfo
    return { url: `http://${host}:${address.port}`, port: address.port }
  })
