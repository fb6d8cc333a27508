/**
 * The independent check of a job's output, as Jepsen's queue checker does it: drain the RabbitMQ
 * output queue with a plain amqplib consumer and compare what came out with what went in.
 * A verdict is a table of counts (attempted, ok, lost, duplicated, unexpected) plus the
 * stateful check of the orders example: per customer, the running totals form one unbroken
 * chain ending at the true total. Exactly-once means lost, duplicated and unexpected are 0.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { amqpConnect } from "../internal/AmqpConnectOptions.ts"
import { causeMessage } from "../internal/causeMessage.ts"

export class OutputUnreadable extends Data.TaggedError("OutputUnreadable")<{
  readonly queue: string
  readonly cause: unknown
}> {
  override get message(): string {
    return `cannot read output queue ${this.queue}: ${causeMessage(this.cause)}`
  }
}

export interface OutputMessage {
  readonly messageId: string | undefined
  readonly body: unknown
}

/** Reads every message of `queue` (acking them) until it has been empty for `idleMs`. */
export const drainQueue = (url: string, queue: string, idleMs = 1000) =>
  Effect.tryPromise({
    try: async () => {
      const conn = await amqpConnect(url)
      try {
        const ch = await conn.createChannel()
        await ch.prefetch(1000)
        const out: Array<OutputMessage> = []
        let last = Date.now()
        const { consumerTag } = await ch.consume(queue, (msg) => {
          if (!msg) return
          last = Date.now()
          let body: unknown
          try {
            body = JSON.parse(msg.content.toString("utf8"))
          } catch {
            body = msg.content.toString("utf8")
          }
          out.push({ messageId: msg.properties.messageId as string | undefined, body })
          ch.ack(msg)
        })
        while (Date.now() - last < idleMs) await new Promise((r) => setTimeout(r, 50))
        await ch.cancel(consumerTag)
        await ch.close()
        return out
      } finally {
        await conn.close().catch(() => undefined)
      }
    },
    catch: (cause) => new OutputUnreadable({ queue, cause })
  })

/** Deletes and re-declares nothing: empties `queue` if it exists. */
export const purgeQueue = (url: string, queue: string) =>
  Effect.tryPromise({
    try: async () => {
      const conn = await amqpConnect(url)
      try {
        const ch = await conn.createChannel()
        ch.on("error", () => undefined)
        await ch.purgeQueue(queue).catch(() => undefined)
      } finally {
        await conn.close().catch(() => undefined)
      }
    },
    catch: (cause) => new OutputUnreadable({ queue, cause })
  })

export interface TotalsRecord {
  readonly orderId: number | string
  readonly customer: string
  readonly amount: number
  readonly total: number
}

export interface InputOrder {
  readonly id: number | string
  readonly customer: string
  readonly amount: number
}

/** Jepsen-style counts; exactly-once holds when lost, duplicated, unexpected and brokenChains are 0. */
export interface Verdict {
  readonly attempted: number
  readonly ok: number
  readonly lost: number
  readonly duplicated: number
  readonly unexpected: number
  readonly customers: number
  readonly brokenChains: number
  /** event-time checks only: on-time records in a late output */
  readonly lateWrong?: number
  /** event-time checks only: results other than the exact simulation of a single-split run */
  readonly mismatch?: number
  readonly examples: ReadonlyArray<string>
}

export const exactlyOnce = (v: Verdict): boolean =>
  v.lost === 0 &&
  v.duplicated === 0 &&
  v.unexpected === 0 &&
  v.brokenChains === 0 &&
  (v.lateWrong ?? 0) === 0 &&
  (v.mismatch ?? 0) === 0 &&
  v.ok === v.attempted

/** ok, lost and duplicated over the expected ids, from how often each came out (`seen`). */
const countDeliveries = (
  ids: Iterable<string>,
  seen: ReadonlyMap<string, number>,
  what: string,
  examples: Array<string>
) => {
  let ok = 0
  let lost = 0
  let duplicated = 0
  for (const id of ids) {
    const n = seen.get(id) ?? 0
    if (n === 0) {
      lost++
      if (examples.length < 5) examples.push(`lost ${what} ${id}`)
    } else {
      ok++
      if (n > 1) {
        duplicated += n - 1
        if (examples.length < 5) examples.push(`${what} ${id} came out ${n} times`)
      }
    }
  }
  return { ok, lost, duplicated }
}

/** Compares the drained output of the orders job with its input. */
export const checkOrders = (
  input: ReadonlyArray<InputOrder>,
  output: ReadonlyArray<OutputMessage>
): Verdict => {
  const byId = new Map<string, InputOrder>()
  for (const o of input) byId.set(String(o.id), o)
  const seen = new Map<string, number>()
  const perCustomer = new Map<string, Array<TotalsRecord>>()
  let unexpected = 0
  const examples: Array<string> = []
  for (const m of output) {
    const r = m.body as Partial<TotalsRecord>
    const id = String(r?.orderId)
    const order = byId.get(id)
    if (!order || r.customer !== order.customer || r.amount !== order.amount) {
      unexpected++
      if (examples.length < 5) examples.push(`unexpected ${JSON.stringify(m.body)}`)
      continue
    }
    seen.set(id, (seen.get(id) ?? 0) + 1)
    const list = perCustomer.get(order.customer) ?? []
    list.push(r as TotalsRecord)
    perCustomer.set(order.customer, list)
  }
  const { ok, lost, duplicated } = countDeliveries(byId.keys(), seen, "order", examples)
  const expectedTotal = new Map<string, number>()
  for (const o of input) expectedTotal.set(o.customer, (expectedTotal.get(o.customer) ?? 0) + o.amount)
  let brokenChains = 0
  for (const [customer, total] of expectedTotal) {
    const list = [...(perCustomer.get(customer) ?? [])].sort((a, b) => a.total - b.total)
    let running = 0
    let unbroken = true
    for (const r of list) {
      running += r.amount
      if (r.total !== running) unbroken = false
    }
    if (!unbroken || running !== total) {
      brokenChains++
      if (examples.length < 5)
        examples.push(`customer ${customer}: chain ends at ${running}, true total ${total}`)
    }
  }
  return {
    attempted: byId.size,
    ok,
    lost,
    duplicated,
    unexpected,
    customers: expectedTotal.size,
    brokenChains,
    examples
  }
}

/**
 * Compares a sink's output that is a set of input records (no chains), each identified by `id`,
 * with the records it must hold: each expected one exactly once, nothing else. `matches` checks the
 * fields besides the id (default: customer and amount as `checkOrders` does).
 */
export const checkRecords = (
  expected: ReadonlyArray<InputOrder>,
  output: ReadonlyArray<OutputMessage>,
  matches: (expected: InputOrder, got: Record<string, unknown>) => boolean = (e, got) =>
    got.customer === e.customer && got.amount === e.amount
): Verdict => {
  const byId = new Map<string, InputOrder>()
  for (const o of expected) byId.set(String(o.id), o)
  const seen = new Map<string, number>()
  let unexpected = 0
  const examples: Array<string> = []
  for (const m of output) {
    const r = (m.body ?? {}) as Record<string, unknown>
    const id = String(r.id)
    const want = byId.get(id)
    if (!want || !matches(want, r)) {
      unexpected++
      if (examples.length < 5) examples.push(`unexpected ${JSON.stringify(m.body)}`)
      continue
    }
    seen.set(id, (seen.get(id) ?? 0) + 1)
  }
  const { ok, lost, duplicated } = countDeliveries(byId.keys(), seen, "record", examples)
  // no chains here: customers 0 tells formatVerdict so
  return { attempted: byId.size, ok, lost, duplicated, unexpected, customers: 0, brokenChains: 0, examples }
}

export const formatVerdict = (v: Verdict): string =>
  [
    `${"attempted".padEnd(12)}${v.attempted}`,
    `${"ok".padEnd(12)}${v.ok}`,
    `${"lost".padEnd(12)}${v.lost}`,
    `${"duplicated".padEnd(12)}${v.duplicated}`,
    `${"unexpected".padEnd(12)}${v.unexpected}`,
    // a sink without running totals (checkRecords) has no chains to count
    ...(v.customers === 0 && v.brokenChains === 0
      ? []
      : [
          `${"chains".padEnd(12)}${v.customers - v.brokenChains}/${v.customers} customers with an unbroken running-total chain ending at the true total`
        ]),
    ...(v.lateWrong === undefined ? [] : [`${"lateWrong".padEnd(12)}${v.lateWrong}`]),
    ...(v.mismatch === undefined ? [] : [`${"mismatch".padEnd(12)}${v.mismatch}`]),
    ...v.examples.map((e) => `  e.g. ${e}`)
  ].join("\n")
