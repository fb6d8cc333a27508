/**
 * JobSecret: the user's EXACTOR_JOB_SECRET wins (and is checked); otherwise the secret is derived
 * from a per-user key file created once (mode 0600), so the same job gets the same secret in every
 * process and after a restart, and different jobs get different ones.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import t from "tap"
import { Effect } from "effect"
import { jobKeyFile, jobSecret } from "../../lib/process/JobSecret.ts"

const dir = mkdtempSync(join(tmpdir(), "exactor-job-secret-"))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

t.test("EXACTOR_JOB_SECRET is the secret, if long enough", async (t) => {
  t.equal(
    await Effect.runPromise(jobSecret("orders", { EXACTOR_JOB_SECRET: "s".repeat(16) })),
    "s".repeat(16)
  )
  const short = await Effect.runPromise(Effect.flip(jobSecret("orders", { EXACTOR_JOB_SECRET: "short" })))
  t.equal(short._tag, "JobSecretInvalid")
  t.match(short.message, /^EXACTOR_JOB_SECRET: at least 16 characters, got 5/)
})

t.test("otherwise derived from a key file created once, mode 0600", async (t) => {
  const env = { EXACTOR_JOB_KEY_FILE: join(dir, "sub", "job-key") }
  const [a, b, c] = await Effect.runPromise(
    Effect.all([jobSecret("orders", env), jobSecret("orders", env), jobSecret("other", env)], {
      concurrency: "unbounded"
    })
  )
  t.match(a, /^[0-9a-f]{64}$/)
  t.equal(a, b, "the same job: the same secret (another process, a restart, run --resume)")
  t.not(a, c, "another job: another secret")
  const key = env.EXACTOR_JOB_KEY_FILE
  t.equal(statSync(key).mode & 0o777, 0o600, "only the user may read the key")
  t.match(readFileSync(key, "utf8"), /^[0-9a-f]{64}\n$/)
  t.notMatch(readFileSync(key, "utf8"), a, "the key is not the secret")
  chmodSync(key, 0o644)
  const open = await Effect.runPromise(Effect.flip(jobSecret("orders", env)))
  t.match(open.message, /readable or writable by others/, "a key others can read is refused")
})

t.test("the default key file is under XDG_CONFIG_HOME", async (t) => {
  t.equal(jobKeyFile({ XDG_CONFIG_HOME: "/x" }), "/x/exactor/job-key")
  t.equal(jobKeyFile({ EXACTOR_JOB_KEY_FILE: "/k" }), "/k")
})
