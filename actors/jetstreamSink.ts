/**
 * A two-phase-commit sink into a JetStream stream: each checkpoint's records are kept (and are
 * part of the snapshot) until the checkpoint completes, then published with deterministic msgIDs
 * `<job>/<sink>/<i>/<n>/<seq>`, so a commit repeated after a failure is deduplicated by the
 * stream. Exactly once as long as a repeat falls within the stream's duplicate window.
 * A checkpoint's records go out in windows of `publishWindow` publishes awaiting their acks, never
 * all at once: issuing tens of thousands of publishes is one synchronous stretch that starves the
 * process's heartbeats, and every ack timer starts at issue, so a long stretch times its own acks out.
 */
import { jetstream } from "@nats-io/jetstream"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { natsConnection } from "../lib/runtime/Nats.ts"
import { type SinkDeclaration, sink } from "../lib/api/Operator.ts"
import { causeMessage } from "../lib/internal/causeMessage.ts"

export class JetStreamSinkError extends Data.TaggedError("JetStreamSinkError")<{
  readonly subject: string
  readonly checkpoint: number
  readonly cause: unknown
}> {
  override get message(): string {
    return `committing checkpoint ${this.checkpoint} to ${this.subject} failed: ${causeMessage(this.cause)}`
  }
}

/** Publishes in flight at once while committing: one window of acks is awaited before the next is issued. */
export const defaultPublishWindow = 1000

/** Retries of a window whose publish failed (a repeat is deduplicated by msgID): 200 ms doubling, jittered, 5 retries. */
export const publishRetrySchedule: Schedule.Schedule<unknown, unknown> = Schedule.exponential(
  "200 millis",
  2
).pipe(Schedule.jittered, Schedule.upTo({ times: 5 }))

export interface JetStreamSinkOptions {
  /** the subject records are published to; a stream must capture it */
  readonly subject: string
  /** publishes in flight at once during a commit; default `defaultPublishWindow` (1000), at least 1 */
  readonly publishWindow?: number
  /** retries of a failed window; default `publishRetrySchedule` */
  readonly publishRetry?: Schedule.Schedule<unknown, unknown>
}

/** Pending transactions by checkpoint id, in creation order. */
type Pending = Array<readonly [n: number, records: ReadonlyArray<unknown>]>

export const jetstreamSink = <A>(name: string, options: JetStreamSinkOptions): SinkDeclaration<A> =>
  sink<A>(name, (ctx) =>
    Effect.gen(function* () {
      const nc = yield* natsConnection(ctx.natsUrl, {
        name: `${ctx.job}/${name}#${ctx.index}/sink`,
        job: ctx.job
      })
      const js = jetstream(nc)
      let open: Array<unknown> = []
      let pending: Pending = []
      const window = Math.max(1, Math.floor(options.publishWindow ?? defaultPublishWindow))
      const retry = options.publishRetry ?? publishRetrySchedule
      /** Publishes records [from, to) of checkpoint n and waits for every ack; the seq of a record is its index. */
      const publishWindow = (n: number, records: ReadonlyArray<unknown>, from: number, to: number) =>
        Effect.tryPromise({
          try: () => {
            const acks: Array<Promise<unknown>> = []
            for (let seq = from; seq < to; seq++)
              acks.push(
                js.publish(options.subject, JSON.stringify(records[seq]), {
                  msgID: `${ctx.job}/${name}/${ctx.index}/${n}/${seq}`
                })
              )
            return Promise.all(acks)
          },
          catch: (cause) => new JetStreamSinkError({ subject: options.subject, checkpoint: n, cause })
        }).pipe(Effect.retry(retry))
      /** Every record of checkpoint n, one window at a time; interruptible between windows. */
      const publish = (n: number, records: ReadonlyArray<unknown>) =>
        Effect.gen(function* () {
          for (let from = 0; from < records.length; from += window)
            yield* publishWindow(n, records, from, Math.min(records.length, from + window))
        })
      const commitThrough = (n: number) =>
        Effect.gen(function* () {
          while (pending.length > 0 && pending[0]![0] <= n) {
            const [m, records] = pending[0]!
            yield* publish(m, records)
            pending = pending.slice(1)
          }
        })
      return {
        write: (records) =>
          Effect.sync(() => {
            for (const r of records) open.push(r)
          }),
        snapshot: (n) =>
          Effect.sync(() => {
            pending = [...pending, [n, open]]
            open = []
            return { pending }
          }),
        commit: commitThrough,
        restore: (snapshot) =>
          Effect.gen(function* () {
            open = []
            pending = [...((snapshot as { pending?: Pending } | undefined)?.pending ?? [])]
            // recoverAndCommit: every transaction of the snapshot was pre-committed; msgIDs dedupe repeats
            yield* commitThrough(Number.MAX_SAFE_INTEGER)
          }),
        full: () => false
      }
    })
  )
