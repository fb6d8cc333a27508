import t from "tap"
import { mkdtempSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { Effect } from "effect"
import { ensureBrokers, ensureNats, ensureRabbitMq } from "../../lib/brokers/Brokers.ts"
import {
  isLocalHost,
  type LocalBinaries,
  localStartMethod,
  remedyFor
} from "../../lib/brokers/LocalBrokers.ts"
import { natsServerBinary } from "../harness/NatsServer.ts"
import { amqpUrl, natsUrl } from "../harness/env.ts"

/** A loopback port nothing listens on (bound once by us, then released). */
const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

const machine: LocalBinaries = {
  startStopDaemon: "/usr/sbin/start-stop-daemon",
  natsServer: "/usr/sbin/nats-server",
  rabbitmqServer: "/usr/sbin/rabbitmq-server",
  systemNatsStoreWritable: true
}
const bare: LocalBinaries = {
  startStopDaemon: undefined,
  natsServer: undefined,
  rabbitmqServer: undefined,
  systemNatsStoreWritable: false
}

t.test("finds the shared brokers already running and leaves them alone", async (t) => {
  const ready = await Effect.runPromise(ensureBrokers({ natsUrl, amqpUrl, start: false }))
  t.equal(ready.nats.how, "already running")
  t.equal(ready.nats.broker, "NATS")
  t.equal(ready.rabbitmq.how, "already running")
  t.equal(ready.rabbitmq.broker, "RabbitMQ")
  t.notMatch(ready.rabbitmq.url, /guest@/, "the AMQP password is not shown")
})

t.test("an unreachable NATS with start disabled is a BrokerUnavailable naming the URL", async (t) => {
  const url = `nats://127.0.0.1:${await freePort()}`
  const error = await Effect.runPromise(Effect.flip(ensureNats({ natsUrl: url, start: false })))
  t.equal(error._tag, "BrokerUnavailable")
  if (error._tag !== "BrokerUnavailable") return
  t.equal(error.broker, "NATS")
  t.equal(error.url, url)
  t.match(error.message, url)
  t.match(error.message, "EXACTOR_NATS_URL")
})

t.test("an unreachable RabbitMQ with start disabled is a BrokerUnavailable naming the URL", async (t) => {
  const port = await freePort()
  const error = await Effect.runPromise(
    Effect.flip(ensureRabbitMq({ amqpUrl: `amqp://guest:secret@127.0.0.1:${port}`, start: false }))
  )
  t.equal(error._tag, "BrokerUnavailable")
  t.match(error.message, `amqp://guest:***@127.0.0.1:${port}`)
  t.notMatch(error.message, "secret", "the password is not in the message")
  t.match(error.message, "EXACTOR_AMQP_URL")
})

t.test("ensureBrokers fails when one of the two is unreachable", async (t) => {
  const url = `nats://127.0.0.1:${await freePort()}`
  const error = await Effect.runPromise(Effect.flip(ensureBrokers({ natsUrl: url, amqpUrl, start: false })))
  t.equal(error._tag, "BrokerUnavailable")
  t.match(error.message, url)
})

t.test("a URL that is not a broker URL names the env var", async (t) => {
  const error = await Effect.runPromise(
    Effect.flip(ensureNats({ natsUrl: "http://127.0.0.1:4222", start: false }))
  )
  t.equal(error._tag, "BrokerUrlInvalid")
  t.match(error.message, "EXACTOR_NATS_URL=http://127.0.0.1:4222")
})

t.test("only this host's brokers are started, and how", async (t) => {
  t.ok(isLocalHost("127.0.0.1"))
  t.ok(isLocalHost("localhost"))
  t.ok(isLocalHost("[::1]"))
  t.notOk(isLocalHost("192.0.2.1"), "a documentation address is not this host")
  t.notOk(isLocalHost("nats.example.com"))

  const remote = new URL("nats://192.0.2.1:4222")
  t.equal(localStartMethod("NATS", remote, machine), undefined)
  t.match(remedyFor("NATS", remote, machine), /not this machine.*EXACTOR_NATS_URL/)

  t.equal(localStartMethod("NATS", new URL("nats://127.0.0.1:4222"), machine), "start-stop-daemon")
  t.equal(localStartMethod("NATS", new URL("nats://127.0.0.1:4333"), machine), "nats-server")
  t.equal(
    localStartMethod("NATS", new URL("nats://127.0.0.1:4222"), {
      ...machine,
      systemNatsStoreWritable: false
    }),
    "nats-server",
    "without rights on the machine's store, a private server is spawned"
  )
  t.equal(localStartMethod("NATS", new URL("nats://127.0.0.1:4222"), bare), undefined)
  t.match(remedyFor("NATS", new URL("nats://127.0.0.1:4222"), bare), /install nats-server.*EXACTOR_NATS_URL/)

  t.equal(localStartMethod("RabbitMQ", new URL("amqp://127.0.0.1:5672"), machine), "rabbitmq-server")
  t.equal(localStartMethod("RabbitMQ", new URL("amqp://127.0.0.1"), machine), "rabbitmq-server")
  t.equal(localStartMethod("RabbitMQ", new URL("amqp://127.0.0.1:5673"), machine), undefined)
  t.match(remedyFor("RabbitMQ", new URL("amqp://127.0.0.1:5672"), bare), /install RabbitMQ.*EXACTOR_AMQP_URL/)
})

const noNatsServer = natsServerBinary() === undefined ? "nats-server is not installed" : false

t.test(
  "a NATS URL on a free local port gets its own nats-server with JetStream",
  { skip: noNatsServer },
  async (t) => {
    const url = `nats://127.0.0.1:${await freePort()}`
    const store = mkdtempSync(join(tmpdir(), "exactor-brokers-test-"))
    const status = await Effect.runPromise(ensureNats({ natsUrl: url, natsStore: store }))
    const pid = status.pid
    t.teardown(async () => {
      if (pid !== undefined && alive(pid)) {
        process.kill(pid, "SIGTERM")
        for (let i = 0; i < 100 && alive(pid); i++) await sleep(50)
      }
      rmSync(store, { recursive: true, force: true })
    })
    t.equal(status.how, "started local nats-server")
    t.type(pid, "number")

    const nc = await connect({ servers: url })
    const info = await (await jetstreamManager(nc)).getAccountInfo()
    t.type(info.limits, "object", "JetStream answers")
    await nc.close()

    const again = await Effect.runPromise(ensureNats({ natsUrl: url, start: false }))
    t.equal(again.how, "already running", "a second call uses it")
  }
)
