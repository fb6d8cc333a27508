/**
 * The work of one instance in one epoch: read or receive, apply the operator, route, and take
 * part in checkpoints (barrier -> align -> snapshot -> forward -> ack). One fiber runs it; it
 * ends only by failing (the epoch is then over) or by being interrupted by a new epoch.
 * Invariant: every record is processed at most once per epoch, in channel order, and a snapshot
 * of checkpoint n reflects exactly the records that preceded `barrier n` on every input.
 */
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { Aligner } from "./Aligner.ts"
import type { Inbound, Mailbox } from "./Channel.ts"
import type { BatchEnvelope, ReportKind } from "./Envelope.ts"
import type { KeyedStateStore } from "./KeyedStateStore.ts"
import type { Key } from "../core/KeyGroups.ts"
import {
  type DeadLetter,
  type Declaration,
  deadLetters,
  declaredPorts,
  type Emit,
  hasDeadLetters,
  type Result,
  type SinkWriter,
  type SourceReader,
  type UndecodedRecord
} from "../api/Operator.ts"
import type { Edge } from "../api/Pipeline.ts"
import type { Router } from "./Router.ts"
import type { SinkCommits } from "./SinkCommits.ts"
import type { TaskStats } from "./TaskStats.ts"

/** A command of the coordinator handed to the task, with the way to answer it. */
export interface TaskCommand {
  readonly kind: "trigger" | "complete" | "abort"
  readonly n: number
  readonly reply: (ok: boolean, error?: string) => void
}

export class UserCodeError extends Data.TaggedError("UserCodeError")<{
  readonly instance: string
  readonly record: string
  readonly cause: unknown
}> {
  override get message(): string {
    const why =
      this.cause instanceof Error
        ? this.cause.message
        : Cause.isCause(this.cause)
          ? Cause.pretty(this.cause)
          : String(this.cause)
    return `operator ${this.instance} failed on record ${this.record}: ${why}`
  }
}

/** The state the task works on, restored before it starts. */
export type TaskState =
  | { readonly kind: "source"; readonly reader: SourceReader<unknown> }
  | { readonly kind: "stateless" }
  | { readonly kind: "keyed"; readonly store: KeyedStateStore<unknown> }
  | { readonly kind: "sink"; readonly writer: SinkWriter<unknown> }

export interface TaskEnv {
  readonly instance: string
  readonly declaration: Declaration
  readonly epoch: number
  readonly mailbox: Mailbox<TaskCommand>
  /** the input edge of each mailbox channel */
  readonly channelEdges: ReadonlyArray<Edge>
  readonly router: Router
  readonly state: TaskState
  readonly sourceBatch: number
  readonly lingerMs: number
  readonly stats: TaskStats
  /** sends a report; `heartbeat` sends the instance's heartbeat (its body is filled in) */
  readonly report: (kind: ReportKind, n?: number, body?: unknown) => void
  /** a sink's commits (beside the loop or in it, per its writer); the loop fails when one failed */
  readonly commits?: SinkCommits
  /** stores a snapshot of checkpoint n and returns its handle */
  readonly putSnapshot: (n: number, state: unknown) => Effect.Effect<unknown, unknown>
}

const describe = (record: unknown): string => {
  try {
    const s = JSON.stringify(record)
    return s === undefined ? String(record) : s.length > 200 ? `${s.slice(0, 200)}…` : s
  } catch {
    return String(record)
  }
}

/** A handler's failure as one line: the error's message, a Cause's first error, or the value. */
export const reasonOf = (cause: unknown): string => {
  const x = Cause.isCause(cause) ? Cause.squash(cause) : cause
  if (x instanceof Error) return x.message
  if (typeof x === "object" && x !== null && "message" in x) return String(x.message)
  return String(x)
}

/**
 * Applies `fn` to every record in a plain loop; switches to Effect only for the records whose
 * handler returned an Effect. `onResult` receives each record with its result, in order. Without
 * `onFailure` the first failure fails the batch naming its record; with it, a failed record (a
 * throw, a failed or dying Effect; never an interruption) goes to `onFailure` and the loop goes on.
 */
export const applyBatch = <X>(
  instance: string,
  records: ReadonlyArray<unknown>,
  fn: (record: unknown) => Result<X, unknown>,
  onResult: (record: unknown, result: X) => void,
  onFailure?: (record: unknown, index: number, cause: unknown) => void
): Effect.Effect<void, UserCodeError> => {
  const fail = (record: unknown, cause: unknown) =>
    new UserCodeError({ instance, record: describe(record), cause })
  /** the rest of the batch from `i` on, once a handler returned an Effect */
  const rest = (i: number, first: Effect.Effect<X, unknown>) =>
    Effect.gen(function* () {
      for (let j = i; j < records.length; j++) {
        const r = records[j]
        let y: Result<X, unknown>
        if (j === i) y = first
        else
          try {
            y = fn(r)
          } catch (cause) {
            if (onFailure === undefined) return yield* Effect.fail(fail(r, cause))
            onFailure(r, j, cause)
            continue
          }
        if (!Effect.isEffect(y)) {
          onResult(r, y)
          continue
        }
        const e = y as Effect.Effect<X, unknown>
        if (onFailure === undefined) onResult(r, yield* Effect.mapError(e, (c) => fail(r, c)))
        else {
          const ok = yield* e.pipe(
            Effect.map((x) => ({ x })),
            Effect.catchCause((cause) =>
              Cause.hasInterrupts(cause)
                ? Effect.failCause(cause)
                : Effect.sync(() => {
                    onFailure(r, j, cause)
                    return undefined
                  })
            )
          )
          if (ok !== undefined) onResult(r, ok.x)
        }
      }
    }) as Effect.Effect<void, UserCodeError>
  for (let i = 0; i < records.length; i++) {
    const record = records[i]
    let x: Result<X, unknown>
    try {
      x = fn(record)
    } catch (cause) {
      if (onFailure === undefined) return Effect.fail(fail(record, cause))
      onFailure(record, i, cause)
      continue
    }
    if (Effect.isEffect(x)) return rest(i, x as Effect.Effect<X, unknown>)
    onResult(record, x)
  }
  return Effect.void
}

/**
 * The records a batch sent to ports other than `main` (side outputs, split labels), routed after
 * the batch's main output. A port the operator does not declare is a user-code error naming it.
 * With `journal` (the `deadLetter` policy) it can take back what a failed record had pushed.
 */
export class PortOutputs {
  private readonly byPort = new Map<string, Array<unknown>>()
  private readonly operator: string
  private readonly declared: ReadonlySet<string>
  /** the list each push went to, in order, when pushes can be taken back */
  private readonly journal: Array<Array<unknown>> | undefined
  count = 0

  constructor(operator: string, declared: ReadonlySet<string>, journal = false) {
    this.operator = operator
    this.declared = declared
    this.journal = journal ? [] : undefined
  }

  push(port: string, record: unknown): void {
    if (!this.declared.has(port))
      throw new Error(
        `output "${port}" is not declared by ${this.operator} (declared: ${[...this.declared].join(", ") || "none"})`
      )
    let list = this.byPort.get(port)
    if (list === undefined) {
      list = [record]
      this.byPort.set(port, list)
    } else list.push(record)
    this.journal?.push(list)
    this.count++
  }

  /** Takes back the pushes after the first `count` of this batch (a record that failed half way). */
  rollback(count: number): void {
    const journal = this.journal
    if (journal === undefined) throw new Error("PortOutputs.rollback without a journal")
    while (this.count > count) {
      journal.pop()!.pop()
      this.count--
    }
  }

  /** Routes what was pushed, port by port, and forgets it. */
  route(router: Router): Effect.Effect<void> {
    const ports = [...this.byPort].filter(([, records]) => records.length > 0)
    this.byPort.clear()
    if (this.journal !== undefined) this.journal.length = 0
    this.count = 0
    return Effect.forEach(ports, ([port, records]) => router.route(records, port), { discard: true })
  }
}

/** The emit of a keyed operator: main output into `out`, side outputs into `ports`. */
const emitter = (out: Array<unknown>, ports: PortOutputs): Emit<unknown> => {
  const emit = ((o: unknown) => {
    out.push(o)
  }) as Emit<unknown>
  emit.side = (tag, value) => ports.push(tag.name, value)
  return emit
}

/** The operator name of an instance id (`parse#1` -> `parse`). */
const operatorOf = (instance: string) => instance.slice(0, instance.lastIndexOf("#"))

/**
 * Under the `deadLetter` policy: `before` marks what was emitted before each record, and
 * `onFailure` takes back what a failed record emitted (a keyed handler may emit, then fail) and
 * sends its dead letter instead. A keyed record that fails leaves its key's state as it was.
 */
const deadLetterMode = (env: TaskEnv, batch: BatchEnvelope, out: Array<unknown>, ports: PortOutputs) => {
  let outMark = 0
  let portsMark = 0
  const operator = operatorOf(env.instance)
  return {
    before: () => {
      outMark = out.length
      portsMark = ports.count
    },
    onFailure: (record: unknown, index: number, cause: unknown) => {
      out.length = outMark
      ports.rollback(portsMark)
      const letter: DeadLetter = {
        operator,
        instance: env.instance,
        reason: reasonOf(cause),
        record,
        input: batch.c,
        position: { epoch: batch.e, seq: batch.s, index }
      }
      ports.push(deadLetters.name, letter)
      env.stats.deadLetters++
    }
  }
}

/**
 * Applies the operator of `env` to one batch from `channel`; returns its main output records (the
 * other ports' records, dead letters among them, are in `ports`).
 */
const transform = (env: TaskEnv, channel: number, batch: BatchEnvelope, ports: PortOutputs) => {
  const d = env.declaration
  const records = batch.r
  const out: Array<unknown> = []
  const dl = hasDeadLetters(d) ? deadLetterMode(env, batch, out, ports) : undefined
  /** the handler, marking emits first under the `deadLetter` policy */
  const guarded = <X>(fn: (r: unknown) => Result<X, unknown>): ((r: unknown) => Result<X, unknown>) =>
    dl === undefined
      ? fn
      : (r) => {
          dl.before()
          return fn(r)
        }
  const apply = <X>(fn: (r: unknown) => Result<X, unknown>, onResult: (r: unknown, x: X) => void) =>
    applyBatch(env.instance, records, guarded(fn), onResult, dl?.onFailure).pipe(Effect.as(out))
  switch (d.kind) {
    case "map":
      return apply(
        (r) => d.handle(r),
        (_, o) => out.push(o)
      )
    case "flatMap":
      return apply(
        (r) => d.handle(r),
        (_, os) => {
          for (const o of os) out.push(o)
        }
      )
    case "filter":
      return apply(
        (r) => d.handle(r),
        (r, keep) => {
          if (keep) out.push(r)
        }
      )
    case "split": {
      const toPorts = (r: unknown, labels: string | ReadonlyArray<string>) => {
        if (typeof labels === "string") ports.push(labels, r)
        else for (const l of labels) ports.push(l, r)
      }
      // a label is pushed inside the handler's try (an unknown one fails naming the record), or,
      // when `route` returned an Effect, inside that Effect
      return apply(
        (r) => {
          const labels = d.route(r)
          if (Effect.isEffect(labels)) return Effect.flatMap(labels, (ls) => Effect.try(() => toPorts(r, ls)))
          toPorts(r, labels)
        },
        () => undefined
      )
    }
    case "process":
    case "coProcess": {
      if (env.state.kind !== "keyed") return Effect.die("keyed operator without keyed state")
      const store = env.state.store
      const edge = env.channelEdges[channel]!
      if (edge.partitioning.kind !== "keyBy") return Effect.die("keyed operator input without keyBy")
      const keyOf = edge.partitioning.key
      const handle = d.kind === "process" ? d.handle : edge.input === 1 ? d.handle2 : d.handle1
      const emit = emitter(out, ports)
      let key: Key = ""
      return apply(
        (r) => {
          key = keyOf(r)
          return handle(r, store.get(key), emit, key)
        },
        (_, next) => store.set(key, next)
      )
    }
    default:
      return Effect.succeed(records)
  }
}

/** The synchronous part of a snapshot: captures the state as plain data. */
const captureState = (env: TaskEnv, n: number): Effect.Effect<unknown, unknown> => {
  const s = env.state
  switch (s.kind) {
    case "source":
      return Effect.succeed({ position: s.reader.position() })
    case "keyed":
      return Effect.succeed(s.store.snapshot())
    case "sink":
      return s.writer.snapshot(n)
    case "stateless":
      return Effect.succeed(undefined)
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

/** The loop of a source instance: read, route, serve triggers between reads. */
const runSource = (env: TaskEnv, reader: SourceReader<unknown>) =>
  Effect.gen(function* () {
    let ended = false
    const triggered = { last: -1 }
    for (;;) {
      for (let item = env.mailbox.poll(); item !== undefined; item = env.mailbox.poll())
        if ("posted" in item) yield* handleCommand(env, undefined, item.posted, triggered)
      if (ended) {
        const item = yield* env.mailbox.takeWithin(100)
        if (item !== undefined && "posted" in item)
          yield* handleCommand(env, undefined, item.posted, triggered)
        continue
      }
      const { records, end, undecoded } = yield* reader.read(env.sourceBatch)
      if (records.length > 0) {
        env.stats.recordsIn += records.length
        yield* env.router.route(records)
        env.stats.recordsOut += records.length
      }
      if (undecoded !== undefined && undecoded.length > 0) yield* sendUndecoded(env, undecoded)
      if (end) {
        ended = true
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
      // a partial batch (or a sink's commits) wants a look every lingerMs; otherwise only input wakes the loop
      const wait = env.commits !== undefined || env.router.lingering ? env.lingerMs : idleWaitMs
      const item = ready.length > 0 ? ready.shift() : yield* env.mailbox.takeWithin(wait)
      if (env.commits) yield* env.commits.check
      const now = Date.now()
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
          } else {
            const out = yield* transform(env, channel, envelope, ports)
            if (out.length > 0) yield* env.router.route(out)
            env.stats.recordsOut += out.length + ports.count
            if (ports.count > 0) yield* ports.route(env.router)
          }
          env.mailbox.consumed(channel)
          break
        }
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
            if (endedCount === channels) {
              if (env.state.kind === "sink") sinkProgress(env.state.writer)
              else {
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
