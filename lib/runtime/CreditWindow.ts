/**
 * Credit-based flow control for one channel, as in Flink's network stack: the receiver grants
 * its upstream a cumulative window (`consumedThrough + W` batches) and the sender never sends
 * batch number b unless b < granted. Pure bookkeeping, no I/O.
 * Invariant: a receiver never holds more than W un-consumed batches of one channel, and a
 * grant is cumulative, so a lost or repeated grant is harmless.
 */

/** The sender's view: batches sent in this epoch and the highest grant seen. */
export class SenderCredit {
  sent = 0
  granted: number
  constructor(window: number) {
    this.granted = window
  }
  get available(): number {
    return this.granted - this.sent
  }
  canSend(): boolean {
    return this.sent < this.granted
  }
  onSent(): void {
    this.sent++
  }
  /** Applies a cumulative grant; returns true when it opened new credit. */
  onGrant(grantedThrough: number): boolean {
    if (grantedThrough <= this.granted) return false
    this.granted = grantedThrough
    return true
  }
}

/** The receiver's view: batches consumed and the grant last sent. */
export class ReceiverCredit {
  consumed = 0
  granted: number
  readonly window: number
  constructor(window: number) {
    this.window = window
    this.granted = window
  }
  onConsumed(): void {
    this.consumed++
  }
  /**
   * The grant to send now, or undefined when the upstream still has at least half a window:
   * re-granting in half-window steps keeps credit messages rare while never starving it.
   */
  nextGrant(): number | undefined {
    const target = this.consumed + this.window
    if (target - this.granted < Math.max(1, this.window >> 1)) return undefined
    this.granted = target
    return target
  }
}
