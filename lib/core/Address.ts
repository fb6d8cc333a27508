/**
 * lib/core/ — the vocabulary every layer shares: instance ids and the NATS subjects built from
 * them (Address), and key → key group hashing (KeyGroups). Imports internal/ only; api/ and
 * runtime/ both stand on it, so neither has to import the other's way.
 *
 * Addresses of a job: an instance id (`count#1`) and the NATS subjects derived from it.
 * Invariant: an instance id has exactly one canonical string and maps to exactly one
 * mailbox, credit and control subject; every subject of a job is built here and nowhere else.
 */
import * as Data from "effect/Data"

/** A name of a job or operator: a NATS subject token, so no dots, spaces, `*`, `>` or `#`. */
const tokenPattern = /^[A-Za-z0-9_-]+$/

export const isToken = (s: string): boolean => tokenPattern.test(s)

export class InvalidInstanceId extends Data.TaggedError("InvalidInstanceId")<{
  readonly text: string
  readonly reason: string
}> {
  override get message(): string {
    return `invalid instance id "${this.text}": ${this.reason} (expected operator#index, e.g. count#1)`
  }
}

/** One parallel instance of an operator. */
export class InstanceId extends Data.Class<{ readonly operator: string; readonly index: number }> {
  override toString(): string {
    return `${this.operator}#${this.index}`
  }

  static make(operator: string, index: number): InstanceId {
    return new InstanceId({ operator, index })
  }

  /** Parses `operator#index`; the inverse of `toString`. */
  static parse(text: string): InstanceId | InvalidInstanceId {
    const at = text.lastIndexOf("#")
    if (at <= 0) return new InvalidInstanceId({ text, reason: "no '#'" })
    const operator = text.slice(0, at)
    const indexText = text.slice(at + 1)
    if (!isToken(operator))
      return new InvalidInstanceId({ text, reason: `operator "${operator}" is not a name` })
    if (!/^(0|[1-9][0-9]*)$/.test(indexText))
      return new InvalidInstanceId({ text, reason: `index "${indexText}" is not a whole number` })
    return new InstanceId({ operator, index: Number(indexText) })
  }
}

/** The subjects of one job. `prefix` defaults to `exactor.<job>`. */
export class Subjects {
  readonly job: string
  readonly prefix: string
  constructor(job: string, prefix?: string) {
    this.job = job
    this.prefix = prefix ?? `exactor.${job}`
  }
  /** Mailbox of an instance: data batches, barriers, end-of-stream. */
  mailbox(id: InstanceId): string {
    return `${this.prefix}.in.${id.operator}.${id.index}`
  }
  /** Credit grants travelling back to an upstream instance. */
  credit(id: InstanceId): string {
    return `${this.prefix}.credit.${id.operator}.${id.index}`
  }
  /** Commands from the coordinator to one instance (request/reply). */
  control(id: InstanceId): string {
    return `${this.prefix}.ctl.${id.operator}.${id.index}`
  }
  /** Hello, heartbeat, ack, failure reports: everything sent to the coordinator. */
  get coordinator(): string {
    return `${this.prefix}.coord`
  }
  /** Requests of the coordinator to every launcher of the job (kill a wedged instance). */
  get launcher(): string {
    return `${this.prefix}.launcher`
  }
  /** Requests to the running coordinator from the CLI (status, savepoint). */
  get admin(): string {
    return `${this.prefix}.admin`
  }
}
