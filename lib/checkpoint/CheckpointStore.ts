/**
 * Where a job's checkpoints live: snapshots in the JetStream Object Store `exactor-<job>`, and the
 * epoch, the `latest` manifest, completed manifests (`ckpt.<n>`), savepoints (`savepoint.<name>`)
 * and the status record in the KV bucket `exactor-<job>` (DESIGN §3, §4).
 * Invariants: `epoch` and `latest` change only by compare-and-set; a snapshot is returned only if
 * its bytes match the digest of its handle; retention never deletes an object that `latest`, a kept
 * checkpoint or a savepoint references. A savepoint owns copies of its objects (`savepoint/<name>/...`).
 */
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { JetStreamApiCodes, JetStreamApiError, StorageType } from "@nats-io/jetstream"
import { type KV, Kvm } from "@nats-io/kv"
import { type ObjectStore, Objm, setSha256Backend } from "@nats-io/obj"
import type { NatsConnection } from "@nats-io/transport-node"
import {
  CheckpointStoreError,
  type CheckpointStoreOptions,
  digestOf,
  EpochConflict,
  type EpochRecord,
  InvalidStoreName,
  ManifestConflict,
  type RetainResult,
  SavepointExists,
  SavepointNotFound,
  SnapshotCorrupt,
  instancePath,
  type Manifest,
  manifestProblem,
  objectNames,
  type SnapshotHandle,
  sameDigest
} from "./Manifest.ts"
import { packr } from "../internal/msgpack.ts"

export type {
  CheckpointStoreOptions,
  EpochRecord,
  InlineHandle,
  Manifest,
  ObjectHandle,
  RetainResult,
  SnapshotHandle
} from "./Manifest.ts"
export {
  CheckpointStoreError,
  EpochConflict,
  InvalidStoreName,
  ManifestConflict,
  SavepointExists,
  SavepointNotFound,
  SnapshotCorrupt
} from "./Manifest.ts"

// The object store digests every snapshot with SHA-256; its default is a pure-JS hash, which was
// the sink's largest CPU cost (its snapshot carries the open transaction). Node's is native.
setSha256Backend("native")

type StoreEffect<A, E = never> = Effect.Effect<A, E | CheckpointStoreError>

export interface CheckpointStore {
  readonly job: string
  /** the name of both the Object Store and the KV bucket: `exactor-<job>` */
  readonly bucket: string
  /** Inline handle when small, else object `ckpt/<n>/<operator>/<index>`. */
  readonly putSnapshot: (
    n: number,
    operator: string,
    index: number,
    state: unknown
  ) => StoreEffect<SnapshotHandle>
  /** Reads, verifies the digest against the handle, decodes. */
  readonly getSnapshot: (handle: SnapshotHandle) => StoreEffect<unknown, SnapshotCorrupt>
  readonly readEpoch: () => StoreEffect<EpochRecord>
  /** epoch + 1 if `epoch` is still at `expected.revision` (fences an older coordinator). */
  readonly bumpEpoch: (expected: EpochRecord) => StoreEffect<EpochRecord, EpochConflict>
  readonly readLatest: () => StoreEffect<
    { readonly manifest: Manifest; readonly revision: number } | undefined
  >
  /** CAS of `latest` (0 = must be absent); returns its new revision. Also records `ckpt.<n>`. */
  readonly commitManifest: (m: Manifest, expectedRevision: number) => StoreEffect<number, ManifestConflict>
  /** Completed checkpoints, newest first. */
  readonly listCheckpoints: () => StoreEffect<ReadonlyArray<Manifest>>
  readonly readCheckpoint: (n: number) => StoreEffect<Manifest | undefined>
  /** Keeps the newest `k` completed checkpoints; deletes older manifests and unreferenced objects. */
  readonly retain: (k: number) => StoreEffect<RetainResult>
  /** Deletes the objects of aborted checkpoint `n`; returns how many. */
  readonly deleteUncompleted: (n: number) => StoreEffect<number>
  /** Copies `m`'s objects to `savepoint/<name>/...` and stores the copy's manifest. */
  readonly writeSavepoint: (
    m: Manifest,
    name: string
  ) => StoreEffect<Manifest, InvalidStoreName | SavepointExists | SnapshotCorrupt>
  /** Newest first. */
  readonly listSavepoints: () => StoreEffect<ReadonlyArray<Manifest>>
  readonly readSavepoint: (name: string) => StoreEffect<Manifest, InvalidStoreName | SavepointNotFound>
  /** Deletes the manifest, then its objects (except any `latest` still references). */
  readonly deleteSavepoint: (name: string) => StoreEffect<void, InvalidStoreName | SavepointNotFound>
  /** Last writer wins. */
  readonly writeStatus: (status: unknown) => StoreEffect<void>
  readonly readStatus: () => StoreEffect<unknown>
}

const safeName = /^[A-Za-z0-9_-]{1,200}$/
const validName = (field: string, value: string): Effect.Effect<string, InvalidStoreName> =>
  safeName.test(value) ? Effect.succeed(value) : Effect.fail(new InvalidStoreName({ field, value }))

const isWrongLastSequence = (cause: unknown): boolean =>
  cause instanceof JetStreamApiError &&
  (cause.code === JetStreamApiCodes.StreamWrongLastSequence ||
    cause.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)

/** A checkpoint's own objects (not a restored savepoint's). */
const checkpointPrefix = (n: number) => `ckpt/${n}/`
const savepointPrefix = (name: string) => `savepoint/${name}/`
const checkpointOf = (objectName: string): number | undefined => {
  const m = /^ckpt\/(\d+)\//.exec(objectName)
  return m?.[1] === undefined ? undefined : Number(m[1])
}
const byNewest = (a: Manifest, b: Manifest) => b.checkpoint - a.checkpoint || b.createdAt - a.createdAt

const open = (
  nc: NatsConnection,
  job: string,
  options: CheckpointStoreOptions = {}
): Effect.Effect<CheckpointStore, CheckpointStoreError | InvalidStoreName> =>
  Effect.gen(function* () {
    const bucket = `exactor-${yield* validName("job", job)}`
    const inlineLimit = options.inlineLimit ?? 32 * 1024
    const io = <A>(operation: string, f: () => Promise<A>) =>
      Effect.tryPromise({ try: f, catch: (cause) => new CheckpointStoreError({ job, operation, cause }) })
    const kv: KV = yield* io(`create KV bucket ${bucket}`, () =>
      new Kvm(nc).create(bucket, { history: 1, storage: StorageType.File })
    )
    const os: ObjectStore = yield* io(`create object store ${bucket}`, () =>
      new Objm(nc).create(bucket, { storage: StorageType.File })
    )
    /** A KV value never exceeds max_payload: bigger manifests move inline handles to objects. */
    const maxManifest = (nc.info?.max_payload ?? 1024 * 1024) - 16 * 1024

    const decode = (what: string, bytes: Uint8Array) =>
      Effect.try({
        try: () => packr.unpack(bytes) as unknown,
        catch: (cause) => new CheckpointStoreError({ job, operation: `decode ${what}`, cause })
      })

    const getValue = (key: string) =>
      Effect.gen(function* () {
        const e = yield* io(`read ${key}`, () => kv.get(key))
        if (e === null || e.operation !== "PUT") return undefined
        return { value: yield* decode(key, e.value), revision: e.revision }
      })

    const getManifest = (key: string) =>
      Effect.gen(function* () {
        const got = yield* getValue(key)
        if (got === undefined) return undefined
        const problem = manifestProblem(got.value)
        if (problem !== undefined)
          return yield* new CheckpointStoreError({
            job,
            operation: `read ${key}`,
            cause: `malformed manifest: ${problem}`
          })
        return { manifest: got.value as Manifest, revision: got.revision }
      })

    const keys = (filter: string) =>
      io(`list ${filter}`, async () => {
        const out: Array<string> = []
        for await (const k of await kv.keys(filter)) out.push(k)
        return out
      })

    const manifests = (filter: string) =>
      Effect.gen(function* () {
        const found = yield* Effect.forEach(yield* keys(filter), getManifest, { concurrency: 8 })
        return found.flatMap((f) => (f === undefined ? [] : [f.manifest]))
      })

    const putObject = (name: string, bytes: Uint8Array) =>
      io(`put object ${name}`, () => os.putBlob({ name }, bytes))

    const deleteObjects = (names: ReadonlyArray<string>) =>
      Effect.forEach(names, (name) => io(`delete object ${name}`, () => os.delete(name)), {
        concurrency: 8,
        discard: true
      }).pipe(Effect.as(names.length))

    const listObjects = () => io("list objects", () => os.list())

    /** Moves the largest inline handles into objects under `prefix` until `m` fits one KV value. */
    const fit = (m: Manifest, prefix: string) =>
      Effect.gen(function* () {
        let current = m
        while (packr.pack(current).length > maxManifest) {
          const largest = Object.entries(current.handles)
            .filter(([, h]) => h.kind === "inline")
            .sort(([, a], [, b]) => b.size - a.size)[0]
          if (largest === undefined || largest[1].kind !== "inline")
            return yield* new CheckpointStoreError({
              job,
              operation: `store manifest of checkpoint ${m.checkpoint}`,
              cause: "too large even without inline snapshots"
            })
          const [key, h] = largest
          const name = prefix + instancePath(key)
          yield* putObject(name, h.bytes)
          current = {
            ...current,
            handles: { ...current.handles, [key]: { kind: "object", name, size: h.size, digest: h.digest } }
          }
        }
        return current
      })

    const casError =
      <E>(conflict: () => E, operation: string) =>
      (cause: unknown) =>
        isWrongLastSequence(cause) ? conflict() : new CheckpointStoreError({ job, operation, cause })
    const cas = <E>(key: string, value: unknown, revision: number, conflict: () => E) =>
      Effect.tryPromise({
        try: () =>
          revision === 0 ? kv.create(key, packr.pack(value)) : kv.update(key, packr.pack(value), revision),
        catch: casError(conflict, `write ${key}`)
      })

    const putSnapshot = (n: number, operator: string, index: number, state: unknown) =>
      Effect.gen(function* () {
        const bytes = yield* Effect.try({
          try: () => packr.pack(state) as Uint8Array,
          catch: (cause) =>
            new CheckpointStoreError({ job, operation: `encode state of ${operator}#${index}`, cause })
        })
        const digest = digestOf(bytes)
        if (bytes.length <= inlineLimit) return { kind: "inline", bytes, size: bytes.length, digest } as const
        const name = `${checkpointPrefix(n)}${operator}/${index}`
        const info = yield* putObject(name, bytes)
        return { kind: "object", name, size: info.size, digest: info.digest } as const
      })

    /** The bytes of an object handle, or SnapshotCorrupt if missing, unreadable or not matching. */
    const objectBytes = (h: SnapshotHandle & { kind: "object" }) =>
      Effect.gen(function* () {
        const corrupt = (actual: string) =>
          new SnapshotCorrupt({ job, name: h.name, expected: h.digest, actual })
        const bytes = yield* Effect.tryPromise({
          try: () => os.getBlob(h.name),
          catch: (cause) =>
            cause instanceof Error && cause.message.includes("corrupt")
              ? corrupt(cause.message.split("\n").join(" "))
              : new CheckpointStoreError({ job, operation: `read object ${h.name}`, cause })
        })
        if (bytes === null) return yield* corrupt("no such object (deleted or never written)")
        const actual = digestOf(bytes)
        if (!sameDigest(actual, h.digest)) return yield* corrupt(actual)
        return bytes
      })

    const getSnapshot = (h: SnapshotHandle) =>
      Effect.gen(function* () {
        let bytes: Uint8Array
        if (h.kind === "object") bytes = yield* objectBytes(h)
        else {
          bytes = h.bytes
          const actual = digestOf(bytes)
          if (!sameDigest(actual, h.digest))
            return yield* new SnapshotCorrupt({ job, name: "inline", expected: h.digest, actual })
        }
        return yield* decode(h.kind === "object" ? h.name : "inline snapshot", bytes)
      })

    const readEpoch = () =>
      getValue("epoch").pipe(
        Effect.map((got) => ({
          epoch: typeof got?.value === "number" ? got.value : 0,
          revision: got?.revision ?? 0
        }))
      )

    const bumpEpoch = (expected: EpochRecord) =>
      cas(
        "epoch",
        expected.epoch + 1,
        expected.revision,
        () => new EpochConflict({ job, expectedEpoch: expected.epoch, expectedRevision: expected.revision })
      ).pipe(Effect.map((revision) => ({ epoch: expected.epoch + 1, revision })))

    const readLatest = () => getManifest("latest")

    /**
     * Records `ckpt.<n>` for a checkpoint's own manifest (at least one handle, objects only under
     * `ckpt/<n>/`): not for a fresh start (no handles) nor for a restart from a savepoint.
     */
    const recordCheckpoint = (m: Manifest) =>
      io(`record ckpt.${m.checkpoint}`, () => kv.put(`ckpt.${m.checkpoint}`, packr.pack(m))).pipe(
        Effect.asVoid,
        Effect.retry(Schedule.exponential("50 millis").pipe(Schedule.upTo({ times: 3 }))),
        // `latest` is committed and authoritative; listCheckpoints falls back on it.
        Effect.catch((e) =>
          Effect.logWarning(`checkpoint ${m.checkpoint} committed but not indexed: ${e.message}`)
        )
      )
    const isOwn = (m: Manifest) =>
      Object.keys(m.handles).length > 0 &&
      objectNames(m).every((name) => name.startsWith(checkpointPrefix(m.checkpoint)))

    const commitManifest = (m: Manifest, expectedRevision: number) =>
      Effect.gen(function* () {
        const stored = yield* fit(m, checkpointPrefix(m.checkpoint))
        const revision = yield* cas(
          "latest",
          stored,
          expectedRevision,
          () => new ManifestConflict({ job, checkpoint: m.checkpoint, expectedRevision })
        )
        if (isOwn(stored)) yield* recordCheckpoint(stored)
        return revision
      })

    const listCheckpoints = () =>
      Effect.gen(function* () {
        const list = yield* manifests("ckpt.*")
        const latest = yield* readLatest()
        const l = latest?.manifest
        if (l && isOwn(l) && !list.some((m) => m.checkpoint === l.checkpoint)) list.push(l)
        return list.sort(byNewest)
      })

    const readCheckpoint = (n: number) =>
      Effect.gen(function* () {
        const found = yield* getManifest(`ckpt.${n}`)
        if (found) return found.manifest
        const latest = yield* readLatest()
        return latest?.manifest.checkpoint === n ? latest.manifest : undefined
      })

    const listSavepoints = () =>
      manifests("savepoint.*").pipe(Effect.map((l) => l.sort((a, b) => b.createdAt - a.createdAt)))

    const retain = (k: number) =>
      Effect.gen(function* () {
        if (!Number.isInteger(k) || k < 1)
          return yield* new CheckpointStoreError({
            job,
            operation: `retain(${k})`,
            cause: "k must be an integer >= 1"
          })
        const all = yield* listCheckpoints()
        const kept = all.slice(0, k)
        const dropped = all.slice(k)
        const latest = yield* readLatest()
        const savepoints = yield* listSavepoints()
        const referenced = new Set(
          [...kept, ...savepoints, ...(latest ? [latest.manifest] : [])].flatMap(objectNames)
        )
        const liveSavepoints = new Set(savepoints.flatMap((s) => (s.name === undefined ? [] : [s.name])))
        // Objects of checkpoints older than the oldest kept one: dropped ones, and leftovers of
        // aborted or uncommitted ones. Newer objects may belong to a checkpoint in flight.
        const oldestKept = kept.at(-1)?.checkpoint ?? Number.POSITIVE_INFINITY
        const garbage = (yield* listObjects())
          .map((o) => o.name)
          .filter((name) => {
            if (referenced.has(name)) return false
            const n = checkpointOf(name)
            if (n !== undefined) return n < oldestKept
            const sp = /^savepoint\/([^/]+)\//.exec(name)?.[1]
            return sp !== undefined && !liveSavepoints.has(sp)
          })
        for (const m of dropped)
          yield* io(`delete ckpt.${m.checkpoint}`, () => kv.purge(`ckpt.${m.checkpoint}`))
        const deletedObjects = yield* deleteObjects(garbage)
        return { deletedCheckpoints: dropped.map((m) => m.checkpoint), deletedObjects }
      })

    const deleteUncompleted = (n: number) =>
      Effect.gen(function* () {
        const latest = yield* readLatest()
        const recorded = yield* getManifest(`ckpt.${n}`)
        const keep = new Set([latest?.manifest, recorded?.manifest].flatMap((m) => (m ? objectNames(m) : [])))
        const names = (yield* listObjects())
          .map((o) => o.name)
          .filter((name) => name.startsWith(checkpointPrefix(n)) && !keep.has(name))
        return yield* deleteObjects(names)
      })

    const writeSavepoint = (m: Manifest, rawName: string) =>
      Effect.gen(function* () {
        const name = yield* validName("savepoint name", rawName)
        if (yield* getValue(`savepoint.${name}`)) return yield* new SavepointExists({ job, name })
        const handles: Record<string, SnapshotHandle> = {}
        for (const [key, h] of Object.entries(m.handles)) {
          if (h.kind === "inline") handles[key] = h
          else {
            const copy = savepointPrefix(name) + instancePath(key)
            const info = yield* putObject(copy, yield* objectBytes(h))
            handles[key] = { kind: "object", name: copy, size: info.size, digest: info.digest }
          }
        }
        const saved = yield* fit({ ...m, kind: "savepoint", name, handles }, savepointPrefix(name))
        yield* cas(`savepoint.${name}`, saved, 0, () => new SavepointExists({ job, name }))
        return saved
      })

    const readSavepoint = (rawName: string) =>
      Effect.gen(function* () {
        const name = yield* validName("savepoint name", rawName)
        const found = yield* getManifest(`savepoint.${name}`)
        if (!found) return yield* new SavepointNotFound({ job, name })
        return found.manifest
      })

    const deleteSavepoint = (rawName: string) =>
      Effect.gen(function* () {
        const name = yield* validName("savepoint name", rawName)
        yield* readSavepoint(name)
        // Manifest first: a crash in between leaves orphan objects (swept by `retain`), never a
        // savepoint whose objects are gone.
        yield* io(`delete savepoint.${name}`, () => kv.purge(`savepoint.${name}`))
        const latest = yield* readLatest()
        const keep = new Set(latest ? objectNames(latest.manifest) : [])
        const names = (yield* listObjects())
          .map((o) => o.name)
          .filter((n) => n.startsWith(savepointPrefix(name)) && !keep.has(n))
        yield* deleteObjects(names)
      })

    const writeStatus = (status: unknown) =>
      io("write status", () => kv.put("status", packr.pack(status))).pipe(Effect.asVoid)
    const readStatus = () => getValue("status").pipe(Effect.map((got) => got?.value))

    const store: CheckpointStore = {
      job,
      bucket,
      putSnapshot,
      getSnapshot,
      readEpoch,
      bumpEpoch,
      readLatest,
      commitManifest,
      listCheckpoints,
      readCheckpoint,
      retain,
      deleteUncompleted,
      writeSavepoint,
      listSavepoints,
      readSavepoint,
      deleteSavepoint,
      writeStatus,
      readStatus
    }
    return store
  })

/** `CheckpointStore.open(nc, job)`: opens (creating if absent) the buckets `exactor-<job>`. */
export const CheckpointStore = { open } as const
