import t from "tap"
import { existsSync } from "node:fs"
import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { Effect } from "effect"
import { NatsServer, natsServerBinary, startNatsServer } from "./harness/NatsServer.ts"
import { uniqueName } from "./harness/env.ts"

const noNatsServer = natsServerBinary() === undefined ? "nats-server is not installed" : false

/** Resolves at the next status of `type`, or rejects after `ms`. */
const nextStatus = (nc: NatsConnection, type: string, ms = 10_000): Promise<void> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${type} status within ${ms} ms`)), ms)
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === type) {
          clearTimeout(timer)
          resolve()
          return
        }
      }
    })()
  })

/** One request/reply round trip through the server. */
const roundTrip = async (nc: NatsConnection, subject: string): Promise<string> => {
  const sub = nc.subscribe(subject, {
    max: 1,
    callback: (_err, msg) => {
      msg.respond(`echo ${msg.string()}`)
    }
  })
  await nc.flush()
  const reply = await nc.request(subject, "ping", { timeout: 2_000 })
  sub.unsubscribe()
  return reply.string()
}

t.test("uniqueName gives distinct names valid for streams, buckets and subject tokens", async (t) => {
  const a = uniqueName("orders.in")
  const b = uniqueName("orders.in")
  t.not(a, b)
  t.match(a, /^[A-Za-z0-9_-]+$/)
})

t.test(
  "a throwaway server: connect, kill, restart on the same port, reconnect",
  { skip: noNatsServer },
  async (t) => {
    const server = await startNatsServer()
    t.teardown(() => server.stop())
    t.not(server.port, 4222, "never the shared server's port")
    t.equal(server.url, `nats://127.0.0.1:${server.port}`)

    const nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 })
    t.teardown(() => nc.close())
    t.equal(await roundTrip(nc, uniqueName("echo")), "echo ping")

    const stream = uniqueName("harness")
    const jsm = await jetstreamManager(nc)
    await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] })
    await jetstream(nc).publish(`${stream}.a`, "kept")

    const disconnected = nextStatus(nc, "disconnect")
    const firstPid = server.pid
    await server.kill()
    await disconnected
    t.equal(server.pid, undefined, "no process after kill()")
    t.ok(firstPid !== undefined && !isAlive(firstPid), "the killed process is gone")

    const reconnected = nextStatus(nc, "reconnect")
    const port = server.port
    await server.restart()
    t.equal(server.port, port, "restarted on the same port")
    t.not(server.pid, firstPid, "a new process")
    await reconnected
    t.equal(await roundTrip(nc, uniqueName("echo")), "echo ping", "the client works again")

    const info = await (await jetstreamManager(nc)).streams.info(stream)
    t.equal(info.state.messages, 1, "the stream survived the crash in the same store dir")
  }
)

t.test("stop() ends the process and removes the temp dir", { skip: noNatsServer }, async (t) => {
  const server = await startNatsServer()
  const pid = server.pid
  t.ok(existsSync(server.storeDir))
  await server.stop()
  t.equal(server.pid, undefined)
  t.ok(pid !== undefined && !isAlive(pid), "the process is gone")
  t.notOk(existsSync(server.storeDir), "the store is gone")
  await t.rejects(server.restart(), { name: "NatsServerError" }, "cannot restart a stopped server")
})

t.test("NatsServer.scoped stops the server when the scope closes", { skip: noNatsServer }, async (t) => {
  const seen = await Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const server = yield* NatsServer.scoped
        const nc = yield* Effect.promise(() => connect({ servers: server.url }))
        yield* Effect.promise(() => nc.close())
        return { pid: server.pid, storeDir: server.storeDir }
      })
    )
  )
  t.ok(seen.pid !== undefined && !isAlive(seen.pid), "the process is gone")
  t.notOk(existsSync(seen.storeDir), "the store is gone")
})

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
