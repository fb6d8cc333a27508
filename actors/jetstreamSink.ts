/**
 * A two-phase-commit sink into a JetStream stream: each checkpoint's records are kept (and are
 * part of the snapshot) until the checkpoint completes, then published with deterministic msgIDs
 * `<job>/<sink>/<i>/<n>/<seq>`, so a commit repeated after a failure is deduplicated by the
 * stream. Exactly once as long as a repeat falls within the stream's duplicate window.
 */
import { jetstream } from "@nats-io/jetstream"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
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

/** Pending transactions by checkpoint id, in creation order. */
type Pending = Array<readonly [n: number, records: ReadonlyArray<unknown>]>

export const jetstreamSink = <A>(name: string, options: { readonly subject: string }): SinkDeclaration<A> =>
  sink<A>(name, (ctx) =>
    Effect.gen(function* () {
      const nc = yield* natsConnection(ctx.natsUrl, { name: `${ctx.job}/${name}#${ctx.index}/sink` })
      const js = jetstream(nc)
      let open: Array<unknown> = []
      let pending: Pending = []
      const publish = (n: number, records: ReadonlyArray<unknown>) =>
        Effect.tryPromise({
          try: () =>
            Promise.all(
              records.map((r, seq) =>
                js.publish(options.subject, JSON.stringify(r), {
                  msgID: `${ctx.job}/${name}/${ctx.index}/${n}/${seq}`
                })
              )
            ),
          catch: (cause) => new JetStreamSinkError({ subject: options.subject, checkpoint: n, cause })
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
