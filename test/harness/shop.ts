/**
 * Runs the shop example (actors/examples/shop.ts) as a real job for tests: unique names, web and
 * store orders and tier updates written into their JetStream streams, `exactor run`, and the
 * independent check of both output queues, computed from the input alone: `review` holds every
 * order of at least the threshold exactly once, with a tier its customer had or `none`; `totals`
 * holds every order exactly once with one unbroken running-total chain per customer.
 */
import { fileURLToPath } from "node:url"
import { connect } from "@nats-io/transport-node"
import { Effect } from "effect"
import { drainQueue, type Verdict } from "../../lib/chaos/OutputCheck.ts"
import { produce } from "../../lib/connectors/jetstream/Producer.ts"
import { shopChecks, shopInput } from "../../actors/examples/shopCheck.ts"
import { amqpUrl, natsUrl, uniqueName } from "./env.ts"
import { type JobProcesses, jobProcesses, removeJob } from "./job.ts"

export const shopModule = fileURLToPath(new URL("../../actors/examples/shop.ts", import.meta.url))

export interface ShopJob extends JobProcesses {
  readonly streams: { readonly web: string; readonly store: string; readonly tiers: string }
  readonly queues: { readonly review: string; readonly totals: string }
  /** drains both queues and checks each against the input */
  verdicts(idleMs?: number): Promise<{ readonly review: Verdict; readonly totals: Verdict }>
  cleanup(): Promise<void>
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
  const checks = shopChecks(input, threshold)
  for (const [stream, records] of [
    [streams.web, input.web],
    [streams.store, input.store],
    [streams.tiers, input.tiers]
  ] as const)
    await Effect.runPromise(produce({ natsUrl, stream, input: { records } }))
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
  return {
    ...processes,
    streams,
    queues,
    async verdicts(idleMs) {
      const review = await Effect.runPromise(drainQueue(amqpUrl, queues.review, idleMs))
      const totals = await Effect.runPromise(drainQueue(amqpUrl, queues.totals, idleMs))
      return { review: checks.review(review), totals: checks.totals(totals) }
    },
    async cleanup() {
      await processes.stop()
      await removeJob(nc, amqpUrl, job, {
        streams: Object.values(streams),
        queues: Object.values(queues),
        sinks: ["review", "totals"]
      })
      await nc.close()
    }
  }
}
