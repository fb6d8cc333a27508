/**
 * What can go wrong when making sure a broker is up, and the names those errors use (`BrokerName`,
 * `StartMethod`). Invariant: every error names the broker and the URL it was about; an unavailable
 * broker also says what to install, start or set.
 */
import * as Data from "effect/Data"
import { redactUrl } from "../internal/redactUrl.ts"

export type BrokerName = "NATS" | "RabbitMQ"

/** How a missing broker is started. */
export type StartMethod = "start-stop-daemon" | "nats-server" | "rabbitmq-server" | "docker compose"

/** A URL option that does not parse or has the wrong scheme. */
export class BrokerUrlInvalid extends Data.TaggedError("BrokerUrlInvalid")<{
  readonly broker: BrokerName
  /** the env var (or option) the URL came from */
  readonly option: string
  readonly url: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.option}=${redactUrl(this.url)} is not a valid ${this.broker} URL: ${this.reason}`
  }
}

/** Nothing usable answers at `url` and nothing here may or can start it; `remedy` says what to do. */
export class BrokerUnavailable extends Data.TaggedError("BrokerUnavailable")<{
  readonly broker: BrokerName
  readonly url: string
  /** why the probe failed */
  readonly reason: string
  /** what to install, start or set */
  readonly remedy: string
}> {
  override get message(): string {
    return `${this.broker} at ${redactUrl(this.url)} is not reachable (${this.reason}); ${this.remedy}`
  }
}

/** A start was tried with `method` but the broker did not come up. */
export class BrokerStartFailed extends Data.TaggedError("BrokerStartFailed")<{
  readonly broker: BrokerName
  readonly url: string
  readonly method: StartMethod
  readonly detail: string
}> {
  override get message(): string {
    return `${this.broker} at ${redactUrl(this.url)}: starting it with ${this.method} failed: ${this.detail}`
  }
}

export type BrokerError = BrokerUrlInvalid | BrokerUnavailable | BrokerStartFailed
