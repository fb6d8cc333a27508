/**
 * lib/checkpoint/ — checkpointing and coordination: the coordinator (this file) with its inbox,
 * commands and restore plan, the checkpoint store in JetStream KV/Object Store, manifests, the
 * checkpoint tracker, job status and metrics, savepoint and control requests. Imports runtime/,
 * api/, core/, internal/; never a connector, the launcher or the CLI.
 *
 * The coordinator actor: tracks the instances (hello, heartbeats, exits), starts the job, drives
 * checkpoints (trigger -> acks -> manifest by compare-and-set -> complete), recovers from any
 * failure with a new epoch from the latest completed checkpoint, and ends a bounded job with a
 * final checkpoint; cancels a job on request, optionally right after a savepoint whose commit is
 * done (nothing after its barrier is committed, so a run from it is exactly-once). An instance that
 * does not answer a restore is wedged: the launchers are asked to kill it, and it comes back as a new
 * incarnation (as Flink's task cancellation watchdog kills a TaskManager that cannot cancel).
 * Invariant: `complete n` is sent only after manifest n is stored, and every recovery first wins
 * the epoch compare-and-set, which fences an older coordinator; commands (and kill requests) go
 * out tagged with the job's secret and only tagged reports count (`ControlAuth`).
 */
import type { Msg } from "@nats-io/transport-node"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type { HeartbeatBody } from "../runtime/Actor.ts"
import { Subjects } from "../core/Address.ts"
import type { CheckpointStore, Manifest } from "./CheckpointStore.ts"
import {
  type AckBody,
  ackBodyProblem,
  CheckpointTracker,
  type PendingCheckpoint
} from "./CheckpointTracker.ts"
import { coordinatorCommands } from "./CoordinatorCommands.ts"
import { CommandUnanswered } from "./ControlRequest.ts"
import { coordinatorInbox } from "./CoordinatorInbox.ts"
import { EnvelopeDecodeError, encode, type ReportEnvelope } from "../runtime/Envelope.ts"
import type { ControlAuth } from "../runtime/ControlAuth.ts"
import type { NatsConnection } from "../runtime/Nats.ts"
import { rejectedMessagesScoped } from "../runtime/RejectedMessages.ts"
import type { JobPlan } from "../api/Pipeline.ts"
import { prometheusText, recordCheckpoint, recordEpoch, recordRecovery } from "./JobMetrics.ts"
import { applyHeartbeat, endedOutcome, jobGraph, jobStatus, newInstanceView } from "./JobStatus.ts"
import type { InstanceView, JobOutcome, JobState, JobStatus, RecoveryEvent } from "./JobStatus.ts"
import { decideRestart } from "../api/RestartStrategy.ts"
import { chooseManifest, rescaleProblem, restoreBody } from "./RestorePlan.ts"

export interface CoordinatorOptions {
  readonly plan: JobPlan
  readonly nc: NatsConnection
  readonly store: CheckpointStore
  /** the job's secret: tags commands, authenticates reports and answers */
  readonly auth: ControlAuth
  /** restore from this checkpoint / savepoint instead of the latest completed checkpoint */
  readonly fromCheckpoint?: number
  readonly fromSavepoint?: string
  /** how long to wait for every instance to say hello at start, ms (default 120 s) */
  readonly startTimeout?: number
}

/**
 * A report body as text for a recovery cause: a string as it is, anything else as JSON (a BigInt,
 * which msgpack can carry, as digits); at most 500 characters, so a forged body cannot bloat the status.
 */
const bodyText = (b: unknown): string => {
  const text =
    typeof b === "string"
      ? b
      : (JSON.stringify(b, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v)) ?? String(b))
  return text.length > 500 ? `${text.slice(0, 500)}…` : text
}

export const runCoordinator = (o: CoordinatorOptions) =>
  Effect.gen(function* () {
    const { plan, nc, store, auth } = o
    const job = plan.pipeline.job
    const options = plan.options
    const subjects = new Subjects(job)
    const ids = plan.instances.map(String)
    const sinks = plan.instances
      .filter((i) => plan.operator.get(i.operator)!.declaration.kind === "sink")
      .map(String)
    const sources = plan.instances.filter((i) => plan.operator.get(i.operator)!.declaration.kind === "source")
    const views = new Map<string, InstanceView>(ids.map((id) => [id, newInstanceView(id)]))
    const startedAt = Date.now()
    let state = "WAITING" as JobState
    let reason: string | undefined
    let epoch = 0
    let recoveries = 0
    let lastRecoveryReason: string | undefined
    const recoveryLog: Array<RecoveryEvent> = []
    const graph = jobGraph(plan)
    const failures: Array<number> = []
    let finishedSinks = new Set<string>()
    /** a sink asked for a checkpoint now (its transaction is full) */
    let checkpointWanted = false
    let restoredFrom: { manifest: Manifest | undefined; revision: number } = {
      manifest: undefined,
      revision: 0
    }

    // what comes off the coordinator and admin subjects malformed is counted (status `rejected`) and logged, rate-limited
    const rejects = yield* rejectedMessagesScoped("coordinator")
    const events = yield* coordinatorInbox(nc, subjects, () => epoch, rejects, auth)
    const rejectReport = (r: ReportEnvelope, reason: string) =>
      rejects.reject(
        new EnvelopeDecodeError({ subject: subjects.coordinator, reason: `${r.k} from ${r.c}: ${reason}` })
      )
    /** messages on the coordinator subject without a valid tag, for the status */
    let rejectedReports = 0

    const tracker = new CheckpointTracker(ids, 1)
    const savepointReplies = new Map<number, Msg>()
    /** a cancel request: answered once the job is CANCELLED (with a savepoint: once checkpoint `n` is committed) */
    let cancel: { readonly msg: Msg; readonly n?: number; readonly savepoint?: string } | undefined
    const answerCancel = (ok: boolean, err?: string) => {
      cancel?.msg.respond(
        encode({
          k: "reply",
          e: epoch,
          c: "coordinator",
          ok,
          b: {
            state,
            ...(cancel.n === undefined ? {} : { checkpoint: cancel.n, savepoint: cancel.savepoint })
          },
          ...(err === undefined ? {} : { err })
        })
      )
      cancel = undefined
    }
    /** A savepoint that will not complete is answered at once (`aborted`, so the CLI may retry), never left waiting. */
    const abortSavepoint = (n: number, why: string) => {
      if (cancel?.n === n) {
        answerCancel(false, `savepoint checkpoint ${n} aborted: ${why}; the job goes on`)
        if (state === "CANCELLING") state = "RUNNING"
      }
      const msg = savepointReplies.get(n)
      if (msg === undefined) return
      savepointReplies.delete(n)
      msg.respond(
        encode({
          k: "reply",
          e: epoch,
          c: "coordinator",
          ok: false,
          b: { checkpoint: n, aborted: true },
          err: `checkpoint ${n} aborted: ${why}`
        })
      )
    }

    const { command, broadcast } = coordinatorCommands(nc, auth, plan, subjects, () => epoch)

    const status = (): JobStatus =>
      jobStatus(
        {
          job,
          state,
          epoch,
          reason,
          startedAt,
          recoveries,
          lastRecoveryReason,
          graph,
          recoveryLog,
          views,
          tracker,
          rejected: rejects.total,
          latest: restoredFrom.manifest?.checkpoint,
          rejectedReports
        },
        Date.now()
      )
    const publishStatus = prometheusText.pipe(
      Effect.flatMap((metrics) => store.writeStatus({ ...status(), metrics })),
      Effect.ignore
    )

    /** Asks every launcher of the job to SIGKILL `id`'s process (only the one that started it does); it restarts as a new incarnation. */
    const killWedged = (id: string, why: string) =>
      Effect.gen(function* () {
        const v = views.get(id)
        const heard =
          v === undefined ? "never heard from" : `last heard from ${Date.now() - v.lastSeen} ms ago`
        yield* Effect.logWarning(`${id} is wedged (${why}; ${heard}): asking its launcher to kill it`)
        const pid = v !== undefined && v.pid > 0 ? { pid: v.pid } : {}
        auth.publish(
          nc,
          subjects.launcher,
          encode({ k: "kill", e: epoch, c: "coordinator", t: id, why, ...pid })
        )
      })

    /** One restore attempt in a new epoch: epoch CAS, fence the manifest, restore all, run all. */
    const restoreAll = (manifest: Manifest | undefined) =>
      Effect.gen(function* () {
        state = "RESTORING"
        const current = yield* store.readEpoch()
        const bumped = yield* store.bumpEpoch(current)
        epoch = bumped.epoch
        yield* recordEpoch(epoch)
        // Re-writing `latest` under CAS fences a zombie coordinator's in-flight manifest commit.
        const latest = yield* store.readLatest()
        const fenced = latest ? yield* store.commitManifest(latest.manifest, latest.revision) : 0
        restoredFrom = { manifest, revision: fenced }
        for (const p of tracker.dropAll()) {
          abortSavepoint(p.n, "the job is recovering")
          yield* store.deleteUncompleted(p.n).pipe(Effect.ignore)
        }
        if (manifest)
          tracker.nextId = Math.max(
            tracker.nextId,
            (latest?.manifest.checkpoint ?? 0) + 1,
            manifest.checkpoint + 1
          )
        finishedSinks = new Set()
        yield* Effect.logInfo(
          `epoch ${epoch}: restoring ${manifest ? `checkpoint ${manifest.checkpoint}` : "empty state"}`
        )
        // every instance's answer (not only the first failure): each one that never answered is killed
        const answers = yield* Effect.forEach(
          ids,
          (id) =>
            command(id, "restore", undefined, restoreBody(plan, manifest, id)).pipe(
              Effect.tap((r) =>
                Effect.sync(() => {
                  const v = views.get(id)!
                  const inc = (r.b as { i?: string } | undefined)?.i
                  if (inc !== undefined) v.incarnation = inc
                  v.phase = "restored"
                  v.lastSeen = Date.now()
                })
              ),
              Effect.exit
            ),
          { concurrency: "unbounded" }
        )
        // the attempt fails with a refusal if there is one (it says why, e.g. SnapshotCorrupt), else the first failure
        let refused: Cause.Cause<unknown> | undefined
        let failed: Cause.Cause<unknown> | undefined
        for (const [i, answer] of answers.entries()) {
          if (answer._tag === "Success") continue
          failed ??= answer.cause
          const error = answer.cause.reasons.find(Cause.isFailReason)?.error
          if (error instanceof CommandUnanswered) yield* killWedged(ids[i]!, error.message)
          else refused ??= answer.cause
        }
        if (failed !== undefined) return yield* Effect.failCause(refused ?? failed)
        yield* broadcast(ids, "run")
        for (const v of views.values()) v.lastSeen = Date.now()
        state = "RUNNING"
        yield* Effect.logInfo(`epoch ${epoch}: running`)
      })

    /** Recovers until the job runs again or the restart strategy gives up. */
    const recover = (why: string | undefined) =>
      Effect.gen(function* () {
        let cause = why
        let manifest = yield* chooseManifest(store, o)
        for (;;) {
          if (cause !== undefined) {
            recoveries++
            yield* recordRecovery(epoch)
            lastRecoveryReason = cause
            recoveryLog.push({ at: Date.now(), epoch, cause })
            if (recoveryLog.length > 50) recoveryLog.shift()
            failures.push(Date.now())
            const decision = decideRestart(options.restart, failures)
            yield* Effect.logWarning(`failure: ${cause}`)
            state = "RESTORING"
            yield* publishStatus
            if (!decision.restart) {
              state = "FAILED"
              reason = `${decision.reason}; last failure: ${cause}`
              return
            }
            yield* Effect.sleep(decision.delayMs)
          }
          const problem = rescaleProblem(plan, manifest)
          if (problem) {
            state = "FAILED"
            reason = problem
            return
          }
          const attempt = yield* Effect.exit(restoreAll(manifest))
          if (attempt._tag === "Success") return
          const text = String(attempt.cause)
          if (text.includes("SnapshotCorrupt") && manifest) {
            const older = (yield* store.listCheckpoints()).find((m) => m.checkpoint < manifest!.checkpoint)
            yield* Effect.logError(
              `checkpoint ${manifest.checkpoint} has a corrupt snapshot; falling back to ${older ? `checkpoint ${older.checkpoint}` : "empty state"}`
            )
            manifest = older
          }
          cause = `recovery in epoch ${epoch} failed: ${text.split("\n")[0]}`
        }
      })

    const failJob = (why: string) => recover(why)

    /** Manifest by CAS, then `complete n` to everyone; the final checkpoint ends the job. */
    const completeCheckpoint = (p: PendingCheckpoint) =>
      Effect.gen(function* () {
        const now = Date.now()
        const figures = tracker.figures(p, now)
        const manifest: Manifest = {
          job,
          checkpoint: p.n,
          epoch: p.epoch,
          createdAt: now,
          kind: p.kind === "savepoint" ? "savepoint" : "checkpoint",
          ...(p.savepointName === undefined ? {} : { name: p.savepointName }),
          handles: tracker.handles(p) as Manifest["handles"],
          committed: tracker.committed(p),
          parallelism: Object.fromEntries([...plan.operator].map(([k, v]) => [k, v.parallelism])),
          ...figures
        }
        const stored = yield* Effect.exit(store.commitManifest(manifest, restoredFrom.revision))
        if (stored._tag === "Failure") {
          const why = `manifest not stored: ${String(stored.cause).split("\n")[0]}`
          abortSavepoint(p.n, why)
          yield* recordCheckpoint(tracker.failed(p, now, why))
          return
        }
        restoredFrom = { manifest, revision: stored.value }
        if (p.kind === "savepoint" && p.savepointName !== undefined) {
          const saved = yield* Effect.exit(store.writeSavepoint(manifest, p.savepointName))
          if (saved._tag === "Failure" && cancel?.n === p.n) {
            answerCancel(
              false,
              `savepoint not written: ${String(saved.cause).split("\n")[0]}; the job goes on`
            )
            state = "RUNNING"
          }
          const msg = savepointReplies.get(p.n)
          savepointReplies.delete(p.n)
          msg?.respond(
            encode({
              k: "reply",
              e: epoch,
              c: "coordinator",
              ok: saved._tag === "Success",
              b: { checkpoint: p.n, name: p.savepointName },
              ...(saved._tag === "Failure" ? { err: String(saved.cause) } : {})
            })
          )
        }
        yield* recordCheckpoint(tracker.completed(p, now))
        yield* Effect.logInfo(
          `checkpoint ${p.n} completed in ${figures.durationMs} ms (alignment ${figures.alignmentMs} ms, ${figures.size} B)`
        )
        const e = epoch
        // every `complete n` answered: each sink's records before barrier n are visible downstream
        const committedAt = Object.entries(manifest.committed ?? {})
        const showCommitted = Effect.sync(() => {
          if (e !== epoch) return
          for (const [id, count] of committedAt) {
            const v = views.get(id)
            if (v) v.recordsCommitted = Math.max(v.recordsCommitted, count)
          }
        })
        const completeAll = broadcast(ids, "complete", p.n).pipe(Effect.andThen(showCommitted))
        if (p.kind === "final" || cancel?.n === p.n)
          yield* Effect.forkScoped(
            completeAll.pipe(
              Effect.andThen(
                Effect.sync(() => Queue.offerUnsafe(events, { kind: "finalCommitted", n: p.n, epoch: e }))
              ),
              Effect.ignore
            )
          )
        else yield* Effect.forkScoped(completeAll.pipe(Effect.ignore))
        yield* store.retain(options.checkpoint.retained).pipe(Effect.ignore)
      })

    const trigger = (kind: "checkpoint" | "savepoint" | "final", name?: string) =>
      Effect.gen(function* () {
        const p = tracker.start(epoch, Date.now(), kind, name)
        yield* Effect.forkScoped(broadcast(sources.map(String), "trigger", p.n).pipe(Effect.ignore))
        return p
      })

    /** Running: instances take part in checkpoints, and a failure recovers. */
    const live = () => state === "RUNNING" || state === "FINISHING" || state === "CANCELLING"

    const onReport = (r: ReportEnvelope) =>
      Effect.gen(function* () {
        const v = views.get(r.c)
        if (!v) return rejectReport(r, "not an instance of this job")
        if (r.k === "exited") {
          if (live()) {
            v.restarts++
            return yield* failJob(`${r.c} exited (${bodyText(r.b)})`)
          }
          return
        }
        const hb = r.b as Partial<HeartbeatBody> | undefined
        // While waiting (a new coordinator), any live process counts; later only a fresh one does.
        const fresh = r.k === "hello" || hb?.phase === "idle" || state === "WAITING"
        if (v.incarnation !== r.i) {
          if (!fresh) return // a late message of a process that is gone
          const known = v.incarnation !== undefined
          v.incarnation = r.i
          v.lastSeen = Date.now()
          if (known && live()) {
            v.restarts++
            return yield* failJob(`${r.c} restarted (new incarnation)`)
          }
        }
        v.lastSeen = Date.now()
        applyHeartbeat(v, hb)
        if (r.e !== epoch || !live()) return
        if (r.k === "fail" || (r.k === "heartbeat" && hb?.phase === "failed"))
          return yield* failJob(
            `${r.c}: ${bodyText((r.b as { reason?: unknown } | undefined)?.reason ?? hb?.failure ?? "failed")}`
          )
        if (r.k === "ack" && r.n !== undefined) {
          const problem = ackBodyProblem(r.b)
          if (problem !== undefined) return rejectReport(r, problem)
          const done = tracker.ack(r.n, r.e, r.c, r.b as AckBody)
          if (done) yield* completeCheckpoint(done)
        }
        // Heartbeats repeat what a lost report said.
        if ((r.k === "finished" || (r.k === "heartbeat" && hb?.finished === true)) && sinks.includes(r.c)) {
          finishedSinks.add(r.c)
          if (finishedSinks.size === sinks.length && state === "RUNNING") {
            state = "FINISHING"
            yield* Effect.logInfo("every sink has seen end-of-stream: taking the final checkpoint")
          }
        }
        if (r.k === "wantCheckpoint" || (r.k === "heartbeat" && hb?.wantsCheckpoint === true))
          checkpointWanted = true
      })

    /** Counts a report without a valid tag; logs the first ten, then every hundredth. */
    const onUnauthenticated = (count: number) =>
      Effect.gen(function* () {
        rejectedReports = count
        if (count <= 10 || count % 100 === 0)
          yield* Effect.logWarning(
            `ignored a report without a valid tag (job secret); ${count} ignored so far. An instance on another host needs the same EXACTOR_JOB_SECRET (or job key file)`
          )
      })

    const onTick = Effect.gen(function* () {
      const now = Date.now()
      if (!live()) return
      for (const v of views.values())
        if (now - v.lastSeen > options.heartbeatTimeout)
          return yield* failJob(
            `${v.id} missed heartbeats for ${now - v.lastSeen} ms (timeout ${options.heartbeatTimeout} ms)`
          )
      for (const p of tracker.expired(now, options.checkpoint.timeout)) {
        const why = `timed out after ${options.checkpoint.timeout} ms (${p.acks.size}/${ids.length} acks)`
        abortSavepoint(p.n, why)
        yield* recordCheckpoint(tracker.failed(p, now, why))
        yield* Effect.logWarning(`checkpoint ${p.n} aborted: timed out (${p.acks.size}/${ids.length} acks)`)
        yield* Effect.forkScoped(broadcast(ids, "abort", p.n).pipe(Effect.ignore))
        yield* store.deleteUncompleted(p.n).pipe(Effect.ignore)
        if (p.kind === "final") state = "FINISHING"
        if (tracker.consecutiveFailures > options.checkpoint.tolerableFailures)
          return yield* failJob(
            `${tracker.consecutiveFailures} consecutive checkpoints failed (tolerableFailures ${options.checkpoint.tolerableFailures})`
          )
      }
      const c = options.checkpoint
      const idle = tracker.inflight.size === 0
      if (checkpointWanted && idle && state === "RUNNING") {
        checkpointWanted = false
        yield* trigger("checkpoint")
        return
      }
      if (state === "FINISHING" && idle) {
        yield* trigger("final")
        return
      }
      if (
        state === "RUNNING" &&
        c.interval > 0 &&
        tracker.inflight.size < c.maxConcurrent &&
        now - tracker.lastEndedAt >= c.minPause &&
        now - tracker.lastTriggeredAt >= c.interval
      )
        yield* trigger("checkpoint")
    })

    // A job that already ended (this coordinator's predecessor died after saying so) stays ended:
    // its instances are gone, and a new run starts with a fresh status (see JobRunner.prepareStart).
    const previous = (yield* store.readStatus().pipe(Effect.orElseSucceed(() => undefined))) as
      | Partial<JobStatus>
      | undefined
    const ended = endedOutcome(previous)
    if (ended) {
      yield* Effect.logInfo(`job ${job} already ${ended.state}${ended.reason ? `: ${ended.reason}` : ""}`)
      return ended
    }

    // Wait until every instance has said hello (or sent a heartbeat).
    yield* Effect.logInfo(`coordinator of ${job}: waiting for ${ids.length} instances`)
    const deadline = Date.now() + (o.startTimeout ?? 120_000)
    while ([...views.values()].some((v) => v.incarnation === undefined)) {
      const ev = yield* Queue.take(events)
      if (ev.kind === "report") yield* onReport(ev.report)
      if (ev.kind === "unauthenticated") yield* onUnauthenticated(ev.count)
      if (Date.now() > deadline) {
        const missing = [...views.values()].filter((v) => v.incarnation === undefined).map((v) => v.id)
        state = "FAILED"
        reason = `instances never said hello within ${o.startTimeout ?? 120_000} ms: ${missing.join(", ")}`
        break
      }
    }
    if (state !== "FAILED") yield* recover(undefined)
    let lastStatus = 0
    let finalDone = false
    while ((state as JobState) !== "FAILED" && (state as JobState) !== "CANCELLED" && !finalDone) {
      const ev = yield* Queue.take(events)
      switch (ev.kind) {
        case "report":
          yield* onReport(ev.report)
          break
        case "unauthenticated":
          yield* onUnauthenticated(ev.count)
          break
        case "tick":
          yield* onTick
          if (Date.now() - lastStatus >= 1000) {
            lastStatus = Date.now()
            yield* publishStatus
          }
          break
        case "admin": {
          if (state !== "RUNNING") {
            ev.msg.respond(
              encode({ k: "reply", e: epoch, c: "coordinator", ok: false, err: `job is ${state}` })
            )
            break
          }
          const p = yield* trigger("savepoint", ev.name)
          savepointReplies.set(p.n, ev.msg)
          break
        }
        case "cancel": {
          if (cancel !== undefined) {
            ev.msg.respond(
              encode({
                k: "reply",
                e: epoch,
                c: "coordinator",
                ok: false,
                err: "a cancel is already under way"
              })
            )
            break
          }
          if (ev.savepoint === undefined) {
            cancel = { msg: ev.msg }
            state = "CANCELLED"
            reason = "cancelled"
            break
          }
          if (state !== "RUNNING" && state !== "FINISHING") {
            ev.msg.respond(
              encode({ k: "reply", e: epoch, c: "coordinator", ok: false, err: `job is ${state}` })
            )
            break
          }
          // no checkpoint after this one: what follows its barrier is never committed
          const p = yield* trigger("savepoint", ev.savepoint)
          cancel = { msg: ev.msg, n: p.n, savepoint: ev.savepoint }
          state = "CANCELLING"
          yield* Effect.logInfo(`cancel requested: savepoint ${ev.savepoint} (checkpoint ${p.n}), then stop`)
          break
        }
        case "finalCommitted":
          if (ev.epoch !== epoch) break
          if (cancel?.n === ev.n) {
            state = "CANCELLED"
            reason = `cancelled after savepoint ${cancel.savepoint} (checkpoint ${ev.n})`
          } else finalDone = true
          break
      }
    }
    if (finalDone) state = "FINISHED"
    for (const n of [...savepointReplies.keys()]) abortSavepoint(n, `the job is ${state}`)
    yield* publishStatus
    yield* Effect.logInfo(state === "FINISHED" ? `job ${job} FINISHED` : `job ${job} ${state}: ${reason}`)
    yield* broadcast(ids, "stop").pipe(Effect.timeout("5 seconds"), Effect.ignore)
    if (cancel !== undefined) answerCancel(state === "CANCELLED", state === "CANCELLED" ? undefined : reason)
    return { state, ...(reason === undefined ? {} : { reason }) } as JobOutcome
  })
