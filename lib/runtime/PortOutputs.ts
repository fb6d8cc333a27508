/**
 * The side outputs of one batch, per port, with their event times; see `PortOutputs`.
 * Invariant: only declared ports take records, and a rollback takes back exactly the last pushes.
 */
import * as Effect from "effect/Effect"
import type { Router } from "./Router.ts"
import { TimedBuffer } from "./TimedBuffer.ts"

/**
 * The records a batch sent to ports other than `main` (side outputs, split labels), routed after
 * the batch's main output. A port the operator does not declare is a user-code error naming it.
 * With `journal` (the `deadLetter` policy) it can take back what a failed record had pushed.
 */
export class PortOutputs {
  private readonly byPort = new Map<string, TimedBuffer>()
  private readonly operator: string
  private readonly declared: ReadonlySet<string>
  /** the buffer each push went to, in order, when pushes can be taken back */
  private readonly journal: Array<TimedBuffer> | undefined
  count = 0

  constructor(operator: string, declared: ReadonlySet<string>, journal = false) {
    this.operator = operator
    this.declared = declared
    this.journal = journal ? [] : undefined
  }

  push(port: string, record: unknown, timestamp?: number): void {
    if (!this.declared.has(port))
      throw new Error(
        `output "${port}" is not declared by ${this.operator} (declared: ${[...this.declared].join(", ") || "none"})`
      )
    let list = this.byPort.get(port)
    if (list === undefined) {
      list = new TimedBuffer()
      this.byPort.set(port, list)
    }
    list.push(record, timestamp)
    this.journal?.push(list)
    this.count++
  }

  /** Takes back the pushes after the first `count` of this batch (a record that failed half way). */
  rollback(count: number): void {
    const journal = this.journal
    if (journal === undefined) throw new Error("PortOutputs.rollback without a journal")
    while (this.count > count) {
      journal.pop()!.pop()
      this.count--
    }
  }

  /** Routes what was pushed, port by port, and forgets it. */
  route(router: Router): Effect.Effect<void> {
    const ports = [...this.byPort].filter(([, b]) => b.length > 0)
    this.byPort.clear()
    if (this.journal !== undefined) this.journal.length = 0
    this.count = 0
    return Effect.forEach(ports, ([port, b]) => router.route(b.records, port, b.times), { discard: true })
  }
}
