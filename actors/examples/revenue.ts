/**
 * The event-time example: revenue per customer by event time. Orders `{id, customer, amount, at}`
 * (amount in cents, `at` the event time in ms) from two JetStream streams, each read by one source
 * instance with bounded-out-of-orderness watermarks, are unioned, keyed by customer and cut into
 * 10 s tumbling windows, 60 s windows sliding by 10 s, and sessions of activity (gap 5 s). Each
 * window result `{key, window, value: {count, sum, idHash}, firing, final}` goes to its own RabbitMQ
 * queue; orders too late for a window go, with the windows they missed and the window operator's
 * name, to one `late` queue. An interval join pairs each order of A with the orders of B by the
 * same customer within 1 s of it (`{customer, a, b}` to its own queue; its late orders to the late
 * queue too, with their side). `idHash` (Σ fnv1a32(id) mod 2³² of the members) lets a checker tell
 * which orders a window holds without listing them.
 * Names and knobs come from the environment: EXACTOR_REVENUE_JOB (`revenue`), the streams
 * EXACTOR_REVENUE_A (`revenue-a`) and EXACTOR_REVENUE_B (`revenue-b`), the queues
 * EXACTOR_REVENUE_TUMBLING (`revenue-10s`), EXACTOR_REVENUE_SLIDING (`revenue-60s`),
 * EXACTOR_REVENUE_SESSIONS (`revenue-sessions`), EXACTOR_REVENUE_LATE (`revenue-late`),
 * EXACTOR_REVENUE_JOINED (`revenue-joined`); the
 * watermarks' EXACTOR_MAX_DELAY (2000 ms) and EXACTOR_IDLE_TIMEOUT (5000 ms), the windows'
 * EXACTOR_LATENESS (3000 ms) and EXACTOR_WINDOW_PARALLELISM (2, the tumbling windows'; the others
 * run one instance), and the orders example's job options (checkpoint interval, restarts).
 * `exactor chaos test/oracle/revenueChaos.ts` runs it under faults and checks every window with the
 * independent oracle.
 */
import { outputTag } from "../../lib/api/Operator.ts"
import type { JoinLate } from "../../lib/api/IntervalJoin.ts"
import { pipeline } from "../../lib/api/Stream.ts"
import { boundedOutOfOrderness } from "../../lib/api/Watermark.ts"
import {
  type AggregateFunction,
  type Late,
  session,
  sliding,
  tumbling,
  type WindowResult
} from "../../lib/api/Windows.ts"
import { jetstreamSource } from "../jetstreamSource.ts"
import { rabbitmqSink } from "../rabbitmqSink.ts"
import { ordersJobOptions } from "./orderOperators.ts"

/** An order with its event time. */
export interface TimedOrder {
  readonly id: string
  readonly customer: string
  /** cents */
  readonly amount: number
  /** event time, ms since the epoch */
  readonly at: number
}

/** What a window knows of its orders: how many, their revenue, and a hash of their ids. */
export interface Revenue {
  readonly count: number
  readonly sum: number
  readonly idHash: number
}

type Env = Readonly<Record<string, string | undefined>>

/** The job's names, from the environment (defaults in the header). */
export const revenueNames = (env: Env = process.env) => ({
  job: env.EXACTOR_REVENUE_JOB ?? "revenue",
  streams: [env.EXACTOR_REVENUE_A ?? "revenue-a", env.EXACTOR_REVENUE_B ?? "revenue-b"],
  tumbling: env.EXACTOR_REVENUE_TUMBLING ?? "revenue-10s",
  sliding: env.EXACTOR_REVENUE_SLIDING ?? "revenue-60s",
  sessions: env.EXACTOR_REVENUE_SESSIONS ?? "revenue-sessions",
  late: env.EXACTOR_REVENUE_LATE ?? "revenue-late",
  joined: env.EXACTOR_REVENUE_JOINED ?? "revenue-joined"
})

/** The job's event-time settings, from the environment (defaults in the header). */
export const revenueTime = (env: Env = process.env) => ({
  maxDelay: Number(env.EXACTOR_MAX_DELAY ?? 2000),
  idleTimeout: Number(env.EXACTOR_IDLE_TIMEOUT ?? 5000),
  lateness: Number(env.EXACTOR_LATENESS ?? 3000),
  windowParallelism: Number(env.EXACTOR_WINDOW_PARALLELISM ?? 2),
  tumbling: 10_000,
  sliding: { size: 60_000, slide: 10_000 },
  sessionGap: 5000,
  /** the join: an order of B within this many ms of one of A by the same customer */
  joinWithin: 1000
})

/** one encoder for every call: `add` runs once per record */
const utf8 = new TextEncoder()

/** FNV-1a, 32 bits, over the UTF-8 bytes of `s`. */
const fnv1a32 = (s: string): number => {
  let h = 0x811c9dc5
  for (const byte of utf8.encode(s)) h = Math.imul(h ^ byte, 0x01000193) >>> 0
  return h
}

export const revenue: AggregateFunction<TimedOrder, Revenue, Revenue> = {
  create: () => ({ count: 0, sum: 0, idHash: 0 }),
  add: (a, o) => ({
    count: a.count + 1,
    sum: a.sum + o.amount,
    idHash: (a.idHash + fnv1a32(o.id)) % 2 ** 32
  }),
  merge: (x, y) => ({
    count: x.count + y.count,
    sum: x.sum + y.sum,
    idHash: (x.idHash + y.idHash) % 2 ** 32
  }),
  result: (a) => a
}

const late = outputTag<Late<TimedOrder>>("late")
const joinLate = outputTag<JoinLate<TimedOrder>>("joinLate")

/** Orders of the same customer in both shops within `joinWithin` ms of each other. */
export interface BothShops {
  readonly customer: string
  readonly a: string
  readonly b: string
}

/**
 * The pipeline as `env` names and tunes it: a function, so a module that re-exports the example
 * (the chaos oracle's) builds it after its environment is set.
 */
export const revenuePipeline = (env: Env = process.env) => {
  const names = revenueNames(env)
  const time = revenueTime(env)
  const watermarks = boundedOutOfOrderness<TimedOrder>({
    timestamp: (o) => o.at,
    maxDelay: time.maxDelay,
    idleTimeout: time.idleTimeout
  })
  const p = pipeline(names.job, ordersJobOptions())
  const [a, b] = names.streams.map((stream, i) =>
    p.source(jetstreamSource<TimedOrder>(i === 0 ? "orders-a" : "orders-b", { stream, bounded: "atStart" }), {
      watermarks
    })
  )
  const customer = (o: TimedOrder) => o.customer
  const byCustomer = a!.union(b!).keyBy(customer)
  const spec = { lateness: time.lateness, lateOutput: late }
  const per10s = byCustomer
    .window(tumbling(time.tumbling), { name: "tumbling", ...spec })
    .aggregate(revenue, { parallelism: time.windowParallelism })
  const per60s = byCustomer
    .window(sliding(time.sliding.size, time.sliding.slide), { name: "sliding", ...spec })
    .aggregate(revenue, { parallelism: 1 })
  const sessions = byCustomer
    .window(session(time.sessionGap), { name: "sessions", ...spec })
    .aggregate(revenue, { parallelism: 1 })
  const joined = a!
    .keyBy(customer)
    .connect(b!.keyBy(customer))
    .intervalJoin(
      {
        name: "join",
        lower: -time.joinWithin,
        upper: time.joinWithin,
        leftLate: joinLate,
        rightLate: joinLate
      },
      (x, y, key): BothShops => ({ customer: key, a: x.id, b: y.id }),
      { parallelism: 1 }
    )
  joined.sink(rabbitmqSink<BothShops>("join-sink", { queue: names.joined }), { parallelism: 1 })
  const results = rabbitmqSink<WindowResult<string, Revenue>>
  per10s.sink(results("tumbling-sink", { queue: names.tumbling }), { parallelism: 1 })
  per60s.sink(results("sliding-sink", { queue: names.sliding }), { parallelism: 1 })
  sessions.sink(results("sessions-sink", { queue: names.sessions }), { parallelism: 1 })
  per10s
    .sideOutput(late)
    .union(per60s.sideOutput(late), sessions.sideOutput(late))
    .union(joined.sideOutput(joinLate))
    .sink(rabbitmqSink<Late<TimedOrder> | JoinLate<TimedOrder>>("late-sink", { queue: names.late }), {
      parallelism: 1
    })
  return p.build()
}

export default revenuePipeline()
