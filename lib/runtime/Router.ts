/**
 * Routing of an instance's output records over its out-edges, by output port (`main`, a side
 * output, a split label): forward (same index), rebalance (round robin), broadcast (all), keyBy
 * (key group -> owning instance). Barriers and end of stream go on every channel of every port.
 * Invariant: a record of key k always reaches the instance owning keyGroup(k) for the
 * downstream parallelism, and each channel receives records in the order they were routed.
 */
import * as Effect from "effect/Effect"
import { InstanceId, type Subjects } from "../core/Address.ts"
import type { ChannelOptions } from "../api/ChannelOptions.ts"
import { ChannelSender } from "./Channel.ts"
import { instanceForKeyGroup, keyGroupOf } from "../core/KeyGroups.ts"
import type { NatsConnection } from "./Nats.ts"
import { type Edge, type JobPlan, portOf } from "../api/Pipeline.ts"

interface Route {
  readonly edge: Edge
  readonly senders: ReadonlyArray<ChannelSender>
  next: number
}

/** The channel of a route a record goes to (not for broadcast, which takes all). */
const pick = (route: Route, record: unknown, maxP: number): ChannelSender => {
  const { senders } = route
  const part = route.edge.partitioning
  if (part.kind === "keyBy")
    return senders[instanceForKeyGroup(maxP, senders.length, keyGroupOf(part.key(record), maxP))]!
  if (part.kind === "forward") return senders[0]!
  const target = senders[route.next]!
  route.next = (route.next + 1) % senders.length
  return target
}

export class Router {
  /** every sender of this instance, by downstream instance id */
  readonly senders: ReadonlyMap<string, ChannelSender>
  /** the routes of each output port */
  private readonly routes: ReadonlyMap<string, ReadonlyArray<Route>>
  private readonly maxParallelism: number

  constructor(
    nc: NatsConnection,
    subjects: Subjects,
    plan: JobPlan,
    self: InstanceId,
    epoch: number,
    options: ChannelOptions
  ) {
    this.maxParallelism = plan.options.maxParallelism
    const senders = new Map<string, ChannelSender>()
    const routes = new Map<string, Array<Route>>()
    for (const edge of plan.outputs.get(self.operator) ?? []) {
      const p = plan.operator.get(edge.to)!.parallelism
      // a forward edge is one channel, to the instance of the same index
      const targets =
        edge.partitioning.kind === "forward" ? [self.index] : Array.from({ length: p }, (_, i) => i)
      const list = targets.map((i) => {
        const to = InstanceId.make(edge.to, i)
        const sender = new ChannelSender(nc, subjects, self, to, epoch, options)
        senders.set(to.toString(), sender)
        return sender
      })
      const port = portOf(edge)
      if (!routes.has(port)) routes.set(port, [])
      routes.get(port)!.push({ edge, senders: list, next: self.index % list.length })
    }
    this.routes = routes
    this.senders = senders
  }

  /**
   * Routes records of output `port` to their channels, sending every batch that fills (waiting for
   * credit). A port no edge reads drops its records (an unread side output, as in Flink).
   */
  route(
    records: ReadonlyArray<unknown>,
    port = "main",
    timestamps?: ReadonlyArray<number>
  ): Effect.Effect<void> {
    const routes = this.routes.get(port) ?? []
    if (timestamps !== undefined) return this.routeTimed(routes, records, timestamps)
    const maxP = this.maxParallelism
    return Effect.gen(function* () {
      for (const route of routes) {
        const broadcast = route.edge.partitioning.kind === "broadcast"
        for (let i = 0; i < records.length; i++) {
          const record = records[i]
          if (broadcast) {
            for (const s of route.senders) if (s.add(record)) yield* s.sendBatch
            continue
          }
          const target = pick(route, record, maxP)
          if (target.add(record)) yield* target.sendBatch
        }
      }
    })
  }

  /** `route` of records with event times (a second loop, so a stream without event time pays nothing). */
  private routeTimed(
    routes: ReadonlyArray<Route>,
    records: ReadonlyArray<unknown>,
    timestamps: ReadonlyArray<number>
  ): Effect.Effect<void> {
    const maxP = this.maxParallelism
    return Effect.gen(function* () {
      for (const route of routes) {
        const broadcast = route.edge.partitioning.kind === "broadcast"
        for (let i = 0; i < records.length; i++) {
          const record = records[i]
          const ts = timestamps[i]!
          if (broadcast) {
            for (const s of route.senders) if (s.addTimed(record, ts)) yield* s.sendBatch
            continue
          }
          const target = pick(route, record, maxP)
          if (target.addTimed(record, ts)) yield* target.sendBatch
        }
      }
    })
  }

  /** Sends watermark `w` on every channel of every port, after what each has buffered. */
  watermark(w: number): Effect.Effect<void> {
    return Effect.forEach(this.senders.values(), (s) => s.watermark(w), { discard: true })
  }

  /** Sends the instance's watermark status on every channel of every port. */
  idle(on: boolean): Effect.Effect<void> {
    return Effect.forEach(this.senders.values(), (s) => s.idle(on), { discard: true })
  }

  /** Sends the partial batches that have lingered long enough. */
  flushLingering(now: number): Effect.Effect<void> {
    return Effect.forEach(
      [...this.senders.values()].filter((s) => s.lingerDue(now)),
      (s) => s.sendBatch,
      { discard: true }
    )
  }

  /** True when some channel holds a partial batch (that `flushLingering` will send). */
  get lingering(): boolean {
    for (const s of this.senders.values()) if (s.buffered > 0) return true
    return false
  }

  /** Flushes and sends `barrier n` on every output channel. */
  barrier(n: number): Effect.Effect<void> {
    return Effect.forEach(this.senders.values(), (s) => s.barrier(n), { discard: true })
  }

  /** Flushes and sends end-of-stream on every output channel. */
  get eos(): Effect.Effect<void> {
    return Effect.forEach(this.senders.values(), (s) => s.eos, { discard: true })
  }

  /** Records routed in this epoch, over all channels (a broadcast record counts once per channel). */
  get records(): number {
    let n = 0
    for (const s of this.senders.values()) n += s.records
    return n
  }
}
