/**
 * The orders example with dead letters (`EXACTOR_DEAD_LETTERS=1`): its input, orders of which one in
 * `malformedEvery` is valid JSON but not a valid order, and the oracle of its two sinks, computed
 * from the input alone: the totals queue holds every good order exactly once in unbroken
 * running-total chains, the dead-letter queue every bad one exactly once, from `parse`, with a reason.
 * Used by the example's `jobSpec` (for `exactor chaos`) and by its tests.
 */
import type { JobSpec, SpecEnv } from "../../lib/chaos/JobSpec.ts"
import {
  checkOrders,
  checkRecords,
  type InputOrder,
  type OutputMessage,
  type Verdict
} from "../../lib/chaos/OutputCheck.ts"
import { generateOrder } from "../../lib/connectors/jetstream/Producer.ts"
import { ordersPartitioning } from "../../lib/connectors/jetstream/Partitioning.ts"

/** One order in this many is malformed (1 %). */
export const malformedEvery = 100

/** Ways an order can be valid JSON and still not an order (every one has a partition key). */
const spoil = [
  (o: InputOrder) => ({ ...o, amount: -5 }),
  (o: InputOrder) => ({ ...o, amount: `${o.amount}.00` }),
  (o: InputOrder) => ({ ...o, amount: 1.5 }),
  (o: InputOrder) => ({ ...o, customer: "" }),
  (o: InputOrder) => ({ ...o, customer: 42 })
]

export interface DeadLetterInput {
  /** what the stream holds, in order */
  readonly records: ReadonlyArray<unknown>
  readonly good: ReadonlyArray<InputOrder>
  /** the malformed records as they were published (ids `bad-<i>`) */
  readonly bad: ReadonlyArray<Record<string, unknown>>
}

export const deadLetterInput = (records: number): DeadLetterInput => {
  const all: Array<unknown> = []
  const good: Array<InputOrder> = []
  const bad: Array<Record<string, unknown>> = []
  for (let i = 0; i < records; i++) {
    const o = generateOrder(i)
    if (i % malformedEvery === malformedEvery - 1) {
      const b = spoil[((i / malformedEvery) % spoil.length) | 0]!({ ...o, id: `bad-${i}` })
      bad.push(b)
      all.push(b)
    } else {
      good.push(o)
      all.push(o)
    }
  }
  return { records: all, good, bad }
}

/**
 * The dead-letter queue's check: each bad record exactly once, as the `record` of a dead letter
 * from `parse` with a reason; anything else is unexpected.
 */
export const checkDeadLetters = (
  bad: ReadonlyArray<Record<string, unknown>>,
  output: ReadonlyArray<OutputMessage>
): Verdict => {
  const letters = output.map((m) => {
    const l = (m.body ?? {}) as { operator?: unknown; reason?: unknown; record?: unknown }
    const fromParse = l.operator === "parse" && typeof l.reason === "string" && l.reason.length > 0
    return { messageId: m.messageId, body: fromParse ? l.record : { notADeadLetterFromParse: m.body } }
  })
  return checkRecords(
    bad as unknown as ReadonlyArray<InputOrder>,
    letters,
    (want, got) => got.customer === want.customer && got.amount === want.amount
  )
}

/** What `EXACTOR_DEAD_LETTERS=1 exactor chaos actors/examples/orders.ts` needs. */
export const ordersDeadLetterSpec: JobSpec = {
  env: (tag) => ({
    EXACTOR_DEAD_LETTERS: "1",
    EXACTOR_ORDERS_JOB: `orders-dl-${tag}`,
    EXACTOR_ORDERS_STREAM: `orders-dl-${tag}`,
    EXACTOR_ORDERS_QUEUE: `orders-dl-totals-${tag}`,
    EXACTOR_DEAD_LETTER_QUEUE: `orders-dl-dead-${tag}`
  }),
  inputs: (env, records) => {
    const partitions = ordersPartitioning(env)
    return [
      {
        stream: env.EXACTOR_ORDERS_STREAM!,
        records: deadLetterInput(records).records,
        ...(partitions === undefined ? {} : { partitions })
      }
    ]
  },
  outputs: (env: SpecEnv, records) => {
    const input = deadLetterInput(records)
    return [
      { sink: "sink", queue: env.EXACTOR_ORDERS_QUEUE!, check: (out) => checkOrders(input.good, out) },
      {
        sink: "deadLetters",
        queue: env.EXACTOR_DEAD_LETTER_QUEUE!,
        check: (out) => checkDeadLetters(input.bad, out)
      }
    ]
  }
}
