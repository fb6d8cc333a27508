/**
 * NATS token and nkey authentication against private nats-servers that require them: the
 * settings `EXACTOR_NATS_TOKEN` / `EXACTOR_NATS_NKEY` (a seed file or the seed) give a working
 * JetStream connection through `natsConnection`; a wrong token is refused at once, with an error
 * that names the variables and not the token.
 */
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { jetstreamManager } from "@nats-io/jetstream"
import { nkeys } from "@nats-io/transport-node"
import { Effect } from "effect"
import t from "tap"
import { startNatsServer } from "../../lib/brokers/NatsServer.ts"
import { NatsSettingInvalid, readNatsSecurity } from "../../lib/internal/NatsConnectOptions.ts"
import { natsConnection } from "../../lib/runtime/Nats.ts"

const dir = mkdtempSync(join(tmpdir(), "exactor-nats-auth-"))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

/** Connects with the settings of `env` and asks JetStream for its account info; the failure's message otherwise. */
const tryConnect = (url: string, env: Record<string, string>) => {
  const security = readNatsSecurity(env)
  if (security instanceof NatsSettingInvalid) return Promise.resolve(security.message)
  return Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const nc = yield* natsConnection(url, { name: "nats-auth.test", security })
        const info = yield* Effect.promise(async () => (await jetstreamManager(nc)).getAccountInfo())
        return `connected (JetStream streams: ${info.streams})`
      })
    ).pipe(Effect.catch((e) => Effect.succeed(e.message)))
  )
}

t.test("token: the right one connects, a wrong one is refused at once without being printed", async (t) => {
  const token = `tok-${randomBytes(12).toString("hex")}`
  const wrong = `tok-${randomBytes(12).toString("hex")}`
  const server = await startNatsServer({ config: `authorization { token: "${token}" }\n` })
  t.teardown(() => server.stop())
  t.match(await tryConnect(server.url, { EXACTOR_NATS_TOKEN: token }), /^connected/)
  const started = Date.now()
  const refused = await tryConnect(server.url, { EXACTOR_NATS_TOKEN: wrong })
  t.match(refused, /^NATS at nats:\/\/127\.0\.0\.1:\d+ refused the connection's credentials/)
  t.notOk(refused.includes(wrong), "the wrong token is not in the message")
  t.ok(Date.now() - started < 3000, `not retried (${Date.now() - started} ms)`)
  t.match(await tryConnect(server.url, {}), /refused the connection's credentials/, "no token: refused")
})

t.test("nkey: a seed file or the seed itself", async (t) => {
  const user = nkeys.createUser()
  const seed = new TextDecoder().decode(user.getSeed())
  const server = await startNatsServer({
    config: `authorization { users: [ { nkey: "${user.getPublicKey()}" } ] }\n`
  })
  t.teardown(() => server.stop())
  const seedFile = join(dir, "user.nk")
  writeFileSync(seedFile, `${seed}\n`, { mode: 0o600 })
  t.match(await tryConnect(server.url, { EXACTOR_NATS_NKEY: seedFile }), /^connected/, "a seed file")
  t.match(await tryConnect(server.url, { EXACTOR_NATS_NKEY: seed }), /^connected/, "the seed itself")
  const other = new TextDecoder().decode(nkeys.createUser().getSeed())
  const refused = await tryConnect(server.url, { EXACTOR_NATS_NKEY: other })
  t.match(refused, /refused the connection's credentials/, "another user's seed is refused")
  t.notOk(refused.includes(other), "the seed is not in the message")
})
