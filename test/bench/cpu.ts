/**
 * CPU time by process group on this host, from /proc: the brokers (RabbitMQ's `beam.smp`,
 * `nats-server`), the coordinator, and each operator's actor processes (all instances together),
 * so a benchmark can say where a job's cores went. Brokers in containers or on other hosts are not
 * seen (their group is then missing, not zero).
 */
import { readdirSync, readFileSync } from "node:fs"

/** CPU seconds per group at one moment, plus the machine's busy and total seconds. */
export interface CpuReading {
  readonly at: number
  readonly groups: ReadonlyMap<string, number>
  /** each process's group and CPU seconds */
  readonly pids: ReadonlyMap<number, { readonly group: string; readonly seconds: number }>
  readonly busy: number
  readonly total: number
}

const ticksPerSecond = 100

const groupOf = (cmdline: ReadonlyArray<string>): string | undefined => {
  const exe = cmdline[0] ?? ""
  if (exe.includes("beam.smp")) return "rabbitmq"
  if (exe.endsWith("nats-server")) return "nats"
  const entry = cmdline.findIndex((a) => a.endsWith("/cli/child.ts"))
  if (entry < 0) return undefined
  const role = cmdline[entry + 1]
  if (role === "coordinator") return "coordinator"
  const instance = cmdline[entry + 3]
  return role === "actor" && instance ? instance.split("#")[0] : undefined
}

const read = (path: string): string | undefined => {
  try {
    return readFileSync(path, "utf8")
  } catch {
    return undefined
  }
}

/** Reads every process's CPU time (user + system) now, summed by group. */
export const readCpu = (): CpuReading => {
  const groups = new Map<string, number>()
  const pids = new Map<number, { group: string; seconds: number }>()
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue
    const cmd = read(`/proc/${pid}/cmdline`)
    const group = cmd === undefined ? undefined : groupOf(cmd.split("\0"))
    if (group === undefined) continue
    const stat = read(`/proc/${pid}/stat`)
    if (stat === undefined) continue
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    const seconds = (Number(f[11]) + Number(f[12])) / ticksPerSecond
    groups.set(group, (groups.get(group) ?? 0) + seconds)
    pids.set(Number(pid), { group, seconds })
  }
  const cpu = (read("/proc/stat") ?? "").split("\n")[0]!.split(/\s+/).slice(1).map(Number)
  const idle = (cpu[3] ?? 0) + (cpu[4] ?? 0)
  const total = cpu.reduce((a, b) => a + b, 0)
  return {
    at: performance.now(),
    groups,
    pids,
    busy: (total - idle) / ticksPerSecond,
    total: total / ticksPerSecond
  }
}

/**
 * CPU seconds each group used over a series of readings, per process from its first reading to its
 * last (a process that exits before the last reading still counts, up to when it was last seen).
 */
export const cpuOver = (readings: ReadonlyArray<CpuReading>): Map<string, number> => {
  const first = new Map<number, number>()
  const last = new Map<number, { group: string; seconds: number }>()
  for (const r of readings)
    for (const [pid, p] of r.pids) {
      if (!first.has(pid)) first.set(pid, r === readings[0] ? p.seconds : 0)
      last.set(pid, p)
    }
  const out = new Map<string, number>()
  for (const [pid, p] of last) out.set(p.group, (out.get(p.group) ?? 0) + p.seconds - first.get(pid)!)
  return out
}

/** Cores each group used between two readings (a group absent from `from` counts from 0), and the machine's busy share. */
export const coresBetween = (from: CpuReading, to: CpuReading) => {
  const seconds = (to.at - from.at) / 1000
  const cores: Record<string, number> = {}
  for (const [g, s] of to.groups) cores[g] = (s - (from.groups.get(g) ?? 0)) / seconds
  const busyShare = (to.busy - from.busy) / Math.max(1e-9, to.total - from.total)
  return { seconds, cores, busyShare }
}

/** CPU µs per record of each group between two readings, over `records` records. */
export const microsPerRecord = (
  from: CpuReading,
  to: CpuReading,
  records: number
): Record<string, number> => {
  const { cores, seconds } = coresBetween(from, to)
  return Object.fromEntries(Object.entries(cores).map(([g, c]) => [g, (c * seconds * 1e6) / records]))
}

/** "157 µs (rabbitmq 71, orders 26, …)": the total and each group, largest first. */
export const microsLine = (perRecord: Readonly<Record<string, number>>): string => {
  const entries = Object.entries(perRecord).sort((a, b) => b[1] - a[1])
  const total = entries.reduce((a, [, v]) => a + v, 0)
  return `${Math.round(total)} µs (${entries.map(([g, v]) => `${g} ${Math.round(v)}`).join(", ")})`
}

/** The kind of each process group of the orders jobs (actors/examples/orders.ts, test/fixtures/benchOrders.ts). */
const ordersKinds: Readonly<Record<string, string>> = {
  orders: "source",
  parse: "map",
  total: "keyed",
  sink: "sink"
}

/**
 * CPU µs per record by process kind (`source`, `map`, `keyed`, `sink`, `coordinator`, `nats`,
 * `rabbitmq`) from the cores each group used over a run of `perSecond` records per second.
 */
export const microsByKind = (
  cores: Readonly<Record<string, number>>,
  perSecond: number
): Record<string, number> =>
  Object.fromEntries(Object.entries(cores).map(([g, c]) => [ordersKinds[g] ?? g, (c * 1e6) / perSecond]))
