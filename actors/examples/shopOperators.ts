/**
 * The operators of the shop example: a customer's tier from the `tiers` stream, the enrichment of
 * every order with its customer's current tier (a keyed co-process: both inputs keyed by
 * customer share one state), and the review rule. Shared by actors/examples/shop.ts and its tests.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { keyedCoProcess, map } from "../../lib/api/Operator.ts"
import type { Order } from "./orderOperators.ts"

export interface TierUpdate {
  readonly customer: string
  readonly tier: string
}

export interface EnrichedOrder extends Order {
  /** the customer's tier when the order was enriched; `none` before the first tier update */
  readonly tier: string
}

export class InvalidTier extends Data.TaggedError("InvalidTier")<{ readonly reason: string }> {
  override get message(): string {
    return `invalid tier update: ${this.reason}`
  }
}

/** Checks a tier update `{customer, tier}`; a bad one stops the job with an error naming it. */
export const parseTier = map("parseTier", (raw: unknown): TierUpdate | Effect.Effect<never, InvalidTier> => {
  const t = raw as Partial<TierUpdate> | null
  if (typeof t !== "object" || t === null) return Effect.fail(new InvalidTier({ reason: "not an object" }))
  if (typeof t.customer !== "string" || t.customer.length === 0)
    return Effect.fail(new InvalidTier({ reason: "customer must be a non-empty string" }))
  if (typeof t.tier !== "string" || t.tier.length === 0)
    return Effect.fail(new InvalidTier({ reason: `customer ${t.customer}: tier must be a non-empty string` }))
  return { customer: t.customer, tier: t.tier }
})

/** Input 0: orders, emitted with the customer's current tier. Input 1: tier updates, kept. */
export const enrich = keyedCoProcess("enrich", {
  state: { name: "tier", initial: () => "none" },
  handle1: (order: Order, tier: string, emit: (o: EnrichedOrder) => void) => {
    emit({ id: order.id, customer: order.customer, amount: order.amount, tier })
    return tier
  },
  handle2: (update: TierUpdate, _tier: string) => update.tier
})

/** Orders of at least `threshold` (cents) go to review as well; every order goes on to the totals. */
export const reviewRoute =
  (threshold: number) =>
  (o: EnrichedOrder): "all" | ReadonlyArray<"review" | "all"> =>
    o.amount >= threshold ? ["review", "all"] : "all"
