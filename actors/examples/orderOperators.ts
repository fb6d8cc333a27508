/**
 * The operators of the orders example: parse/validate an order, and the running total per
 * customer (keyed state: one number per customer). Shared by actors/examples/orders.ts and the tests.
 */
import { defaultJobOptions, type JobOptionsInput } from "../../lib/api/JobOptions.ts"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { keyedProcess, map } from "../../lib/api/Operator.ts"

export interface Order {
  readonly id: number | string
  readonly customer: string
  readonly amount: number
}

export interface CustomerTotal {
  readonly orderId: number | string
  readonly customer: string
  readonly amount: number
  readonly total: number
}

export class InvalidOrder extends Data.TaggedError("InvalidOrder")<{ readonly reason: string }> {
  override get message(): string {
    return `invalid order: ${this.reason}`
  }
}

/**
 * Checks the shape of an order; a bad one stops the job with an error naming it (nothing is lost),
 * or under `withDeadLetters` becomes a dead letter with that error as its reason.
 */
export const parseOrder = map("parse", (raw: unknown): Order | Effect.Effect<never, InvalidOrder> => {
  const o = raw as Partial<Order> | null
  if (typeof o !== "object" || o === null) return Effect.fail(new InvalidOrder({ reason: "not an object" }))
  if (typeof o.id !== "number" && typeof o.id !== "string")
    return Effect.fail(new InvalidOrder({ reason: "id must be a number or a string" }))
  if (typeof o.customer !== "string" || o.customer.length === 0)
    return Effect.fail(new InvalidOrder({ reason: `order ${o.id}: customer must be a non-empty string` }))
  if (typeof o.amount !== "number" || !Number.isSafeInteger(o.amount) || o.amount < 0)
    return Effect.fail(
      new InvalidOrder({ reason: `order ${o.id}: amount must be a whole number of cents >= 0` })
    )
  return { id: o.id, customer: o.customer, amount: o.amount }
})

/** Keyed by customer: the running total, emitted with every order. */
export const runningTotal = keyedProcess("total", {
  state: { name: "total", initial: () => 0 },
  handle: (order: Order, total: number, emit: (out: CustomerTotal) => void) => {
    const next = total + order.amount
    emit({ orderId: order.id, customer: order.customer, amount: order.amount, total: next })
    return next
  }
})

const backoff =
  defaultJobOptions.restart.kind === "exponentialBackoff" ? defaultJobOptions.restart : undefined

/**
 * The orders examples' job options: EXACTOR_CHECKPOINT_INTERVAL (1000 ms), and for `exactor chaos`
 * the restart budget and backoff cap, EXACTOR_RESTART_ATTEMPTS (20) and EXACTOR_RESTART_MAX_DELAY (10 000 ms).
 */
export const ordersJobOptions = (): JobOptionsInput => ({
  checkpoint: { interval: Number(process.env.EXACTOR_CHECKPOINT_INTERVAL ?? 1000) },
  restart: {
    kind: "exponentialBackoff",
    initial: backoff?.initial ?? 200,
    multiplier: backoff?.multiplier ?? 2,
    jitter: backoff?.jitter ?? 0.2,
    max: Number(process.env.EXACTOR_RESTART_MAX_DELAY ?? backoff?.max ?? 10_000),
    attempts: Number(process.env.EXACTOR_RESTART_ATTEMPTS ?? backoff?.attempts ?? 20),
    resetAfter: backoff?.resetAfter ?? 60_000
  }
})
