/**
 * CheckpointStore against the real NATS (EXACTOR_NATS_URL, default 127.0.0.1:4222): snapshot round
 * trips and digest checks, epoch and manifest compare-and-set, retention and savepoints.
 * Every test uses its own job (and so its own buckets), destroyed at the end.
 */
import { randomBytes } from "node:crypto"
import { Kvm } from "@nats-io/kv"
import { Objm } from "@nats-io/obj"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { Effect } from "effect"
import t from "tap"
import {
  CheckpointStore,
  type CheckpointStoreOptions,
  type Manifest,
  type SnapshotHandle
} from "../../lib/checkpoint/CheckpointStore.ts"
import { natsUrl, uniqueName } from "../harness/env.ts"

let nc: NatsConnection
const buckets: Array<string> = []

t.before(async () => {
  nc = await connect({ servers: natsUrl, name: "checkpoint-store.test" })
})
t.teardown(async () => {
  for (const b of buckets) {
    await (await new Kvm(nc).open(b)).destroy()
    await (await new Objm(nc).open(b)).destroy()
  }
  await nc.close()
})

const run = <A, E>(eff: Effect.Effect<A, E>): Promise<A> => Effect.runPromise(eff)
const fail = <A, E>(eff: Effect.Effect<A, E>): Promise<E> => Effect.runPromise(Effect.flip(eff))

const openStore = async (options: CheckpointStoreOptions = {}): Promise<CheckpointStore> => {
  const store = await run(CheckpointStore.open(nc, uniqueName("ckstore"), options))
  buckets.push(store.bucket)
  return store
}

/** A manifest of checkpoint n with one snapshot per instance of `instances`. */
const checkpoint = async (store: CheckpointStore, n: number, instances: ReadonlyArray<[string, number]>) => {
  const handles: Record<string, SnapshotHandle> = {}
  for (const [op, i] of instances)
    handles[`${op}#${i}`] = await run(store.putSnapshot(n, op, i, { n, op, i, pad: "x".repeat(64) }))
  const m: Manifest = {
    job: store.job,
    checkpoint: n,
    epoch: 1,
    createdAt: Date.now(),
    kind: "checkpoint",
    handles,
    parallelism: { count: 2 }
  }
  return m
}

const objectNames = async (store: CheckpointStore) =>
  (await (await new Objm(nc).open(store.bucket)).list()).map((o) => o.name).sort()

t.test("small state round-trips inline, with the digest the object store computes", async (t) => {
  const store = await openStore()
  const state = { words: { a: 1, b: 2 }, position: 42 }
  const h = await run(store.putSnapshot(1, "count", 0, state))
  t.equal(h.kind, "inline")
  t.match(h.digest, /^SHA-256=[A-Za-z0-9_-]{43}=$/)
  t.same(await run(store.getSnapshot(h)), state)
  t.same(await objectNames(store), [], "an inline snapshot does not touch the object store")

  const always = await openStore({ inlineLimit: 0 })
  const o = await run(always.putSnapshot(1, "count", 0, state))
  t.equal(o.kind, "object")
  t.equal(o.digest, h.digest, "inline and object digests of the same bytes are equal")
  t.equal(o.size, h.size)
})

t.test("a 1 MiB state round-trips through the object store", async (t) => {
  const store = await openStore()
  const blob = randomBytes(1024 * 1024)
  const h = await run(store.putSnapshot(7, "join", 3, { blob, n: 7 }))
  t.equal(h.kind, "object")
  t.equal(h.kind === "object" ? h.name : "", "ckpt/7/join/3")
  t.ok(h.size > 1024 * 1024)
  const back = (await run(store.getSnapshot(h))) as { blob: Uint8Array; n: number }
  t.equal(back.n, 7)
  t.ok(Buffer.from(back.blob).equals(blob), "same bytes")
})

t.test("tampered, missing or mis-digested snapshots are SnapshotCorrupt", async (t) => {
  const store = await openStore({ inlineLimit: 0 })
  const h = await run(store.putSnapshot(2, "count", 1, { total: 10 }))
  if (h.kind !== "object") throw new Error("expected an object handle")
  const os = await new Objm(nc).open(store.bucket)
  await os.putBlob({ name: h.name }, new Uint8Array([0x91, 0x01]))
  const tampered = await fail(store.getSnapshot(h))
  t.equal(tampered._tag, "SnapshotCorrupt")
  if (tampered._tag === "SnapshotCorrupt") {
    t.equal(tampered.name, "ckpt/2/count/1")
    t.equal(tampered.expected, h.digest)
    t.not(tampered.actual, h.digest)
    t.match(tampered.message, /ckpt\/2\/count\/1.*does not match/)
  }

  await os.delete(h.name)
  const missing = await fail(store.getSnapshot(h))
  t.equal(missing._tag, "SnapshotCorrupt")
  t.match(missing.message, /no such object/)

  const small = await openStore()
  const inline = await run(small.putSnapshot(2, "count", 0, { total: 3 }))
  const wrong = await fail(small.getSnapshot({ ...inline, digest: h.digest }))
  t.equal(wrong._tag, "SnapshotCorrupt")
})

t.test("epoch compare-and-set fences a stale bump", async (t) => {
  const store = await openStore()
  const zero = await run(store.readEpoch())
  t.same(zero, { epoch: 0, revision: 0 })
  const one = await run(store.bumpEpoch(zero))
  t.equal(one.epoch, 1)
  t.ok(one.revision > 0)
  const stale = await fail(store.bumpEpoch(zero))
  t.equal(stale._tag, "EpochConflict")
  t.match(stale.message, /fenced/)
  const two = await run(store.bumpEpoch(one))
  t.equal(two.epoch, 2)
  t.equal((await fail(store.bumpEpoch(one)))._tag, "EpochConflict")
  t.same(await run(store.readEpoch()), two)
})

t.test("manifest compare-and-set on latest", async (t) => {
  const store = await openStore()
  t.equal(await run(store.readLatest()), undefined)
  const m1 = await checkpoint(store, 1, [["count", 0]])
  const m2 = await checkpoint(store, 2, [["count", 0]])
  const r1 = await run(store.commitManifest(m1, 0))
  const conflict = await fail(store.commitManifest(m2, 0))
  t.equal(conflict._tag, "ManifestConflict")
  if (conflict._tag === "ManifestConflict") t.equal(conflict.checkpoint, 2)
  const r2 = await run(store.commitManifest(m2, r1))
  t.equal((await fail(store.commitManifest(m1, r1)))._tag, "ManifestConflict")
  const latest = await run(store.readLatest())
  t.equal(latest?.revision, r2)
  t.equal(latest?.manifest.checkpoint, 2)
  t.same(
    (await run(store.listCheckpoints())).map((m) => m.checkpoint),
    [2, 1]
  )
  t.equal((await run(store.readCheckpoint(1)))?.checkpoint, 1)
  t.equal(await run(store.readCheckpoint(9)), undefined)
})

t.test("retain(2) after 4 checkpoints keeps the newest 2 and their objects", async (t) => {
  const store = await openStore({ inlineLimit: 0 })
  let revision = 0
  const ms: Array<Manifest> = []
  for (let n = 1; n <= 4; n++) {
    const m = await checkpoint(store, n, [
      ["count", 0],
      ["count", 1]
    ])
    revision = await run(store.commitManifest(m, revision))
    ms.push(m)
  }
  // an aborted checkpoint 0 left an object behind
  await run(store.putSnapshot(0, "count", 0, { leftover: true }))
  const result = await run(store.retain(2))
  t.same([...result.deletedCheckpoints].sort(), [1, 2])
  t.equal(result.deletedObjects, 5)
  t.same(
    (await run(store.listCheckpoints())).map((m) => m.checkpoint),
    [4, 3]
  )
  t.equal(await run(store.readCheckpoint(1)), undefined)
  t.same(await objectNames(store), ["ckpt/3/count/0", "ckpt/3/count/1", "ckpt/4/count/0", "ckpt/4/count/1"])
  for (const m of ms.slice(2))
    for (const h of Object.values(m.handles)) t.ok(await run(store.getSnapshot(h)), "kept snapshot readable")
  const gone = Object.values(ms[0]?.handles ?? {})[0]
  if (gone) t.equal((await fail(store.getSnapshot(gone)))._tag, "SnapshotCorrupt")
})

t.test("deleteUncompleted removes an aborted checkpoint's objects only", async (t) => {
  const store = await openStore({ inlineLimit: 0 })
  const m1 = await checkpoint(store, 1, [["src", 0]])
  await run(store.commitManifest(m1, 0))
  await checkpoint(store, 2, [
    ["src", 0],
    ["sink", 0]
  ])
  t.equal(await run(store.deleteUncompleted(2)), 2)
  t.equal(await run(store.deleteUncompleted(1)), 0, "a completed checkpoint's objects are protected")
  t.same(await objectNames(store), ["ckpt/1/src/0"])
})

t.test("a savepoint owns copies, survives retention, is listed, read and deleted", async (t) => {
  const store = await openStore({ inlineLimit: 16 })
  let revision = 0
  const m1 = await checkpoint(store, 1, [["count", 0]])
  // one inline handle as well
  const m1b: Manifest = {
    ...m1,
    handles: { ...m1.handles, "src#0": await run(store.putSnapshot(1, "src", 0, 5)) }
  }
  revision = await run(store.commitManifest(m1b, revision))
  const sp = await run(store.writeSavepoint(m1b, "before-upgrade"))
  t.equal(sp.kind, "savepoint")
  t.equal(sp.name, "before-upgrade")
  t.same(
    sp.handles["count#0"]?.kind === "object" && sp.handles["count#0"].name,
    "savepoint/before-upgrade/count/0"
  )
  t.equal(sp.handles["src#0"]?.kind, "inline")
  t.equal((await fail(store.writeSavepoint(m1b, "before-upgrade")))._tag, "SavepointExists")

  for (let n = 2; n <= 4; n++)
    revision = await run(store.commitManifest(await checkpoint(store, n, [["count", 0]]), revision))
  await run(store.retain(1))
  t.same(await objectNames(store), ["ckpt/4/count/0", "savepoint/before-upgrade/count/0"])

  t.same(
    (await run(store.listSavepoints())).map((m) => m.name),
    ["before-upgrade"]
  )
  const read = await run(store.readSavepoint("before-upgrade"))
  t.same(await run(store.getSnapshot(read.handles["count#0"] as SnapshotHandle)), {
    n: 1,
    op: "count",
    i: 0,
    pad: "x".repeat(64)
  })
  t.equal(await run(store.getSnapshot(read.handles["src#0"] as SnapshotHandle)), 5)

  await run(store.deleteSavepoint("before-upgrade"))
  t.same(await run(store.listSavepoints()), [])
  t.equal((await fail(store.readSavepoint("before-upgrade")))._tag, "SavepointNotFound")
  t.equal((await fail(store.deleteSavepoint("before-upgrade")))._tag, "SavepointNotFound")
  t.same(await objectNames(store), ["ckpt/4/count/0"])

  const bad = await fail(store.writeSavepoint(m1b, "a.b"))
  t.equal(bad._tag, "InvalidStoreName")
  t.match(bad.message, /savepoint name "a\.b"/)
})

t.test("restarts from a savepoint or from nothing are not listed as checkpoints", async (t) => {
  const store = await openStore({ inlineLimit: 0 })
  let revision = await run(store.commitManifest(await checkpoint(store, 1, [["count", 0]]), 0))
  const sp = await run(store.writeSavepoint((await run(store.readLatest()))!.manifest, "sp"))
  revision = await run(store.commitManifest({ ...sp, createdAt: Date.now() }, revision))
  revision = await run(store.commitManifest({ ...sp, handles: {}, name: "fresh" }, revision))
  t.same(
    (await run(store.listCheckpoints())).map((m) => m.checkpoint),
    [1]
  )
  t.equal((await run(store.readCheckpoint(1)))?.kind, "checkpoint", "ckpt.1 not overwritten")
  revision = await run(store.commitManifest(sp, revision))
  await run(store.deleteSavepoint("sp"))
  t.same(await objectNames(store), ["ckpt/1/count/0", "savepoint/sp/count/0"], "latest still needs them")
  revision = await run(store.commitManifest(await checkpoint(store, 2, [["count", 0]]), revision))
  await run(store.retain(1))
  t.same(await objectNames(store), ["ckpt/2/count/0"], "orphaned savepoint objects swept")
})

t.test("a manifest too big for one KV value moves inline snapshots to objects", async (t) => {
  const store = await openStore()
  const handles: Record<string, SnapshotHandle> = {}
  for (let i = 0; i < 40; i++)
    handles[`wide#${i}`] = await run(store.putSnapshot(3, "wide", i, randomBytes(30 * 1024)))
  t.ok(Object.values(handles).every((h) => h.kind === "inline"))
  const m: Manifest = {
    job: store.job,
    checkpoint: 3,
    epoch: 1,
    createdAt: Date.now(),
    kind: "checkpoint",
    handles,
    parallelism: { wide: 40 }
  }
  await run(store.commitManifest(m, 0))
  const latest = await run(store.readLatest())
  const stored = Object.values(latest?.manifest.handles ?? {})
  t.equal(stored.length, 40)
  t.ok(stored.some((h) => h.kind === "object"))
  for (const [key, h] of Object.entries(latest?.manifest.handles ?? {}))
    t.ok(
      Buffer.from((await run(store.getSnapshot(h))) as Uint8Array).equals(
        Buffer.from((await run(store.getSnapshot(handles[key] as SnapshotHandle))) as Uint8Array)
      )
    )
})

t.test("status record and name validation", async (t) => {
  const store = await openStore()
  t.equal(await run(store.readStatus()), undefined)
  await run(store.writeStatus({ state: "RUNNING", epoch: 3 }))
  await run(store.writeStatus({ state: "FINISHED", epoch: 3 }))
  t.same(await run(store.readStatus()), { state: "FINISHED", epoch: 3 })
  const bad = await fail(CheckpointStore.open(nc, "no spaces"))
  t.equal(bad._tag, "InvalidStoreName")
  t.match(bad.message, /^job "no spaces" is invalid/)
})
