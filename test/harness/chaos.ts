/**
 * One chaos experiment in a test: the seed (EXACTOR_CHAOS_SEED, else random, printed so a run can
 * be repeated), the shared brokers' URLs, the progress lines and the report as tap comments.
 */
import { randomInt } from "node:crypto"
import { Effect } from "effect"
import { type ChaosOptions, runChaos } from "../../lib/chaos/Chaos.ts"
import { formatChaosReport } from "../../lib/chaos/ChaosReport.ts"
import { amqpUrl, natsUrl } from "./env.ts"

interface Commenter {
  comment(...args: ReadonlyArray<unknown>): void
}

/** Runs the experiment `o` (seed, URLs, log and the defaults below filled in) and prints its report. */
export const chaosInTest = async (
  t: Commenter,
  o: Omit<ChaosOptions, "seed" | "urls" | "log" | "natsRestarts" | "deadlineMs"> &
    Partial<Pick<ChaosOptions, "natsRestarts" | "deadlineMs">>
) => {
  const seed = Number(process.env.EXACTOR_CHAOS_SEED ?? randomInt(1, 2 ** 31 - 1))
  t.comment(`seed ${seed} (repeat with EXACTOR_CHAOS_SEED=${seed})`)
  const report = await Effect.runPromise(
    runChaos({
      natsRestarts: false,
      deadlineMs: 300_000,
      ...o,
      seed,
      urls: { natsUrl, amqpUrl },
      log: (line) => t.comment(line)
    })
  )
  t.comment(`\n${formatChaosReport(report)}`)
  return report
}
