import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import t from "tap"
import { SequencePositionInvalid, sequenceSource } from "../../actors/sequenceSource.ts"
import type { OperatorContext, SourceReader } from "../../lib/api/Operator.ts"

const ctx = (index: number, parallelism: number): OperatorContext => ({
  job: "seq",
  operator: "numbers",
  index,
  parallelism,
  natsUrl: "",
  amqpUrl: ""
})

/** Opens the source of instance `index` of `p` at `position` and reads everything, `max` at a time. */
const readAll = (count: number, index: number, p: number, position?: unknown, max = 7) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const decl = sequenceSource("numbers", { count, make: (n) => n * 10 })
        const reader = (yield* decl.open(ctx(index, p), position)) as SourceReader<number>
        const out: Array<number> = []
        for (;;) {
          const { records, end } = yield* reader.read(max)
          out.push(...records)
          if (end) return { out, position: reader.position() }
        }
      })
    )
  )

t.test(
  "instances split n by n mod parallelism, and all of them together make every record once",
  async (t) => {
    const parts = await Promise.all([0, 1, 2].map((i) => readAll(100, i, 3)))
    t.same(parts[1]!.out.slice(0, 3), [10, 40, 70], "instance 1 of 3 makes n = 1, 4, 7, ...")
    const all = parts.flatMap((p) => p.out).sort((a, b) => a - b)
    t.same(
      all,
      Array.from({ length: 100 }, (_, n) => n * 10)
    )
  }
)

t.test("a restored instance goes on after its position: the replay is exact", async (t) => {
  const decl = sequenceSource("numbers", { count: 50, make: (n) => n })
  const first = await Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const reader = (yield* decl.open(ctx(1, 2), undefined)) as SourceReader<number>
        const { records } = yield* reader.read(5)
        return { records, position: reader.position() }
      })
    )
  )
  t.same(first.records, [1, 3, 5, 7, 9])
  const rest = await readAll(50, 1, 2, first.position)
  t.same(
    [...first.records, ...rest.out.map((x) => x / 10)],
    Array.from({ length: 25 }, (_, i) => 2 * i + 1),
    "no gap, no repeat"
  )
})

t.test(
  "a position it cannot continue from is a typed error that names the source and the reason",
  async (t) => {
    const decl = sequenceSource("numbers", { count: 10, make: (n) => n })
    for (const [position, reason] of [
      ["garbage", /not \{ next, parallelism \}/],
      [{ next: 4, parallelism: 3 }, /instance 0 of 2 cannot take it/]
    ] as const) {
      const exit = await Effect.runPromiseExit(Effect.scoped(decl.open(ctx(0, 2), position)))
      t.ok(Exit.isFailure(exit), `${JSON.stringify(position)} refused`)
      const error = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
      const e = error?._tag === "Fail" ? error.error : undefined
      t.ok(e instanceof SequencePositionInvalid)
      t.match(String((e as Error | undefined)?.message), reason)
      t.match(String((e as Error | undefined)?.message), /sequence source numbers/)
    }
  }
)

t.test("a rate limit spreads the records over time", async (t) => {
  const started = Date.now()
  const r = await readAll(60, 0, 1, undefined, 1000)
  t.equal(r.out.length, 60)
  const limited = sequenceSource("numbers", { count: 60, ratePerSecond: 200, make: (n) => n })
  const t0 = Date.now()
  await Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const reader = (yield* limited.open(ctx(0, 1), undefined)) as SourceReader<number>
        let got = 0
        while (got < 60) got += (yield* reader.read(1000)).records.length
      })
    )
  )
  t.ok(Date.now() - t0 >= 250, `60 records at 200/s took ${Date.now() - t0} ms (>= 250)`)
  t.ok(t0 - started < 1000, "unlimited is not slowed")
})
