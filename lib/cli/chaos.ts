/**
 * `exactor chaos <module>` / `npm run chaos`: parses the flags (kinds, duration), runs one chaos
 * experiment (lib/chaos/Chaos.ts), prints the Jepsen-style table and writes the JSON report.
 * Invariant: the exit code is 0 only if the job FINISHED and its output is exactly once.
 */
import { randomInt } from "node:crypto"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { ChaosOptionInvalid, runChaos, writeReport } from "../chaos/Chaos.ts"
import { formatChaosReport } from "../chaos/ChaosReport.ts"
import type { Urls } from "../process/JobRunner.ts"
import { type TargetKind, targetKinds } from "../chaos/Nemesis.ts"

export interface ChaosFlags {
  readonly module: string
  readonly records: number
  readonly interval: number
  readonly maxFaults: number | undefined
  readonly firingKills: number
  readonly kinds: string
  readonly pause: boolean
  readonly natsRestarts: boolean
  readonly rabbitmqCrashes: number
  readonly postgresCrashes: number | undefined
  readonly seed: number | undefined
  readonly duration: string
  readonly json: string
  readonly urls: Urls
}

/** `500ms`, `90s`, `10m`, `1h`; a bare number is seconds. */
export const parseDuration = (text: string): number | ChaosOptionInvalid => {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim())
  if (!m) return new ChaosOptionInvalid({ field: "duration", value: text, rule: "like 90s, 10m or 1h" })
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? "s") as "ms" | "s" | "m" | "h"]
  return Math.round(Number(m[1]) * unit)
}

export const parseKinds = (text: string): ReadonlyArray<TargetKind> | ChaosOptionInvalid => {
  const kinds = text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")
  const bad = kinds.find((k) => !(targetKinds as ReadonlyArray<string>).includes(k))
  return bad === undefined
    ? [...new Set(kinds as Array<TargetKind>)]
    : new ChaosOptionInvalid({ field: "kinds", value: bad, rule: `one of ${targetKinds.join(", ")}` })
}

/** Runs the experiment; returns the process exit code. */
export const runChaosCli = (f: ChaosFlags) =>
  Effect.gen(function* () {
    const deadlineMs = parseDuration(f.duration)
    if (typeof deadlineMs !== "number") return yield* deadlineMs
    const kinds = parseKinds(f.kinds)
    if ("_tag" in kinds) return yield* kinds
    const seed = f.seed ?? randomInt(1, 2 ** 31 - 1)
    const report = yield* runChaos({
      module: f.module,
      records: f.records,
      intervalMs: f.interval,
      ...(f.maxFaults === undefined ? {} : { maxFaults: f.maxFaults }),
      firingKills: f.firingKills,
      kinds,
      pause: f.pause,
      natsRestarts: f.natsRestarts,
      rabbitmqCrashes: f.rabbitmqCrashes,
      ...(f.postgresCrashes === undefined ? {} : { postgresCrashes: f.postgresCrashes }),
      seed,
      deadlineMs,
      urls: f.urls,
      log: (line) => console.log(line)
    })
    yield* Console.log(`\n${formatChaosReport(report)}`)
    yield* writeReport(f.json, report)
    yield* Console.log(`report: ${f.json}`)
    return report.ok ? 0 : 1
  })
