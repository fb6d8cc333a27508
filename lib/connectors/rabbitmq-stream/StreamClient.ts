/**
 * lib/connectors/rabbitmq-stream/ — RabbitMQ streams in and out of a job: the exactly-once stream
 * sink (named-producer deduplication), the replayable stream source, and this typed wrapper of
 * `rabbitmq-stream-js-client`. Imports runtime/, api/, core/, internal/; never another connector.
 *
 * The stream-protocol client as exactor uses it: one Client (and so one connection) per producer, every
 * call under a timeout and mapped to `StreamCallFailed`. Invariant: the compatibility step for
 * brokers older than 3.11 (they do not know ExchangeCommandVersions, which the client sends on every
 * connect and then dies on the answer) is applied once, and only skips that command when the broker's
 * own version (from PeerProperties) is below 3.11; `streamClientCompatible()` says whether the
 * client's internals it relies on are still there.
 */
import * as Effect from "effect/Effect"
import { Connection } from "rabbitmq-stream-js-client/dist/connection.js"
import { type Client, connect, type Publisher } from "rabbitmq-stream-js-client"
import { streamSsl } from "../../internal/AmqpConnectOptions.ts"
import { StreamCallFailed, StreamPublishFailed } from "./StreamErrors.ts"

// ---------------------------------------------------------------------------------------------
// Compatibility with RabbitMQ < 3.11

interface PatchableConnection {
  peerProperties: Record<string, string>
  exchangeCommandVersions: () => Promise<unknown>
}
const proto = Connection.prototype as unknown as PatchableConnection & { __exactorCompat?: true }

/** Whether `version` ("3.10.8", "3.13.7+rc.1", …) is below 3.11. */
export const olderThan311 = (version: string | undefined): boolean => {
  const m = /^(\d+)\.(\d+)/.exec(version ?? "")
  if (m === null) return false
  const major = Number(m[1])
  const minor = Number(m[2])
  return major < 3 || (major === 3 && minor < 11)
}

/** Whether the client still has the internals the compatibility step replaces (tested in CI). */
export const streamClientCompatible = (): boolean =>
  typeof proto.exchangeCommandVersions === "function" &&
  /peerProperties\.version/.test(String(proto.exchangeCommandVersions))

/** Skips ExchangeCommandVersions for a broker older than 3.11; newer brokers get the original call. */
const applyCompatibility = () => {
  if (proto.__exactorCompat) return
  if (!streamClientCompatible())
    throw new Error(
      "rabbitmq-stream-js-client changed: Connection.prototype.exchangeCommandVersions is not what exactor patches"
    )
  const original = proto.exchangeCommandVersions
  proto.exchangeCommandVersions = async function (this: PatchableConnection) {
    if (olderThan311(this.peerProperties?.version)) return true
    return original.call(this)
  }
  proto.__exactorCompat = true
}

// ---------------------------------------------------------------------------------------------
// Connection parameters

export interface StreamEndpoint {
  readonly hostname: string
  readonly port: number
  readonly username: string
  readonly password: string
  readonly vhost: string
  /** TLS (`rabbitmq-stream+tls://`), with the CA and client certificate of `EXACTOR_AMQP_TLS_*` */
  readonly tls: boolean
}

/**
 * `rabbitmq-stream://user:pass@host:port/vhost` (port default 5552) or `rabbitmq-stream+tls://…`
 * (port default 5551), vhost default `/`; undefined if not one.
 */
export const parseStreamUrl = (url: string): StreamEndpoint | undefined => {
  if (!URL.canParse(url)) return undefined
  const u = new URL(url)
  if (u.protocol !== "rabbitmq-stream:" && u.protocol !== "rabbitmq-stream+tls:") return undefined
  const tls = u.protocol === "rabbitmq-stream+tls:"
  const vhost = decodeURIComponent(u.pathname.replace(/^\//, ""))
  return {
    hostname: u.hostname,
    port: u.port === "" ? (tls ? 5551 : 5552) : Number(u.port),
    username: decodeURIComponent(u.username || "guest"),
    password: decodeURIComponent(u.password || "guest"),
    vhost: vhost === "" ? "/" : vhost,
    tls
  }
}

/**
 * The stream URL of the broker at `amqpUrl`: `EXACTOR_STREAM_URL`, else the same host, credentials
 * and vhost on 5552 (`amqps://`: `rabbitmq-stream+tls://` on 5551).
 */
export const streamUrlFor = (amqpUrl: string): string => {
  const fromEnv = process.env.EXACTOR_STREAM_URL
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv
  const u = new URL(amqpUrl)
  const user = u.username === "" ? "guest:guest@" : `${u.username}:${u.password}@`
  const vhost = u.pathname === "" || u.pathname === "/" ? "/" : u.pathname
  return u.protocol === "amqps:"
    ? `rabbitmq-stream+tls://${user}${u.hostname}:5551${vhost}`
    : `rabbitmq-stream://${user}${u.hostname}:5552${vhost}`
}

// ---------------------------------------------------------------------------------------------
// Calls with timeouts

/** Runs a client promise under `timeoutMs`, as `StreamCallFailed` naming owner, stream and operation. */
export const call = <A>(
  owner: string,
  stream: string,
  operation: string,
  timeoutMs: number,
  f: () => Promise<A>
): Effect.Effect<A, StreamCallFailed> =>
  Effect.tryPromise({
    try: f,
    catch: (cause) => new StreamCallFailed({ owner, stream, operation, timeoutMs: undefined, cause })
  }).pipe(
    Effect.timeoutOrElse({
      duration: timeoutMs,
      orElse: () =>
        Effect.fail(new StreamCallFailed({ owner, stream, operation, timeoutMs, cause: undefined }))
    })
  )

/** Connects one Client (its own connection); the socket's close is reported to `onClosed`. */
export const connectClient = (
  owner: string,
  stream: string,
  endpoint: StreamEndpoint,
  timeoutMs: number,
  heartbeatSeconds: number,
  onClosed: () => void
): Effect.Effect<Client, StreamCallFailed> =>
  Effect.suspend(() => {
    applyCompatibility()
    const { tls, ...params } = endpoint
    return call(owner, stream, "connect", timeoutMs, () =>
      connect({
        ...params,
        ...(tls ? { ssl: streamSsl() } : {}),
        heartbeat: heartbeatSeconds,
        connectionName: `exactor ${owner}`,
        listeners: { connection_closed: onClosed }
      })
    )
  })

/** Closes a client, never failing (a dead socket is closed already); at most 2 s. */
export const closeClient = (client: Client): Effect.Effect<void> =>
  Effect.tryPromise(() => client.close()).pipe(Effect.timeoutOption("2 seconds"), Effect.ignore)

// ---------------------------------------------------------------------------------------------
// A named producer

/** A named producer on its own connection; `publish` sends a batch with explicit ids and waits for all confirms. */
export interface NamedProducer {
  /** The last publishing id the broker stored for this name (0 if none): QueryPublisherSequence. */
  readonly lastStored: Effect.Effect<bigint, StreamCallFailed>
  /** Sends `bodies` with ids `firstId`, `firstId+1`, …, and waits until every one is confirmed (stored now or earlier). */
  readonly publish: (
    checkpoint: number,
    firstId: bigint,
    bodies: ReadonlyArray<Buffer>
  ) => Effect.Effect<void, StreamCallFailed | StreamPublishFailed>
  /** Set once the connection is gone (then nothing more can succeed on it). */
  readonly dead: () => boolean
  readonly close: Effect.Effect<void>
}

interface Waiter {
  readonly first: bigint
  readonly seen: Uint8Array
  left: number
  readonly done: (error: StreamPublishFailed | StreamCallFailed | undefined) => void
}

/** Connects and declares the producer `name` on `stream` (which must exist). */
export const openNamedProducer = (o: {
  readonly owner: string
  readonly stream: string
  readonly name: string
  readonly endpoint: StreamEndpoint
  readonly timeoutMs: number
  readonly heartbeatSeconds: number
}): Effect.Effect<NamedProducer, StreamCallFailed> =>
  Effect.gen(function* () {
    const { owner, stream, timeoutMs } = o
    let closed = false
    let waiter: Waiter | undefined
    const lost = () => {
      closed = true
      const w = waiter
      waiter = undefined
      w?.done(
        new StreamCallFailed({
          owner,
          stream,
          operation: "publish",
          timeoutMs: undefined,
          cause: new Error("connection closed")
        })
      )
    }
    const client = yield* connectClient(owner, stream, o.endpoint, timeoutMs, o.heartbeatSeconds, lost)
    const publisher: Publisher = yield* call(owner, stream, "declarePublisher", timeoutMs, () =>
      client.declarePublisher({
        stream,
        publisherRef: o.name,
        maxChunkLength: 500,
        connectionClosedListener: lost
      })
    ).pipe(Effect.onError(() => closeClient(client)))
    let failedCheckpoint = 0
    publisher.on("publish_confirm", (err, ids) => {
      const w = waiter
      if (w === undefined) return
      if (err !== null) {
        waiter = undefined
        w.done(new StreamPublishFailed({ sink: owner, stream, checkpoint: failedCheckpoint, code: err }))
        return
      }
      for (const id of ids) {
        const i = Number(id - w.first)
        if (i >= 0 && i < w.seen.length && w.seen[i] === 0) {
          w.seen[i] = 1
          w.left -= 1
        }
      }
      if (w.left === 0) {
        waiter = undefined
        w.done(undefined)
      }
    })
    const publish = (checkpoint: number, firstId: bigint, bodies: ReadonlyArray<Buffer>) =>
      Effect.callback<void, StreamCallFailed | StreamPublishFailed>((resume) => {
        if (bodies.length === 0) return resume(Effect.void)
        if (closed) {
          return resume(
            Effect.fail(
              new StreamCallFailed({
                owner,
                stream,
                operation: "publish",
                timeoutMs: undefined,
                cause: new Error("connection closed")
              })
            )
          )
        }
        failedCheckpoint = checkpoint
        waiter = {
          first: firstId,
          seen: new Uint8Array(bodies.length),
          left: bodies.length,
          done: (e) => resume(e === undefined ? Effect.void : Effect.fail(e))
        }
        const sendAll = async () => {
          for (let i = 0; i < bodies.length; i++)
            await publisher.basicSend(firstId + BigInt(i), bodies[i] as Buffer)
          await publisher.flush()
        }
        sendAll().catch((cause: unknown) => {
          const w = waiter
          waiter = undefined
          w?.done(new StreamCallFailed({ owner, stream, operation: "publish", timeoutMs: undefined, cause }))
        })
        return Effect.sync(() => {
          waiter = undefined
        })
      }).pipe(
        Effect.timeoutOrElse({
          duration: timeoutMs,
          orElse: () =>
            Effect.fail(
              new StreamCallFailed({
                owner,
                stream,
                operation: "publish (confirms)",
                timeoutMs,
                cause: undefined
              })
            )
        })
      )
    return {
      lastStored: call(owner, stream, "queryPublisherSequence", timeoutMs, () =>
        publisher.getLastPublishingId()
      ),
      publish,
      dead: () => closed,
      close: Effect.suspend(() => {
        closed = true
        return closeClient(client)
      })
    }
  })

/**
 * Creates `stream` if its metadata says it does not exist, on a short-lived connection; fails while it
 * exists but is not available. (3.10.8 answers Create for a stream that exists but is not available
 * yet after a node restart with "internal error", not "already exists".)
 */
export const ensureStream = (
  owner: string,
  stream: string,
  endpoint: StreamEndpoint,
  timeoutMs: number
): Effect.Effect<void, StreamCallFailed> =>
  Effect.acquireUseRelease(
    connectClient(owner, stream, endpoint, timeoutMs, 10, () => {}),
    (client) =>
      Effect.gen(function* () {
        const meta = yield* call(owner, stream, "queryMetadata", timeoutMs, () =>
          client.queryMetadata({ streams: [stream] })
        )
        const code = meta.find((m) => m.streamName === stream)?.responseCode
        if (code === 1) return
        // 0x06: it exists but its leader is not up yet (after a node restart): try again later
        if (code !== 2)
          return yield* new StreamCallFailed({
            owner,
            stream,
            operation: "queryMetadata",
            timeoutMs: undefined,
            cause: new Error(`stream not available (code ${String(code)})`)
          })
        yield* call(owner, stream, "createStream", timeoutMs, () => client.createStream({ stream }))
      }),
    closeClient
  )
