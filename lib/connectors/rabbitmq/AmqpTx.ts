/**
 * AMQP 0-9-1 transactions (tx.select / tx.commit / tx.rollback) on an amqplib channel, as Effects.
 * amqplib has no transaction API, so this is the one place that calls its internal `rpc` with the
 * tx method ids. Invariant: each call resolves only on the matching `-ok` reply; anything else
 * (server channel close, dead connection, an amqplib without `rpc`) is a typed `AmqpTxError`.
 */
import type { Channel } from "amqplib"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { causeMessage } from "../../internal/causeMessage.ts"

/** The tx class method ids of AMQP 0-9-1 (class 90): `classId << 16 | methodId`. */
export const TxMethod = {
  Select: 5898250,
  SelectOk: 5898251,
  Commit: 5898260,
  CommitOk: 5898261,
  Rollback: 5898270,
  RollbackOk: 5898271
} as const

export type TxOperation = "select" | "commit" | "rollback"

/** A tx method that did not get its `-ok`: the server closed the channel, the connection died, or amqplib changed. */
export class AmqpTxError extends Data.TaggedError("AmqpTxError")<{
  readonly operation: TxOperation
  /** AMQP reply code when the server closed the channel (e.g. 406, 504); undefined otherwise */
  readonly replyCode: number | undefined
  readonly reason: string
  readonly cause: unknown
}> {
  override get message(): string {
    const code = this.replyCode === undefined ? "" : ` (reply code ${this.replyCode})`
    return `tx.${this.operation} failed${code}: ${this.reason}`
  }
}

/** The part of amqplib's (untyped, internal) channel model this module relies on. */
type RpcChannel = Channel & {
  readonly rpc: (method: number, fields: Readonly<Record<string, never>>, expect: number) => Promise<unknown>
}

const hasRpc = (ch: Channel): ch is RpcChannel => "rpc" in ch && typeof ch.rpc === "function"

const replyCodeOf = (cause: unknown): number | undefined => {
  if (typeof cause !== "object" || cause === null || !("code" in cause)) return undefined
  return typeof cause.code === "number" ? cause.code : undefined
}

const call = (ch: Channel, operation: TxOperation, method: number, expect: number) =>
  Effect.suspend(() => {
    if (!hasRpc(ch)) {
      return Effect.fail(
        new AmqpTxError({
          operation,
          replyCode: undefined,
          reason: "this amqplib channel has no rpc(method, fields, expect); the tx wrapper needs updating",
          cause: undefined
        })
      )
    }
    return Effect.tryPromise({
      try: () => ch.rpc(method, {}, expect),
      catch: (cause) =>
        new AmqpTxError({
          operation,
          replyCode: replyCodeOf(cause),
          reason: causeMessage(cause),
          cause
        })
    })
  }).pipe(Effect.asVoid)

/** `tx.select`: puts the channel in transaction mode (publishes are held until `tx.commit`). */
export const txSelect = (ch: Channel): Effect.Effect<void, AmqpTxError> =>
  call(ch, "select", TxMethod.Select, TxMethod.SelectOk)

/**
 * `tx.commit`: delivers what was published since the last commit/rollback and waits for
 * `commit-ok` (sent after the messages are persisted). No timeout here: callers add one, and treat
 * a failure or timeout as *in doubt* (the broker may have committed).
 */
export const txCommit = (ch: Channel): Effect.Effect<void, AmqpTxError> =>
  call(ch, "commit", TxMethod.Commit, TxMethod.CommitOk)

/** `tx.rollback`: discards what was published since the last commit/rollback. */
export const txRollback = (ch: Channel): Effect.Effect<void, AmqpTxError> =>
  call(ch, "rollback", TxMethod.Rollback, TxMethod.RollbackOk)
