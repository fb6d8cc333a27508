/**
 * Secure connections end to end: a private nats-server that requires TLS with client certificates
 * and user/password auth (JetStream on), and a private RabbitMQ node with TLS listeners (client
 * certificates required) and a vhost of its own. The orders job runs over `tls://` and `amqps://`
 * with exactly-once output; no secret shows up in what the job writes (its logs, `exactor status`,
 * the process titles of its children); a wrong password is an error naming the broker, not the
 * password; a missing CA file is an error naming its variable.
 */
import { execFileSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import t from "tap"
import { ensureNats, ensureRabbitMq } from "../../lib/brokers/Brokers.ts"
import { startNatsServer, type TestNatsServer } from "../../lib/brokers/NatsServer.ts"
import { type PrivateRabbitMqNode, startRabbitMqNode } from "../../lib/brokers/RabbitMqNode.ts"
import { drainStream } from "../../lib/chaos/StreamDrain.ts"
import {
  ensureStream,
  openNamedProducer,
  parseStreamUrl
} from "../../lib/connectors/rabbitmq-stream/StreamClient.ts"
import { amqpConnect } from "../../lib/internal/AmqpConnectOptions.ts"
import { readNatsSecurity } from "../../lib/internal/NatsConnectOptions.ts"
import { type TestCertificates, makeTestCertificates } from "../harness/certificates.ts"
import { exactlyOnce, status, until } from "../harness/checks.ts"
import { uniqueName } from "../harness/env.ts"
import { startOrdersJob } from "../harness/job.ts"

const natsPassword = `nats-pw-${randomBytes(12).toString("hex")}`
const amqpPassword = `amqp-pw-${randomBytes(12).toString("hex")}`
const wrongPassword = `wrong-pw-${randomBytes(12).toString("hex")}`
const secrets = [natsPassword, amqpPassword, wrongPassword]
const vhost = "exactor-secure"

let dir: string
let certs: TestCertificates
let nats: TestNatsServer
let rabbit: PrivateRabbitMqNode

const amqpsUrl = (password = amqpPassword) =>
  `amqps://exactor:${password}@localhost:${rabbit.amqpsPort}/${vhost}`

/** The nats-server config of the test (and of docs/security.md): TLS with client certificates, one user. */
const natsConfig = (c: TestCertificates) => `
tls {
  cert_file: "${c.serverCert}"
  key_file: "${c.serverKey}"
  ca_file: "${c.caFile}"
  verify: true
  timeout: 5
}
authorization {
  users: [ { user: "exactor", password: "${natsPassword}" } ]
}
`

t.before(async () => {
  dir = mkdtempSync(join(tmpdir(), "exactor-secure-"))
  certs = makeTestCertificates(dir)
  ;[nats, rabbit] = await Promise.all([
    startNatsServer({ config: natsConfig(certs), tls: true, urlHost: "localhost" }),
    startRabbitMqNode({
      tls: { caFile: certs.caFile, certFile: certs.serverCert, keyFile: certs.serverKey, verifyPeer: true }
    })
  ])
  await rabbit.ctl(["add_vhost", vhost])
  await rabbit.ctl(["add_user", "exactor", amqpPassword])
  await rabbit.ctl(["set_permissions", "-p", vhost, "exactor", ".*", ".*", ".*"])
  // what an operator exports; the job's processes inherit it (never on a command line)
  Object.assign(process.env, {
    EXACTOR_NATS_USER: "exactor",
    EXACTOR_NATS_PASSWORD: natsPassword,
    EXACTOR_NATS_TLS_CA: certs.caFile,
    EXACTOR_NATS_TLS_CERT: certs.clientCert,
    EXACTOR_NATS_TLS_KEY: certs.clientKey,
    EXACTOR_AMQP_TLS_CA: certs.caFile,
    EXACTOR_AMQP_TLS_CERT: certs.clientCert,
    EXACTOR_AMQP_TLS_KEY: certs.clientKey
  })
})
t.teardown(async () => {
  await Promise.all([nats?.stop(), rabbit?.stop()])
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
})

const leaked = (text: string) => secrets.filter((s) => text.includes(s))

t.test(
  "the orders job over tls:// and amqps:// (a vhost) is exactly-once, and writes no secret",
  async (t) => {
    const orders = 3000
    const job = await startOrdersJob({
      orders,
      env: { EXACTOR_NATS_URL: nats.url, EXACTOR_AMQP_URL: amqpsUrl(), EXACTOR_CHECKPOINT_INTERVAL: "500" }
    })
    t.teardown(() => job.cleanup())
    const run = job.run()
    // while it runs: the process titles of the launcher and of every actor process
    await until(
      "every instance running",
      () => job.seen.size >= 7 && [...job.seen.values()].every((s) => s.pid > 0)
    )
    const pids = [run.child.pid, ...[...job.seen.values()].map((s) => s.pid)].filter((p) => p !== undefined)
    let titles = ""
    try {
      titles = execFileSync("ps", ["-o", "pid=,args=", "-p", pids.join(",")], { encoding: "utf8" })
    } catch {
      // a process that just finished: ps exits 1 but prints the others
    }
    t.ok(titles.split("\n").filter((l) => l.trim() !== "").length >= 2, "ps shows the job's processes")
    t.equal(await run.exit, 0, "the job FINISHED")
    // a TLS consumer on a loaded 2-core machine can be slow to get its first delivery: a longer idle
    const v = await job.verdict(3000)
    t.comment(JSON.stringify({ ...v, examples: v.examples.slice(0, 3) }))
    exactlyOnce(t, v, orders)
    const s = await status(job)
    t.equal(s?.state, "FINISHED")
    const printed = await job.cli(["status", job.job])
    t.equal(printed.code, 0, "exactor status works over the secure connections")
    t.match(printed.output, /FINISHED/)
    t.ok(run.output().includes("coordinator"), `the job's log is there (${run.output().length} chars)`)
    t.same(leaked(run.output()), [], "no secret in the job's log")
    t.same(leaked(printed.output), [], "no secret in exactor status")
    t.same(leaked(titles), [], "no secret in the process titles")
    t.same(leaked(JSON.stringify(s)), [], "no secret in the status record")
  }
)

t.test("a wrong password: an error naming the broker, not the password", async (t) => {
  const job = await startOrdersJob({
    orders: 1,
    env: { EXACTOR_NATS_URL: nats.url, EXACTOR_AMQP_URL: amqpsUrl() }
  })
  t.teardown(() => job.cleanup())
  const started = Date.now()
  const refused = await job.cli(["status", job.job], { EXACTOR_NATS_PASSWORD: wrongPassword })
  t.not(refused.code, 0, "exactor status fails")
  t.comment(refused.output.trim().split("\n").slice(0, 3).join("\n"))
  t.match(refused.output, /NATS at tls:\/\/localhost:\d+ refused the connection's credentials/)
  t.match(refused.output, /EXACTOR_NATS_USER\/EXACTOR_NATS_PASSWORD/, "it says which variables to check")
  t.same(leaked(refused.output), [], "the wrong password is not printed")
  t.ok(Date.now() - started < 15_000, `a refused login is not retried for long (${Date.now() - started} ms)`)

  const amqp = await Effect.runPromise(
    Effect.flip(ensureRabbitMq({ amqpUrl: amqpsUrl(wrongPassword), start: false }))
  )
  t.match(amqp.message, /^RabbitMQ at amqps:\/\/exactor:\*\*\*@localhost:\d+\/exactor-secure /)
  t.match(amqp.message, /ACCESS_REFUSED/)
  t.comment(amqp.message)
  t.same(leaked(amqp.message), [], "the wrong AMQP password is not printed")
  const probed = await Effect.runPromise(Effect.result(ensureNats({ natsUrl: nats.url, start: false })))
  t.equal(probed._tag, "Success", "with the right settings the broker probe gets through TLS and auth")
})

t.test("a missing CA file: an error naming EXACTOR_NATS_TLS_CA (or EXACTOR_AMQP_TLS_CA)", async (t) => {
  const job = await startOrdersJob({
    orders: 1,
    env: { EXACTOR_NATS_URL: nats.url, EXACTOR_AMQP_URL: amqpsUrl() }
  })
  t.teardown(() => job.cleanup())
  const missing = join(dir, "no-such-ca.pem")
  const out = await job.cli(["status", job.job], { EXACTOR_NATS_TLS_CA: missing })
  t.not(out.code, 0)
  t.comment(out.output.trim().split("\n").slice(0, 3).join("\n"))
  t.match(out.output, `EXACTOR_NATS_TLS_CA: file ${missing} does not exist`)
  const amqp = await amqpConnect(amqpsUrl(), {}, { ...process.env, EXACTOR_AMQP_TLS_CA: missing }).then(
    () => "connected",
    (e: Error) => e.message
  )
  t.equal(amqp, `EXACTOR_AMQP_TLS_CA: file ${missing} does not exist`)
  const conflict = readNatsSecurity({
    EXACTOR_NATS_TOKEN: "x",
    EXACTOR_NATS_USER: "u",
    EXACTOR_NATS_PASSWORD: "p"
  })
  t.match(String(conflict), /EXACTOR_NATS_TOKEN and EXACTOR_NATS_USER: set only one way of authenticating/)
})

t.test(
  "the stream protocol over rabbitmq-stream+tls:// in the vhost: named producer and drain",
  async (t) => {
    const stream = uniqueName("secure")
    const endpoint = parseStreamUrl(
      `rabbitmq-stream+tls://exactor:${amqpPassword}@localhost:${rabbit.streamTlsPort}/${vhost}`
    )
    if (endpoint === undefined) throw new Error("no endpoint")
    t.equal(endpoint.tls, true)
    t.equal(endpoint.vhost, vhost)
    await Effect.runPromise(ensureStream("secure-test", stream, endpoint, 10_000))
    const bodies = Array.from({ length: 50 }, (_, i) => Buffer.from(JSON.stringify({ orderId: i })))
    const stored = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const p = yield* Effect.acquireRelease(
            openNamedProducer({
              owner: "secure-test",
              stream,
              name: "secure-test/0",
              endpoint,
              timeoutMs: 10_000,
              heartbeatSeconds: 10
            }),
            (p) => p.close
          )
          yield* p.publish(1, 1n, bodies)
          return yield* p.lastStored
        })
      )
    )
    t.equal(stored, 50n, "50 confirmed under the producer name")
    const out = await Effect.runPromise(drainStream(amqpsUrl(), stream, 50, 1000))
    t.equal(out.length, 50, "an amqps:// drain reads them back")
  }
)
