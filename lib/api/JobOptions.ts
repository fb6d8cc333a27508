/**
 * Options of a job: checkpoints, restart strategy, liveness, channels. Defaults are written once
 * here (and in the README table); `resolveJobOptions` validates at start-up and names the field
 * that is wrong. Invariant: the runtime only ever sees complete, validated options.
 */
import * as Data from "effect/Data"
import { type ChannelOptions, defaultChannelOptions } from "./ChannelOptions.ts"
import { defaultMaxParallelism } from "../core/KeyGroups.ts"

export interface CheckpointOptions {
  /** ms between checkpoint triggers; 0 disables periodic checkpoints (the final one is still taken). */
  readonly interval: number
  /** ms after which a checkpoint that has not completed is aborted. */
  readonly timeout: number
  /** checkpoints in flight at once. */
  readonly maxConcurrent: number
  /** ms between the end of one checkpoint and the start of the next. */
  readonly minPause: number
  /** consecutive failed checkpoints tolerated before the job restarts. */
  readonly tolerableFailures: number
  /** completed checkpoints kept (older ones are deleted). */
  readonly retained: number
}

export type RestartStrategy =
  | { readonly kind: "fixedDelay"; readonly delay: number; readonly attempts: number }
  | {
      readonly kind: "exponentialBackoff"
      readonly initial: number
      readonly max: number
      readonly multiplier: number
      readonly jitter: number
      /** restarts in a row (failures less than `resetAfter` ms apart) after which the job fails */
      readonly attempts: number
      /** ms without a failure after which backoff and attempts start again from the first */
      readonly resetAfter: number
    }
  | {
      readonly kind: "failureRate"
      readonly maxFailures: number
      readonly interval: number
      readonly delay: number
    }

export interface JobOptions {
  readonly maxParallelism: number
  readonly checkpoint: CheckpointOptions
  readonly restart: RestartStrategy
  /** ms between heartbeats of an instance. */
  readonly heartbeatInterval: number
  /** ms without a heartbeat after which an instance is declared dead. */
  readonly heartbeatTimeout: number
  /** ms a control command is retried before its instance is declared dead. */
  readonly commandTimeout: number
  readonly channel: ChannelOptions
  /** records a source reads per poll. */
  readonly sourceBatch: number
}

export const defaultJobOptions: JobOptions = {
  maxParallelism: defaultMaxParallelism,
  checkpoint: {
    interval: 1000,
    timeout: 10_000,
    maxConcurrent: 1,
    minPause: 0,
    tolerableFailures: 3,
    retained: 3
  },
  restart: {
    kind: "exponentialBackoff",
    initial: 200,
    max: 10_000,
    multiplier: 2,
    jitter: 0.2,
    attempts: 20,
    resetAfter: 60_000
  },
  heartbeatInterval: 500,
  heartbeatTimeout: 3000,
  commandTimeout: 10_000,
  channel: defaultChannelOptions,
  sourceBatch: 512
}

export class InvalidJobOption extends Data.TaggedError("InvalidJobOption")<{
  readonly field: string
  readonly value: unknown
  readonly rule: string
}> {
  override get message(): string {
    return `job option ${this.field} = ${JSON.stringify(this.value)} is invalid: ${this.rule}`
  }
}

/** Options as a user writes them: every part is optional. */
export type JobOptionsInput = {
  readonly [K in keyof JobOptions]?: JobOptions[K] extends RestartStrategy
    ? RestartStrategy
    : JobOptions[K] extends object
      ? Partial<JobOptions[K]>
      : JobOptions[K]
}

const integer = (field: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER) =>
  typeof value === "number" && Number.isInteger(value) && value >= min && value <= max
    ? undefined
    : new InvalidJobOption({ field, value, rule: `a whole number from ${min} to ${max}` })

const fraction = (field: string, value: unknown) =>
  typeof value === "number" && value >= 0 && value <= 1
    ? undefined
    : new InvalidJobOption({ field, value, rule: "a number from 0 to 1" })

/** Fills in defaults and validates; the first invalid field is returned as an error. */
export const resolveJobOptions = (input: JobOptionsInput = {}): JobOptions | InvalidJobOption => {
  const o: JobOptions = {
    ...defaultJobOptions,
    ...input,
    checkpoint: { ...defaultJobOptions.checkpoint, ...input.checkpoint },
    channel: { ...defaultJobOptions.channel, ...input.channel },
    restart: input.restart ?? defaultJobOptions.restart
  }
  const r = o.restart
  const checks: Array<InvalidJobOption | undefined> = [
    integer("maxParallelism", o.maxParallelism, 1, 32_768),
    integer("checkpoint.interval", o.checkpoint.interval, 0),
    integer("checkpoint.timeout", o.checkpoint.timeout, 1),
    integer("checkpoint.maxConcurrent", o.checkpoint.maxConcurrent, 1, 16),
    integer("checkpoint.minPause", o.checkpoint.minPause, 0),
    integer("checkpoint.tolerableFailures", o.checkpoint.tolerableFailures, 0),
    integer("checkpoint.retained", o.checkpoint.retained, 1),
    integer("heartbeatInterval", o.heartbeatInterval, 10),
    o.heartbeatTimeout > o.heartbeatInterval
      ? undefined
      : new InvalidJobOption({
          field: "heartbeatTimeout",
          value: o.heartbeatTimeout,
          rule: "greater than heartbeatInterval"
        }),
    integer("commandTimeout", o.commandTimeout, 1),
    integer("channel.batchSize", o.channel.batchSize, 1, 65_536),
    integer("channel.lingerMs", o.channel.lingerMs, 0, 10_000),
    integer("channel.creditWindow", o.channel.creditWindow, 1, 65_536),
    integer("sourceBatch", o.sourceBatch, 1, 1_000_000),
    ...(r.kind === "fixedDelay"
      ? [integer("restart.delay", r.delay, 0), integer("restart.attempts", r.attempts, 0)]
      : r.kind === "exponentialBackoff"
        ? [
            integer("restart.initial", r.initial, 0),
            integer("restart.max", r.max, r.initial),
            r.multiplier >= 1
              ? undefined
              : new InvalidJobOption({
                  field: "restart.multiplier",
                  value: r.multiplier,
                  rule: "at least 1"
                }),
            fraction("restart.jitter", r.jitter),
            integer("restart.attempts", r.attempts, 0),
            integer("restart.resetAfter", r.resetAfter, 1)
          ]
        : r.kind === "failureRate"
          ? [
              integer("restart.maxFailures", r.maxFailures, 1),
              integer("restart.interval", r.interval, 1),
              integer("restart.delay", r.delay, 0)
            ]
          : [
              new InvalidJobOption({
                field: "restart.kind",
                value: (r as { kind: unknown }).kind,
                rule: "fixedDelay, exponentialBackoff or failureRate"
              })
            ])
  ]
  return checks.find((c) => c !== undefined) ?? o
}
