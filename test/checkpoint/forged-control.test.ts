/**
 * Issue 19, part 4: forged control messages against a running job on the shared, permission-less
 * NATS. An outsider who reads `exactor.<job>.ctl.>` captures a real `trigger` and sends, with the
 * trigger's own tag copied, a `complete 999999` to the sink and a `stop` to parse#0, plus forged
 * reports to the coordinator: all are refused and counted, nothing is committed beyond the latest
 * completed checkpoint, parse#0 keeps running, no recovery happens, and the output stays exactly
 * once. An insider with the job's secret who sends a correctly tagged `complete 999999` still
 * commits nothing: the sink commits only what the checkpoint store records as completed.
 */
import { connect, headers, type Msg, type NatsConnection } from "@nats-io/transport-node"
import amqp from "amqplib"
import t from "tap"
import { Effect } from "effect"
import { InstanceId, Subjects } from "../../lib/core/Address.ts"
import { authHeader, ControlAuth } from "../../lib/runtime/ControlAuth.ts"
import { type ControlEnvelope, decode, EnvelopeDecodeError, encode } from "../../lib/runtime/Envelope.ts"
import type { HeartbeatBody } from "../../lib/runtime/Actor.ts"
import { exactlyOnce, exitWithin, status, store, until } from "../harness/checks.ts"
import { amqpUrl, natsUrl } from "../harness/env.ts"
import { startOrdersJob } from "../harness/job.ts"
import { queueDepth } from "../harness/rabbitmq.ts"

const secret = `test-secret-${process.pid}-${Date.now()}-forged-control`

/** A request as an outsider sends it: optional copied tag; the reply decoded (or "no answer"). */
const ask = async (nc: NatsConnection, subject: string, body: ControlEnvelope, tag?: string) => {
  const h = headers()
  if (tag !== undefined) h.set(authHeader, tag)
  try {
    const m = await nc.request(subject, encode(body), { timeout: 5000, headers: h })
    const r = decode(subject, m.data)
    return r instanceof EnvelopeDecodeError || r.k !== "reply" ? { ok: undefined, err: "undecodable" } : r
  } catch (e) {
    return { ok: undefined, err: `no answer (${String(e)})` }
  }
}

t.test("forged complete, stop and reports are refused; the output stays exactly once", async (t) => {
  const orders = 100_000
  const job = await startOrdersJob({
    orders,
    env: { EXACTOR_CHECKPOINT_INTERVAL: "400", EXACTOR_JOB_SECRET: secret }
  })
  t.teardown(() => job.cleanup())
  const subjects = new Subjects(job.job)
  const sinkControl = subjects.control(InstanceId.make("sink", 0))
  const parseControl = subjects.control(InstanceId.make("parse", 0))

  // the outsider: a plain client with no secret, reading control traffic and reports
  const outsider = await connect({ servers: natsUrl, name: "outsider" })
  t.teardown(() => outsider.close())
  const triggers: Array<{ readonly env: ControlEnvelope; readonly tag: string | undefined }> = []
  outsider.subscribe(`${subjects.prefix}.ctl.>`, {
    callback: (_e, m: Msg) => {
      const r = decode(m.subject, m.data)
      if (!(r instanceof EnvelopeDecodeError) && r.k === "trigger")
        triggers.push({ env: r as ControlEnvelope, tag: m.headers?.get(authHeader) })
    }
  })
  /** the sink's acks: checkpoint -> records before its barrier (counted across epochs) */
  const sinkAcks = new Map<number, number>()
  const heartbeats = new Map<string, Partial<HeartbeatBody>>()
  let sinkIncarnation = ""
  /** the epoch the sink reports in (a recovery while the coordinator was held moves it on) */
  let sinkEpoch = 0
  outsider.subscribe(subjects.coordinator, {
    callback: (_e, m: Msg) => {
      const r = decode(m.subject, m.data)
      if (r instanceof EnvelopeDecodeError || !("i" in r)) return
      if (r.c === "sink#0") {
        sinkIncarnation = r.i
        sinkEpoch = r.e
      }
      if (r.k === "ack" && r.c === "sink#0" && r.n !== undefined)
        sinkAcks.set(r.n, (r.b as { committed?: number } | undefined)?.committed ?? 0)
      if (r.k === "heartbeat") heartbeats.set(r.c, r.b as Partial<HeartbeatBody>)
    }
  })
  await outsider.flush()

  const run = job.run()
  const parse0 = await job.running("parse#0")
  const running = await until("the coordinator running", async () => {
    const s = await status(job)
    return s?.state === "RUNNING" && s.pid > 0 ? s : undefined
  })
  const coordinatorPid = running.pid
  const checkpointStore = await store(job)
  const latest = async () => (await Effect.runPromise(checkpointStore.readLatest()))?.manifest

  // Hold the coordinator right after it sent a trigger, until the sink has acked that checkpoint:
  // the sink then holds a pre-committed transaction of a checkpoint that is not completed. The hold
  // stays short (the coordinator's heartbeat timeout is 3 s): what it needs is opened beforehand.
  const amqpConn = await amqp.connect(amqpUrl)
  t.teardown(() => amqpConn.close().catch(() => undefined))
  const amqpCh = await amqpConn.createChannel()
  let captured: (typeof triggers)[number] | undefined
  let pendingN = -1
  let complete: Awaited<ReturnType<typeof ask>> | undefined
  let depth = -1
  let committedAtLatest = -1
  let heldMs = 0
  for (let attempt = 0; attempt < 40 && captured === undefined; attempt++) {
    const seen = triggers.length
    await until("a trigger", () => triggers.length > seen, 30_000)
    process.kill(coordinatorPid, "SIGSTOP")
    const heldAt = Date.now()
    try {
      const trigger = triggers[triggers.length - 1]!
      const n = trigger.env.n!
      while (!sinkAcks.has(n) && Date.now() - heldAt < 3000) await new Promise((r) => setTimeout(r, 5))
      const before = await latest()
      // raced (the checkpoint completed already), or its pending transaction is empty: the next one
      if (
        !sinkAcks.has(n) ||
        (before?.checkpoint ?? 0) >= n ||
        (sinkAcks.get(n) ?? 0) <= (before?.committed?.["sink#0"] ?? 0)
      )
        continue
      captured = trigger
      pendingN = n
      // the trigger's own (valid) tag, copied onto a complete with a far-future checkpoint
      complete = await ask(
        outsider,
        sinkControl,
        { k: "complete", e: trigger.env.e, c: "coordinator", n: 999_999 },
        trigger.tag
      )
      // what the queue holds now is what completed checkpoints allow, no more
      depth = (await amqpCh.checkQueue(job.queue)).messageCount
      const l = await latest()
      committedAtLatest = l?.committed?.["sink#0"] ?? 0
      t.ok((l?.checkpoint ?? 0) < n, `checkpoint ${n} still not completed while the coordinator is held`)
    } finally {
      process.kill(coordinatorPid, "SIGCONT")
      heldMs = Date.now() - heldAt
    }
  }
  if (captured === undefined || complete === undefined)
    return t.fail("never held the coordinator between a sink's ack and its checkpoint's completion")
  const pendingRecords = (sinkAcks.get(pendingN) ?? 0) - committedAtLatest
  t.comment(`coordinator held for ${heldMs} ms after trigger ${pendingN}`)
  t.ok(pendingRecords > 0, `the sink holds ${pendingRecords} records pending under checkpoint ${pendingN}`)
  t.match(captured.tag, /^[A-Za-z0-9_-]{43}$/, "the captured trigger carries a tag")
  t.equal(complete.ok, false, "the forged complete is refused")
  t.match(complete.err, /not authenticated/, `the sink says why (${complete.err})`)
  t.ok(
    depth <= committedAtLatest,
    `nothing committed beyond the latest completed checkpoint (queue ${depth} <= ${committedAtLatest} committed at it; checkpoint ${pendingN} pending)`
  )

  const e = captured.env.e
  const stop = await ask(outsider, parseControl, { k: "stop", e, c: "coordinator" }, captured.tag)
  t.equal(stop.ok, false, "the forged stop is refused")
  t.match(stop.err, /not authenticated/)
  // forged reports: a far-future ack and a `finished` in the sink's name, untagged and with a copied tag
  for (const tag of [undefined, captured.tag]) {
    const h = headers()
    if (tag !== undefined) h.set(authHeader, tag)
    for (const body of [
      { k: "ack", e, c: "sink#0", i: sinkIncarnation, n: pendingN + 1000, b: {} },
      { k: "finished", e, c: "sink#0", i: sinkIncarnation }
    ] as const)
      outsider.publish(subjects.coordinator, encode(body), { headers: h })
  }
  await outsider.flush()

  // an insider with the secret: a correctly tagged complete of a checkpoint that is not completed
  // (in the sink's current epoch: on a loaded machine holding the coordinator may have let a
  // heartbeat timeout recover the job, and a command of an old epoch gets no answer; then once more)
  const auth = ControlAuth.fromSecret(secret)
  const askTagged = () => {
    const tagged: ControlEnvelope = { k: "complete", e: sinkEpoch, c: "coordinator", n: 999_999 }
    const bytes = encode(tagged)
    return outsider
      .request(sinkControl, bytes, { timeout: 15_000, headers: auth.headers(sinkControl, bytes) })
      .then((m) => {
        const r = decode(sinkControl, m.data)
        return r instanceof EnvelopeDecodeError || r.k !== "reply" ? undefined : r
      })
  }
  const insider = await askTagged().catch(async (e: unknown) => {
    t.comment(`no answer in epoch ${sinkEpoch} (${String(e)}): asking again`)
    await new Promise((r) => setTimeout(r, 2000))
    return askTagged()
  })
  t.equal(insider?.ok, false, "a tagged complete of a checkpoint not completed is refused")
  t.match(insider?.err, /complete 999999 refused .*nothing committed/, `(${insider?.err})`)

  const sinkBeat = await until("the sink's counters in a heartbeat", () => {
    const b = heartbeats.get("sink#0")
    return b && (b.rejectedCommands ?? 0) >= 1 && (b.refusedCommits ?? 0) >= 1 ? b : undefined
  })
  t.ok((sinkBeat.rejectedCommands ?? 0) >= 1, `sink#0 counts forged commands (${sinkBeat.rejectedCommands})`)
  t.ok((sinkBeat.refusedCommits ?? 0) >= 1, `sink#0 counts refused commits (${sinkBeat.refusedCommits})`)
  const parseBeat = await until("parse#0's counter", () => {
    const b = heartbeats.get("parse#0")
    return b && (b.rejectedCommands ?? 0) >= 1 ? b : undefined
  })
  t.equal(parseBeat.phase, "running", "parse#0 keeps running")
  t.equal(parseBeat.pid, parse0.pid, "parse#0 is the same process")

  const mid = await status(job)
  t.ok(
    (mid?.rejectedReports ?? 0) >= 4,
    `the coordinator ignored the forged reports (${mid?.rejectedReports})`
  )
  const shown = await job.cli(["status", job.job])
  t.match(
    shown.output,
    /refused: .*sink#0 \d+ commands without a valid tag, \d+ commits/,
    "exactor status shows it"
  )

  t.equal(await exitWithin(run.exit, 240_000), 0, "the job FINISHED")
  const final = await status(job)
  const causes = (final?.recoveryLog ?? []).map((r) => r.cause)
  // holding the coordinator may, on a loaded machine, let a heartbeat timeout recover the job once;
  // a recovery because of the forged stop would name parse#0 (it stopped: missed heartbeats)
  t.comment(`recoveries: ${final?.recoveries ?? 0} ${JSON.stringify(causes)}`)
  t.notOk(
    causes.some((c) => /parse#0|stop|sink#0 restarted|finished/.test(c)),
    "no recovery caused by a forged message"
  )
  t.equal(job.seen.get("parse#0")?.pid, parse0.pid, "parse#0 ran to the end in its first process")
  // on a loaded machine the drain may pause: wait until the queue holds the whole output first
  await until(
    "the whole output in the queue",
    async () => (await queueDepth(job.queue)) >= orders,
    60_000
  ).catch(() => undefined)
  exactlyOnce(t, await job.verdict(), orders)
})
