/**
 * `npm run brokers`' setup of the browser the web view's test drives: Debian's `chromium` at
 * /usr/bin/chromium (playwright-core downloads no browser of its own). Installed with apt-get when
 * missing and this process may (root, apt-get present); otherwise a line says how. Never fatal: only
 * the browser test needs it, and it skips without it.
 */
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import * as Effect from "effect/Effect"
import { findExecutable } from "./LocalBrokers.ts"

export const chromiumPath = "/usr/bin/chromium"

/** What happened, as one line for `npm run brokers`. */
export const ensureChromium = (): Effect.Effect<string> =>
  Effect.sync(() => {
    if (existsSync(chromiumPath)) return `${chromiumPath} is there`
    const apt = findExecutable("apt-get")
    if (!apt || process.getuid?.() !== 0)
      return `no ${chromiumPath}: install Debian's chromium (apt-get install chromium) for the web view's browser test`
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" }
    const run = (args: ReadonlyArray<string>) =>
      spawnSync(apt, args, { env, stdio: ["ignore", "ignore", "pipe"], timeout: 600_000, encoding: "utf8" })
    const updated = run(["update", "-qq"])
    const installed = updated.status === 0 ? run(["install", "-y", "-qq", "chromium"]) : updated
    if (installed.status === 0 && existsSync(chromiumPath)) return `${chromiumPath} installed with apt-get`
    const why = (installed.stderr ?? "").trim().split("\n").at(-1) || `exit ${installed.status}`
    return `no ${chromiumPath}: apt-get install chromium failed (${why}); the web view's browser test will skip`
  })
