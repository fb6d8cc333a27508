/**
 * What a completed checkpoint (or savepoint) is: one snapshot handle per instance, the parallelism
 * each operator ran with, and timing figures (DESIGN §3); plus the checkpoint store's errors and options.
 * Invariant: a handle's `digest` is the SHA-256 of the snapshot's msgpack bytes in the Object
 * Store's own format (`SHA-256=<padded base64url>`), whether the bytes travel inline or in an object.
 */
import { createHash } from "node:crypto"
import * as Data from "effect/Data"
import { causeMessage } from "../internal/causeMessage.ts"

/** A small snapshot carried inside the ack and the manifest. */
export interface InlineHandle {
  readonly kind: "inline"
  readonly bytes: Uint8Array
  readonly size: number
  readonly digest: string
}

/** A snapshot stored as an Object Store object (`ckpt/<n>/<operator>/<index>` or `savepoint/<name>/...`). */
export interface ObjectHandle {
  readonly kind: "object"
  readonly name: string
  readonly size: number
  readonly digest: string
}

export type SnapshotHandle = InlineHandle | ObjectHandle

export interface Manifest {
  readonly job: string
  readonly checkpoint: number
  readonly epoch: number
  /** ms since the epoch */
  readonly createdAt: number
  readonly kind: "checkpoint" | "savepoint"
  /** the savepoint's name, for a savepoint */
  readonly name?: string
  /** by instance id, `<operator>#<index>` */
  readonly handles: Readonly<Record<string, SnapshotHandle>>
  /** by operator */
  readonly parallelism: Readonly<Record<string, number>>
  readonly durationMs?: number
  readonly alignmentMs?: number
  /** total snapshot bytes */
  readonly size?: number
  /** by sink instance: the records committed once this checkpoint's commit is done, across epochs */
  readonly committed?: Readonly<Record<string, number>>
}

/** SHA-256 of `bytes` as the Object Store writes it in `ObjectInfo.digest`. */
export const digestOf = (bytes: Uint8Array): string =>
  `SHA-256=${createHash("sha256").update(bytes).digest("base64").replace(/\+/g, "-").replace(/\//g, "_")}`

/** Digests are equal whatever the base64 padding (other clients may drop it). */
export const sameDigest = (a: string, b: string): boolean => a.replace(/=+$/, "") === b.replace(/=+$/, "")

/** `count#1` -> `count/1`: the object path of an instance's snapshot below a checkpoint prefix. */
export const instancePath = (instance: string): string => {
  const at = instance.lastIndexOf("#")
  return at < 0 ? instance : `${instance.slice(0, at)}/${instance.slice(at + 1)}`
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v)

export const isSnapshotHandle = (v: unknown): v is SnapshotHandle =>
  isRecord(v) &&
  typeof v.size === "number" &&
  typeof v.digest === "string" &&
  ((v.kind === "inline" && v.bytes instanceof Uint8Array) ||
    (v.kind === "object" && typeof v.name === "string"))

/** Why `v` is not a manifest, or undefined if it is one. */
export const manifestProblem = (v: unknown): string | undefined => {
  if (!isRecord(v)) return "not a map"
  if (typeof v.job !== "string") return "job is not a string"
  for (const f of ["checkpoint", "epoch", "createdAt"] as const)
    if (typeof v[f] !== "number") return `${f} is not a number`
  if (v.kind !== "checkpoint" && v.kind !== "savepoint") return `kind is ${String(v.kind)}`
  if (!isRecord(v.handles)) return "handles is not a map"
  for (const [k, h] of Object.entries(v.handles)) if (!isSnapshotHandle(h)) return `handle ${k} is malformed`
  if (!isRecord(v.parallelism)) return "parallelism is not a map"
  return undefined
}

/** Object names a manifest references. */
export const objectNames = (m: Manifest): Array<string> =>
  Object.values(m.handles).flatMap((h) => (h.kind === "object" ? [h.name] : []))

// Errors of the checkpoint store (lib/checkpoint/CheckpointStore.ts).

/** The broker failed or answered something unreadable. */
export class CheckpointStoreError extends Data.TaggedError("CheckpointStoreError")<{
  readonly job: string
  readonly operation: string
  readonly cause: unknown
}> {
  override get message(): string {
    return `checkpoint store of job ${this.job}: ${this.operation} failed: ${causeMessage(this.cause)}`
  }
}

export class SnapshotCorrupt extends Data.TaggedError("SnapshotCorrupt")<{
  readonly job: string
  /** object name, or `inline` */
  readonly name: string
  readonly expected: string
  /** the digest found, or why there is none */
  readonly actual: string
}> {
  override get message(): string {
    return `SnapshotCorrupt: snapshot ${this.name} of job ${this.job} does not match its handle: expected ${this.expected}, found ${this.actual}`
  }
}

export class EpochConflict extends Data.TaggedError("EpochConflict")<{
  readonly job: string
  readonly expectedEpoch: number
  readonly expectedRevision: number
}> {
  override get message(): string {
    return `epoch of job ${this.job} is no longer ${this.expectedEpoch} (revision ${this.expectedRevision}): another coordinator bumped it, this one is fenced`
  }
}

export class ManifestConflict extends Data.TaggedError("ManifestConflict")<{
  readonly job: string
  readonly checkpoint: number
  readonly expectedRevision: number
}> {
  override get message(): string {
    return `manifest of checkpoint ${this.checkpoint} of job ${this.job} not committed: \`latest\` is no longer at revision ${this.expectedRevision} (another coordinator wrote it)`
  }
}

export class SavepointNotFound extends Data.TaggedError("SavepointNotFound")<{
  readonly job: string
  readonly name: string
}> {
  override get message(): string {
    return `job ${this.job} has no savepoint named ${this.name}`
  }
}

export class SavepointExists extends Data.TaggedError("SavepointExists")<{
  readonly job: string
  readonly name: string
}> {
  override get message(): string {
    return `job ${this.job} already has a savepoint named ${this.name}; delete it first or choose another name`
  }
}

export class InvalidStoreName extends Data.TaggedError("InvalidStoreName")<{
  readonly field: string
  readonly value: string
}> {
  override get message(): string {
    return `${this.field} ${JSON.stringify(this.value)} is invalid: use 1-200 letters, digits, '_' or '-'`
  }
}

export interface CheckpointStoreOptions {
  /** States whose msgpack encoding is at most this many bytes travel inline. Default 32 KiB. */
  readonly inlineLimit?: number
}

export interface EpochRecord {
  readonly epoch: number
  /** KV revision of the `epoch` key; 0 when it was never written */
  readonly revision: number
}

export interface RetainResult {
  readonly deletedCheckpoints: ReadonlyArray<number>
  readonly deletedObjects: number
}
