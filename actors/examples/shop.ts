/**
 * The shop example, a graph: orders from two JetStream streams (web, store) unioned and parsed;
 * a `tiers` stream (customer -> tier) connected by customer to enrich every order with the
 * customer's current tier (two-input keyed state); a split: orders of at least a threshold go to
 * a `review` RabbitMQ queue, and every order goes on to a running total per customer into a
 * `totals` queue. Both sinks exactly once.
 *
 *   web ──┐                                 ┌─ review ──────────────────▶ review queue
 *         ├─ parse ─ keyBy ─┐               │
 *   store ┘                 ├─ enrich ─ route ─ all ─ keyBy ─ total ─ totals ─▶ totals queue
 *   tiers ─ parseTier ─ keyBy ┘
 *
 * Names come from the environment: EXACTOR_SHOP_JOB (`shop`), EXACTOR_SHOP_WEB / _STORE / _TIERS
 * (the streams `shop-web`, `shop-store`, `shop-tiers`), EXACTOR_SHOP_REVIEW / _TOTALS (the queues
 * `shop-review`, `shop-totals`), EXACTOR_SHOP_REVIEW_AT (the threshold, 90 000 cents),
 * EXACTOR_ENRICH_PARALLELISM (2), and the orders example's EXACTOR_CHECKPOINT_INTERVAL and restart knobs.
 */
import { pipeline } from "../../lib/api/Stream.ts"
import { jetstreamSource } from "../jetstreamSource.ts"
import { rabbitmqSink } from "../rabbitmqSink.ts"
import { type CustomerTotal, ordersJobOptions, parseOrder, runningTotal } from "./orderOperators.ts"
import { type EnrichedOrder, enrich, parseTier, reviewRoute } from "./shopOperators.ts"

/** Its inputs and the oracle of each sink, for `exactor chaos` (actors/examples/shopCheck.ts). */
export { shopJobSpec as jobSpec } from "./shopCheck.ts"

const env = (name: string, fallback: string) => process.env[name] ?? fallback
export const shopJob = env("EXACTOR_SHOP_JOB", "shop")
export const shopNames = {
  web: env("EXACTOR_SHOP_WEB", "shop-web"),
  store: env("EXACTOR_SHOP_STORE", "shop-store"),
  tiers: env("EXACTOR_SHOP_TIERS", "shop-tiers"),
  review: env("EXACTOR_SHOP_REVIEW", "shop-review"),
  totals: env("EXACTOR_SHOP_TOTALS", "shop-totals")
}
export const reviewThreshold = Number(env("EXACTOR_SHOP_REVIEW_AT", "90000"))

const p = pipeline(shopJob, ordersJobOptions())
const web = p.source(jetstreamSource<unknown>("web", { stream: shopNames.web, bounded: "atStart" }))
const store = p.source(jetstreamSource<unknown>("store", { stream: shopNames.store, bounded: "atStart" }))
const tiers = p.source(jetstreamSource<unknown>("tiers", { stream: shopNames.tiers, bounded: "atStart" }))

const orders = web.union(store).map(parseOrder)
const enriched = orders
  .keyBy((o) => o.customer)
  .connect(tiers.map(parseTier).keyBy((t) => t.customer))
  .process(enrich, { parallelism: Number(env("EXACTOR_ENRICH_PARALLELISM", "2")) })
const routed = enriched.split("route", ["review", "all"], reviewRoute(reviewThreshold))

routed.review.sink(rabbitmqSink<EnrichedOrder>("review", { queue: shopNames.review }), { parallelism: 1 })
routed.all
  .keyBy((o) => o.customer)
  .process(runningTotal, { parallelism: 1 })
  .sink(rabbitmqSink<CustomerTotal>("totals", { queue: shopNames.totals }), { parallelism: 1 })

export default p.build()
