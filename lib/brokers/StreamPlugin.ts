/**
 * `npm run brokers`' last step: RabbitMQ's stream plugin (port 5552, for the stream sink) on the local
 * node. When the AMQP broker is on this host and 5552 does not answer, it binds the plugin's listener
 * and advertised host to 127.0.0.1 (set in the running node before the plugin starts: `enable` alone
 * listens on every interface) and enables it. Invariant: it never stops or restarts the node, and a
 * failure is reported, not fatal (the AMQP sink does not need the plugin).
 */
import { spawnSync } from "node:child_process"
import { connect as tcpConnect } from "node:net"
import * as Effect from "effect/Effect"
import { findExecutable } from "./LocalBrokers.ts"

export const streamPort = 5552

const answers = (host: string, port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = tcpConnect({ host, port })
    socket.setTimeout(2000, () => {
      socket.destroy()
      resolve(false)
    })
    socket.once("connect", () => {
      socket.destroy()
      resolve(true)
    })
    socket.once("error", () => resolve(false))
  })

const bindLoopback =
  'application:load(rabbitmq_stream), application:set_env(rabbitmq_stream, tcp_listeners, [{"127.0.0.1", 5552}]), application:set_env(rabbitmq_stream, advertised_host, <<"127.0.0.1">>).'

/** What happened, as one line for `npm run brokers`. */
export const ensureStreamPlugin = (amqpUrl: string): Effect.Effect<string> =>
  Effect.promise(async () => {
    const host = new URL(amqpUrl).hostname
    if (await answers(host, streamPort)) return `stream plugin answers on ${host}:${streamPort}`
    if (host !== "127.0.0.1" && host !== "localhost")
      return `stream plugin: nothing on ${host}:${streamPort}; enable rabbitmq_stream on that broker (docs/rabbitmq-streams.md)`
    const ctl = findExecutable("rabbitmqctl")
    const plugins = findExecutable("rabbitmq-plugins")
    if (ctl === undefined || plugins === undefined)
      return "stream plugin: off, and no rabbitmqctl / rabbitmq-plugins here to enable it"
    const run = (bin: string, args: ReadonlyArray<string>) =>
      spawnSync(bin, args, { encoding: "utf8", timeout: 60_000 })
    const set = run(ctl, ["eval", bindLoopback])
    if (set.status !== 0)
      return `stream plugin: rabbitmqctl eval failed: ${(set.stderr || set.stdout).trim()}`
    const enabled = run(plugins, ["enable", "rabbitmq_stream"])
    if (enabled.status !== 0)
      return `stream plugin: rabbitmq-plugins enable failed: ${(enabled.stderr || enabled.stdout).trim()}`
    for (let i = 0; i < 30; i++) {
      if (await answers(host, streamPort)) return `stream plugin enabled on 127.0.0.1:${streamPort}`
      await new Promise((r) => setTimeout(r, 1000))
    }
    return `stream plugin enabled, but ${host}:${streamPort} does not answer after 30 s`
  })
