/**
 * How the coordinator commands its instances: one control request per instance (`sendCommand`,
 * repeated until answered or the job's `commandTimeout`), or the same command to many at once.
 * Invariant: every command carries the epoch current when it is sent, and is addressed to the
 * control subject of exactly the instance named.
 */
import * as Effect from "effect/Effect"
import type { Subjects } from "../core/Address.ts"
import { sendCommand } from "./ControlRequest.ts"
import type { ControlAuth } from "../runtime/ControlAuth.ts"
import type { ControlKind } from "../runtime/Envelope.ts"
import type { NatsConnection } from "../runtime/Nats.ts"
import type { JobPlan } from "../api/Pipeline.ts"

/** `command` and `broadcast` for the instances of `plan`, stamped with `epoch()` and tagged by `auth`. */
export const coordinatorCommands = (
  nc: NatsConnection,
  auth: ControlAuth,
  plan: JobPlan,
  subjects: Subjects,
  epoch: () => number
) => {
  const command = (id: string, k: ControlKind, n?: number, b?: unknown) => {
    const inst = plan.instances.find((i) => String(i) === id)!
    return sendCommand(
      nc,
      auth,
      subjects.control(inst),
      id,
      {
        k,
        e: epoch(),
        c: "coordinator",
        ...(n === undefined ? {} : { n }),
        ...(b === undefined ? {} : { b })
      },
      plan.options.commandTimeout
    )
  }
  /** `k` to every target in parallel; fails if any of them does. */
  const broadcast = (
    targets: ReadonlyArray<string>,
    k: ControlKind,
    n?: number,
    body?: (id: string) => unknown
  ) =>
    Effect.forEach(targets, (id) => command(id, k, n, body?.(id)), {
      concurrency: "unbounded",
      discard: true
    })
  return { command, broadcast }
}
