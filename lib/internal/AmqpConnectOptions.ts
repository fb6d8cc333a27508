/**
 * How every RabbitMQ connection exactor opens is secured: an `amqps://` URL (its path is the
 * vhost) plus `EXACTOR_AMQP_TLS_CA` / `_CERT` / `_KEY`, read and checked once per environment and
 * passed as the socket options `ca`, `cert`, `key` (amqplib) or `ssl` (stream protocol client).
 * Invariant: every `amqp.connect` in exactor goes through `amqpConnect`; no error here holds a
 * password, only variable names and file paths.
 */
import { readFileSync } from "node:fs"
import amqp, { type ChannelModel } from "amqplib"
import * as Data from "effect/Data"

export const AmqpVariables = {
  url: "EXACTOR_AMQP_URL",
  tlsCa: "EXACTOR_AMQP_TLS_CA",
  tlsCert: "EXACTOR_AMQP_TLS_CERT",
  tlsKey: "EXACTOR_AMQP_TLS_KEY"
} as const

/** A RabbitMQ TLS variable that cannot be used: a file missing, unreadable or not PEM, or half a client certificate. */
export class AmqpSettingInvalid extends Data.TaggedError("AmqpSettingInvalid")<{
  readonly variable: string
  /** names a file path, never a secret */
  readonly reason: string
}> {
  override get message(): string {
    return `${this.variable}: ${this.reason}`
  }
}

/** PEM contents of the files the variables name (all absent when none is set). */
export interface AmqpTls {
  readonly ca?: string
  readonly cert?: string
  readonly key?: string
}

type Env = Readonly<Record<string, string | undefined>>

/** Reads and checks the TLS variables of `env`. */
export const readAmqpTls = (env: Env): AmqpTls | AmqpSettingInvalid => {
  const V = AmqpVariables
  const get = (name: string) => (env[name] === "" ? undefined : env[name])
  const certPath = get(V.tlsCert)
  const keyPath = get(V.tlsKey)
  if ((certPath === undefined) !== (keyPath === undefined))
    return new AmqpSettingInvalid({
      variable: certPath === undefined ? V.tlsCert : V.tlsKey,
      reason: `is not set, but ${certPath === undefined ? V.tlsKey : V.tlsCert} is (a client certificate needs both)`
    })
  const tls: { ca?: string; cert?: string; key?: string } = {}
  for (const [variable, field] of [
    [V.tlsCa, "ca"],
    [V.tlsCert, "cert"],
    [V.tlsKey, "key"]
  ] as const) {
    const path = get(variable)
    if (path === undefined) continue
    let text: string
    try {
      text = readFileSync(path, "utf8")
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code
      const why = code === "ENOENT" ? "does not exist" : code === "EACCES" ? "is not readable" : String(code)
      return new AmqpSettingInvalid({ variable, reason: `file ${path} ${why}` })
    }
    if (!/-----BEGIN [A-Z ]+-----/.test(text))
      return new AmqpSettingInvalid({ variable, reason: `file ${path} is not PEM` })
    tls[field] = text
  }
  return tls
}

const cache = new WeakMap<Env, AmqpTls | AmqpSettingInvalid>()

/** `readAmqpTls(env)`, read once per environment object (by default this process's); throws `AmqpSettingInvalid`. */
export const amqpTls = (env: Env = process.env): AmqpTls => {
  let t = cache.get(env)
  if (t === undefined) {
    t = readAmqpTls(env)
    cache.set(env, t)
  }
  if (t instanceof AmqpSettingInvalid) throw t
  return t
}

/** Socket options (amqplib's second `connect` argument) for `url`: `extra` plus `ca`/`cert`/`key` for amqps. */
export const amqpSocketOptions = (
  url: string,
  extra: Readonly<Record<string, unknown>> = {},
  env: Env = process.env
): Record<string, unknown> => {
  const tls = amqpTls(env)
  return /^amqps:/i.test(url) ? { ...extra, ...tls } : { ...extra }
}

/**
 * `amqp.connect(url, socketOptions)` with the TLS settings of `env`; the vhost is the URL's path
 * (`amqps://user:pass@host:5671/my-vhost`, `%2F` for `/`). Rejects with `AmqpSettingInvalid` for bad
 * TLS variables, else with amqplib's error.
 */
export const amqpConnect = (
  url: string,
  extra: Readonly<Record<string, unknown>> = {},
  env: Env = process.env
): Promise<ChannelModel> => {
  let options: Record<string, unknown>
  try {
    options = amqpSocketOptions(url, extra, env)
  } catch (error) {
    return Promise.reject(error)
  }
  return amqp.connect(url, options)
}

/** The stream protocol client's `ssl` option for a TLS stream URL (`rabbitmq-stream+tls://`): the same CA and certificate. */
export const streamSsl = (
  env: Env = process.env
): {
  readonly ca?: string
  readonly cert?: string
  readonly key?: string
  readonly rejectUnauthorized: true
} => ({
  ...amqpTls(env),
  rejectUnauthorized: true
})
