/**
 * The counters an instance keeps and reports in its heartbeat: records in and out, the last
 * checkpoint and its alignment, whether a source or sink has finished, and the control messages it
 * refused (forged commands, commits of checkpoints not completed). Its own module so that the
 * task and the sink's commit loop (`SinkCommits`) both update them without importing each other.
 */
/** Counters an instance reports in its heartbeat. */
export interface TaskStats {
  recordsIn: number
  recordsOut: number
  lastCheckpoint: number
  lastAlignmentMs: number
  /** a source has read its end; a sink has seen eos on every input and holds nothing uncommittable */
  finished: boolean
  /** a sink's open transaction is full: it needs a checkpoint before it can take more */
  wantsCheckpoint: boolean
  /** a sink's time with a commit in flight (from `complete n` to its end) this epoch, ms; it takes input meanwhile */
  commitMs: number
  /**
   * a sink's records visible downstream: every record before the barrier of the last checkpoint
   * whose commit is confirmed, counted across epochs (the restored checkpoint's count plus this epoch's)
   */
  recordsCommitted: number
  /** control commands refused since the process started because their tag (job secret) was missing or wrong */
  rejectedCommands: number
  /** a sink's `complete n` refused since the process started: checkpoint n was not completed in the store */
  refusedCommits: number
  /** records it sent to its `deadLetters` output this epoch (policy `deadLetter`) */
  deadLetters: number
  /** event time only (absent otherwise): the instance's watermark, ms */
  watermark?: number
  /** its output is idle (a source read nothing for `idleTimeout`; every input of an operator is idle) */
  idle?: boolean
  /** input channels that are idle now */
  idleInputs?: number
  /** timers pending (event and processing time) */
  timers?: number
  /** late records (windows, joins) this epoch */
  lateRecords?: number
  /** processing-time timers dropped at the end of input this epoch */
  droppedTimers?: number
  /** it is firing timers (a burst after a watermark, at the end of input) */
  firing?: boolean
}

/** The counters of a new instance: nothing in or out, no checkpoint yet. */
export const initialTaskStats = (): TaskStats => ({
  recordsIn: 0,
  recordsOut: 0,
  lastCheckpoint: -1,
  lastAlignmentMs: 0,
  finished: false,
  wantsCheckpoint: false,
  commitMs: 0,
  recordsCommitted: 0,
  rejectedCommands: 0,
  refusedCommits: 0,
  deadLetters: 0
})
