/**
 * The `ProcessContext` of a keyed instance (DESIGN-dataflow §3): which key a handler or `onTimer`
 * is at, its event time, the instance's watermark, the key's timers, and where emits go.
 * Invariant: one object per task, pointed at one key at a time by the (single) task fiber; a
 * handler's new state is committed, or dropped after `clearState`, only once it has returned.
 */
import type { Emit, OutputTag, ProcessContext, TimerTag, Timers } from "../api/Operator.ts"
import { START_OF_TIME } from "../api/Watermark.ts"
import type { Key } from "../core/KeyGroups.ts"
import type { KeyedStateStore } from "./KeyedStateStore.ts"
import type { PortOutputs } from "./PortOutputs.ts"
import type { TimedBuffer } from "./TimedBuffer.ts"

const checkAt = (operator: string, at: number) => {
  if (!Number.isSafeInteger(at))
    throw new Error(`${operator}: a timer's time must be a whole number of ms, got ${at}`)
}

export class KeyedContext implements ProcessContext<unknown> {
  readonly store: KeyedStateStore<unknown>
  readonly timers: Timers
  /** `emit` as a keyed handler's 3rd argument (with `emit.side`) */
  readonly emitter: Emit<unknown>
  key: Key = ""
  timestamp: number | undefined
  watermark = START_OF_TIME
  now = 0
  /** late records counted by windows and joins this epoch */
  lateRecords = 0
  private cleared = false
  private out: TimedBuffer | undefined
  private ports: PortOutputs | undefined

  constructor(operator: string, store: KeyedStateStore<unknown>) {
    this.store = store
    const timers = store.timers
    const tag0 = (tag: TimerTag | undefined) => tag ?? 0
    this.timers = {
      eventTime: (at, tag) => {
        checkAt(operator, at)
        timers.register("event", at, this.key, tag0(tag))
      },
      processingTime: (at, tag) => {
        checkAt(operator, at)
        timers.register("processing", at, this.key, tag0(tag))
      },
      deleteEventTime: (at, tag) => timers.delete("event", at, this.key, tag0(tag)),
      deleteProcessingTime: (at, tag) => timers.delete("processing", at, this.key, tag0(tag))
    }
    const emit = ((o: unknown) => this.emit(o)) as Emit<unknown>
    emit.side = (tag, value) => this.output(tag, value)
    this.emitter = emit
  }

  /** Points emits at this batch's (or this firing's) outputs. */
  begin(out: TimedBuffer, ports: PortOutputs): void {
    this.out = out
    this.ports = ports
    this.now = Date.now()
  }

  /** Points the context at `key` before its handler or `onTimer` runs. */
  enter(key: Key, timestamp: number | undefined): void {
    this.key = key
    this.timestamp = timestamp
    this.cleared = false
  }

  /** Keeps what the handler returned as the key's state, or drops the state after `clearState`. */
  commit(key: Key, state: unknown): void {
    if (this.cleared) this.store.delete(key)
    else this.store.set(key, state)
  }

  emit(output: unknown, timestamp?: number): void {
    this.out!.push(output, timestamp ?? this.timestamp)
  }

  output<T>(tag: OutputTag<T>, value: T): void {
    this.ports!.push(tag.name, value, this.timestamp)
  }

  clearState(): void {
    this.cleared = true
  }

  lateRecord(): void {
    this.lateRecords++
  }
}
