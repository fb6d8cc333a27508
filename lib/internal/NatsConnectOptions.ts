/**
 * How every NATS connection exactor opens authenticates and encrypts: the `EXACTOR_NATS_*`
 * variables (credentials file, nkey seed, token, user/password, TLS CA, client certificate) read
 * and checked once per environment, and turned into nats.js connect options by nats.js's own
 * authenticators and `tls` option. Invariant: every NATS `connect` in exactor takes its options
 * from `natsConnectOptions`; no error here holds a password, token or seed, only variable names
 * and file paths.
 */
import { readFileSync } from "node:fs"
import {
  type Authenticator,
  credsAuthenticator,
  type NodeConnectionOptions,
  nkeyAuthenticator,
  tokenAuthenticator,
  usernamePasswordAuthenticator
} from "@nats-io/transport-node"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"

/** The variables, one name each, as the docs list them. */
export const NatsVariables = {
  url: "EXACTOR_NATS_URL",
  creds: "EXACTOR_NATS_CREDS",
  nkey: "EXACTOR_NATS_NKEY",
  token: "EXACTOR_NATS_TOKEN",
  user: "EXACTOR_NATS_USER",
  password: "EXACTOR_NATS_PASSWORD",
  tlsCa: "EXACTOR_NATS_TLS_CA",
  tlsCert: "EXACTOR_NATS_TLS_CERT",
  tlsKey: "EXACTOR_NATS_TLS_KEY"
} as const

/** A NATS security variable that cannot be used: a file missing or unreadable, or settings that conflict. */
export class NatsSettingInvalid extends Data.TaggedError("NatsSettingInvalid")<{
  /** the variable (or variables, joined by " and ") at fault */
  readonly variable: string
  /** what is wrong; names a file path, never a secret */
  readonly reason: string
}> {
  override get message(): string {
    return `${this.variable}: ${this.reason}`
  }
}

/** What the variables say, ready for nats.js: at most one authenticator, TLS options if TLS is asked for. */
export interface NatsSecurity {
  readonly authenticator: Authenticator | undefined
  /** the PEM contents of the files given; undefined when no TLS variable is set */
  readonly tls: { readonly ca?: string; readonly cert?: string; readonly key?: string } | undefined
  /** how it authenticates, for log lines and errors: "user/password", "token", "nkey", "credentials file", "none" */
  readonly auth: "user/password" | "token" | "nkey" | "credentials file" | "none"
}

type Env = Readonly<Record<string, string | undefined>>

const value = (env: Env, name: string): string | undefined => {
  const v = env[name]
  return v === undefined || v === "" ? undefined : v
}

/** The file's text, or the error naming the variable and the path. */
const readVariableFile = (variable: string, path: string): string | NatsSettingInvalid => {
  try {
    return readFileSync(path, "utf8")
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code
    const why = code === "ENOENT" ? "does not exist" : code === "EACCES" ? "is not readable" : String(code)
    return new NatsSettingInvalid({ variable, reason: `file ${path} ${why}` })
  }
}

/** An nkey seed: base32, starts with S, 58 characters (a user seed starts with SU). */
const seedPattern = /\bS[A-Z][A-Z2-7]{56}\b/

const nkeySeed = (path: string | undefined, text: string): Uint8Array | NatsSettingInvalid => {
  const seed = seedPattern.exec(text)?.[0]
  if (seed !== undefined) return new TextEncoder().encode(seed)
  return new NatsSettingInvalid({
    variable: NatsVariables.nkey,
    reason:
      path === undefined
        ? "is neither a readable seed file nor an nkey seed (58 characters starting with S)"
        : `file ${path} holds no nkey seed`
  })
}

/** Reads and checks the variables of `env`; files are read here, not at connect time. */
export const readNatsSecurity = (env: Env): NatsSecurity | NatsSettingInvalid => {
  const V = NatsVariables
  const creds = value(env, V.creds)
  const nkey = value(env, V.nkey)
  const token = value(env, V.token)
  const user = value(env, V.user)
  const password = value(env, V.password)
  const given = [
    creds === undefined ? undefined : V.creds,
    nkey === undefined ? undefined : V.nkey,
    token === undefined ? undefined : V.token,
    user === undefined && password === undefined ? undefined : V.user
  ].filter((v) => v !== undefined)
  if (given.length > 1)
    return new NatsSettingInvalid({
      variable: given.join(" and "),
      reason: "set only one way of authenticating (credentials file, nkey, token or user/password)"
    })
  if (user !== undefined && password === undefined)
    return new NatsSettingInvalid({ variable: V.password, reason: `is not set, but ${V.user} is` })
  if (password !== undefined && user === undefined)
    return new NatsSettingInvalid({ variable: V.user, reason: `is not set, but ${V.password} is` })

  let authenticator: Authenticator | undefined
  let auth: NatsSecurity["auth"] = "none"
  if (creds !== undefined) {
    const text = readVariableFile(V.creds, creds)
    if (text instanceof NatsSettingInvalid) return text
    if (!/-----BEGIN NATS USER JWT-----/.test(text) || !seedPattern.test(text))
      return new NatsSettingInvalid({
        variable: V.creds,
        reason: `file ${creds} is not a NATS credentials file (a user JWT and an nkey seed)`
      })
    authenticator = credsAuthenticator(new TextEncoder().encode(text))
    auth = "credentials file"
  } else if (nkey !== undefined) {
    // a seed never holds "/" or ".", a path usually does: only a path is ever named in an error
    const literal = seedPattern.test(nkey) && !nkey.includes("/")
    let seed: Uint8Array | NatsSettingInvalid
    if (literal) seed = nkeySeed(undefined, nkey)
    else if (/[/.]/.test(nkey)) {
      const text = readVariableFile(V.nkey, nkey)
      seed = text instanceof NatsSettingInvalid ? text : nkeySeed(nkey, text)
    } else seed = nkeySeed(undefined, "")
    if (seed instanceof NatsSettingInvalid) return seed
    authenticator = nkeyAuthenticator(seed)
    auth = "nkey"
  } else if (token !== undefined) {
    authenticator = tokenAuthenticator(token)
    auth = "token"
  } else if (user !== undefined && password !== undefined) {
    authenticator = usernamePasswordAuthenticator(user, password)
    auth = "user/password"
  }

  const caPath = value(env, V.tlsCa)
  const certPath = value(env, V.tlsCert)
  const keyPath = value(env, V.tlsKey)
  if ((certPath === undefined) !== (keyPath === undefined))
    return new NatsSettingInvalid({
      variable: certPath === undefined ? V.tlsCert : V.tlsKey,
      reason: `is not set, but ${certPath === undefined ? V.tlsKey : V.tlsCert} is (a client certificate needs both)`
    })
  const tls: { ca?: string; cert?: string; key?: string } = {}
  for (const [variable, path, field] of [
    [V.tlsCa, caPath, "ca"],
    [V.tlsCert, certPath, "cert"],
    [V.tlsKey, keyPath, "key"]
  ] as const) {
    if (path === undefined) continue
    const text = readVariableFile(variable, path)
    if (text instanceof NatsSettingInvalid) return text
    if (!/-----BEGIN [A-Z ]+-----/.test(text))
      return new NatsSettingInvalid({ variable, reason: `file ${path} is not PEM` })
    tls[field] = text
  }
  return {
    authenticator,
    auth,
    tls: caPath === undefined && certPath === undefined ? undefined : tls
  }
}

const cache = new WeakMap<Env, NatsSecurity | NatsSettingInvalid>()

/** `readNatsSecurity(env)`, read once per environment object (by default this process's). */
export const natsSecurity = (env: Env = process.env): Effect.Effect<NatsSecurity, NatsSettingInvalid> =>
  Effect.suspend(() => {
    let s = cache.get(env)
    if (s === undefined) {
      s = readNatsSecurity(env)
      cache.set(env, s)
    }
    return s instanceof NatsSettingInvalid ? Effect.fail(s) : Effect.succeed(s)
  })

/** Whether `url` asks for TLS by its scheme (`tls://`). */
export const natsUrlWantsTls = (url: string): boolean => /^tls:\/\//i.test(url.trim())

/**
 * Fresh connect options for `url` (nats.js's `connect` mutates its argument: never reuse them):
 * `base` plus the authenticator and, for a `tls://` URL or when a TLS variable is set, `tls`
 * (which makes nats.js refuse a server without TLS).
 */
/** The prefix of the request inboxes of a job's connections (nats.js's `inboxPrefix`). */
export const jobInboxPrefix = (job: string): string => `_INBOX.${job}`

export const natsConnectOptions = (
  url: string,
  security: NatsSecurity,
  base: Omit<NodeConnectionOptions, "servers" | "authenticator" | "tls">
): NodeConnectionOptions => {
  const tls = security.tls !== undefined || natsUrlWantsTls(url) ? { ...security.tls } : undefined
  return {
    ...base,
    servers: url,
    ...(security.authenticator === undefined ? {} : { authenticator: security.authenticator }),
    ...(tls === undefined ? {} : { tls })
  }
}
