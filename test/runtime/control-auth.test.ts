/**
 * ControlAuth: a tag covers the subject and the exact bytes, a wrong or copied tag fails, and an
 * answer is valid only for the request it answers.
 */
import { headers } from "@nats-io/transport-node"
import t from "tap"
import { authHeader, ControlAuth } from "../../lib/runtime/ControlAuth.ts"
import { encode } from "../../lib/runtime/Envelope.ts"

const auth = ControlAuth.fromSecret("control-auth-test-secret")
const trigger = encode({ k: "trigger", e: 2, c: "coordinator", n: 62 })
const complete = encode({ k: "complete", e: 2, c: "coordinator", n: 999_999 })

t.test("a tag covers subject and bytes", async (t) => {
  const h = auth.headers("exactor.j.ctl.orders.0", trigger)
  t.ok(auth.verify("exactor.j.ctl.orders.0", trigger, h))
  t.notOk(auth.verify("exactor.j.ctl.sink.0", trigger, h), "another subject")
  t.notOk(auth.verify("exactor.j.ctl.orders.0", complete, h), "other bytes with a copied tag")
  t.notOk(auth.verify("exactor.j.ctl.orders.0", trigger, undefined), "no headers")
  t.notOk(auth.verify("exactor.j.ctl.orders.0", trigger, headers()), "no tag")
  const short = headers()
  short.set(authHeader, "abc")
  t.notOk(auth.verify("exactor.j.ctl.orders.0", trigger, short), "a tag of another length")
  t.notOk(
    ControlAuth.fromSecret("another-secret-000").verify("exactor.j.ctl.orders.0", trigger, h),
    "another secret"
  )
})

t.test("an answer is bound to its request", async (t) => {
  const reply = encode({ k: "reply", e: 2, c: "sink#0", ok: true })
  const request62 = auth.headers(
    "exactor.j.ctl.sink.0",
    encode({ k: "complete", e: 2, c: "coordinator", n: 62 })
  )
  const request63 = auth.headers(
    "exactor.j.ctl.sink.0",
    encode({ k: "complete", e: 2, c: "coordinator", n: 63 })
  )
  // what `respond` puts on an answer to request 62 on inbox _INBOX.a
  let sent: { data: Uint8Array; headers: ReturnType<typeof headers> } | undefined
  const msg = {
    reply: "_INBOX.a",
    headers: request62,
    respond: (data: Uint8Array, opts: { headers: ReturnType<typeof headers> }) => {
      sent = { data, headers: opts.headers }
      return true
    }
  }
  t.ok(auth.respond(msg as never, reply))
  const answer = (subject: string) => ({ subject, data: sent!.data, headers: sent!.headers }) as never
  t.ok(auth.verifyReply(answer("_INBOX.a"), request62), "valid for its request")
  t.notOk(auth.verifyReply(answer("_INBOX.a"), request63), "not for another request on the same inbox")
  t.notOk(auth.verifyReply(answer("_INBOX.b"), request62), "not on another inbox")
})
