/**
 * The end of a bounded RabbitMQ stream source, agreed job-wide in the NATS KV bucket `boundsBucket`
 * (the one the JetStream source uses) under one key per (job, operator, stream): the last offset of
 * every partition stream at the job's first open (-1: it was empty). Invariant: the first open
 * records it (create-if-absent) and every instance and every recovery of the job takes that one,
 * even if messages arrive between their opens. `exactor delete` removes it with the job's other ends.
 */
import { Kvm } from "@nats-io/kv"
import * as Effect from "effect/Effect"
import type { NatsConnection } from "../../runtime/Nats.ts"
import { StreamCallFailed } from "./StreamErrors.ts"

const keyPart = (s: string) => s.replace(/[^-\w=]/g, "_")
/** `<job>.<operator>.<stream>.rabbitmq-stream`: under the job's prefix, so a job's ends are cleared together. */
const endsKey = (job: string, operator: string, stream: string) =>
  `${keyPart(job)}.${keyPart(operator)}.${keyPart(stream)}.rabbitmq-stream`

const readEnds = (partitions: number, raw: Uint8Array): ReadonlyArray<number> | undefined => {
  try {
    const v = JSON.parse(new TextDecoder().decode(raw)) as { ends?: unknown }
    if (!Array.isArray(v.ends) || v.ends.length !== partitions) return undefined
    return v.ends.every((e) => Number.isInteger(e) && e >= -1) ? (v.ends as ReadonlyArray<number>) : undefined
  } catch {
    return undefined
  }
}

/** The last offset of every partition stream for (job, operator): the ones recorded, else `lastOf` now, recorded. */
export const agreeOnStreamEnds = (
  nc: NatsConnection,
  ctx: { readonly job: string; readonly operator: string },
  cfg: { readonly stream: string; readonly boundsBucket: string; readonly partitions: number },
  lastOf: Effect.Effect<ReadonlyArray<number>, StreamCallFailed>
): Effect.Effect<ReadonlyArray<number>, StreamCallFailed> =>
  Effect.gen(function* () {
    const key = endsKey(ctx.job, ctx.operator, cfg.stream)
    const kvCall = <A>(operation: string, f: () => Promise<A>) =>
      Effect.tryPromise({
        try: f,
        catch: (cause) =>
          new StreamCallFailed({
            owner: `${ctx.job}/${ctx.operator}`,
            stream: cfg.stream,
            operation: `${operation} (KV bucket ${cfg.boundsBucket})`,
            timeoutMs: undefined,
            cause
          })
      })
    const kv = yield* kvCall("open the bounds bucket", () =>
      new Kvm(nc).create(cfg.boundsBucket, { history: 1 })
    )
    const recorded = kvCall("read the bounded ends", async () => {
      const e = await kv.get(key)
      return e !== null && e.operation === "PUT" ? readEnds(cfg.partitions, e.value) : undefined
    })
    const before = yield* recorded
    if (before !== undefined) return before
    const ends = yield* lastOf
    const created = yield* kvCall("record the bounded ends", () =>
      kv.create(key, JSON.stringify({ ends })).then(
        () => true,
        () => false
      )
    )
    if (created) return ends
    // another instance recorded them first: take theirs
    const theirs = yield* recorded
    if (theirs !== undefined) return theirs
    return yield* kvCall("record the bounded ends", () =>
      Promise.reject(new Error(`key ${key} exists but holds no ends for ${cfg.partitions} partitions`))
    )
  })

/** Forgets the recorded ends of a bounded source, so the next fresh open of (job, operator) fixes new ones. */
export const clearStreamEnds = (
  nc: NatsConnection,
  ctx: { readonly job: string; readonly operator: string },
  options: { readonly stream: string; readonly boundsBucket?: string }
): Effect.Effect<void, StreamCallFailed> =>
  Effect.tryPromise({
    try: async () => {
      const kv = await new Kvm(nc).create(options.boundsBucket ?? "exactor-source-bounds", { history: 1 })
      await kv.purge(endsKey(ctx.job, ctx.operator, options.stream))
    },
    catch: (cause) =>
      new StreamCallFailed({
        owner: `${ctx.job}/${ctx.operator}`,
        stream: options.stream,
        operation: "clear the bounded ends",
        timeoutMs: undefined,
        cause
      })
  })
