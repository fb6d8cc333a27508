/**
 * SinkCommits: commits started one after another never overlap (a writer's commit need not be
 * reentrant), each `complete n` is answered when its commit is done, and whether they run beside
 * the task loop is the writer's call (`commitsBesideInput`).
 */
import t from "tap"
import { Effect, Scope } from "effect"
import type { SinkWriter } from "../../lib/api/Operator.ts"
import { SinkCommits } from "../../lib/runtime/SinkCommits.ts"
import { initialTaskStats as stats } from "../../lib/runtime/TaskStats.ts"

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
      const commits = new SinkCommits(writer, scope, s)
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
      const commits = new SinkCommits(writer, yield* Scope.make(), stats())
      t.equal(commits.besideInput, false)
      let answered = false
      yield* commits.run(4, () => (answered = true))
      t.ok(answered, "answered when run returns")
    })
  )
  t.same(seen.committed, [4])
})
