/**
 * The typed failures of the PostgreSQL two-phase-commit sink, one tagged class each, and the one
 * place that turns a `pg` error (SQLSTATE, socket error) into one of them.
 * Invariant: every error names its instance (`sink` = `<job>/<sink>/<i>`); a record the database
 * rejects names the checkpoint and the statement's first record; `PostgresSinkError` is the union.
 */
import * as Data from "effect/Data"
import { causeMessage } from "../../internal/causeMessage.ts"

export class PgSinkOptionsInvalid extends Data.TaggedError("PgSinkOptionsInvalid")<{
  readonly field: string
  readonly value: unknown
  readonly reason: string
}> {
  override get message(): string {
    const got =
      typeof this.value === "function" ? "a function" : (JSON.stringify(this.value) ?? String(this.value))
    return `postgresSink: ${this.field} ${this.reason} (got ${got})`
  }
}

/** The server cannot be reached or the connection broke (refused, reset, shut down, crash). */
export class PgSinkUnavailable extends Data.TaggedError("PgSinkUnavailable")<{
  readonly sink: string
  readonly operation: string
  readonly checkpoint: number
  readonly cause: unknown
}> {
  override get message(): string {
    return `${this.sink}: PostgreSQL unavailable during ${this.operation} (transaction ${this.checkpoint}): ${causeMessage(this.cause)}`
  }
}

/** A serialization failure or deadlock (SQLSTATE 40001 / 40P01): the epoch fails and is replayed. */
export class PgSinkSerializationFailure extends Data.TaggedError("PgSinkSerializationFailure")<{
  readonly sink: string
  readonly operation: string
  readonly checkpoint: number
  readonly sqlstate: string
  readonly cause: unknown
}> {
  override get message(): string {
    return `${this.sink}: ${this.operation} of transaction ${this.checkpoint} hit a serialization failure [${this.sqlstate}]: ${causeMessage(this.cause)}`
  }
}

/** The database rejected user data (a constraint or data exception, SQLSTATE class 23 or 22). */
export class PgSinkRecordRejected extends Data.TaggedError("PgSinkRecordRejected")<{
  readonly sink: string
  readonly checkpoint: number
  readonly sqlstate: string
  readonly constraint: string | undefined
  readonly detail: string | undefined
  /** the first record of the rejected statement (a batch insert names its batch's first record) */
  readonly record: unknown
}> {
  override get message(): string {
    const c = this.constraint === undefined ? "" : ` (constraint ${this.constraint})`
    const d = this.detail === undefined ? "" : `: ${this.detail}`
    return `${this.sink}: a record of transaction ${this.checkpoint} was rejected [${this.sqlstate}]${c}${d}; record ${JSON.stringify(this.record)?.slice(0, 300)}`
  }
}

/** Any other failed statement (permissions, missing table, ...). */
export class PgSinkQueryFailed extends Data.TaggedError("PgSinkQueryFailed")<{
  readonly sink: string
  readonly operation: string
  readonly checkpoint: number
  readonly sqlstate: string | undefined
  readonly cause: unknown
}> {
  override get message(): string {
    const code = this.sqlstate === undefined ? "" : ` [${this.sqlstate}]`
    return `${this.sink}: ${this.operation} failed (transaction ${this.checkpoint})${code}: ${causeMessage(this.cause)}`
  }
}

/** The server has `max_prepared_transactions = 0` (PostgreSQL's default), so it cannot PREPARE. */
export class PgSinkPreparedTransactionsDisabled extends Data.TaggedError(
  "PgSinkPreparedTransactionsDisabled"
)<{
  readonly sink: string
  readonly needed: number
}> {
  override get message(): string {
    return `${this.sink}: the server has max_prepared_transactions = 0, so PREPARE TRANSACTION is refused: set max_prepared_transactions to at least ${this.needed} (sink instances x (maxPendingTransactions + 1), more if checkpoints can pile up) in postgresql.conf and restart the server, or use the sink with mode: "local"`
  }
}

/** Another session holds this instance's advisory lock and did not let go within `lockTimeout`. */
export class PgSinkFenced extends Data.TaggedError("PgSinkFenced")<{
  readonly sink: string
  readonly lockTimeoutMs: number
}> {
  override get message(): string {
    return `${this.sink}: the instance's advisory lock is held by another session (waited ${this.lockTimeoutMs} ms); a newer instance fenced this one`
  }
}

/** A pending transaction's gid is neither prepared nor in the commit log: it was rolled back, its records are lost. */
export class PgSinkTransactionMissing extends Data.TaggedError("PgSinkTransactionMissing")<{
  readonly sink: string
  readonly checkpoint: number
  readonly gid: string
}> {
  override get message(): string {
    return `${this.sink}: prepared transaction ${this.gid} (checkpoint ${this.checkpoint}) is neither pending nor committed (was it rolled back by hand?)`
  }
}

export type PostgresSinkError =
  | PgSinkOptionsInvalid
  | PgSinkUnavailable
  | PgSinkSerializationFailure
  | PgSinkRecordRejected
  | PgSinkQueryFailed
  | PgSinkPreparedTransactionsDisabled
  | PgSinkFenced
  | PgSinkTransactionMissing

const sqlstateOf = (e: unknown): string | undefined =>
  typeof e === "object" &&
  e !== null &&
  "code" in e &&
  typeof e.code === "string" &&
  /^[0-9A-Z]{5}$/.test(e.code)
    ? e.code
    : undefined

const fieldOf = (e: unknown, f: "constraint" | "detail"): string | undefined =>
  typeof e === "object" && e !== null && f in e && typeof (e as Record<string, unknown>)[f] === "string"
    ? ((e as Record<string, unknown>)[f] as string)
    : undefined

/** Whether `e` says the connection or the server is gone (no SQLSTATE, or class 08 / 57P0x / 53300). */
export const isConnectionFailure = (e: unknown): boolean => {
  const s = sqlstateOf(e)
  if (s === undefined) return true
  return s.startsWith("08") || s === "57P01" || s === "57P02" || s === "57P03" || s === "53300"
}

/** The SQLSTATE of a `pg` error, if it has one. */
export const sqlstate = sqlstateOf

/** Turns what a `pg` call threw into the sink's typed error. */
export const classify =
  (sink: string, operation: string, checkpoint: number, record?: unknown) =>
  (
    cause: unknown
  ): PgSinkUnavailable | PgSinkSerializationFailure | PgSinkRecordRejected | PgSinkQueryFailed => {
    const s = sqlstateOf(cause)
    if (isConnectionFailure(cause)) return new PgSinkUnavailable({ sink, operation, checkpoint, cause })
    if (s === "40001" || s === "40P01")
      return new PgSinkSerializationFailure({ sink, operation, checkpoint, sqlstate: s, cause })
    if (s !== undefined && (s.startsWith("23") || s.startsWith("22")) && record !== undefined)
      return new PgSinkRecordRejected({
        sink,
        checkpoint,
        sqlstate: s,
        constraint: fieldOf(cause, "constraint"),
        detail: fieldOf(cause, "detail") ?? causeMessage(cause),
        record
      })
    return new PgSinkQueryFailed({ sink, operation, checkpoint, sqlstate: s, cause })
  }
