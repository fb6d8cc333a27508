/**
 * The generic two-phase-commit sink while a commit is in flight, with an in-memory resource whose
 * commits wait for the test to let them through: writes and snapshots go on meanwhile, the
 * transaction being committed stays in every snapshot until its commit is done, input waits once
 * `maxPendingTransactions` are pending, and a restore during a commit is not disturbed by it.
 */
import t from "tap"
import { Deferred, Effect, Fiber } from "effect"
import {
  checkPendingRecords,
  makeTwoPhaseCommitSink,
  type TransactionalResource,
  TransactionInDoubt
} from "../../lib/runtime/TwoPhaseCommitSink.ts"

const isRecord = (u: unknown): u is string => typeof u === "string"

interface GatedTxn {
  readonly n: number
  readonly records: Array<string>
}

/** Commits wait for `open(n)`; what a commit made visible is in `visible`; an aborted transaction's commit is in doubt (and did not happen). */
const gatedResource = () => {
  const gates = new Map<number, Deferred.Deferred<void>>()
  const gate = (n: number) => {
    let d = gates.get(n)
    if (!d) {
      d = Deferred.makeUnsafe<void>()
      gates.set(n, d)
    }
    return d
  }
  const visible: Array<string> = []
  const committed = new Set<number>()
  const aborted = new Set<GatedTxn>()
  const resource: TransactionalResource<GatedTxn, string, never> = {
    beginTransaction: (n) => Effect.sync(() => ({ n, records: [] })),
    write: (txn, rs) => Effect.sync(() => void txn.records.push(...rs)),
    preCommit: (_txn, _n, records) => Effect.succeed({ records }),
    commit: (txn) =>
      Deferred.await(gate(txn.n)).pipe(
        Effect.andThen(
          Effect.suspend(() => {
            if (aborted.has(txn))
              return Effect.fail(
                new TransactionInDoubt({ sink: "gated", checkpoint: txn.n, cause: "aborted" })
              )
            committed.add(txn.n)
            visible.push(...txn.records)
            return Effect.void
          })
        )
      ),
    recoverAndCommit: (p) =>
      Effect.sync(() => {
        if (committed.has(p.txn)) return
        committed.add(p.txn)
        visible.push(...p.records)
      }),
    abort: (txn) => Effect.sync(() => void aborted.add(txn)),
    isRecord,
    checkPending: checkPendingRecords(isRecord)
  }
  const open = (n: number) => Deferred.doneUnsafe(gate(n), Effect.void)
  return { resource, visible, open }
}

const settle = Effect.sleep("20 millis")

/** A fresh sink over `resource` with record "a" pre-committed under checkpoint 1 and its commit in flight. */
const withCommitInFlight = (resource: TransactionalResource<GatedTxn, string, never>) =>
  Effect.gen(function* () {
    const w = yield* makeTwoPhaseCommitSink(resource, { sink: "gated", maxTransactionRecords: 100 })
    yield* w.restore(undefined)
    yield* w.write(["a"])
    const s1 = yield* w.snapshot(1)
    const commit1 = yield* Effect.forkChild(w.commit(1))
    yield* settle
    return { w, s1, commit1 }
  })

t.test(
  "writes and snapshots go on while a commit waits for the broker; input waits at 2 pending",
  async (t) => {
    const { resource, visible, open } = gatedResource()
    await Effect.runPromise(
      Effect.gen(function* () {
        const { w, commit1 } = yield* withCommitInFlight(resource)
        t.equal(commit1.pollUnsafe(), undefined, "commit 1 waits for the broker")

        yield* w.write(["b"])
        const s2 = yield* w.snapshot(2)
        t.same(
          s2.pending.map((p) => [p.checkpoint, p.records]),
          [
            [1, ["a"]],
            [2, ["b"]]
          ],
          "snapshot 2 still holds transaction 1, whose commit is not confirmed"
        )

        const write = yield* Effect.forkChild(w.write(["c"]))
        yield* settle
        t.equal(write.pollUnsafe(), undefined, "with 2 pending and a commit in flight, input waits")
        t.same(visible, [], "nothing is visible before the broker commits")

        open(1)
        yield* Fiber.join(commit1)
        yield* Fiber.join(write)
        t.same(visible, ["a"], "commit 1 done")
        const s3 = yield* w.snapshot(3)
        t.same(
          s3.pending.map((p) => p.checkpoint),
          [2, 3],
          "a confirmed commit leaves the snapshot"
        )

        open(2)
        open(3)
        yield* w.commit(3)
        t.same(visible, ["a", "b", "c"], "every record once, in order")
      })
    )
  }
)

t.test("pending transactions that wait for `complete` (no commit in flight) never block input", async (t) => {
  const { resource } = gatedResource()
  await Effect.runPromise(
    Effect.gen(function* () {
      const w = yield* makeTwoPhaseCommitSink(resource, { sink: "gated", maxTransactionRecords: 100 })
      yield* w.restore(undefined)
      for (let n = 1; n <= 4; n++) {
        yield* w.write([`r${n}`])
        yield* w.snapshot(n)
      }
      // checkpoints 1-4 were never completed (e.g. aborted): a barrier behind this input must still pass
      const write = yield* Effect.forkChild(w.write(["r5"]))
      yield* settle
      t.ok(write.pollUnsafe() !== undefined, "the write went through")
    })
  )
})

t.test("a restore while a commit is in flight: the commit leaves the restored state alone", async (t) => {
  const { resource, visible, open } = gatedResource()
  await Effect.runPromise(
    Effect.gen(function* () {
      const { w, s1, commit1 } = yield* withCommitInFlight(resource)
      yield* w.restore(s1)
      t.same(visible, ["a"], "restore committed transaction 1 from the snapshot (recoverAndCommit)")
      open(1)
      yield* Fiber.join(commit1)
      t.same(visible, ["a"], "the commit that was in flight found it done: no duplicate")
      yield* w.write(["b"])
      yield* w.snapshot(2)
      open(2)
      yield* w.commit(2)
      t.same(visible, ["a", "b"])
    })
  )
})

/**
 * A transport that prepares durably (as PostgreSQL's PREPARE TRANSACTION does): the snapshot keeps
 * only the prepared transaction's id, and `recoverAndCommit` finishes it by that id from a new process.
 */
interface Prepared {
  readonly gid: string
}
const preparingResource = () => {
  /** the "server": prepared transactions by gid, and what is visible */
  const prepared = new Map<string, ReadonlyArray<string>>()
  const visible: Array<string> = []
  const resource: TransactionalResource<GatedTxn, string, never, Prepared> = {
    beginTransaction: (n) => Effect.sync(() => ({ n, records: [] })),
    write: (txn, rs) => Effect.sync(() => void txn.records.push(...rs)),
    preCommit: (txn, n) =>
      Effect.sync(() => {
        const gid = `job/sink/0/${n}`
        prepared.set(gid, [...txn.records])
        return { gid }
      }),
    commit: () => Effect.void,
    recoverAndCommit: (p) =>
      Effect.sync(() => {
        const records = prepared.get(p.gid)
        if (records === undefined) return
        prepared.delete(p.gid)
        visible.push(...records)
      }),
    abort: () => Effect.void,
    isRecord,
    checkPending: (entry) => (typeof entry.gid === "string" ? undefined : "gid is not a string")
  }
  return { resource, prepared, visible }
}

t.test("a transport that prepares durably keeps only its transaction id in the snapshot", async (t) => {
  const { resource, prepared, visible } = preparingResource()
  await Effect.runPromise(
    Effect.gen(function* () {
      const w = yield* makeTwoPhaseCommitSink(resource, { sink: "preparing", maxTransactionRecords: 100 })
      yield* w.restore(undefined)
      yield* w.write(["a", "b"])
      const s1 = yield* w.snapshot(1)
      t.same(s1.pending, [{ checkpoint: 1, txn: 1, gid: "job/sink/0/1" }], "ids and the gid, no records")
      t.notOk("records" in (s1.pending[0] ?? {}), "the records stay in the prepared transaction")

      // a new process restores the snapshot: the prepared transaction is committed by its id, once
      const w2 = yield* makeTwoPhaseCommitSink(resource, { sink: "preparing", maxTransactionRecords: 100 })
      yield* w2.restore(s1)
      yield* w2.restore(s1)
      t.same(visible, ["a", "b"], "committed from the gid, exactly once across two restores")
      t.equal(prepared.size, 0, "nothing left prepared")

      const forged = yield* Effect.flip(
        w2.restore({ checkpoint: 1, pending: [{ checkpoint: 1, txn: 1, gid: 7 }], carry: [] } as never)
      )
      t.match(forged.message, /pending 1: gid is not a string/, "a payload the transport rejects is named")
    })
  )
})
