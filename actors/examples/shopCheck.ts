/**
 * The shop example's input and the oracle of its two sinks, computed from the input alone: web
 * orders `w<i>`, store orders `s<i>` and tier updates per customer; `review` must hold every order
 * of at least the threshold exactly once, with a tier its customer had (or `none`); `totals` every
 * order exactly once, in one unbroken running-total chain per customer. Used by the shop's
 * `jobSpec` (for `exactor chaos`) and by its tests.
 */
import { checkOrders, checkRecords, type OutputMessage, type Verdict } from "../../lib/chaos/OutputCheck.ts"
import type { JobSpec, SpecEnv } from "../../lib/chaos/JobSpec.ts"
import { generateOrder, type Order } from "../../lib/connectors/jetstream/Producer.ts"
import type { TierUpdate } from "./shopOperators.ts"

const tierNames = ["bronze", "silver", "gold"] as const

export interface ShopInput {
  readonly web: ReadonlyArray<Omit<Order, "id"> & { readonly id: string }>
  readonly store: ReadonlyArray<Omit<Order, "id"> & { readonly id: string }>
  readonly tiers: ReadonlyArray<TierUpdate>
}

export const shopInput = (web: number, store: number, customers = 200, tiersPerCustomer = 3): ShopInput => {
  const order = (prefix: string, seed: number) => (i: number) => ({
    ...generateOrder(i, seed, customers),
    id: `${prefix}${i}`
  })
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

/** The checks of both sinks for `input` with the review threshold `threshold`. */
export const shopChecks = (
  input: ShopInput,
  threshold: number
): {
  readonly review: (out: ReadonlyArray<OutputMessage>) => Verdict
  readonly totals: (out: ReadonlyArray<OutputMessage>) => Verdict
} => {
  const orders = [...input.web, ...input.store]
  const tiersOf = new Map<string, Set<string>>()
  for (const t of input.tiers)
    tiersOf.set(t.customer, (tiersOf.get(t.customer) ?? new Set(["none"])).add(t.tier))
  return {
    review: (out) =>
      checkRecords(
        orders.filter((o) => o.amount >= threshold),
        out,
        (want, got) =>
          got.customer === want.customer &&
          got.amount === want.amount &&
          (tiersOf.get(want.customer) ?? new Set(["none"])).has(String(got.tier))
      ),
    totals: (out) => checkOrders(orders, out)
  }
}

/** Web orders are ten times the store's: about `records` orders in all. */
const inputFor = (records: number) => {
  const web = Math.ceil((records * 10) / 11)
  return shopInput(web, records - web)
}
const thresholdOf = (env: SpecEnv) => Number(env.EXACTOR_SHOP_REVIEW_AT ?? "90000")

/** What `exactor chaos actors/examples/shop.ts` needs (actors/examples/shop.ts exports it). */
export const shopJobSpec: JobSpec = {
  env: (tag) => ({
    EXACTOR_SHOP_JOB: `shop-${tag}`,
    EXACTOR_SHOP_WEB: `shop-web-${tag}`,
    EXACTOR_SHOP_STORE: `shop-store-${tag}`,
    EXACTOR_SHOP_TIERS: `shop-tiers-${tag}`,
    EXACTOR_SHOP_REVIEW: `shop-review-${tag}`,
    EXACTOR_SHOP_TOTALS: `shop-totals-${tag}`,
    EXACTOR_SHOP_REVIEW_AT: "90000"
  }),
  inputs: (env, records) => {
    const input = inputFor(records)
    return [
      { stream: env.EXACTOR_SHOP_WEB!, records: input.web },
      { stream: env.EXACTOR_SHOP_STORE!, records: input.store },
      { stream: env.EXACTOR_SHOP_TIERS!, records: input.tiers }
    ]
  },
  outputs: (env, records) => {
    const checks = shopChecks(inputFor(records), thresholdOf(env))
    return [
      { sink: "review", queue: env.EXACTOR_SHOP_REVIEW!, check: checks.review },
      { sink: "totals", queue: env.EXACTOR_SHOP_TOTALS!, check: checks.totals }
    ]
  }
}
