/**
 * One sink actor in this process on the shared NATS, commanded the way its coordinator does it
 * (tagged with the job's secret): a `complete n` whose checkpoint the store does not record as
 * completed commits nothing even with a valid tag; once the store records it, the same command
 * commits. Untagged or mis-tagged commands are refused and counted; a stop of an older epoch is
 * refused; answers carry a tag bound to their request.
 */
import { connect, headers as natsHeaders } from "@nats-io/transport-node"
import t from "tap"
import { Effect, Fiber } from "effect"
import { sink, source } from "../../lib/api/Operator.ts"
import { validatePipeline } from "../../lib/api/Pipeline.ts"
import { pipeline } from "../../lib/api/Stream.ts"
import { InstanceId, Subjects } from "../../lib/core/Address.ts"
import { runActor } from "../../lib/runtime/Actor.ts"
import { ControlAuth } from "../../lib/runtime/ControlAuth.ts"
import { type ControlEnvelope, decode, EnvelopeDecodeError, encode } from "../../lib/runtime/Envelope.ts"
import type { CompletedCheckpoint } from "../../lib/runtime/SinkCommits.ts"
import { amqpUrl, natsUrl, uniqueName } from "../harness/env.ts"

t.test("a tagged complete commits only what the store records as completed", async (t) => {
  const job = uniqueName("actorctl")
  const committed: Array<number> = []
  const out = sink<number>("out", () =>
    Effect.succeed({
      write: () => Effect.void,
      snapshot: () => Effect.void,
      commit: (n: number) => Effect.sync(() => void committed.push(n)),
      restore: () => Effect.void,
      full: () => false,
      commitsBesideInput: true
    })
  )
  const plan = validatePipeline(
    pipeline(job)
      .source(source<number>("numbers", () => Effect.die("not run")))
      .sink(out)
  )
  if (!("instances" in plan)) return t.fail(String(plan))
  const store = { latest: undefined as CompletedCheckpoint | undefined }
  const auth = ControlAuth.fromSecret("actor-control-test-secret")
  const nc = await connect({ servers: natsUrl, name: `${job}/actor` })
  const client = await connect({ servers: natsUrl, name: `${job}/coordinator` })
  t.teardown(async () => {
    await nc.close()
    await client.close()
  })
  const id = InstanceId.make("out", 0)
  const subjects = new Subjects(job)
  const subject = subjects.control(id)
  const beats: Array<{ readonly authentic: boolean; readonly b: Record<string, unknown> }> = []
  client.subscribe(subjects.coordinator, {
    callback: (_e, m) => {
      const r = decode(m.subject, m.data)
      if (!(r instanceof EnvelopeDecodeError) && r.k === "heartbeat")
        beats.push({ authentic: auth.verifyMsg(m), b: r.b as Record<string, unknown> })
    }
  })
  await client.flush()
  const actor = Effect.runFork(
    Effect.scoped(
      runActor({
        plan,
        id,
        nc,
        natsUrl,
        amqpUrl,
        auth,
        store: {
          putSnapshot: () => Effect.succeed(undefined),
          getSnapshot: () => Effect.succeed(undefined),
          readLatest: () =>
            Effect.sync(() => (store.latest === undefined ? undefined : { manifest: store.latest }))
        }
      })
    )
  )
  t.teardown(() => Effect.runPromise(Fiber.interrupt(actor)))
  await new Promise((r) => setTimeout(r, 300)) // subscribed and flushed

  /** Sends `c`, tagged by `by` (or untagged); the answer and whether its tag is valid for this request. */
  const send = async (c: ControlEnvelope, by: ControlAuth | null = auth) => {
    const bytes = encode(c)
    const headers = by === null ? natsHeaders() : by.headers(subject, bytes)
    const m = await client.request(subject, bytes, { timeout: 5000, headers })
    const r = decode(subject, m.data)
    if (r instanceof EnvelopeDecodeError || r.k !== "reply") throw new Error("not a reply")
    return { ok: r.ok, err: r.err, authentic: auth.verifyReply(m, headers) }
  }

  const restored = await send({ k: "restore", e: 1, c: "coordinator", b: { handles: [] } })
  t.same(restored, { ok: true, err: undefined, authentic: true }, "restore answered, with a valid tag")
  t.equal((await send({ k: "run", e: 1, c: "coordinator" })).ok, true)

  const early = await send({ k: "complete", e: 1, c: "coordinator", n: 5 })
  t.equal(early.ok, false, "complete 5 with a valid tag, nothing completed in the store: refused")
  t.match(early.err, /the store records no completed checkpoint; nothing committed/)
  store.latest = { checkpoint: 4, epoch: 1 }
  const stillEarly = await send({ k: "complete", e: 1, c: "coordinator", n: 5 })
  t.match(stillEarly.err, /latest completed checkpoint is 4/, "nor with checkpoint 4 completed")
  t.same(committed, [], "nothing committed")

  const untagged = await send({ k: "complete", e: 1, c: "coordinator", n: 5 }, null)
  t.same(
    untagged,
    { ok: false, err: "not authenticated (job secret)", authentic: false },
    "untagged: refused, with an untagged answer"
  )
  const otherSecret = await send(
    { k: "complete", e: 1, c: "coordinator", n: 5 },
    ControlAuth.fromSecret("x".repeat(20))
  )
  t.equal(otherSecret.ok, false, "tagged with another secret: refused")

  store.latest = { checkpoint: 5, epoch: 1 }
  const done = await send({ k: "complete", e: 1, c: "coordinator", n: 5 })
  t.same(
    done,
    { ok: true, err: undefined, authentic: true },
    "once the store records checkpoint 5, it commits"
  )
  t.same(committed, [5])

  await new Promise((r) => setTimeout(r, 700)) // a heartbeat interval
  const beat = beats.at(-1)
  t.equal(beat?.authentic, true, "heartbeats carry a valid tag")
  t.same(
    { rejectedCommands: beat?.b.rejectedCommands, refusedCommits: beat?.b.refusedCommits },
    { rejectedCommands: 2, refusedCommits: 2 },
    "the heartbeat counts the refused commands and commits"
  )

  // a restore into epoch 2 (the store's latest stays of epoch 1: the lineage goes on), then a stale stop
  t.equal((await send({ k: "restore", e: 2, c: "coordinator", b: { handles: [] } })).ok, true)
  const staleStop = await send({ k: "stop", e: 1, c: "coordinator" })
  t.match(staleStop.err, /stale epoch 1/, "a stop of an older epoch (a replay) is refused")
  t.equal((await send({ k: "stop", e: 2, c: "coordinator" })).ok, true, "a stop of the current epoch stops")
  const exit = await Effect.runPromise(Fiber.await(actor))
  t.equal(exit._tag, "Success", "the actor ended")
})
