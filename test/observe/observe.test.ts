/**
 * The web view and /metrics over a real job (issue 20's acceptance): while the orders job runs (its
 * source unbounded, so it runs until cancelled),
 * /metrics parses as Prometheus text with every metric docs/observe.md documents, of the type it
 * gives, and counters only grow within an epoch; headless Chromium shows the graph with every
 * instance, a checkpoint plot with at least 3 points, the recovery after a kill -9 on the timeline,
 * and the committed count `exactor status` prints. Saves a screenshot under tmp/test-output/observe/.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import amqp from "amqplib"
import { Effect, Exit, Scope } from "effect"
import parsePrometheusTextFormat from "parse-prometheus-text-format"
import { chromium } from "playwright-core"
import t from "tap"
import { serveObserver } from "../../lib/observe/ObserveServer.ts"
import { chromiumPath } from "../../lib/brokers/Chromium.ts"
import { exitWithin, status, until } from "../harness/checks.ts"
import { amqpUrl } from "../harness/env.ts"
import { startOrdersJob } from "../harness/job.ts"

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..")
const outDir = join(root, "tmp", "test-output", "observe")

/** What the functions run in the page use of the browser's DOM. */
declare const document: {
  querySelector(selector: string): { getAttribute(name: string): string | null } | null
  getElementById(id: string): { readonly dataset: Record<string, string | undefined> } | null
  querySelectorAll(selector: string): Iterable<{ readonly textContent: string | null }>
}

interface Family {
  readonly name: string
  readonly type: string
  readonly metrics: ReadonlyArray<{
    readonly labels?: Record<string, string>
    readonly value?: string
    readonly count?: string
  }>
}

/** The metrics docs/observe.md's table documents (the README links there), with their types. */
const documented = () => {
  const table = readFileSync(join(root, "docs", "observe.md"), "utf8")
  return [...table.matchAll(/^\| `(exactor_[a-z_]+)` \| (counter|gauge|histogram) \|/gm)].map((m) => ({
    name: m[1]!,
    type: m[2]
  }))
}

t.test("web view and /metrics while the example job runs", async (t) => {
  // an unbounded source: the job runs until cancelled, so the kill -9 always hits a running job
  const orders = 40_000
  const job = await startOrdersJob({
    orders,
    module: fileURLToPath(new URL("../fixtures/benchOrders.ts", import.meta.url)),
    env: { EXACTOR_BENCH_BOUNDED: "0", EXACTOR_SOURCE_PARALLELISM: "1", EXACTOR_CHECKPOINT_INTERVAL: "400" }
  })
  t.teardown(() => job.cleanup())
  const scope = await Effect.runPromise(Scope.make())
  t.teardown(() => Effect.runPromise(Scope.close(scope, Exit.void)))
  const served = await Effect.runPromise(serveObserver(job.nc, { port: 0 }).pipe(Scope.provide(scope)))

  const run = job.run()
  await job.running("sink#0")

  t.test(
    "/metrics: every documented metric, typed as documented; counters grow within an epoch",
    async (t) => {
      const names = documented()
      t.ok(names.length >= 12, `docs/observe.md documents ${names.length} metrics`)
      const scrape = async () => {
        const text = await (await fetch(`${served.url}/metrics`)).text()
        const families = parsePrometheusTextFormat(text) as ReadonlyArray<Family>
        // the parser merges a histogram's labelled series into one (dropping labels), so the job's
        // checkpoint count is read from its own `_count` line
        const count = new RegExp(
          `^exactor_checkpoint_duration_seconds_count\\{job="${job.job}"\\} (\\d+)`,
          "m"
        )
        return {
          families: new Map(families.map((f) => [f.name, f])),
          checkpoints: Number(count.exec(text)?.[1] ?? 0)
        }
      }
      const epochOf = (m: Map<string, Family>) =>
        Number(m.get("exactor_job_epoch")?.metrics.find((x) => x.labels?.job === job.job)?.value ?? -1)
      const scrapes: Array<Map<string, Family>> = []
      await until("3 scrapes with the job's records and a completed checkpoint", async () => {
        const { families: m, checkpoints } = await scrape()
        const mine = m.get("exactor_records_in_total")?.metrics.some((x) => x.labels?.job === job.job)
        if (mine && checkpoints > 0) scrapes.push(m)
        if (scrapes.length < 3) await new Promise((r) => setTimeout(r, 700))
        return scrapes.length >= 3
      })
      const last = scrapes[scrapes.length - 1]!
      for (const { name, type } of names) {
        t.ok(type, `${name} has a type in docs/observe.md`)
        t.equal(last.get(name)?.type, type?.toUpperCase(), `${name} is exported as a ${type}`)
      }
      let compared = 0
      let decreased = 0
      for (let k = 1; k < scrapes.length; k++) {
        const [a, b] = [scrapes[k - 1]!, scrapes[k]!]
        if (epochOf(a) !== epochOf(b)) continue
        for (const [name, family] of b) {
          if (family.type !== "COUNTER") continue
          for (const sample of family.metrics) {
            if (sample.labels?.job !== job.job) continue
            const key = JSON.stringify(sample.labels)
            const before = a.get(name)?.metrics.find((x) => JSON.stringify(x.labels) === key)
            if (!before) continue
            compared++
            if (Number(sample.value) < Number(before.value)) decreased++
          }
        }
      }
      t.ok(compared > 0, `${compared} counter samples compared between scrapes of one epoch`)
      t.equal(decreased, 0, "no counter went down within an epoch")
    }
  )

  t.test(
    "the page in headless Chromium",
    { skip: existsSync(chromiumPath) ? false : `no ${chromiumPath}` },
    async (t) => {
      const browser = await chromium.launch({
        executablePath: chromiumPath,
        args: [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
          "--no-first-run"
        ]
      })
      t.teardown(() => browser.close())
      const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } })
      const started = Date.now()
      await page.goto(`${served.url}/?job=${encodeURIComponent(job.job)}`)
      await page.waitForSelector("#graph svg")
      t.comment(`page drawn ${Date.now() - started} ms after the first navigation (browser cold)`)
      // once more, warm: the figures a user sees on opening the page
      const again = Date.now()
      await page.reload()
      await page.waitForSelector("#graph svg")
      const drawn = Date.now() - again
      const nav = (await page.evaluate(
        "(() => { const e = performance.getEntriesByType('navigation')[0]; return { dom: Math.round(e.domContentLoadedEventEnd), load: Math.round(e.loadEventEnd) } })()"
      )) as { dom: number; load: number }
      t.comment(`reload: DOMContentLoaded ${nav.dom} ms, load ${nav.load} ms, graph drawn ${drawn} ms`)

      const s = (await status(job))!
      const instances = s.instances.map((i) => i.id)
      await page.waitForFunction(
        (ids) => ids.every((id) => document.querySelector(`[data-instance="${id}"]`) !== null),
        instances,
        { timeout: 60_000 }
      )
      t.pass(`the graph shows every instance: ${instances.join(", ")}`)
      await page.waitForFunction(
        () => Number(document.getElementById("plot")?.dataset.points ?? 0) >= 3,
        null,
        {
          timeout: 60_000
        }
      )
      t.ok(await page.$("#plot canvas"), "the checkpoint plot is drawn (at least 3 points)")

      const victim = job.seen.get("total#1")!
      const epoch = victim.epoch
      process.kill(victim.pid, "SIGKILL")
      // (a loaded machine may add recoveries of its own, e.g. a missed heartbeat: wait for this one)
      await page.waitForFunction(
        () =>
          [...document.querySelectorAll("li.recovery")].some((li) =>
            li.textContent?.includes("total#1 exited")
          ),
        null,
        { timeout: 90_000 }
      )
      const text = await page.textContent("ol.recoveries")
      t.match(text, /total#1/, `the recovery and its cause are on the timeline: ${text}`)
      await job.running("total#1", epoch)
      // the screenshot shows the job running again, every instance in the new epoch
      await page.waitForFunction(
        (ids) =>
          ids.every(
            (id) =>
              document.querySelector(`[data-instance="${id}"]`)?.getAttribute("data-phase") === "running"
          ),
        instances,
        { timeout: 60_000 }
      )
      mkdirSync(outDir, { recursive: true })
      const shot = join(outDir, "web-view.png")
      await page.screenshot({ path: shot, fullPage: true })
      t.ok(existsSync(shot), `screenshot saved: ${shot}`)
      if (process.env.EXACTOR_UPDATE_SCREENSHOT === "1")
        copyFileSync(shot, join(root, "docs", "web-view.png"))

      await until(
        "every record committed",
        async () =>
          ((await status(job))?.instances.find((i) => i.id === "sink#0")?.recordsCommitted ?? 0) >= orders,
        180_000
      )
      const cancelled = await job.cli(["cancel", job.job])
      t.equal(cancelled.code, 0, cancelled.output)
      t.equal(await exitWithin(run.exit), 4, "the job is CANCELLED")
      // RabbitMQ holds what the sink committed (the exactly-once verdict is the job tests' part)
      const conn = await amqp.connect(amqpUrl)
      const inQueue = (await (await conn.createChannel()).checkQueue(job.queue)).messageCount
      await conn.close()
      t.equal(inQueue, orders, "RabbitMQ holds every output message")
      const printed = await job.cli(["status", job.job])
      const fromCli = Number(/committed: sink (\d+)/.exec(printed.output)?.[1] ?? -1)
      t.equal(fromCli, orders, "exactor status: every record committed, as many as RabbitMQ holds")
      await page.waitForFunction(
        (n) =>
          document.querySelector('.committed[data-sink="sink"]')?.getAttribute("data-committed") ===
          String(n),
        fromCli,
        { timeout: 30_000 }
      )
      t.pass("the page's committed count matches exactor status")
    }
  )
})
