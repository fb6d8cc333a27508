/**
 * The connection-security builders without a broker: what `EXACTOR_NATS_*` and
 * `EXACTOR_AMQP_TLS_*` turn into, the errors that name the variable (and never a secret), and URL
 * redaction.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import t from "tap"
import { AmqpSettingInvalid, amqpSocketOptions, readAmqpTls } from "../../lib/internal/AmqpConnectOptions.ts"
import {
  NatsSettingInvalid,
  natsConnectOptions,
  readNatsSecurity
} from "../../lib/internal/NatsConnectOptions.ts"
import { redactUrl } from "../../lib/internal/redactUrl.ts"

const dir = mkdtempSync(join(tmpdir(), "exactor-connect-options-"))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const file = (name: string, text: string) => {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}
const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
// a syntactically valid user seed (base32, 58 characters), not a real key of anything
const seed = `SUA${"A".repeat(55)}`

t.test("redactUrl hides passwords and NATS tokens, keeps the rest", async (t) => {
  t.equal(redactUrl("amqp://guest:guest@127.0.0.1:5672"), "amqp://guest:***@127.0.0.1:5672")
  t.equal(redactUrl("amqps://u:s3cret@host:5671/vh"), "amqps://u:***@host:5671/vh")
  t.equal(redactUrl("nats://tok3n@host:4222"), "nats://***@host:4222")
  t.equal(redactUrl("tls://user:pw@host:4222"), "tls://user:***@host:4222")
  t.equal(redactUrl("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222")
  t.equal(redactUrl("postgres://u:p@h/db"), "postgres://u:***@h/db")
  t.equal(redactUrl("amqp://u:p w@[bad"), "amqp://***@[bad", "a URL that does not parse")
})

t.test("NATS: one way of authenticating, through nats.js's authenticators", async (t) => {
  const none = readNatsSecurity({})
  if (none instanceof NatsSettingInvalid) throw none
  t.equal(none.auth, "none")
  t.equal(none.tls, undefined)
  t.same(natsConnectOptions("nats://h:4222", none, { name: "x" }), { name: "x", servers: "nats://h:4222" })
  t.same(natsConnectOptions("tls://h:4222", none, {}).tls, {}, "a tls:// URL alone asks for TLS")

  const user = readNatsSecurity({ EXACTOR_NATS_USER: "u", EXACTOR_NATS_PASSWORD: "pw-secret" })
  if (user instanceof NatsSettingInvalid) throw user
  t.equal(user.auth, "user/password")
  t.type(natsConnectOptions("nats://h", user, {}).authenticator, "function")
  const a = natsConnectOptions("nats://h", user, {})
  const b = natsConnectOptions("nats://h", user, {})
  t.not(a, b, "a fresh options object per call (connect mutates it)")

  const token = readNatsSecurity({ EXACTOR_NATS_TOKEN: "tok" })
  t.equal(token instanceof NatsSettingInvalid ? "invalid" : token.auth, "token")
  const nkeyLiteral = readNatsSecurity({ EXACTOR_NATS_NKEY: seed })
  t.equal(nkeyLiteral instanceof NatsSettingInvalid ? nkeyLiteral.message : nkeyLiteral.auth, "nkey")
  const nkeyFile = readNatsSecurity({ EXACTOR_NATS_NKEY: file("user.nk", `${seed}\n`) })
  t.equal(nkeyFile instanceof NatsSettingInvalid ? nkeyFile.message : nkeyFile.auth, "nkey", "a seed file")
  const creds = file(
    "user.creds",
    `-----BEGIN NATS USER JWT-----\neyJ0\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n${seed}\n------END USER NKEY SEED------\n`
  )
  const credsSec = readNatsSecurity({ EXACTOR_NATS_CREDS: creds })
  t.equal(credsSec instanceof NatsSettingInvalid ? credsSec.message : credsSec.auth, "credentials file")
})

t.test("NATS: bad settings are errors naming the variable, never the secret", async (t) => {
  const message = (env: Record<string, string>) => {
    const s = readNatsSecurity(env)
    return s instanceof NatsSettingInvalid ? s.message : "accepted"
  }
  t.equal(
    message({ EXACTOR_NATS_TOKEN: "tok-secret", EXACTOR_NATS_NKEY: seed }),
    "EXACTOR_NATS_NKEY and EXACTOR_NATS_TOKEN: set only one way of authenticating (credentials file, nkey, token or user/password)"
  )
  t.equal(message({ EXACTOR_NATS_USER: "u" }), "EXACTOR_NATS_PASSWORD: is not set, but EXACTOR_NATS_USER is")
  t.equal(
    message({ EXACTOR_NATS_PASSWORD: "pw-secret" }),
    "EXACTOR_NATS_USER: is not set, but EXACTOR_NATS_PASSWORD is"
  )
  t.equal(
    message({ EXACTOR_NATS_CREDS: join(dir, "missing.creds") }),
    `EXACTOR_NATS_CREDS: file ${join(dir, "missing.creds")} does not exist`
  )
  t.equal(
    message({ EXACTOR_NATS_CREDS: file("not.creds", "hello") }),
    `EXACTOR_NATS_CREDS: file ${join(dir, "not.creds")} is not a NATS credentials file (a user JWT and an nkey seed)`
  )
  const typo = `SUA${"A".repeat(40)}`
  const nkey = message({ EXACTOR_NATS_NKEY: typo })
  t.match(nkey, /^EXACTOR_NATS_NKEY: is neither a readable seed file nor an nkey seed/)
  t.notOk(nkey.includes(typo), "a mistyped seed is not printed")
  t.equal(
    message({ EXACTOR_NATS_TLS_CA: join(dir, "ca.pem") }),
    `EXACTOR_NATS_TLS_CA: file ${join(dir, "ca.pem")} does not exist`
  )
  t.equal(
    message({ EXACTOR_NATS_TLS_CERT: file("c.pem", pem) }),
    "EXACTOR_NATS_TLS_KEY: is not set, but EXACTOR_NATS_TLS_CERT is (a client certificate needs both)"
  )
  t.equal(
    message({ EXACTOR_NATS_TLS_CA: file("ca.txt", "no pem") }),
    `EXACTOR_NATS_TLS_CA: file ${join(dir, "ca.txt")} is not PEM`
  )
  const tls = readNatsSecurity({ EXACTOR_NATS_TLS_CA: file("ca.pem", pem) })
  t.same(tls instanceof NatsSettingInvalid ? tls.message : tls.tls, { ca: pem }, "the CA's contents")
})

t.test("AMQP: TLS files as socket options of amqps:// only; errors name the variable", async (t) => {
  const env = { EXACTOR_AMQP_TLS_CA: file("a-ca.pem", pem) }
  t.same(amqpSocketOptions("amqps://u:p@h/vh", { timeout: 1 }, env), { timeout: 1, ca: pem })
  t.same(
    amqpSocketOptions("amqp://u:p@h/vh", { timeout: 1 }, env),
    { timeout: 1 },
    "plain amqp:// gets no TLS"
  )
  const missing = readAmqpTls({ EXACTOR_AMQP_TLS_CA: join(dir, "nope.pem") })
  t.ok(missing instanceof AmqpSettingInvalid)
  t.equal(
    String((missing as AmqpSettingInvalid).message),
    `EXACTOR_AMQP_TLS_CA: file ${join(dir, "nope.pem")} does not exist`
  )
  const half = readAmqpTls({ EXACTOR_AMQP_TLS_KEY: file("k.pem", pem) })
  t.equal(
    (half as AmqpSettingInvalid).message,
    "EXACTOR_AMQP_TLS_CERT: is not set, but EXACTOR_AMQP_TLS_KEY is (a client certificate needs both)"
  )
})
