/**
 * The nemesis of `exactor chaos` (Jepsen's word for the fault injector): a seeded PRNG, the
 * fault schedule (round-robin over the targeted kinds; Chaos.ts kills the least-killed process within), the process table
 * of a running `exactor run` read from /proc, and SIGKILL / SIGSTOP+SIGCONT of one process.
 * Invariant: the same seed gives the same sequence of choices; only children of the given `run`
 * process are ever signalled, and a process that was stopped is always continued.
 */
import { readdirSync, readFileSync } from "node:fs"
import * as Data from "effect/Data"
import { childEntry } from "../process/Launcher.ts"
import { causeMessage } from "../internal/causeMessage.ts"

/** What `--kinds` can target. */
export const targetKinds = ["sources", "keyed", "sinks", "coordinator", "operators"] as const
export type TargetKind = (typeof targetKinds)[number]

/** The kind an actor process counts under in the report. */
export type KilledKind = "source" | "keyed" | "sink" | "coordinator" | "other"

export const killedKindOf: Record<TargetKind, KilledKind> = {
  sources: "source",
  keyed: "keyed",
  sinks: "sink",
  coordinator: "coordinator",
  operators: "other"
}

/** One slot of the round-robin. */
export type FaultSlot =
  | { readonly fault: "kill"; readonly kind: TargetKind }
  | { readonly fault: "pause" }
  | { readonly fault: "natsRestart" }
  | { readonly fault: "postgresCrash" }

export class ProcessSignalFailed extends Data.TaggedError("ProcessSignalFailed")<{
  readonly name: string
  readonly pid: number
  readonly signal: string
  readonly cause: unknown
}> {
  override get message(): string {
    const why = causeMessage(this.cause)
    return `cannot send ${this.signal} to ${this.name} (pid ${this.pid}): ${why}`
  }
}

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
export class Prng {
  #state: number
  constructor(seed: number) {
    this.#state = seed >>> 0
  }
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0
    let t = this.#state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  /** uniform in [lo, hi) */
  between(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next()
  }
  pick<A>(items: ReadonlyArray<A>): A | undefined {
    return items.length === 0 ? undefined : items[Math.floor(this.next() * items.length)]
  }
  shuffle<A>(items: ReadonlyArray<A>): Array<A> {
    const a = [...items]
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1))
      const x = a[i]!
      a[i] = a[j]!
      a[j] = x
    }
    return a
  }
}

/**
 * Round-robin over the slots, each round in a seeded random order: every slot gets one fault per
 * round, so a run with at least `slots.length` faults hits every targeted kind.
 */
export class FaultSchedule {
  readonly slots: ReadonlyArray<FaultSlot>
  readonly #rng: Prng
  #round: Array<FaultSlot> = []
  constructor(slots: ReadonlyArray<FaultSlot>, rng: Prng) {
    this.slots = slots
    this.#rng = rng
  }
  next(): FaultSlot | undefined {
    if (this.#round.length === 0) this.#round = this.#rng.shuffle(this.slots)
    return this.#round.shift()
  }
}

/** A process of the job: `coordinator` or an instance id such as `total#1`. */
export interface JobProcess {
  readonly name: string
  readonly pid: number
}

/** The processes `exactor run` (pid `runPid`) has started, by name, read from /proc. */
export const jobProcesses = (runPid: number): Map<string, JobProcess> => {
  const found = new Map<string, JobProcess>()
  let entries: Array<string>
  try {
    entries = readdirSync("/proc")
  } catch {
    return found // no /proc: no targets (the caller reports that nothing could be killed)
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    const pid = Number(entry)
    let stat: string
    let cmdline: Array<string>
    try {
      stat = readFileSync(`/proc/${pid}/stat`, "utf8")
      cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")
    } catch {
      continue // the process ended while we looked
    }
    // field 4 (ppid) follows the `(comm)` field, which may itself contain spaces
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
    if (ppid !== runPid) continue
    // [node, ...flags, child.ts, "coordinator" | "actor", module, instance]
    const at = cmdline.indexOf(childEntry)
    if (at < 0) continue
    const command = cmdline[at + 1]
    if (command === "coordinator") found.set("coordinator", { name: "coordinator", pid })
    const name = cmdline[at + 3]
    if (command === "actor" && name !== undefined && name !== "") found.set(name, { name, pid })
  }
  return found
}

/** VmRSS of a process in KiB, undefined if it is gone. */
export const rssKiB = (pid: number): number | undefined => {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
    return m ? Number(m[1]) : undefined
  } catch {
    return undefined
  }
}

/**
 * Sends `signal`; `false` if the process is already gone (ESRCH: it died between the look-up and
 * the signal, which the caller counts as no fault), else a `ProcessSignalFailed`.
 */
export const signalProcess = (
  p: JobProcess,
  signal: "SIGKILL" | "SIGSTOP" | "SIGCONT"
): boolean | ProcessSignalFailed => {
  try {
    process.kill(p.pid, signal)
    return true
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === "ESRCH") return false
    return new ProcessSignalFailed({ name: p.name, pid: p.pid, signal, cause })
  }
}
