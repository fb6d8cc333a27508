/**
 * How this machine can start a broker by itself: which binaries it has (`findLocalBinaries`), which
 * one starts a broker for a URL (`localStartMethod`), and what to tell the user when none does
 * (`remedyFor`). Invariant: a URL that is not this host never gets a start method, and
 * start-stop-daemon is chosen only for the machine's own nats-server at 127.0.0.1:4222.
 */
import { accessSync, constants, existsSync } from "node:fs"
import { hostname, networkInterfaces } from "node:os"
import { delimiter, dirname, join } from "node:path"
import type { BrokerName, StartMethod } from "./BrokerError.ts"

/** Names that resolve to this machine without a lookup, plus its own host name and interface addresses. */
export const isLocalHost = (host: string): boolean => {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase()
  if (h === "localhost" || h === "::1" || h === "0.0.0.0" || h === "::" || /^127\./.test(h)) return true
  if (h === hostname().toLowerCase()) return true
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) if (a.address.toLowerCase() === h) return true
  }
  return false
}

/** Binaries this machine offers for starting brokers (absolute paths), found on PATH or in the sbin dirs. */
export interface LocalBinaries {
  readonly startStopDaemon: string | undefined
  readonly natsServer: string | undefined
  readonly rabbitmqServer: string | undefined
  /** the machine's own nats-server store dir is writable (start-stop-daemon runs the server as us) */
  readonly systemNatsStoreWritable: boolean
}

const sbinDirs = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]

export const findExecutable = (name: string): string | undefined => {
  const dirs = [...(process.env.PATH ?? "").split(delimiter).filter((d) => d !== ""), ...sbinDirs]
  for (const dir of dirs) {
    const candidate = join(dir, name)
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      // not in this dir: try the next one
    }
  }
  return undefined
}

const writable = (path: string): boolean => {
  try {
    accessSync(existsSync(path) ? path : dirname(path), constants.W_OK)
    return true
  } catch {
    return false
  }
}

export const systemNatsServer = "/usr/sbin/nats-server"
export const systemNatsStore = "/var/lib/nats-server"

export const findLocalBinaries = (): LocalBinaries => ({
  startStopDaemon: findExecutable("start-stop-daemon"),
  natsServer: existsSync(systemNatsServer) ? systemNatsServer : findExecutable("nats-server"),
  rabbitmqServer: findExecutable("rabbitmq-server"),
  systemNatsStoreWritable: writable(systemNatsStore)
})

/**
 * The local way to start `broker` for `url`, or undefined when this machine has none (then docker
 * compose is the fallback). start-stop-daemon is used only for the machine's own 127.0.0.1:4222 server.
 */
export const localStartMethod = (
  broker: BrokerName,
  url: URL,
  bins: LocalBinaries
): StartMethod | undefined => {
  if (!isLocalHost(url.hostname)) return undefined
  // A second RabbitMQ node next to the machine's would clash on its node name: only the default port.
  if (broker === "RabbitMQ")
    return bins.rabbitmqServer !== undefined && amqpPort(url) === 5672 ? "rabbitmq-server" : undefined
  const machineServer =
    url.hostname === "127.0.0.1" &&
    natsPort(url) === 4222 &&
    bins.startStopDaemon !== undefined &&
    bins.natsServer === systemNatsServer &&
    bins.systemNatsStoreWritable
  if (machineServer) return "start-stop-daemon"
  return bins.natsServer === undefined ? undefined : "nats-server"
}

export const natsPort = (url: URL): number => (url.port === "" ? 4222 : Number(url.port))
export const amqpPort = (url: URL): number => (url.port === "" ? 5672 : Number(url.port))

/** What to tell the user when `broker` cannot be started for `url`. */
export const remedyFor = (broker: BrokerName, url: URL, bins: LocalBinaries): string => {
  const envVar = broker === "NATS" ? "EXACTOR_NATS_URL" : "EXACTOR_AMQP_URL"
  if (!isLocalHost(url.hostname))
    return `${url.hostname} is not this machine, so it is not started from here: start ${broker} there or set ${envVar} to a running one`
  if (broker === "RabbitMQ" && bins.rabbitmqServer !== undefined)
    return `rabbitmq-server is started from here only on its default port 5672, and Docker is not available: start RabbitMQ on port ${url.port} yourself or set ${envVar} to a running broker`
  return broker === "NATS"
    ? `install nats-server (apt-get install nats-server, or a release from https://github.com/nats-io/nats-server/releases) or Docker with a running engine, or set ${envVar} to a nats-server running with -js`
    : `install RabbitMQ (apt-get install rabbitmq-server) or Docker with a running engine, or set ${envVar} to a running broker`
}
