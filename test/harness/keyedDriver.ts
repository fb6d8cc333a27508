/**
 * A small player of keyed declarations for unit tests, doing what the runtime does: each record
 * against the current watermark, then every due event-time timer in (at, key, tag) order, the
 * state kept per key through msgpack (so it must be plain data). `coProcessAsProcess` lets it play
 * a two-input declaration, each record tagged with its input.
 */
import { Effect } from "effect"
import { pack, unpack } from "msgpackr"
import type {
  CoProcessDeclaration,
  Emit,
  OutputTag,
  ProcessContext,
  ProcessDeclaration,
  TimerTag
} from "../../lib/api/Operator.ts"
import { END_OF_TIME, START_OF_TIME } from "../../lib/api/Watermark.ts"
import type { Key } from "../../lib/core/KeyGroups.ts"

interface Timer {
  readonly at: number
  readonly key: Key
  readonly tag: TimerTag
}

const order = (x: Key | TimerTag, y: Key | TimerTag): number =>
  typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0) : typeof x === "number" ? -1 : 1
const byTime = (x: Timer, y: Timer): number => x.at - y.at || order(x.key, y.key) || order(x.tag, y.tag)

/** Plays a keyed declaration as the runtime does; `log` holds outputs and watermarks in order. */
export class Driver<A, S, O> {
  readonly d: ProcessDeclaration<A, S, O, unknown>
  readonly keyOf: (a: A) => Key
  readonly states = new Map<Key, S>()
  /** pending event-time timers, sorted by (at, key, tag) */
  timers: Array<Timer> = []
  watermark = START_OF_TIME
  readonly out: Array<{ readonly value: O; readonly ts: number | undefined }> = []
  readonly side: Array<{ readonly tag: string; readonly value: unknown }> = []
  readonly log: Array<string> = []
  lateRecords = 0
  readonly show: (o: O, ts: number | undefined) => string

  constructor(
    d: ProcessDeclaration<A, S, O, unknown>,
    keyOf: (a: A) => Key,
    show: (o: O, ts: number | undefined) => string
  ) {
    this.d = d
    this.keyOf = keyOf
    this.show = show
  }

  private context(
    key: Key,
    timestamp: number | undefined
  ): { ctx: ProcessContext<O>; cleared: () => boolean } {
    let cleared = false
    const remove = (at: number, tag: TimerTag | undefined) => {
      this.timers = this.timers.filter((x) => !(x.at === at && x.key === key && x.tag === (tag ?? 0)))
    }
    const ctx: ProcessContext<O> = {
      key,
      timestamp,
      watermark: this.watermark,
      now: 0,
      emit: (o, ts) => {
        this.out.push({ value: o, ts: ts ?? timestamp })
        this.log.push(this.show(o, ts ?? timestamp))
      },
      output: <T>(tag: OutputTag<T>, value: T) => {
        this.side.push({ tag: tag.name, value })
      },
      timers: {
        eventTime: (at, tag) => {
          remove(at, tag)
          this.timers.push({ at, key, tag: tag ?? 0 })
          this.timers.sort(byTime)
        },
        processingTime: () => {
          throw new Error("windows set no processing-time timer")
        },
        deleteEventTime: remove,
        deleteProcessingTime: () => undefined
      },
      clearState: () => {
        cleared = true
      },
      lateRecord: () => {
        this.lateRecords++
      }
    }
    return { ctx, cleared: () => cleared }
  }

  /** Keeps the new state as the runtime's snapshot would: through msgpack, so it must be plain data. */
  private commit(key: Key, state: unknown, cleared: boolean) {
    if (Effect.isEffect(state)) throw new Error("a window handler returned an Effect")
    if (cleared) this.states.delete(key)
    else this.states.set(key, unpack(pack(state)) as S)
  }

  private fire() {
    for (let next = this.timers[0]; next !== undefined && next.at <= this.watermark; next = this.timers[0]) {
      this.timers.shift()
      const { ctx, cleared } = this.context(next.key, next.at)
      const state = this.states.get(next.key) ?? this.d.state.initial()
      const r = this.d.onTimer!({ domain: "event", at: next.at, tag: next.tag }, state, ctx)
      this.commit(next.key, r, cleared())
    }
  }

  record(a: A, ts: number | undefined): this {
    const key = this.keyOf(a)
    const { ctx, cleared } = this.context(key, ts)
    const emit = ((o: O) => ctx.emit(o)) as Emit<O>
    emit.side = (tag, v) => ctx.output(tag, v)
    const r = this.d.handle(a, this.states.get(key) ?? this.d.state.initial(), emit, key, ctx)
    this.commit(key, r, cleared())
    this.fire()
    return this
  }

  wm(w: number): this {
    this.watermark = Math.max(this.watermark, w)
    this.fire()
    this.log.push(`wm ${w === END_OF_TIME ? "END" : w}`)
    return this
  }

  /** the log since the last call */
  take(): Array<string> {
    return this.log.splice(0, this.log.length)
  }
}

/** A record of a two-input declaration, for the driver: which input, and the record. */
export type Tagged<A, B> = { readonly input: 1; readonly value: A } | { readonly input: 2; readonly value: B }

/** A co-process declaration as a one-input one over `Tagged` records (what the driver plays). */
export const coProcessAsProcess = <A, B, S, O>(
  d: CoProcessDeclaration<A, B, S, O, unknown>
): ProcessDeclaration<Tagged<A, B>, S, O, unknown> => ({
  kind: "process",
  name: d.name,
  state: d.state,
  ...(d.outputs ? { outputs: d.outputs } : {}),
  ...(d.onTimer ? { onTimer: d.onTimer } : {}),
  handle: (r, state, emit, key, ctx) =>
    r.input === 1
      ? d.handle1(r.value, state, emit as unknown as Emit<O>, key, ctx)
      : d.handle2(r.value, state, emit as unknown as Emit<O>, key, ctx)
})
