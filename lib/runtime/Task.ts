/**
 * The work of one instance in one epoch: read or receive, apply the operator, route, and take
 * part in checkpoints (barrier -> align -> snapshot -> forward -> ack). One fiber runs it; it
 * ends only by failing (the epoch is then over) or by being interrupted by a new epoch.
 * Invariant: every record is processed at most once per epoch, in channel order, and a snapshot
 * of checkpoint n reflects exactly the records that preceded `barrier n` on every input.
 */
import * as Effect from "effect/Effect"
import { Aligner } from "./Aligner.ts"
import type { Inbound, Mailbox } from "./Channel.ts"
import type { ReportKind } from "./Envelope.ts"
import { KeyedContext } from "./KeyedContext.ts"
import type { KeyedStateStore } from "./KeyedStateStore.ts"
import {
  type DeadLetter,
  deadLetters,
  declaredPorts,
  hasDeadLetters,
  type SinkWriter,
  type SourceReader,
  type UndecodedRecord
} from "../api/Operator.ts"
import {
  END_OF_TIME,
  START_OF_TIME,
  type WatermarkGenerator,
  type WatermarkStrategy
} from "../api/Watermark.ts"
import { type ApplyEnv, operatorOf, transform, UserCodeError } from "./OperatorApply.ts"
import { PortOutputs } from "./PortOutputs.ts"
import type { Router } from "./Router.ts"
import type { SinkCommits } from "./SinkCommits.ts"
import type { TaskStats } from "./TaskStats.ts"
import { OperatorTime } from "./OperatorTime.ts"

export { applyBatch, reasonOf, UserCodeError } from "./OperatorApply.ts"
export { PortOutputs } from "./PortOutputs.ts"

/** A command of the coordinator handed to the task, with the way to answer it. */
export interface TaskCommand {
  readonly kind: "trigger" | "complete" | "abort"
  readonly n: number
  readonly reply: (ok: boolean, error?: string) => void
}

/** The state the task works on, restored before it starts. */
export type TaskState =
  | { readonly kind: "source"; readonly reader: SourceReader<unknown> }
  | { readonly kind: "stateless" }
  | { readonly kind: "keyed"; readonly store: KeyedStateStore<unknown> }
  | { readonly kind: "sink"; readonly writer: SinkWriter<unknown> }

/** A source's event time: its strategy, its split's generator (restored) and its idle flag. */
export interface SourceClock {
  readonly strategy: WatermarkStrategy<unknown>
  readonly generator: WatermarkGenerator
  idle: boolean
}

export interface TaskEnv extends ApplyEnv {
  readonly epoch: number
  readonly mailbox: Mailbox<TaskCommand>
  readonly router: Router
  readonly state: TaskState
  readonly sourceBatch: number
  readonly lingerMs: number
  readonly stats: TaskStats
  /** sends a report; `heartbeat` sends the instance's heartbeat (its body is filled in) */
  readonly report: (kind: ReportKind, n?: number, body?: unknown) => void
  /** a sink's commits (beside the loop or in it, per its writer); the loop fails when one failed */
  readonly commits?: SinkCommits
  /** a source with `watermarks`, or an operator of `assignTimestamps` */
  readonly clock?: SourceClock
  /** an operator's watermark restored from the checkpoint (the floor of every input channel) */
  readonly watermarkFloor?: number
  /** stores a snapshot of checkpoint n and returns its handle */
  readonly putSnapshot: (n: number, state: unknown) => Effect.Effect<unknown, unknown>
}

/** The synchronous part of a snapshot: captures the state as plain data (with the watermark, E2). */
const captureState = (env: TaskEnv, n: number): Effect.Effect<unknown, unknown> => {
  const s = env.state
  const w = env.stats.watermark
  switch (s.kind) {
    case "source": {
      const clock = env.clock
      return Effect.succeed(
        clock === undefined
          ? { position: s.reader.position() }
          : { position: s.reader.position(), generator: clock.generator.snapshot(), idle: clock.idle }
      )
    }
    case "keyed":
      return Effect.succeed(s.store.snapshot(w))
    case "sink":
      return s.writer.snapshot(n)
    case "stateless": {
      // assignTimestamps: its generator and idle flag, as a source keeps them (§2.7)
      const clock = env.clock
      if (clock !== undefined)
        return Effect.succeed({
          ...(w === undefined ? {} : { watermark: w }),
          generator: clock.generator.snapshot(),
          idle: clock.idle
        })
      return Effect.succeed(w === undefined ? undefined : { watermark: w })
    }
  }
}

/** Snapshot, forward the barrier, ack. The barrier goes out before the (possibly slow) store. */
const checkpoint = (env: TaskEnv, n: number, alignmentMs: number) =>
  Effect.gen(function* () {
    const started = Date.now()
    const state = yield* captureState(env, n)
    // a sink: the records before this barrier, visible once commit n is confirmed (kept in the manifest)
    const committed = env.commits?.atBarrier(n, env.stats.recordsOut)
    yield* env.router.barrier(n)
    const handle = state === undefined ? undefined : yield* env.putSnapshot(n, state)
    env.stats.lastCheckpoint = n
    env.stats.lastAlignmentMs = alignmentMs
    env.report("ack", n, {
      handle,
      alignmentMs,
      durationMs: Date.now() - started,
      ...(committed === undefined ? {} : { committed })
    })
  })

/**
 * Serves a command; returns what an abort released from alignment (to process first). `triggered`
 * is the last checkpoint a source took in this epoch: a repeated `trigger n` (an answer lost, or a
 * replayed command) is answered without a second `barrier n`.
 */
const handleCommand = (
  env: TaskEnv,
  aligner: Aligner<Inbound<TaskCommand>> | undefined,
  c: TaskCommand,
  triggered?: { last: number }
): Effect.Effect<ReadonlyArray<Inbound<TaskCommand>>, unknown> =>
  Effect.gen(function* () {
    switch (c.kind) {
      case "trigger":
        if (env.state.kind !== "source") c.reply(false, "only sources take triggers")
        else if (triggered !== undefined && c.n <= triggered.last) c.reply(true)
        else {
          yield* checkpoint(env, c.n, 0)
          if (triggered !== undefined) triggered.last = c.n
          c.reply(true)
        }
        return []
      case "complete":
        // a sink whose writer cannot commit beside its input (SinkCommits.besideInput) commits here
        if (env.commits) yield* env.commits.run(c.n, c.reply)
        else c.reply(true)
        return []
      case "abort":
        c.reply(true)
        return aligner ? aligner.abort(c.n) : []
    }
  })

/**
 * A source's payloads it could not decode, as dead letters (its policy is `deadLetter`). They
 * follow the records of the same read; the reader's position is past them, so a replay from a
 * checkpoint sends each again exactly when it sends the records around it.
 */
const sendUndecoded = (env: TaskEnv, undecoded: ReadonlyArray<UndecodedRecord>) => {
  if (!hasDeadLetters(env.declaration))
    return Effect.die(
      `${env.instance}: its reader returned undecoded records, but its policy is not deadLetter`
    )
  const operator = operatorOf(env.instance)
  const letters = undecoded.map((u): DeadLetter => ({ operator, instance: env.instance, ...u }))
  env.stats.recordsIn += letters.length
  env.stats.recordsOut += letters.length
  env.stats.deadLetters += letters.length
  return env.router.route(letters, deadLetters.name)
}

/** A source's watermark: sent after what it routed so far, and its status. */
const sourceWatermark = (env: TaskEnv, w: number) => {
  env.stats.watermark = w
  return env.router.watermark(w)
}

/**
 * Idleness of a source with `idleTimeout` (§2.5): idle once its reads returned nothing for that
 * long; only time spent in `read` counts, never time blocked on credit (FLIP-471).
 */
const sourceIdleness = (env: TaskEnv) => {
  let emptyMs = 0
  const timeout = env.clock?.strategy.idleTimeout
  return {
    readNothing: (ms: number) =>
      Effect.suspend(() => {
        const clock = env.clock
        if (timeout === undefined || clock === undefined || clock.idle) return Effect.void
        emptyMs += ms
        if (emptyMs < timeout) return Effect.void
        clock.idle = true
        env.stats.idle = true
        return env.router.idle(true)
      }),
    reset: () => {
      emptyMs = 0
    }
  }
}

/**
 * Routes a read's records with their event times; every watermark the generator returns goes out
 * right after the record that raised it (it closes the batch, E1). A record read while idle first
 * ends the idleness.
 */
const routeWithWatermarks = (env: TaskEnv, clock: SourceClock, records: ReadonlyArray<unknown>) =>
  Effect.gen(function* () {
    if (clock.idle) {
      clock.idle = false
      env.stats.idle = false
      yield* env.router.idle(false)
    }
    const times = new Array<number>(records.length)
    let from = 0
    for (let i = 0; i < records.length; i++) {
      let ts: number
      try {
        ts = clock.strategy.timestamp(records[i])
      } catch (cause) {
        return yield* new UserCodeError({ instance: env.instance, record: JSON.stringify(records[i]), cause })
      }
      if (!Number.isSafeInteger(ts))
        return yield* new UserCodeError({
          instance: env.instance,
          record: JSON.stringify(records[i]),
          cause: new Error(`its timestamp is not a whole number of ms (got ${ts})`)
        })
      times[i] = ts
      const w = clock.generator.onEvent(ts)
      if (w === undefined) continue
      yield* env.router.route(records.slice(from, i + 1), "main", times.slice(from, i + 1))
      from = i + 1
      yield* sourceWatermark(env, w)
    }
    if (from === 0) yield* env.router.route(records, "main", times)
    else if (from < records.length) yield* env.router.route(records.slice(from), "main", times.slice(from))
  })

/** The loop of a source instance: read, route, serve triggers between reads. */
const runSource = (env: TaskEnv, reader: SourceReader<unknown>) =>
  Effect.gen(function* () {
    let ended = false
    const triggered = { last: -1 }
    const clock = env.clock
    const idleness = sourceIdleness(env)
    // a restored idle status is sent again (the new channels start active, §2.7)
    if (clock?.idle === true) yield* env.router.idle(true)
    for (;;) {
      for (let item = env.mailbox.poll(); item !== undefined; item = env.mailbox.poll())
        if ("posted" in item) yield* handleCommand(env, undefined, item.posted, triggered)
      if (ended) {
        const item = yield* env.mailbox.takeWithin(100)
        if (item !== undefined && "posted" in item)
          yield* handleCommand(env, undefined, item.posted, triggered)
        continue
      }
      const readStarted = Date.now()
      const { records, end, undecoded } = yield* reader.read(env.sourceBatch)
      if (records.length > 0) {
        env.stats.recordsIn += records.length
        if (clock === undefined) yield* env.router.route(records)
        else {
          idleness.reset()
          yield* routeWithWatermarks(env, clock, records)
        }
        env.stats.recordsOut += records.length
      } else if (clock !== undefined && !end) yield* idleness.readNothing(Date.now() - readStarted)
      if (undecoded !== undefined && undecoded.length > 0) yield* sendUndecoded(env, undecoded)
      if (end) {
        ended = true
        if (clock !== undefined) yield* sourceWatermark(env, END_OF_TIME)
        yield* env.router.eos
        env.stats.finished = true
        env.report("finished")
        // the final counts at once: a status must not wait a heartbeat interval for them
        env.report("heartbeat")
      }
      yield* env.router.flushLingering(Date.now())
    }
  })

/**
 * How long an operator's loop sleeps when it holds no partial batch: commands and input arrive in
 * its mailbox and wake it at once, so this only bounds how often an idle instance looks around.
 */
const idleWaitMs = 250

/** The loop of every other instance: take deliveries in order, align barriers, apply the operator. */
const runOperator = (env: TaskEnv) =>
  Effect.gen(function* () {
    const channels = env.mailbox.channels.length
    const aligner = new Aligner<Inbound<TaskCommand>>(channels)
    const ended = new Array<boolean>(channels).fill(false)
    let endedCount = 0
    const ready: Array<Inbound<TaskCommand>> = []
    let wanted = false
    let lastFlush = Date.now()
    const d = env.declaration
    const ports = new PortOutputs(env.instance, new Set(declaredPorts(d)), hasDeadLetters(d))
    const keyed =
      env.state.kind === "keyed" ? new KeyedContext(operatorOf(env.instance), env.state.store) : undefined
    const time = new OperatorTime(env, channels, env.watermarkFloor ?? START_OF_TIME, keyed, ports)
    const isSink = env.state.kind === "sink"
    // assignTimestamps: event time starts here, from one generator per instance; upstream
    // watermarks and statuses are dropped, END goes out once every input has ended (§2.2)
    const clock = env.clock
    const idleness = clock === undefined ? undefined : sourceIdleness(env)
    if (clock?.idle === true) yield* env.router.idle(true)
    /**
     * A sink whose transaction is full asks for a checkpoint (once per checkpoint), and is finished
     * only when it has seen eos on every input and nothing is left waiting for a transaction.
     */
    const sinkProgress = (writer: SinkWriter<unknown>) => {
      const full = writer.full()
      env.stats.wantsCheckpoint = full
      if (full && !wanted) {
        wanted = true
        env.report("wantCheckpoint")
      }
      if (!full && endedCount === channels && !env.stats.finished) {
        env.stats.finished = true
        env.report("finished")
      }
    }
    for (;;) {
      // a partial batch wants a look every lingerMs; otherwise only input and commands wake the loop
      // (a sink's failed commit is seen at the next input or within idleWaitMs)
      const base = env.router.lingering ? env.lingerMs : idleWaitMs
      const timerWait = keyed === undefined ? undefined : time.processingWait(Date.now())
      const wait = timerWait === undefined ? base : Math.min(base, timerWait)
      const waitFrom = Date.now()
      const item = ready.length > 0 ? ready.shift() : yield* env.mailbox.takeWithin(wait)
      if (env.commits) yield* env.commits.check
      const now = Date.now()
      if (item === undefined && idleness !== undefined) yield* idleness.readNothing(now - waitFrom)
      if (keyed !== undefined) yield* time.fireProcessing(now)
      if (now - lastFlush >= env.lingerMs) {
        lastFlush = now
        yield* env.router.flushLingering(now)
      }
      if (item === undefined) continue
      if ("posted" in item) {
        ready.unshift(...(yield* handleCommand(env, aligner, item.posted)))
        continue
      }
      const { channel, envelope } = item
      if (aligner.isBlocked(channel)) {
        aligner.hold(channel, item)
        continue
      }
      switch (envelope.k) {
        case "batch": {
          env.stats.recordsIn += envelope.r.length
          if (env.state.kind === "sink") {
            yield* env.state.writer.write(envelope.r)
            env.stats.recordsOut += envelope.r.length
            sinkProgress(env.state.writer)
          } else if (clock !== undefined) {
            idleness!.reset()
            yield* routeWithWatermarks(env, clock, envelope.r)
            env.stats.recordsOut += envelope.r.length
          } else {
            const out = yield* transform(env, channel, envelope, ports, keyed)
            if (out.length > 0) yield* env.router.route(out.records, "main", out.times)
            env.stats.recordsOut += out.length + ports.count
            if (ports.count > 0) yield* ports.route(env.router)
            if (envelope.w !== undefined) yield* time.onWatermark(channel, envelope.w)
          }
          env.mailbox.consumed(channel)
          break
        }
        case "wm":
          if (!isSink && clock === undefined) yield* time.onWatermark(channel, envelope.w)
          break
        case "idle":
          if (!isSink && clock === undefined) yield* time.onIdle(channel, envelope.on)
          break
        case "barrier": {
          const outcome = aligner.onBarrier(channel, envelope.n, now)
          if (outcome.kind === "aligned") {
            yield* checkpoint(env, outcome.n, Date.now() - aligner.startedAt)
            wanted = false
            if (env.state.kind === "sink") sinkProgress(env.state.writer)
          }
          ready.unshift(...outcome.released)
          break
        }
        case "eos": {
          if (!ended[channel]) {
            ended[channel] = true
            endedCount++
            // an ended channel is out of the minimum; all ended: END fires every event-time timer (§1.5)
            if (!isSink && clock === undefined) yield* time.onEnded(channel)
            if (endedCount === channels) {
              if (env.state.kind === "sink") sinkProgress(env.state.writer)
              else {
                if (clock !== undefined) yield* sourceWatermark(env, END_OF_TIME)
                yield* env.router.eos
                env.report("heartbeat")
              }
            }
          }
          break
        }
      }
    }
  })

/** Runs the task until it fails or is interrupted. */
export const runTask = (env: TaskEnv): Effect.Effect<never, unknown> =>
  (env.state.kind === "source" ? runSource(env, env.state.reader) : runOperator(env)) as Effect.Effect<
    never,
    unknown
  >
