/**
 * The PostgreSQL sink's exactly-once cases, run in both modes against a private cluster (prepared
 * mode: postgres-sink.test.ts; local mode on a server without prepared transactions:
 * postgres-sink-local.test.ts), modelled on Flink's TwoPhaseCommitSinkFunctionTest and its XA sink
 * tests: kill -9 of the sink after the barrier and after the commit, the same checkpoint restored
 * twice, a crash between prepare and the checkpoint, a fenced zombie, and kill -9 of the server
 * between prepare and commit and during the commit. Each ends with plain-SQL counts of the rows
 * (lost, duplicated, unexpected all 0) and no prepared transaction left.
 */
import { Effect, Fiber } from "effect"
import type { Test } from "tap"
import { makePostgresSink, type PostgresSinkWriter } from "../../../lib/connectors/postgres/PostgresSink.ts"
import type { PostgresSinkOptions } from "../../../lib/connectors/postgres/PostgresSinkOptions.ts"
import type { SinkSnapshot } from "../../../lib/runtime/TwoPhaseCommitSink.ts"
import { uniqueName } from "../../harness/env.ts"
import { countValues, preparedGids, sql, type TestPostgresServer } from "../../harness/postgres.ts"
import { sinkChild } from "../../harness/postgresSinkChild.ts"

type Row = { v: string }
type Mode = "prepared" | "local"

const rows = (prefix: string, count: number): Array<Row> =>
  Array.from({ length: count }, (_, i) => ({ v: `${prefix}${i}` }))
const values = (rs: ReadonlyArray<Row>) => rs.map((r) => r.v)

export const sinkCases = (t: Test, mode: Mode, server: () => TestPostgresServer) => {
  /** A fresh job and table (`v text`); options of instance 0 of sink `out`. */
  const setup = async (name: string, extra: Partial<PostgresSinkOptions<Row>> = {}) => {
    const job = uniqueName(name)
    const table = job.toLowerCase()
    await sql(server().url, `CREATE TABLE ${table} (v text CHECK (v <> 'bad'))`)
    const options: PostgresSinkOptions<Row> = {
      url: server().url,
      job,
      sink: "out",
      instance: 0,
      table,
      columns: ["v"],
      mode,
      lockTimeout: "3 seconds",
      ...extra
    }
    const counts = (expected: ReadonlyArray<Row>) => countValues(server().url, table, values(expected))
    return { job, table, options, counts }
  }
  const once = (n: number) => ({ attempted: n, rows: n, lost: 0, duplicated: 0, unexpected: 0 })

  const withSink = <A>(
    options: PostgresSinkOptions<Row>,
    f: (w: PostgresSinkWriter<Row>) => Effect.Effect<A, unknown>
  ): Promise<A> =>
    Effect.runPromise(
      Effect.scoped(Effect.flatMap(makePostgresSink<Row>(options), f)) as Effect.Effect<A, unknown>
    )
  const noPrepared = async (t: Test) =>
    t.same(await preparedGids(server().url), [], "no prepared transaction is left (pg_prepared_xacts)")

  t.test(`${mode}: nothing is visible before complete n; commit(n) is idempotent`, async (t) => {
    const { options, counts } = await setup("pgcommit")
    const recs = rows("a", 10)
    await withSink(options, (w) =>
      Effect.gen(function* () {
        yield* w.restore(undefined)
        yield* w.write(recs)
        const snap = yield* w.snapshot(1)
        const p = snap.pending[0] as unknown as Record<string, unknown>
        if (mode === "prepared") {
          t.same(
            p,
            { checkpoint: 1, txn: 1, gid: `${options.job}/out/0/1` },
            "the snapshot keeps the gid only"
          )
          t.same(
            yield* Effect.promise(() => preparedGids(server().url)),
            [`${options.job}/out/0/1`],
            "prepared"
          )
        } else t.equal((p.records as Array<unknown>).length, 10, "the snapshot keeps the records")
        t.equal((yield* Effect.promise(() => counts(recs))).rows, 0, "not visible before complete")
        yield* w.commit(1)
        yield* w.commit(1)
      })
    )
    t.same(await counts(recs), once(10))
    await noPrepared(t)
  })

  t.test(
    `${mode}: kill -9 of the sink after the barrier, then the same checkpoint restored twice`,
    async (t) => {
      const { options, counts, job, table } = await setup("pgkillpre")
      const recs = rows("k", 25)
      const c = sinkChild(
        { mode: "precommit", url: server().url, job, table, sinkMode: mode, records: recs },
        (f) => t.teardown(f)
      )
      const { snapshot } = await c.next("snapshot")
      c.kill()
      await c.exited
      t.equal((await counts(recs)).rows, 0, "nothing visible after the kill")
      await withSink(options, (w) => w.restore(snapshot as SinkSnapshot<never>))
      t.same(await counts(recs), once(25), "committed from the snapshot")
      await withSink(options, (w) =>
        Effect.andThen(w.restore(snapshot as SinkSnapshot<never>), w.restore(snapshot as SinkSnapshot<never>))
      )
      t.same(await counts(recs), once(25), "restored twice more: no duplicate")
      await noPrepared(t)
    }
  )

  t.test(`${mode}: kill -9 right after the commit: the restore skips it`, async (t) => {
    const { options, counts, job, table } = await setup("pgkillpost")
    const recs = rows("c", 10)
    const c = sinkChild(
      { mode: "committed", url: server().url, job, table, sinkMode: mode, records: recs },
      (f) => t.teardown(f)
    )
    const { snapshot } = await c.next("snapshot")
    const exit = await c.exited
    t.equal(exit.signal, "SIGKILL")
    t.same(await counts(recs), once(10), "the commit happened before the kill")
    await withSink(options, (w) => w.restore(snapshot as SinkSnapshot<never>))
    t.same(await counts(recs), once(10), "no duplicate")
    await noPrepared(t)
  })

  t.test(
    `${mode}: a crash between prepare and the checkpoint leaves nothing prepared after the restore`,
    async (t) => {
      const { options, counts, job, table } = await setup("pgtwo")
      const first = rows("x", 5)
      const second = rows("y", 5)
      const c = sinkChild(
        { mode: "twoPrepared", url: server().url, job, table, sinkMode: mode, records: first, more: second },
        (f) => t.teardown(f)
      )
      const { snapshot } = await c.next("snapshot")
      await c.next("snapshot2")
      if (mode === "prepared") t.equal((await preparedGids(server().url)).length, 2, "1 and 2 are prepared")
      c.kill()
      await c.exited
      // checkpoint 2 never completed: the job goes back to 1 and replays the second batch itself
      await withSink(options, (w) =>
        Effect.gen(function* () {
          yield* w.restore(snapshot as SinkSnapshot<never>)
          yield* w.write(second)
          yield* w.snapshot(2)
          yield* w.commit(2)
        })
      )
      t.same(
        await counts([...first, ...second]),
        once(10),
        "each batch once: the crashed 2 rolled back, the replay committed"
      )
      await noPrepared(t)
    }
  )

  t.test(`${mode}: a zombie sink (SIGSTOP, recovery, SIGCONT) is fenced`, async (t) => {
    const { options, counts, job, table } = await setup("pgzombie")
    const recs = rows("z", 10)
    const late = rows("late", 3)
    const c = sinkChild(
      { mode: "zombie", url: server().url, job, table, sinkMode: mode, records: recs, more: late },
      (f) => t.teardown(f)
    )
    const { snapshot } = await c.next("snapshot")
    c.stop()
    await withSink(options, (w) =>
      Effect.gen(function* () {
        yield* w.restore(snapshot as SinkSnapshot<never>)
        c.cont()
        c.send("go")
        const resumed = yield* Effect.promise(() => c.next("resumed"))
        t.notOk(resumed.ok, `the zombie's next commit fails: ${String(resumed.message)}`)
        t.match(String(resumed.error), /PgSinkUnavailable|PgSinkFenced|SinkCommitFailed/)
      })
    )
    t.same(await counts(recs), once(10), "the zombie's late records are not there, the recovered ones once")
    c.kill()
    await c.exited
    await noPrepared(t)
  })

  t.test(`${mode}: kill -9 of the PostgreSQL server between prepare and commit`, async (t) => {
    const { options, counts } = await setup("pgsrvpre")
    const first = rows("p", 20)
    const second = rows("q", 20)
    await withSink(options, (w) =>
      Effect.gen(function* () {
        yield* w.restore(undefined)
        yield* w.write(first)
        const s1 = yield* w.snapshot(1)
        yield* Effect.promise(() => server().kill())
        yield* Effect.promise(() => server().restart())
        yield* w.commit(1)
        // the open transaction died with the server: the runtime restores, then the sink goes on
        yield* w.restore(s1)
        yield* w.write(second)
        yield* w.snapshot(2)
        yield* w.commit(2)
      })
    )
    t.same(await counts([...first, ...second]), once(40))
    await noPrepared(t)
  })

  t.test(`${mode}: kill -9 of the PostgreSQL server during the commit`, async (t) => {
    const { options, counts } = await setup("pgsrvmid")
    const recs = rows("m", 200)
    const s1 = await withSink(options, (w) =>
      Effect.gen(function* () {
        yield* w.restore(undefined)
        yield* w.write(recs)
        const s1 = yield* w.snapshot(1)
        const commit = yield* Effect.forkChild(w.commit(1))
        yield* Effect.promise(() => server().kill())
        yield* Effect.promise(() => server().restart())
        yield* Fiber.join(commit)
        return s1
      })
    )
    t.same(await counts(recs), once(200), "committed exactly once, whatever the kill hit")
    await withSink(options, (w) => w.restore(s1))
    t.same(await counts(recs), once(200), "a restore of the same checkpoint afterwards adds nothing")
    await noPrepared(t)
  })

  t.test(`${mode}: a record the database rejects fails with an error naming it`, async (t) => {
    const { options, counts } = await setup("pgbad")
    const recs = [...rows("g", 3), { v: "bad" }]
    const failure = await withSink(options, (w) =>
      Effect.gen(function* () {
        yield* w.restore(undefined)
        return yield* Effect.flip(
          Effect.gen(function* () {
            yield* w.write(recs)
            yield* w.snapshot(1)
            yield* w.commit(1)
          })
        )
      })
    )
    const rejected =
      (failure as { _tag: string; cause?: { _tag?: string } })._tag === "PgSinkRecordRejected"
        ? failure
        : (failure as { cause?: unknown }).cause
    t.equal((rejected as { _tag?: string })._tag, "PgSinkRecordRejected", String((failure as Error).message))
    t.match((rejected as { sqlstate?: string }).sqlstate, /^23/, "a constraint violation (SQLSTATE class 23)")
    t.equal((await counts(recs.slice(0, 3))).rows, 0, "nothing of the failed transaction is visible")
    await noPrepared(t)
  })
}
