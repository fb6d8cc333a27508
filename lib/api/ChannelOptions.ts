/**
 * How a channel batches and paces records: batch size, linger and the credit window, with their
 * defaults written once. Part of the job options a user sets; the runtime's channels read them.
 */
export interface ChannelOptions {
  /** Records per batch before it is sent. Default 256. */
  readonly batchSize: number
  /** Longest time a record waits in a partial batch, in ms. Default 5. */
  readonly lingerMs: number
  /** Credit window W, in batches per channel. Default 32. */
  readonly creditWindow: number
}

export const defaultChannelOptions: ChannelOptions = { batchSize: 256, lingerMs: 5, creditWindow: 32 }
