/**
 * The revenue example (actors/examples/revenue.ts) with its input generator and the independent
 * oracle as a `jobSpec`, for `exactor chaos test/oracle/revenueJob.ts` and `exactor example`: two
 * splits of seeded orders (96 % on time, 2 % allowed-late, 2 % too late), one per JetStream
 * stream, and for each window operator's sink the oracle's verdict over its results and the late
 * rows that name it; for the interval join's sink the join oracle's, with the join's late rows. The oracle and the generator import nothing from lib/; this module only
 * adapts their verdict to the chaos report's.
 */
import { revenuePipeline } from "../../actors/examples/revenue.ts"
import type { JobSpec, SpecEnv } from "../../lib/chaos/JobSpec.ts"
import type { OutputMessage, Verdict } from "../../lib/chaos/OutputCheck.ts"
import { checkJoin, type JoinLateRow, type JoinRow } from "./joinOracle.ts"
import {
  type Assigner,
  checkWindows,
  type LateRow,
  type WindowResultRow,
  type WindowVerdict
} from "./windowOracle.ts"
import { generateOrders, type InputOrder } from "./windowInput.ts"

/** The example's event-time settings (its defaults; the spec sets none of them). */
const time = {
  maxDelay: 2000,
  lateness: 3000,
  emitEvery: 200,
  joinWithin: 1000
}
const windows: ReadonlyArray<{
  readonly sink: string
  readonly operator: string
  readonly assigner: Assigner
  readonly queue: string
}> = [
  {
    sink: "tumbling-sink",
    operator: "tumbling",
    assigner: { kind: "tumbling", size: 10_000 },
    queue: "EXACTOR_REVENUE_TUMBLING"
  },
  {
    sink: "sliding-sink",
    operator: "sliding",
    assigner: { kind: "sliding", size: 60_000, slide: 10_000 },
    queue: "EXACTOR_REVENUE_SLIDING"
  },
  {
    sink: "sessions-sink",
    operator: "sessions",
    assigner: { kind: "session", gap: 5000 },
    queue: "EXACTOR_REVENUE_SESSIONS"
  }
]

/**
 * About `records` orders over two splits: 100 customers, one order per 50 ms of event time per
 * split, so a customer's orders are ~2.5 s apart and sessions (gap 5 s) both merge and close.
 */
export const revenueInput = (records: number, seed = 7): Array<Array<InputOrder>> =>
  generateOrders({
    seed,
    splits: 2,
    perSplit: Math.ceil(records / 2),
    customers: 100,
    step: 50,
    start: 1_700_000_000_000,
    maxDelay: time.maxDelay,
    lateness: time.lateness,
    size: 60_000,
    emitEvery: time.emitEvery
  })

const bodies = <A>(out: ReadonlyArray<OutputMessage>) => out.map((m) => m.body as A)

/** An oracle's verdict as a chaos verdict: ok counts (record, window) pairs or join pairs delivered once. */
const asVerdict = (
  v: Pick<
    WindowVerdict,
    | "attempted"
    | "ok"
    | "lost"
    | "duplicated"
    | "unexpected"
    | "brokenChains"
    | "lateWrong"
    | "mismatch"
    | "examples"
  >
): Verdict => ({
  attempted: v.attempted,
  ok: v.ok ? v.attempted : Math.max(0, v.attempted - v.lost - v.duplicated),
  lost: v.lost,
  duplicated: v.duplicated,
  unexpected: v.unexpected,
  customers: 0,
  brokenChains: v.brokenChains,
  lateWrong: v.lateWrong,
  mismatch: v.mismatch,
  examples: v.examples
})

/** The late sink's own check: each row names a window operator of the job and comes once. */
const checkLateRows = (rows: ReadonlyArray<LateRow & { readonly operator?: string }>): Verdict => {
  const seen = new Set<string>()
  let duplicated = 0
  let unexpected = 0
  const examples: Array<string> = []
  for (const r of rows) {
    if (r.operator !== "join" && !windows.some((w) => w.operator === r.operator)) {
      unexpected++
      if (examples.length < 5) examples.push(`late row for no window operator: ${JSON.stringify(r)}`)
      continue
    }
    const id = `${r.operator}/${r.record.id}`
    if (seen.has(id)) duplicated++
    seen.add(id)
  }
  const attempted = rows.length - duplicated - unexpected
  return {
    attempted,
    ok: attempted,
    lost: 0,
    duplicated,
    unexpected,
    customers: 0,
    brokenChains: 0,
    examples
  }
}

const queues = (env: SpecEnv) => ({
  late: env.EXACTOR_REVENUE_LATE!,
  of: (name: string) => env[name]!
})

export const jobSpec: JobSpec = {
  env: (tag) => ({
    EXACTOR_REVENUE_JOB: `revenue-${tag}`,
    EXACTOR_REVENUE_A: `revenue-a-${tag}`,
    EXACTOR_REVENUE_B: `revenue-b-${tag}`,
    EXACTOR_REVENUE_TUMBLING: `revenue-10s-${tag}`,
    EXACTOR_REVENUE_SLIDING: `revenue-60s-${tag}`,
    EXACTOR_REVENUE_SESSIONS: `revenue-sessions-${tag}`,
    EXACTOR_REVENUE_LATE: `revenue-late-${tag}`,
    EXACTOR_REVENUE_JOINED: `revenue-joined-${tag}`,
    // the oracle assumes these; pinned so a caller's environment cannot change them under it
    EXACTOR_MAX_DELAY: String(time.maxDelay),
    EXACTOR_LATENESS: String(time.lateness)
  }),
  inputs: (env, records) =>
    revenueInput(records).map((split, i) => ({
      stream: (i === 0 ? env.EXACTOR_REVENUE_A : env.EXACTOR_REVENUE_B)!,
      records: split.map(({ id, customer, amount, at }) => ({ id, customer, amount, at }))
    })),
  outputs: (env, records) => {
    const input = revenueInput(records).flat()
    const q = queues(env)
    return [
      ...windows.map((w) => ({
        sink: w.sink,
        queue: q.of(w.queue),
        check: (
          out: ReadonlyArray<OutputMessage>,
          outputOf: (sink: string) => ReadonlyArray<OutputMessage>
        ) =>
          asVerdict(
            checkWindows({
              input,
              kind: w.assigner.kind,
              config: {
                assigner: w.assigner,
                lateness: time.lateness,
                maxDelay: time.maxDelay,
                emitEvery: time.emitEvery
              },
              results: bodies<WindowResultRow>(out),
              late: bodies<LateRow & { readonly operator: string }>(outputOf("late-sink")).filter(
                (l) => l.operator === w.operator
              ),
              singleSplit: false
            })
          )
      })),
      {
        sink: "join-sink",
        queue: env.EXACTOR_REVENUE_JOINED!,
        check: (
          out: ReadonlyArray<OutputMessage>,
          outputOf: (sink: string) => ReadonlyArray<OutputMessage>
        ) => {
          const [left, right] = revenueInput(records)
          return asVerdict({
            ...checkJoin({
              left: left!,
              right: right!,
              lower: -time.joinWithin,
              upper: time.joinWithin,
              results: bodies<JoinRow>(out),
              late: bodies<JoinLateRow & { readonly operator?: string }>(outputOf("late-sink")).filter(
                (l) => l.operator === "join"
              )
            }),
            brokenChains: 0,
            mismatch: 0
          })
        }
      },
      {
        sink: "late-sink",
        queue: q.late,
        check: (out: ReadonlyArray<OutputMessage>) =>
          checkLateRows(bodies<LateRow & { readonly operator?: string }>(out))
      }
    ]
  }
}

/** The example, built from this process's environment when this module is evaluated. */
export default revenuePipeline()
