/**
 * The TCP socket under an amqplib connection, which amqplib does not expose: destroy it when a
 * close hangs, and send each pass of its muxer in one write. amqplib internals, narrowly: each
 * function checks the shape it relies on and does nothing (says `false`) when it is not there,
 * and test/connectors/rabbitmq/amqp-tx.test.ts fails if an amqplib upgrade takes it away.
 */
import type { Duplex } from "node:stream"
import type { ChannelModel } from "amqplib"

interface Internals {
  readonly stream: Partial<Duplex>
  readonly muxer: { _readIncoming?: () => void }
}

const internalsOf = (conn: ChannelModel): Partial<Internals> => {
  const c: unknown = conn.connection
  return typeof c === "object" && c !== null ? (c as Partial<Internals>) : {}
}

/** Destroys the TCP socket of a connection whose close did not complete. */
export const destroySocket = (conn: ChannelModel): void => {
  internalsOf(conn).stream?.destroy?.()
}

/**
 * amqplib's muxer writes each frame set (one per publish) to the socket on its own: a syscall per
 * message, the largest CPU cost of a sink publishing thousands of records a second. This wraps
 * each muxer pass in cork/uncork, so that a pass goes out as one `writev`. Idempotent; `false`
 * when amqplib no longer has a muxer of that shape (then writes go out as before).
 */
export const batchSocketWrites = (conn: ChannelModel): boolean => {
  const { stream: socket, muxer } = internalsOf(conn)
  const pass = muxer?._readIncoming
  if (socket?.cork === undefined || socket.uncork === undefined || typeof pass !== "function") return false
  if ((pass as { batched?: true }).batched) return true
  const batched = function (this: unknown) {
    socket.cork?.()
    try {
      pass.call(this)
    } finally {
      socket.uncork?.()
    }
  }
  muxer!._readIncoming = Object.assign(batched, { batched: true as const })
  return true
}
