/**
 * RabbitMQ helpers for integration tests: unique queue names per run, an independent plain-amqplib
 * consumer that drains a queue and counts message ids, and deletion of what a test declared.
 * Invariant: the consumer shares no code with the sink, so it checks the sink rather than itself.
 */
import { randomBytes } from "node:crypto"
import amqp from "amqplib"
import { amqpUrl } from "./env.ts"

export { amqpUrl }

const run = randomBytes(4).toString("hex")
let counter = 0

/** `exactor-test-<random>-<name>-<k>`: unique per test run and per call. */
export const testQueue = (name: string): string => {
  counter += 1
  return `exactor-test-${run}-${name.replace(/[^A-Za-z0-9_-]/g, "_")}-${counter}`
}

/** A job name unique per run and call (for the sink's lock and marker queues). */
export const testJob = (name: string): string => testQueue(`job-${name}`).replace(/^exactor-test-/, "t-")

export interface Drained {
  /** how many times each message id was seen (messages without an id count under "") */
  readonly counts: Map<string, number>
  /** every body, JSON-parsed, in delivery order */
  readonly bodies: Array<unknown>
  /** every message's checkpoint (the 4th part of its id, `<job>/<sink>/<i>/<n>/<seq>`), in delivery order */
  readonly checkpoints: Array<unknown>
  readonly total: number
}

/**
 * Reads every message of `queue` (acking them) until it has been empty for `idleMs`, on its own
 * connection. The queue must exist.
 */
export const drainQueue = async (queue: string, idleMs = 500, url = amqpUrl): Promise<Drained> => {
  const conn = await amqp.connect(url)
  try {
    const ch = await conn.createChannel()
    const counts = new Map<string, number>()
    const bodies: Array<unknown> = []
    const checkpoints: Array<unknown> = []
    const record = (msg: amqp.GetMessage): void => {
      const id = typeof msg.properties.messageId === "string" ? msg.properties.messageId : ""
      counts.set(id, (counts.get(id) ?? 0) + 1)
      bodies.push(JSON.parse(msg.content.toString("utf8")))
      checkpoints.push(Number(id.split("/")[3]))
    }
    for (;;) {
      const msg = await ch.get(queue, { noAck: true })
      if (msg === false) {
        await new Promise((resolve) => setTimeout(resolve, idleMs))
        const again = await ch.get(queue, { noAck: true })
        if (again === false) break
        record(again)
        continue
      }
      record(msg)
    }
    return { counts, bodies, checkpoints, total: bodies.length }
  } finally {
    await conn.close()
  }
}

/** Number of ready messages in `queue` (without consuming them). */
export const queueDepth = async (queue: string, url = amqpUrl): Promise<number> => {
  const conn = await amqp.connect(url)
  try {
    const ch = await conn.createChannel()
    return (await ch.checkQueue(queue)).messageCount
  } finally {
    await conn.close()
  }
}

/** Deletes the queues (missing ones are fine) and exchanges a test created. */
export const deleteQueues = async (
  queues: ReadonlyArray<string>,
  exchanges: ReadonlyArray<string> = [],
  url = amqpUrl
): Promise<void> => {
  const conn = await amqp.connect(url)
  try {
    const ch = await conn.createChannel()
    for (const q of queues) await ch.deleteQueue(q)
    for (const x of exchanges) await ch.deleteExchange(x)
  } finally {
    await conn.close()
  }
}

/**
 * Verdict of an output check, Jepsen-style: of `expected` ids, how many were seen once (ok), never
 * (lost), more than once (duplicated), plus ids nobody expected (unexpected).
 */
export const verdict = (expected: ReadonlyArray<string>, counts: ReadonlyMap<string, number>) => {
  const want = new Set(expected)
  let ok = 0
  let lost = 0
  let duplicated = 0
  let unexpected = 0
  for (const id of want) {
    const n = counts.get(id) ?? 0
    if (n === 0) lost += 1
    else if (n === 1) ok += 1
    else duplicated += 1
  }
  for (const id of counts.keys()) if (!want.has(id)) unexpected += 1
  return { attempted: want.size, ok, lost, duplicated, unexpected }
}
