/**
 * SinkCommits: commits started one after another never overlap (a writer's commit need not be
 * reentrant), each `complete n` is answered when its commit is done, and whether they run beside
 * the task loop is the writer's call (`commitsBesideInput`); `complete n` commits only when the store
 * records checkpoint n as completed in this epoch's lineage (defence in depth against forged commands).
 */
import t from "tap"
import { Effect, Scope } from "effect"
import type { SinkWriter } from "../../lib/api/Operator.ts"
import { type CommitGate, type CompletedCheckpoint, SinkCommits } from "../../lib/runtime/SinkCommits.ts"
import { initialTaskStats as stats } from "../../lib/runtime/TaskStats.ts"

/** A store that records every checkpoint as completed (epoch 1). */
const allCompleted: CommitGate = {
  epoch: 1,
  latestCompleted: Effect.succeed({ checkpoint: Number.MAX_SAFE_INTEGER, epoch: 1 })
}

/** A writer whose commit takes 30 ms and counts how many run at once. */
const slowWriter = (besideInput: boolean) => {
  let running = 0
  const seen = { maxConcurrent: 0, committed: [] as Array<number> }
  const writer: SinkWriter<unknown> = {
    write: () => Effect.void,
    snapshot: () => Effect.void,
    commit: (n) =>
      Effect.gen(function* () {
        running++
        seen.maxConcurrent = Math.max(seen.maxConcurrent, running)
        yield* Effect.sleep("30 millis")
        seen.committed.push(n)
        running--
      }),
    restore: () => Effect.void,
    full: () => false,
    ...(besideInput ? { commitsBesideInput: true } : {})
  }
  return { writer, seen }
}

t.test("commits started beside the loop run one at a time, in order, and each is answered", async (t) => {
  const { writer, seen } = slowWriter(true)
  const s = stats()
  const replies: Array<[number, boolean]> = []
  await Effect.runPromise(
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const commits = new SinkCommits(writer, scope, s, allCompleted)
      t.equal(commits.besideInput, true)
      for (const n of [1, 2, 3]) yield* commits.start(n, (ok) => replies.push([n, ok]))
      t.same(replies, [], "start returns at once")
      yield* Effect.sleep("200 millis")
      yield* commits.check
    })
  )
  t.equal(seen.maxConcurrent, 1, "never two commits at once")
  t.same(seen.committed, [1, 2, 3])
  t.same(replies, [
    [1, true],
    [2, true],
    [3, true]
  ])
  t.ok(s.commitMs >= 80, `time with a commit in flight counted (${Math.round(s.commitMs)} ms)`)
})

t.test("a writer that cannot commit beside its input is committed in the loop (run)", async (t) => {
  const { writer, seen } = slowWriter(false)
  await Effect.runPromise(
    Effect.gen(function* () {
      const commits = new SinkCommits(writer, yield* Scope.make(), stats(), allCompleted)
      t.equal(commits.besideInput, false)
      let answered = false
      yield* commits.run(4, () => (answered = true))
      t.ok(answered, "answered when run returns")
    })
  )
  t.same(seen.committed, [4])
})

/** A gate whose latest completed checkpoint the test sets; counts the store reads. */
const settableGate = (epoch: number) => {
  const g = { latest: undefined as CompletedCheckpoint | undefined, reads: 0 }
  const gate: CommitGate = {
    epoch,
    latestCompleted: Effect.sync(() => {
      g.reads++
      return g.latest
    })
  }
  return { g, gate }
}

t.test("complete n for a checkpoint the store has not completed commits nothing", async (t) => {
  for (const besideInput of [true, false]) {
    const { writer, seen } = slowWriter(besideInput)
    const { g, gate } = settableGate(3)
    const s = stats()
    const replies: Array<[number, boolean, string | undefined]> = []
    const answer = (n: number) => (ok: boolean, err?: string) => replies.push([n, ok, err])
    const started = Date.now()
    await Effect.runPromise(
      Effect.gen(function* () {
        const commits = new SinkCommits(writer, yield* Scope.make(), s, gate)
        // nothing completed yet, then an older one, then a newer epoch's: each refused
        yield* commits.run(7, answer(7))
        g.latest = { checkpoint: 6, epoch: 3 }
        yield* commits.run(7, answer(7))
        g.latest = { checkpoint: 9, epoch: 4 }
        yield* commits.run(7, answer(7))
        yield* commits.check
        t.same(seen.committed, [], `${besideInput ? "beside" : "in"} the loop: nothing committed`)
        t.equal(s.refusedCommits, 3, "each refusal counted")
        t.same(
          replies.map(([n, ok]) => [n, ok]),
          [
            [7, false],
            [7, false],
            [7, false]
          ],
          "answered not-ok"
        )
        t.match(replies[0]?.[2], /complete 7 refused in epoch 3: the store records no completed checkpoint/)
        t.match(replies[1]?.[2], /latest completed checkpoint is 6/)
        t.match(replies[2]?.[2], /newer epoch 4/)
        // once the store says 7 is complete (in this lineage: an older epoch's manifest counts), it commits
        g.latest = { checkpoint: 7, epoch: 2 }
        const reads = g.reads
        yield* commits.run(7, answer(7))
        t.same(seen.committed, [7], "committed once the store records it")
        t.equal(g.reads - reads, 1, "the store is read once per commit")
        t.same(replies.at(-1), [7, true, undefined])
      })
    )
    t.ok(Date.now() - started >= 1000, "an early complete re-reads the store for a while before refusing")
  }
})

t.test("a store that cannot be read fails the epoch, as a failed commit does", async (t) => {
  const { writer, seen } = slowWriter(true)
  const gate: CommitGate = { epoch: 1, latestCompleted: Effect.fail("store down") }
  const replies: Array<boolean> = []
  const exit = await Effect.runPromiseExit(
    Effect.gen(function* () {
      const commits = new SinkCommits(writer, yield* Scope.make(), stats(), gate)
      yield* Effect.exit(commits.run(1, (ok) => replies.push(ok)))
      yield* commits.check
    })
  )
  t.equal(exit._tag, "Failure", "check fails")
  t.same(replies, [false])
  t.same(seen.committed, [])
})
