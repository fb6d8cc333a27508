/**
 * The watermark valve of an instance with several input channels (DESIGN-dataflow §2.4; Flink's
 * StatusWatermarkValve): per-channel watermarks and statuses in, one output watermark and status out.
 * Invariant: the output watermark never decreases; a channel below it stays out of the minimum until
 * it catches up, and an ended channel never pushes the output to END while another may resume. Pure.
 */
import { END_OF_TIME, START_OF_TIME } from "../api/Watermark.ts"

/** `active`: its watermarks count; `idle`: left out until it resumes; `ended`: eos, watermark END. */
export type ChannelStatus = "active" | "idle" | "ended"

/**
 * What a valve call changed, to forward downstream: a new output watermark and/or a new output idle
 * status. When both are set, `idle: true` goes after the watermark and `idle: false` before it.
 */
export interface ValveOutput {
  readonly watermark?: number
  readonly idle?: boolean
}

const NOTHING: ValveOutput = Object.freeze({})

export class WatermarkValve {
  private readonly wms: Array<number>
  private readonly statuses: Array<ChannelStatus>
  /** active channels at or above the output once; unaligned ones are left out of the minimum */
  private readonly aligned: Array<boolean>
  private output: number
  private outputIdle = false
  private idleCount = 0

  /** `floor`: the restored instance watermark (default START_OF_TIME); every channel starts there. */
  constructor(channels: number, floor: number = START_OF_TIME) {
    if (!Number.isSafeInteger(channels) || channels < 1)
      throw new RangeError(`WatermarkValve: channels must be a whole number >= 1, got ${channels}`)
    if (!Number.isSafeInteger(floor))
      throw new RangeError(`WatermarkValve: floor must be a safe integer, got ${floor}`)
    this.wms = new Array<number>(channels).fill(floor)
    this.statuses = new Array<ChannelStatus>(channels).fill("active")
    this.aligned = new Array<boolean>(channels).fill(true)
    this.output = floor
  }

  /**
   * Watermark `w` on `channel`; ignored while the channel is idle or ended. END_OF_TIME is the
   * channel's end (a finished source sends it before its end of stream): it counts as `onEnded`,
   * so it cannot push the output to END while another channel is idle (FLINK-38477).
   */
  onWatermark(channel: number, w: number): ValveOutput {
    this.check(channel)
    if (this.statuses[channel] !== "active" || w <= this.wms[channel]!) return NOTHING
    if (w >= END_OF_TIME) return this.onEnded(channel)
    this.wms[channel] = w
    return this.recompute()
  }

  /** The channel's status went idle (`true`) or active again (`false`); ignored once ended. */
  onIdle(channel: number, idle: boolean): ValveOutput {
    this.check(channel)
    const s = this.statuses[channel]
    if (s === "ended" || (s === "idle") === idle) return NOTHING
    this.statuses[channel] = idle ? "idle" : "active"
    this.idleCount += idle ? 1 : -1
    // A channel resuming behind the output must catch up before it counts again.
    if (!idle) this.aligned[channel] = this.wms[channel]! >= this.output
    return this.recompute()
  }

  /** End of stream on the channel: its watermark becomes END_OF_TIME, its status `ended`. */
  onEnded(channel: number): ValveOutput {
    this.check(channel)
    const s = this.statuses[channel]
    if (s === "ended") return NOTHING
    if (s === "idle") this.idleCount--
    this.statuses[channel] = "ended"
    this.wms[channel] = END_OF_TIME
    return this.recompute()
  }

  /** The current output watermark; it never decreases. */
  get watermark(): number {
    return this.output
  }

  /** The current output status: idle iff no channel is active and at least one is idle. */
  get idle(): boolean {
    return this.outputIdle
  }

  status(channel: number): ChannelStatus {
    this.check(channel)
    return this.statuses[channel]!
  }

  channelWatermark(channel: number): number {
    this.check(channel)
    return this.wms[channel]!
  }

  /** How many channels are idle now. */
  get idleChannels(): number {
    return this.idleCount
  }

  private check(channel: number): void {
    if (!Number.isInteger(channel) || channel < 0 || channel >= this.wms.length)
      throw new RangeError(`WatermarkValve: channel ${channel} is not in 0..${this.wms.length - 1}`)
  }

  /** Min over active aligned channels; none active → max over idle ones; all ended → END. */
  private recompute(): ValveOutput {
    let anyActive = false
    let anyAligned = false
    let minAligned = END_OF_TIME
    let maxIdle = START_OF_TIME
    for (let c = 0; c < this.wms.length; c++) {
      const wm = this.wms[c]!
      const s = this.statuses[c]
      if (s === "active") {
        anyActive = true
        if (!this.aligned[c] && wm >= this.output) this.aligned[c] = true
        if (this.aligned[c]) {
          anyAligned = true
          if (wm < minAligned) minAligned = wm
        }
      } else if (s === "idle" && wm > maxIdle) maxIdle = wm
    }
    let next = this.output
    if (anyActive) {
      if (anyAligned) next = minAligned
    } else if (this.idleCount > 0) next = maxIdle
    else next = END_OF_TIME
    const idle = !anyActive && this.idleCount > 0
    const advanced = next > this.output
    const statusChanged = idle !== this.outputIdle
    if (!advanced && !statusChanged) return NOTHING
    if (advanced) this.output = next
    this.outputIdle = idle
    if (advanced && statusChanged) return { watermark: next, idle }
    return advanced ? { watermark: next } : { idle }
  }
}
