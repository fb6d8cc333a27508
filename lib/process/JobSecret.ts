/**
 * The secret of a job, which authenticates its control plane (`ControlAuth`): `EXACTOR_JOB_SECRET`
 * when set (the user's, at least 16 characters; give every host of a multi-host job the same), else
 * derived from this user's key file, `EXACTOR_JOB_KEY_FILE` or `$XDG_CONFIG_HOME/exactor/job-key`
 * (default `~/.config/exactor/job-key`; 32 random bytes, created mode 0600 on first use):
 * `HMAC-SHA256(key, "exactor job secret v1\n" + job)`.
 * Invariants: the same job on the same host (same user) always gets the same secret, so it survives
 * a coordinator restart, a restarted actor and `run --resume` after a host crash with nothing
 * stored on the (permission-less) brokers; the secret reaches children only through their
 * environment, never a command line, a log line or a broker.
 */
import { createHmac, randomBytes } from "node:crypto"
import { linkSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from "node:fs"
import { homedir } from "node:os"
import { dirname, join } from "node:path"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { ControlAuth } from "../runtime/ControlAuth.ts"

/** The environment variable that carries (or sets) a job's secret. */
export const jobSecretVariable = "EXACTOR_JOB_SECRET"
/** The environment variable that names the key file secrets are derived from. */
export const jobKeyFileVariable = "EXACTOR_JOB_KEY_FILE"

/** The shortest secret accepted from `EXACTOR_JOB_SECRET`. */
export const minimumSecretLength = 16

export class JobSecretInvalid extends Data.TaggedError("JobSecretInvalid")<{
  /** the environment variable or file at fault */
  readonly field: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.field}: ${this.reason}`
  }
}

export class JobKeyUnavailable extends Data.TaggedError("JobKeyUnavailable")<{
  readonly path: string
  readonly cause: unknown
}> {
  override get message(): string {
    const why = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `cannot read or create the job key file ${this.path} (${why}); set ${jobSecretVariable} or ${jobKeyFileVariable}`
  }
}

export type JobSecretError = JobSecretInvalid | JobKeyUnavailable

/** Where the key file is for `env`. */
export const jobKeyFile = (env: NodeJS.ProcessEnv = process.env): string =>
  env[jobKeyFileVariable] ?? join(env.XDG_CONFIG_HOME ?? join(homedir(), ".config"), "exactor", "job-key")

const keyPattern = /^[0-9a-f]{64}$/

/** Reads the key file, creating it first if absent (atomically: a complete file is linked into place). */
const readOrCreateKey = (path: string): Effect.Effect<Buffer, JobSecretError> =>
  Effect.try({
    try: () => {
      try {
        statSync(path)
      } catch {
        mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
        const temp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}`
        writeFileSync(temp, `${randomBytes(32).toString("hex")}\n`, { mode: 0o600, flag: "wx" })
        try {
          linkSync(temp, path)
        } catch (e) {
          // another process created it meanwhile: theirs is the key
          if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e
        } finally {
          unlinkSync(temp)
        }
      }
      return { mode: statSync(path).mode, text: readFileSync(path, "utf8").trim() }
    },
    catch: (cause) => new JobKeyUnavailable({ path, cause })
  }).pipe(
    Effect.flatMap(({ mode, text }) =>
      (mode & 0o077) !== 0
        ? Effect.fail(
            new JobSecretInvalid({ field: path, reason: "readable or writable by others; chmod 600 it" })
          )
        : keyPattern.test(text)
          ? Effect.succeed(Buffer.from(text, "hex"))
          : Effect.fail(new JobSecretInvalid({ field: path, reason: "not 64 hex digits" }))
    )
  )

/** The secret of `job`: `EXACTOR_JOB_SECRET`, else derived from the key file (see the module comment). */
export const jobSecret = (job: string, env: NodeJS.ProcessEnv = process.env) =>
  Effect.suspend((): Effect.Effect<string, JobSecretError> => {
    const given = env[jobSecretVariable]
    if (given !== undefined)
      return given.length >= minimumSecretLength
        ? Effect.succeed(given)
        : Effect.fail(
            new JobSecretInvalid({
              field: jobSecretVariable,
              reason: `at least ${minimumSecretLength} characters, got ${given.length}`
            })
          )
    return readOrCreateKey(jobKeyFile(env)).pipe(
      Effect.map((key) => createHmac("sha256", key).update(`exactor job secret v1\n${job}`).digest("hex"))
    )
  })

/** The authenticator of `job`'s control plane. */
export const jobAuth = (job: string, env: NodeJS.ProcessEnv = process.env) =>
  Effect.map(jobSecret(job, env), ControlAuth.fromSecret)
