/**
 * Event time inside an operator's loop (DESIGN-dataflow §2.6, §3): input watermarks through the
 * valve, due timers fired before the watermark that made them due is forwarded, processing-time
 * timers between deliveries, and the end of input. Invariant: a timer's output precedes the
 * watermark that fired it on every output channel, and bursts fire in slices with a yield between
 * (so heartbeats keep flowing); a stream without event time never gets here (E4).
 */
import * as Effect from "effect/Effect"
import type { FiredTimer } from "../api/Operator.ts"
import { END_OF_TIME, START_OF_TIME } from "../api/Watermark.ts"
import type { KeyedContext } from "./KeyedContext.ts"
import { type ApplyEnv, applyBatch } from "./OperatorApply.ts"
import type { PortOutputs } from "./PortOutputs.ts"
import type { Router } from "./Router.ts"
import { TimedBuffer } from "./TimedBuffer.ts"
import type { Timer, TimerDomain } from "./TimerService.ts"
import { type ValveOutput, WatermarkValve } from "./WatermarkValve.ts"

export interface TimeEnv extends ApplyEnv {
  readonly router: Router
  /** at most this many timers fire between two yields */
  readonly sourceBatch: number
  /** sends a report (`heartbeat`: the instance's heartbeat, its body filled in) */
  readonly report: (kind: "heartbeat") => void
}

export class OperatorTime {
  readonly valve: WatermarkValve
  private readonly env: TimeEnv
  private readonly keyed: KeyedContext | undefined
  private readonly ports: PortOutputs
  /** a watermark or status has come in (or was restored): only then do watermarks go out (E4) */
  private timed: boolean

  constructor(
    env: TimeEnv,
    channels: number,
    floor: number,
    keyed: KeyedContext | undefined,
    ports: PortOutputs
  ) {
    this.env = env
    this.keyed = keyed
    this.ports = ports
    this.valve = new WatermarkValve(channels, floor)
    this.timed = floor > START_OF_TIME
    if (keyed !== undefined) keyed.watermark = floor
    if (floor > START_OF_TIME) env.stats.watermark = floor
  }

  /** A watermark on `channel` (alone, or closing a batch). */
  onWatermark(channel: number, w: number): Effect.Effect<void, unknown> {
    this.timed = true
    return this.advance(this.valve.onWatermark(channel, w))
  }

  onIdle(channel: number, idle: boolean): Effect.Effect<void, unknown> {
    this.timed = true
    return this.advance(this.valve.onIdle(channel, idle))
  }

  /** End of stream on `channel`: once all have ended, END fires every event-time timer (§1.5). */
  onEnded(channel: number): Effect.Effect<void, unknown> {
    return this.advance(this.valve.onEnded(channel))
  }

  /** Acts on what the valve changed: fire what the new watermark makes due, forward it, then the status. */
  private advance(o: ValveOutput): Effect.Effect<void, unknown> {
    const self = this
    return Effect.gen(function* () {
      const { env } = self
      // resuming goes before the watermark (a downstream valve ignores watermarks of an idle channel);
      // going idle after it (§2.4: fire, send the results and the watermark, then `idle on`)
      if (o.idle === false) yield* self.status(false)
      if (o.watermark !== undefined) {
        const w = o.watermark
        if (self.keyed !== undefined) {
          self.keyed.watermark = w
          yield* self.fire("event", w)
          if (w === END_OF_TIME) {
            // end of input: pending processing-time timers can never fire (Flink quiesces them, FLINK-14231)
            env.stats.droppedTimers =
              (env.stats.droppedTimers ?? 0) + self.keyed.store.timers.dropProcessing()
          }
        }
        // a stream without event time sends no watermark, not even END (E4)
        if (!self.timed) return
        env.stats.watermark = w
        yield* env.router.watermark(w)
      }
      if (o.idle === true) yield* self.status(true)
      env.stats.idleInputs = self.valve.idleChannels
      self.report()
    })
  }

  private status(idle: boolean): Effect.Effect<void> {
    this.env.stats.idle = idle
    return this.env.router.idle(idle)
  }

  /** Fires the processing-time timers due at `now`. */
  fireProcessing(now: number): Effect.Effect<void, unknown> {
    const next = this.keyed?.store.timers.nextAt("processing")
    if (next === undefined || next > now) return Effect.void
    return this.fire("processing", now).pipe(Effect.tap(() => Effect.sync(() => this.report())))
  }

  /** How long the loop may sleep before the next processing-time timer is due (undefined: none). */
  processingWait(now: number): number | undefined {
    const next = this.keyed?.store.timers.nextAt("processing")
    return next === undefined ? undefined : Math.max(0, next - now)
  }

  private report(): void {
    const keyed = this.keyed
    if (keyed === undefined) return
    this.env.stats.timers = keyed.store.timers.count()
    this.env.stats.lateRecords = keyed.lateRecords
  }

  /** Fires every timer of `domain` due at `upTo` in (at, key, tag) order, in slices. */
  private fire(domain: TimerDomain, upTo: number): Effect.Effect<void, unknown> {
    const keyed = this.keyed!
    const { env, ports } = this
    const d = env.declaration
    const onTimer = d.kind === "process" || d.kind === "coProcess" ? d.onTimer : undefined
    const timers = keyed.store.timers
    const slice = Math.max(1, env.sourceBatch)
    return Effect.gen(function* () {
      const due: Array<Timer> = []
      let slices = 0
      for (;;) {
        due.length = 0
        for (let t = timers.pollDue(domain, upTo); t !== undefined; t = timers.pollDue(domain, upTo)) {
          due.push(t)
          if (due.length >= slice) break
        }
        if (due.length === 0) return
        if (onTimer === undefined) continue
        env.stats.firing = true
        // a burst of more than one slice is announced at once, so a view (or a nemesis) sees it firing
        if (++slices === 2) env.report("heartbeat")
        const out = new TimedBuffer()
        keyed.begin(out, ports)
        yield* applyBatch(
          env.instance,
          due,
          (x) => {
            const t = x as Timer
            keyed.enter(t.key, domain === "event" ? t.at : undefined)
            const fired: FiredTimer = { domain, at: t.at, tag: t.tag }
            return onTimer(fired, keyed.store.get(t.key), keyed)
          },
          (x, state) => keyed.commit((x as Timer).key, state)
        )
        if (out.length > 0) yield* env.router.route(out.records, "main", out.times)
        env.stats.recordsOut += out.length + ports.count
        if (ports.count > 0) yield* ports.route(env.router)
        env.stats.firing = false
        // a burst (END, an idle flush, overdue timers after a restore) must not starve the heartbeat
        if (due.length >= slice) yield* Effect.yieldNow
      }
    })
  }
}
