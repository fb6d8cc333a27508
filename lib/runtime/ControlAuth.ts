/**
 * Authenticates the control plane of a job with its secret (`JobSecret`, lib/process/): every
 * command of the coordinator, every answer to one, and every report of an instance or of the
 * launcher carries an HMAC-SHA256 tag over the subject it is published to and its exact envelope
 * bytes, in the NATS header `Exactor-Auth`. Whoever can read the traffic cannot forge a tag: not
 * for another kind, checkpoint, epoch or body, nor for another subject (so not for another instance).
 * Invariant: a message whose tag is missing or wrong is never acted upon.
 *
 * A replayed (captured, valid) message is the same command again: commands are idempotent per
 * epoch and checkpoint (DESIGN §4), and a `stop` of an older epoch is refused; an answer is bound to
 * its request (reply subject and the request's tag).
 */
import { createHmac, timingSafeEqual } from "node:crypto"
import { headers, type Msg, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node"

/** The NATS header that carries the tag (base64url of the 32-byte HMAC). */
export const authHeader = "Exactor-Auth"

export class ControlAuth {
  readonly #key: Buffer

  private constructor(key: Buffer) {
    this.#key = key
  }

  /** The authenticator of a job's secret (UTF-8 bytes as the HMAC key). */
  static fromSecret(secret: string): ControlAuth {
    return new ControlAuth(Buffer.from(secret, "utf8"))
  }

  /** The tag of `bytes` published to `subject`. */
  tag(subject: string, bytes: Uint8Array): string {
    return createHmac("sha256", this.#key).update(subject).update("\n").update(bytes).digest("base64url")
  }

  /** Headers with the tag of `bytes` on `subject`. */
  headers(subject: string, bytes: Uint8Array): MsgHdrs {
    const h = headers()
    h.set(authHeader, this.tag(subject, bytes))
    return h
  }

  /** Whether `bytes` on `subject` carry a valid tag in `hdrs` (constant time in the tag). */
  verify(subject: string, bytes: Uint8Array, hdrs: MsgHdrs | undefined): boolean {
    const got = hdrs?.get(authHeader)
    if (got === undefined || got === "") return false
    const want = Buffer.from(this.tag(subject, bytes))
    const given = Buffer.from(got)
    return given.length === want.length && timingSafeEqual(given, want)
  }

  /** Whether a received message (not an answer) is authentic: its tag is over the subject it arrived on. */
  verifyMsg(msg: Msg): boolean {
    return this.verify(msg.subject, msg.data, msg.headers)
  }

  /** Publishes `bytes` to `subject` with their tag. */
  publish(nc: NatsConnection, subject: string, bytes: Uint8Array): void {
    nc.publish(subject, bytes, { headers: this.headers(subject, bytes) })
  }

  /**
   * Answers `request` with `bytes`, tagged for its reply subject and its own tag: an answer is
   * valid for exactly the request it answers, so an old command replayed with another request's
   * reply subject cannot answer that request. False when the request wants no answer.
   */
  respond(request: Msg, bytes: Uint8Array): boolean {
    if (!request.reply) return false
    return request.respond(bytes, {
      headers: this.headers(replyBinding(request.reply, request.headers), bytes)
    })
  }

  /** Whether `reply` is an authentic answer to the request sent with `requestHeaders`. */
  verifyReply(reply: Msg, requestHeaders: MsgHdrs): boolean {
    return this.verify(replyBinding(reply.subject, requestHeaders), reply.data, reply.headers)
  }
}

/** What an answer's tag covers besides its bytes: the reply subject and the request's tag. */
const replyBinding = (replySubject: string, requestHeaders: MsgHdrs | undefined): string =>
  `${replySubject}\n${requestHeaders?.get(authHeader) ?? ""}`
