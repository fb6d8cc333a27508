/**
 * Barrier alignment for an instance with several input channels (DESIGN §3 step 3): the channel
 * that delivered `barrier n` is blocked and what arrives on it is held until every channel has
 * delivered `barrier n`; then the instance snapshots and everything held is released in order.
 * Invariant: no record that follows `barrier n` on a channel is processed before the snapshot of
 * n, and held records are released in their arrival order per channel. Pure; no I/O.
 */

/**
 * What a barrier did. `aligned`: every channel has delivered `barrier n`, snapshot now;
 * `blocked`: the channel is blocked, wait for the others; `ignored`: a barrier of an aborted,
 * superseded or already aligned checkpoint. In every case `released` (held deliveries, in order)
 * must be processed before anything new: after `aligned`, only after the snapshot.
 */
export interface BarrierOutcome<T> {
  readonly kind: "aligned" | "blocked" | "ignored"
  readonly n: number
  readonly released: ReadonlyArray<T>
}

export class Aligner<T> {
  private readonly channels: number
  private pending: number | undefined
  private readonly blocked: Array<boolean>
  private readonly held: Array<Array<T>>
  private readonly aborted = new Set<number>()
  private highest = -1
  /** ms timestamp when the current alignment began (for the alignment time metric) */
  startedAt = 0

  constructor(channels: number) {
    this.channels = channels
    this.blocked = new Array<boolean>(channels).fill(false)
    this.held = Array.from({ length: channels }, () => [])
  }

  /** The checkpoint being aligned, if any. */
  get aligning(): number | undefined {
    return this.pending
  }

  isBlocked(channel: number): boolean {
    return this.blocked[channel] === true
  }

  /** Keeps a delivery of a blocked channel until the alignment ends. */
  hold(channel: number, item: T): void {
    this.held[channel]!.push(item)
  }

  heldCount(): number {
    let n = 0
    for (const h of this.held) n += h.length
    return n
  }

  /** Records `barrier n` on `channel`. `released` items must be processed before anything new. */
  onBarrier(channel: number, n: number, now = Date.now()): BarrierOutcome<T> {
    if (this.aborted.has(n) || n <= this.highest) return { kind: "ignored", n, released: [] }
    if (this.pending !== undefined && n < this.pending) return { kind: "ignored", n, released: [] }
    let superseded: Array<T> = []
    if (this.pending !== undefined && n > this.pending) {
      // A later barrier on an unblocked channel: checkpoint `pending` can no longer align here.
      this.aborted.add(this.pending)
      this.pending = undefined
      superseded = this.releaseAll()
    }
    if (this.pending === undefined) {
      this.pending = n
      this.startedAt = now
    }
    this.blocked[channel] = true
    if (this.blocked.every((b) => b)) {
      this.highest = n
      this.pending = undefined
      const released = [...superseded, ...this.releaseAll()]
      return { kind: "aligned", n, released }
    }
    return { kind: "blocked", n, released: superseded }
  }

  /** Abort of checkpoint n: stop aligning it, release the channels, ignore its later barriers. */
  abort(n: number): ReadonlyArray<T> {
    this.aborted.add(n)
    if (this.pending !== n) return []
    this.pending = undefined
    return this.releaseAll()
  }

  private releaseAll(): Array<T> {
    const out: Array<T> = []
    for (let c = 0; c < this.channels; c++) {
      this.blocked[c] = false
      const h = this.held[c]!
      for (const item of h) out.push(item)
      h.length = 0
    }
    return out
  }
}
