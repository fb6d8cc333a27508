/**
 * lib/runtime/ — the data plane every actor process runs: the actor (this file) and its task,
 * channels with credit windows on NATS subjects, the barrier aligner, the router, the envelope
 * codec, keyed state, sink commits and the two-phase-commit sink contract. Imports api/, core/,
 * internal/ only: nothing here knows the coordinator, a connector, the CLI or the launcher.
 *
 * One actor process: one instance of one operator. It connects to NATS, serves its control
 * subject, reports hello and heartbeats to the coordinator, and for every epoch the coordinator
 * starts (restore -> run) builds a fresh mailbox, channels and restored state, then runs its task.
 * Invariant: at most one epoch is live in a process; a newer `restore` ends the current one
 * (its fiber, subscriptions and buffers) before anything of the new epoch happens. Only commands
 * tagged with the job's secret are acted upon (`ControlAuth`); its answers and reports are tagged too.
 * The control loop never waits for a restore (which may commit a sink's pending transactions, for
 * as long as the broker takes): a restore runs in its own fiber, a repeat of it waits for its answer,
 * and a newer restore or a `stop` interrupts it, so the instance always answers its coordinator.
 */
import { randomUUID } from "node:crypto"
import { hostname } from "node:os"
import type { Msg } from "@nats-io/transport-node"
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import { InstanceId, Subjects } from "../core/Address.ts"
import { type ChannelSender, Mailbox, subscribeCredits } from "./Channel.ts"
import type { ControlAuth } from "./ControlAuth.ts"
import { type ControlEnvelope, decode, EnvelopeDecodeError, encode, type ReportKind } from "./Envelope.ts"
import { KeyedStateStore, type KeyedSnapshot, restoredWatermark } from "./KeyedStateStore.ts"
import { rejectedMessagesScoped } from "./RejectedMessages.ts"
import { failOnDisconnect, type NatsConnection } from "./Nats.ts"
import type { OperatorContext, SinkWriter } from "../api/Operator.ts"
import type { WatermarkStrategy } from "../api/Watermark.ts"
import type { Edge, JobPlan } from "../api/Pipeline.ts"
import { Router } from "./Router.ts"
import { type CompletedCheckpoint, SinkCommits } from "./SinkCommits.ts"
import { runTask, type SourceClock, type TaskCommand, type TaskState } from "./Task.ts"
import { initialTaskStats, type TaskStats } from "./TaskStats.ts"

export class InstanceNotInPipeline extends Data.TaggedError("InstanceNotInPipeline")<{
  readonly instance: string
  readonly job: string
}> {
  override get message(): string {
    return `instance ${this.instance} is not part of pipeline ${this.job} (unknown operator or index >= parallelism)`
  }
}

/** Where snapshots go; the coordinator's checkpoint store in production, anything in tests. */
export interface SnapshotStore {
  readonly putSnapshot: (
    n: number,
    operator: string,
    index: number,
    state: unknown
  ) => Effect.Effect<unknown, unknown>
  readonly getSnapshot: (handle: never) => Effect.Effect<unknown, unknown>
  /** the latest completed checkpoint's manifest (a sink commits only up to it) */
  readonly readLatest: () => Effect.Effect<{ readonly manifest: CompletedCheckpoint } | undefined, unknown>
}

/** The event-time counters of a heartbeat, dropped at each new epoch (they are recomputed). */
const eventTimeStats = [
  "watermark",
  "idle",
  "idleInputs",
  "timers",
  "lateRecords",
  "droppedTimers",
  "firing"
] as const

/**
 * A source's event time after a restore: its generator and idle flag as the snapshot has them
 * (§2.7). After a rescale (several old splits) the generator starts afresh: its first watermarks
 * are lower than the restored ones downstream, which never regress (the valve), so nothing is late
 * that was not.
 */
const restoredClock = (
  strategy: WatermarkStrategy<unknown>,
  snapshots: ReadonlyArray<unknown>
): SourceClock => {
  const generator = strategy.generator()
  const own =
    snapshots.length === 1 ? (snapshots[0] as { generator?: unknown; idle?: unknown } | undefined) : undefined
  if (own?.generator !== undefined) generator.restore(own.generator)
  return { strategy, generator, idle: own?.idle === true }
}

/** The body of a `restore` command. */
export interface RestoreBody {
  /** the checkpoint restored from, if any */
  readonly checkpoint?: number
  /** snapshot handles for this instance: its own, or every old instance's for a keyed operator */
  readonly handles: ReadonlyArray<unknown>
  /** a sink: the records it had committed at that checkpoint, across epochs */
  readonly committed?: number
}

const wholeOrAbsent = (v: unknown) => v === undefined || (Number.isSafeInteger(v) && (v as number) >= 0)

/** Why a `restore` command's body is not a `RestoreBody` (absent means empty state), or undefined. */
export const restoreBodyProblem = (b: unknown): string | undefined => {
  if (b === undefined) return undefined
  if (typeof b !== "object" || b === null || Array.isArray(b)) return "restore body is not a map"
  const o = b as Record<string, unknown>
  if (!Array.isArray(o.handles)) return "restore body: handles is not an array"
  if (!wholeOrAbsent(o.checkpoint)) return "restore body: checkpoint is not a whole number"
  if (!wholeOrAbsent(o.committed)) return "restore body: committed is not a whole number"
  return undefined
}

export type InstancePhase = "idle" | "restoring" | "restored" | "running" | "failed"

/** What an instance says in its heartbeat. */
export interface HeartbeatBody extends TaskStats {
  readonly phase: InstancePhase
  readonly pid: number
  readonly host: string
  /** process memory in MB: resident set, V8 heap in use, and outside the heap (Buffers) */
  readonly rssMb: number
  readonly heapMb: number
  readonly externalMb: number
  /** time this epoch's senders waited for credit, ms: the share of time under backpressure */
  readonly creditWaitMs: number
  /** messages this process rejected off the wire since it started (mailbox, credit, control) */
  readonly rejected: number
  readonly failure?: string
}

export interface ActorEnv {
  readonly plan: JobPlan
  readonly id: InstanceId
  readonly nc: NatsConnection
  readonly natsUrl: string
  readonly amqpUrl: string
  readonly store: SnapshotStore
  /** the job's secret: tags reports and answers, authenticates commands */
  readonly auth: ControlAuth
  readonly subjects?: Subjects
}

/** How long `stop` waits for an interrupted restore to let go before the instance stops anyway. */
const stopGrace = "2 seconds"

const errorText = (cause: Cause.Cause<unknown>): string => {
  const failure = cause.reasons.find(Cause.isFailReason)
  if (failure) {
    const e = failure.error
    return e instanceof Error ? `${(e as { _tag?: string })._tag ?? e.name}: ${e.message}` : String(e)
  }
  return Cause.pretty(cause)
}

/** Runs the actor until `stop`; fails only if it cannot start. */
export const runActor = (env: ActorEnv) =>
  Effect.gen(function* () {
    const { plan, id, nc, store, auth } = env
    const job = plan.pipeline.job
    const node = plan.operator.get(id.operator)
    if (!node || id.index >= node.parallelism)
      return yield* new InstanceNotInPipeline({ instance: id.toString(), job })
    const d = node.declaration
    const subjects = env.subjects ?? new Subjects(job)
    const incarnation = randomUUID()
    const self = id.toString()
    const ctx: OperatorContext = {
      job,
      operator: id.operator,
      index: id.index,
      parallelism: node.parallelism,
      natsUrl: env.natsUrl,
      amqpUrl: env.amqpUrl
    }
    const stats: TaskStats = initialTaskStats()
    /** the senders of the current epoch's router, for the heartbeat's credit wait */
    let senders: ReadonlyMap<string, ChannelSender> = new Map()
    let epoch = -1
    let phase: InstancePhase = "idle"
    let failure: string | undefined
    const report = (k: ReportKind, n?: number, b?: unknown) =>
      auth.publish(
        nc,
        subjects.coordinator,
        encode({ k, e: Math.max(epoch, 0), c: self, i: incarnation, ...(n === undefined ? {} : { n }), b })
      )

    // The sink's writer lives as long as the process: it holds the fencing lock of this instance.
    const writer: SinkWriter<unknown> | undefined = d.kind === "sink" ? yield* d.open(ctx) : undefined

    // Input channels in a fixed order: per input edge, every upstream instance.
    const inputs = plan.inputs.get(id.operator) ?? []
    const upstreams: Array<InstanceId> = []
    const channelEdges: Array<Edge> = []
    for (const edge of inputs) {
      const p = plan.operator.get(edge.from)!.parallelism
      const indices =
        edge.partitioning.kind === "forward" ? [id.index] : Array.from({ length: p }, (_, i) => i)
      for (const i of indices) {
        upstreams.push(InstanceId.make(edge.from, i))
        channelEdges.push(edge)
      }
    }

    // every rejected message is counted (heartbeat `rejected`) and logged, rate-limited
    const rejects = yield* rejectedMessagesScoped(self)
    const reject = (error: EnvelopeDecodeError) => rejects.reject(error)

    const controls = yield* Queue.unbounded<
      { readonly env: ControlEnvelope; readonly msg: Msg } | { readonly rejected: number }
    >()
    const controlSubject = subjects.control(id)
    /** Refuses a control message that is not a command this instance can take. */
    const refuse = (msg: Msg, error: EnvelopeDecodeError) => {
      reject(error)
      // a publish without a reply subject (not a request) has nobody to answer
      if (msg.reply) msg.respond(encode({ k: "reply", e: 0, c: self, ok: false, err: error.message }))
    }
    yield* Effect.acquireRelease(
      Effect.sync(() =>
        nc.subscribe(controlSubject, {
          callback: (_err, msg) => {
            if (!auth.verifyMsg(msg)) {
              // not from this job's coordinator: refused, counted, answered untagged (no signing oracle)
              stats.rejectedCommands++
              reject(
                new EnvelopeDecodeError({ subject: controlSubject, reason: "not authenticated (job secret)" })
              )
              msg.respond(
                encode({ k: "reply", e: 0, c: self, ok: false, err: "not authenticated (job secret)" })
              )
              Queue.offerUnsafe(controls, { rejected: stats.rejectedCommands })
              return
            }
            const e = decode(controlSubject, msg.data)
            if (e instanceof EnvelopeDecodeError) return refuse(msg, e)
            if (
              e.k === "restore" ||
              e.k === "run" ||
              e.k === "trigger" ||
              e.k === "complete" ||
              e.k === "abort" ||
              e.k === "stop"
            ) {
              const problem = e.k === "restore" ? restoreBodyProblem(e.b) : undefined
              if (problem === undefined) Queue.offerUnsafe(controls, { env: e, msg })
              else refuse(msg, new EnvelopeDecodeError({ subject: controlSubject, reason: problem }))
            } else
              refuse(
                msg,
                new EnvelopeDecodeError({
                  subject: controlSubject,
                  reason: `kind ${e.k} does not belong on a control subject`
                })
              )
          }
        })
      ),
      (sub) => Effect.sync(() => sub.unsubscribe())
    )
    yield* Effect.promise(() => nc.flush())

    const mb = (bytes: number) => Math.round(bytes / 1_048_576)
    const heartbeat = (): HeartbeatBody => {
      const memory = process.memoryUsage()
      let creditWaitMs = 0
      for (const sender of senders.values()) creditWaitMs += sender.creditWaitMs
      return {
        ...stats,
        phase,
        pid: process.pid,
        host: hostname(),
        rssMb: mb(memory.rss),
        heapMb: mb(memory.heapUsed),
        externalMb: mb(memory.external + memory.arrayBuffers),
        creditWaitMs: Math.round(creditWaitMs),
        rejected: rejects.total,
        ...(failure === undefined ? {} : { failure })
      }
    }
    report("hello", undefined, heartbeat())
    yield* Effect.forkScoped(
      Effect.sync(() => report("heartbeat", undefined, heartbeat())).pipe(
        Effect.repeat(Schedule.spaced(plan.options.heartbeatInterval))
      )
    )
    yield* Effect.logInfo(`${self} of ${job} up (incarnation ${incarnation.slice(0, 8)})`)

    let live:
      | {
          readonly scope: Scope.Closeable
          readonly mailbox: Mailbox<TaskCommand>
          state: TaskState
          commits: SinkCommits | undefined
          clock: SourceClock | undefined
          watermarkFloor: number | undefined
          fiber?: Fiber.Fiber<never, unknown>
        }
      | undefined

    const endEpoch = Effect.gen(function* () {
      if (!live) return
      const { scope, fiber } = live
      live = undefined
      if (fiber) yield* Fiber.interrupt(fiber)
      yield* Scope.close(scope, Exit.void)
    })

    /** Builds epoch `e`: state restored, mailbox subscribed and flushed, senders ready. */
    const restore = (e: number, body: RestoreBody) =>
      Effect.gen(function* () {
        yield* endEpoch
        epoch = e
        phase = "restoring"
        failure = undefined
        stats.recordsIn = 0
        stats.recordsOut = 0
        stats.deadLetters = 0
        for (const k of eventTimeStats) delete stats[k]
        stats.finished = false
        stats.wantsCheckpoint = false
        stats.commitMs = 0
        stats.recordsCommitted = body.committed ?? 0
        const scope = yield* Scope.make()
        const built = yield* Effect.exit(
          Effect.gen(function* () {
            const snapshots: Array<unknown> = []
            for (const h of body.handles) snapshots.push(yield* store.getSnapshot(h as never))
            let state: TaskState
            let clock: SourceClock | undefined
            switch (d.kind) {
              case "source": {
                const positions = snapshots.map((s) => (s as { position?: unknown } | undefined)?.position)
                const position =
                  d.mergePositions !== undefined && positions.length > 0
                    ? d.mergePositions(ctx, positions)
                    : positions[0]
                state = { kind: "source", reader: yield* d.open(ctx, position) }
                if (node.watermarks !== undefined) clock = restoredClock(node.watermarks, snapshots)
                break
              }
              case "process":
              case "coProcess": {
                const keyed = new KeyedStateStore<unknown>(
                  plan.options.maxParallelism,
                  node.parallelism,
                  id.index,
                  () => d.state.initial()
                )
                const mismatch = keyed.restore(snapshots as ReadonlyArray<KeyedSnapshot>)
                if (mismatch) return yield* mismatch
                state = { kind: "keyed", store: keyed }
                break
              }
              case "sink":
                yield* writer!.restore(snapshots[0] as never)
                state = { kind: "sink", writer: writer! }
                break
              default:
                state = { kind: "stateless" }
                // assignTimestamps: the instance's generator, as a source's (§2.7)
                if (node.watermarks !== undefined) clock = restoredClock(node.watermarks, snapshots)
            }
            const mailbox = yield* Mailbox.open<TaskCommand>(
              nc,
              subjects,
              id,
              upstreams,
              e,
              plan.options.channel,
              reject
            )
            const router = new Router(nc, subjects, plan, id, e, plan.options.channel)
            senders = router.senders
            yield* subscribeCredits(nc, subjects, id, e, router.senders, reject)
            const watermarkFloor = d.kind === "source" ? undefined : restoredWatermark(snapshots as never)
            return { mailbox, router, state, clock, watermarkFloor }
          }).pipe(
            Scope.provide(scope),
            // a newer restore or a stop interrupted this one: nothing of it stays open
            Effect.onInterrupt(() =>
              Scope.close(scope, Exit.void).pipe(
                Effect.andThen(
                  Effect.sync(() => {
                    phase = "failed"
                    failure = `restore of epoch ${e} interrupted`
                  })
                )
              )
            )
          )
        )
        if (Exit.isFailure(built)) {
          yield* Scope.close(scope, Exit.void)
          phase = "failed"
          failure = errorText(built.cause)
          return { ok: false as const, error: failure }
        }
        const { mailbox, router, state, clock, watermarkFloor } = built.value
        const commits = writer
          ? new SinkCommits(writer, scope, stats, {
              epoch: e,
              latestCompleted: Effect.suspend(() => store.readLatest()).pipe(
                Effect.map((l) =>
                  l === undefined ? undefined : { checkpoint: l.manifest.checkpoint, epoch: l.manifest.epoch }
                )
              )
            })
          : undefined
        live = { scope, mailbox, state, commits, clock, watermarkFloor }
        phase = "restored"
        return { ok: true as const, router }
      })

    let router: Router | undefined
    const run = Effect.gen(function* () {
      if (!live || !router || live.fiber) return
      const current = live
      const e = epoch
      const task = runTask({
        instance: self,
        declaration: d,
        epoch: e,
        mailbox: current.mailbox,
        channelEdges,
        router,
        state: current.state,
        sourceBatch: plan.options.sourceBatch,
        lingerMs: plan.options.channel.lingerMs,
        stats,
        // a task's heartbeat (at the end of its input) carries the counters now, as the periodic one does
        report: (k, n, b) => report(k, n, k === "heartbeat" ? heartbeat() : b),
        ...(current.commits ? { commits: current.commits } : {}),
        ...(current.clock ? { clock: current.clock } : {}),
        ...(current.watermarkFloor === undefined ? {} : { watermarkFloor: current.watermarkFloor }),
        putSnapshot: (n, state) => store.putSnapshot(n, id.operator, id.index, state)
      })
      phase = "running"
      current.fiber = yield* Effect.forkIn(
        Effect.raceFirst(task, failOnDisconnect(nc, env.natsUrl)).pipe(
          Effect.onExit((exit) =>
            Effect.sync(() => {
              if (Exit.isFailure(exit) && !Cause.hasInterruptsOnly(exit.cause) && epoch === e) {
                phase = "failed"
                failure = errorText(exit.cause)
                report("fail", undefined, { reason: failure })
              }
            })
          )
        ),
        current.scope
      )
    })

    const reply = (msg: Msg, ok: boolean, err?: string) =>
      auth.respond(
        msg,
        encode({ k: "reply", e: Math.max(epoch, 0), c: self, ok, ...(err === undefined ? {} : { err }) })
      )

    /** The restore in flight: its epoch, its fiber, and every request of it waiting for the answer (repeats included). */
    interface Restoring {
      readonly e: number
      readonly waiters: Array<Msg>
      fiber?: Fiber.Fiber<void>
    }
    let restoring: Restoring | undefined
    /** whether the current epoch is built (restored, perhaps running), not half built by an interrupted restore */
    const epochBuilt = () => phase === "restored" || phase === "running"
    const beginRestore = (e: number, body: RestoreBody, msg: Msg) =>
      Effect.gen(function* () {
        const r: Restoring = { e, waiters: [msg] }
        restoring = r
        r.fiber = yield* Effect.forkScoped(
          restore(e, body).pipe(
            Effect.flatMap((result) =>
              Effect.sync(() => {
                // done before the answer goes out: the `run` that follows it must find no restore in flight
                if (restoring === r) restoring = undefined
                if (result.ok) router = result.router
                for (const m of r.waiters) reply(m, result.ok, result.ok ? undefined : result.error)
              })
            ),
            Effect.ensuring(
              Effect.sync(() => {
                if (restoring === r) restoring = undefined
              })
            )
          )
        )
      })
    /**
     * Interrupts the restore in flight, answering its requests with `why`. A newer restore waits until
     * it has let go (two restores never touch the epoch's state at once); a stop waits at most `stopGrace`.
     */
    const cancelRestore = (why: string, stopping: boolean) =>
      Effect.gen(function* () {
        const r = restoring
        if (!r) return
        restoring = undefined
        for (const m of r.waiters) reply(m, false, why)
        if (!r.fiber) return
        if (stopping) yield* Fiber.interrupt(r.fiber).pipe(Effect.timeoutOption(stopGrace))
        else yield* Fiber.interrupt(r.fiber)
      })

    for (;;) {
      const item = yield* Queue.take(controls)
      if ("rejected" in item) {
        // the first ten, then every hundredth: a flood of forgeries does not flood the log
        if (item.rejected <= 10 || item.rejected % 100 === 0)
          yield* Effect.logWarning(
            `${self}: refused a control command without a valid tag (job secret); ${item.rejected} refused so far`
          )
        continue
      }
      const { env: c, msg } = item
      // a stop of an older epoch (a replayed one) is refused like any stale command
      if (c.e < epoch) {
        reply(msg, false, `stale epoch ${c.e} (now ${epoch})`)
        continue
      }
      if (c.k === "stop") {
        yield* cancelRestore("stopping", true)
        reply(msg, true)
        yield* endEpoch
        yield* Effect.logInfo(`${self} stopped`)
        return
      }
      if (c.k === "restore") {
        if (restoring?.e === c.e) {
          restoring.waiters.push(msg) // a repeat: answered when the restore is done
          continue
        }
        yield* cancelRestore(`superseded by the restore of epoch ${c.e}`, false)
        if (c.e === epoch && epochBuilt()) {
          reply(msg, true)
          continue
        }
        router = undefined
        yield* beginRestore(c.e, (c.b ?? { handles: [] }) as RestoreBody, msg)
        continue
      }
      if (restoring || c.e > epoch || !live) {
        reply(msg, false, `not restored for epoch ${c.e}`)
        continue
      }
      switch (c.k) {
        case "run":
          yield* run
          reply(msg, true)
          break
        case "complete":
          if (!live.commits) reply(msg, true)
          // a writer that can commits beside its task loop, taking input meanwhile (SinkCommits)
          else {
            // the new committed count goes out at once: a view must not wait a heartbeat interval (or miss the last one)
            const answer = (ok: boolean, err?: string) => {
              if (ok) report("heartbeat", undefined, heartbeat())
              reply(msg, ok, err)
            }
            if (live.commits.besideInput) yield* live.commits.start(c.n!, answer)
            else live.mailbox.post({ kind: "complete", n: c.n!, reply: answer })
          }
          break
        case "trigger":
        case "abort":
          live.mailbox.post({ kind: c.k, n: c.n!, reply: (ok, err) => reply(msg, ok, err) })
          break
      }
    }
  })
