/**
 * Runs the shop example (actors/examples/shop.ts) as a real job for tests: unique names, web and
 * store orders and tier updates written into their JetStream streams, `exactor run`, and the
 * independent check of both output queues, computed from the input alone: `review` holds every
 * order of at least the threshold exactly once, with a tier its customer had or `none`; `totals`
 * holds every order exactly once with one unbroken running-total chain per customer.
 */
import { writeFileSync, rmSync, mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { jetstreamManager } from "@nats-io/jetstream"
import { Kvm } from "@nats-io/kv"
import { Objm } from "@nats-io/obj"
import { connect } from "@nats-io/transport-node"
import { Effect } from "effect"
import { checkOrders, checkRecords, drainQueue, type Verdict } from "../../lib/chaos/OutputCheck.ts"
import { generateOrder, produce } from "../../lib/connectors/jetstream/Producer.ts"
import { amqpConnect } from "../../lib/internal/AmqpConnectOptions.ts"
import type { TierUpdate } from "../../actors/examples/shopOperators.ts"
import { amqpUrl, natsUrl, uniqueName } from "./env.ts"
import { type JobProcesses, jobProcesses } from "./job.ts"

export const shopModule = fileURLToPath(new URL("../../actors/examples/shop.ts", import.meta.url))

export interface ShopJob extends JobProcesses {
  readonly streams: { readonly web: string; readonly store: string; readonly tiers: string }
  readonly queues: { readonly review: string; readonly totals: string }
  /** drains both queues and checks each against the input */
  verdicts(idleMs?: number): Promise<{ readonly review: Verdict; readonly totals: Verdict }>
  cleanup(): Promise<void>
}

const tierNames = ["bronze", "silver", "gold"] as const

/** The shop's input: web orders `w<i>`, store orders `s<i>`, and `tiers` updates per customer. */
export const shopInput = (web: number, store: number, customers: number, tiersPerCustomer: number) => {
  const order = (prefix: string, seed: number) => (i: number) => {
    const o = generateOrder(i, seed, customers)
    return { ...o, id: `${prefix}${i}` }
  }
  const width = Math.max(4, String(customers - 1).length)
  const tiers: Array<TierUpdate> = []
  for (let round = 0; round < tiersPerCustomer; round++)
    for (let c = 0; c < customers; c++)
      tiers.push({
        customer: `c${String(c).padStart(width, "0")}`,
        tier: tierNames[(c + round) % tierNames.length]!
      })
  return {
    web: Array.from({ length: web }, (_, i) => order("w", 1)(i)),
    store: Array.from({ length: store }, (_, i) => order("s", 2)(i)),
    tiers
  }
}

export const startShopJob = async (options: {
  readonly web: number
  readonly store: number
  readonly customers?: number
  readonly tiersPerCustomer?: number
  readonly threshold?: number
  readonly env?: Readonly<Record<string, string>>
}): Promise<ShopJob> => {
  const job = uniqueName("shop")
  const streams = { web: uniqueName("web"), store: uniqueName("store"), tiers: uniqueName("tiers") }
  const queues = { review: uniqueName("review"), totals: uniqueName("totals") }
  const threshold = options.threshold ?? 90_000
  const input = shopInput(options.web, options.store, options.customers ?? 200, options.tiersPerCustomer ?? 3)
  const dir = mkdtempSync(join(tmpdir(), "exactor-shop-"))
  try {
    for (const [name, records] of [
      [streams.web, input.web],
      [streams.store, input.store],
      [streams.tiers, input.tiers]
    ] as const) {
      const file = join(dir, `${name}.ndjson`)
      writeFileSync(file, `${records.map((r) => JSON.stringify(r)).join("\n")}\n`)
      await Effect.runPromise(produce({ natsUrl, stream: name, input: { file } }))
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  const env: Record<string, string> = {
    EXACTOR_NATS_URL: natsUrl,
    EXACTOR_AMQP_URL: amqpUrl,
    EXACTOR_SHOP_JOB: job,
    EXACTOR_SHOP_WEB: streams.web,
    EXACTOR_SHOP_STORE: streams.store,
    EXACTOR_SHOP_TIERS: streams.tiers,
    EXACTOR_SHOP_REVIEW: queues.review,
    EXACTOR_SHOP_TOTALS: queues.totals,
    EXACTOR_SHOP_REVIEW_AT: String(threshold),
    ...options.env
  }
  const nc = await connect({ servers: natsUrl, name: `${job}/test` })
  const processes = await jobProcesses(job, shopModule, env, nc)
  const orders = [...input.web, ...input.store]
  const tiersOf = new Map<string, Set<string>>()
  for (const t of input.tiers)
    tiersOf.set(t.customer, (tiersOf.get(t.customer) ?? new Set(["none"])).add(t.tier))
  return {
    ...processes,
    streams,
    queues,
    async verdicts(idleMs) {
      const review = await Effect.runPromise(drainQueue(amqpUrl, queues.review, idleMs))
      const totals = await Effect.runPromise(drainQueue(amqpUrl, queues.totals, idleMs))
      return {
        review: checkRecords(
          orders.filter((o) => o.amount >= threshold),
          review,
          (want, got) =>
            got.customer === want.customer &&
            got.amount === want.amount &&
            (tiersOf.get(want.customer) ?? new Set(["none"])).has(String(got.tier))
        ),
        totals: checkOrders(orders, totals)
      }
    },
    async cleanup() {
      await processes.stop()
      const jsm = await jetstreamManager(nc)
      for (const s of Object.values(streams)) await jsm.streams.delete(s).catch(() => false)
      await new Kvm(nc)
        .create(`exactor-${job}`)
        .then((kv) => kv.destroy())
        .catch(() => false)
      await new Objm(nc)
        .create(`exactor-${job}`)
        .then((os) => os.destroy())
        .catch(() => false)
      const conn = await amqpConnect(amqpUrl)
      const ch = await conn.createChannel()
      ch.on("error", () => undefined)
      for (const q of Object.values(queues)) await ch.deleteQueue(q).catch(() => undefined)
      for (const sink of ["review", "totals"])
        for (const suffix of ["marker", "lock"])
          await ch.deleteQueue(`exactor.${job}.${sink}.0.${suffix}`).catch(() => undefined)
      await conn.close().catch(() => undefined)
      await nc.close()
    }
  }
}
