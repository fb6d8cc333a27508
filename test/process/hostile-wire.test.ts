/**
 * Hostile bytes on a running job's subjects: garbage and forged-but-malformed messages on every
 * instance's mailbox, credit and control subject and on the coordinator and admin subjects. Each
 * is rejected (counted in the instance's heartbeat and the coordinator's status, logged
 * rate-limited), or, for the forgeries that are well formed (a seq far in the future from a real
 * channel, an `exited` report whose body carries a BigInt), the job recovers from its last
 * checkpoint. Either way no process crashes and the output stays exactly once. Control and
 * coordinator messages go both untagged (refused by authentication, counted) and tagged with the
 * job's secret, as an insider's would, so that they reach the decoders behind it.
 */
import { mkdirSync, writeFileSync } from "node:fs"
import t from "tap"
import { InstanceId, Subjects } from "../../lib/core/Address.ts"
import { ControlAuth } from "../../lib/runtime/ControlAuth.ts"
import { decode, type Envelope, EnvelopeDecodeError, encode } from "../../lib/runtime/Envelope.ts"
import { exactlyOnce, exitWithin, status, until } from "../harness/checks.ts"
import { startOrdersJob } from "../harness/job.ts"

const instances = ["orders#0", "orders#1", "parse#0", "parse#1", "total#0", "total#1", "sink#0"]
/** who sends to whom (the orders job: forward orders -> parse, then keyed parse -> total -> sink) */
const inputOf: Record<string, string | undefined> = {
  "parse#0": "orders#0",
  "total#0": "parse#0",
  "sink#0": "total#0"
}
const receiverOf: Record<string, string | undefined> = {
  "orders#0": "parse#0",
  "parse#0": "total#0",
  "total#0": "sink#0"
}

const forged = (v: Record<string, unknown>) => encode(v as unknown as Envelope)
const secret = "hostile-wire-test-secret-0123456789"

/** Random bytes, and valid-looking envelopes with one field wrong. */
const garbage = (epoch: number, from: string): Array<Uint8Array> => {
  const valid = forged({ k: "batch", e: epoch, c: from, s: 0, r: [{ id: 1 }] })
  const out: Array<Uint8Array> = [
    new Uint8Array([0xc1]),
    new TextEncoder().encode("GET / HTTP/1.1"),
    new Uint8Array(0),
    valid.subarray(0, valid.length - 3),
    forged({ k: "batch", e: -1, c: from, s: 0, r: [] }),
    forged({ k: "batch", e: epoch, c: from, s: 1.5, r: [] }),
    forged({ k: "barrier", e: epoch, c: 7, s: 0, n: 1 }),
    forged({ k: "batch", e: epoch, c: from, s: 0, r: "not an array" }),
    forged({ k: "eos", e: 2n ** 64n - 1n, c: from, s: 0 }),
    forged({ k: "nonsense", e: epoch, c: from }),
    forged({ k: "credit", e: epoch, c: from, g: 1e300 }),
    new Uint8Array(64).fill(0x91)
  ]
  for (let i = 0; i < 20; i++)
    out.push(Uint8Array.from({ length: 24 }, () => Math.floor(Math.random() * 256)))
  return out
}

t.test("garbage on every subject of a running job: rejected and counted, output exactly once", async (t) => {
  const orders = 60_000
  const job = await startOrdersJob({
    orders,
    // a generous heartbeat timeout: on a loaded machine a missed heartbeat is not what this tests
    env: {
      EXACTOR_CHECKPOINT_INTERVAL: "300",
      EXACTOR_HEARTBEAT_TIMEOUT: "10000",
      EXACTOR_JOB_SECRET: secret
    }
  })
  // an insider with the job's secret: what it tags gets past authentication to the decoders
  const auth = ControlAuth.fromSecret(secret)
  t.teardown(() => job.cleanup())
  const run = job.run()
  for (const id of instances) await job.running(id)
  await until("a completed checkpoint", async () => ((await status(job))?.checkpoints.completed ?? 0) >= 1)
  const subjects = new Subjects(job.job)
  const nc = job.nc
  const epoch = job.seen.get("sink#0")!.epoch
  let sent = 0
  const publish = (subject: string, bytes: Uint8Array) => {
    nc.publish(subject, bytes)
    sent++
  }
  const signed = (subject: string, bytes: Uint8Array) => {
    auth.publish(nc, subject, bytes)
    sent++
  }

  // 1. malformed bytes on every mailbox, credit and control subject, and on the coordinator's
  for (const text of instances) {
    const id = InstanceId.parse(text) as InstanceId
    for (const bytes of garbage(epoch, inputOf[text] ?? "orders#0")) {
      publish(subjects.mailbox(id), bytes)
      publish(subjects.credit(id), bytes)
      publish(subjects.control(id), bytes)
      publish(subjects.coordinator, bytes)
      signed(subjects.control(id), bytes)
      signed(subjects.coordinator, bytes)
    }
    // well formed, but no receiver can take them
    publish(subjects.mailbox(id), forged({ k: "batch", e: epoch, c: "ghost#0", s: 0, r: [{ forged: true }] }))
    publish(subjects.mailbox(id), forged({ k: "credit", e: epoch, c: "ghost#0", g: 1 }))
    publish(subjects.credit(id), forged({ k: "credit", e: epoch, c: "ghost#0", g: 1 }))
    const receiver = receiverOf[text]
    if (receiver !== undefined)
      publish(subjects.credit(id), forged({ k: "credit", e: epoch, c: receiver, g: 2 ** 50 }))
    signed(subjects.control(id), forged({ k: "heartbeat", e: epoch, c: "ghost#0", i: "x" }))
    signed(subjects.control(id), forged({ k: "restore", e: epoch + 1, c: "forger", b: { handles: 5 } }))
    signed(subjects.coordinator, forged({ k: "heartbeat", e: epoch, c: "ghost#9", i: "x", b: {} }))
    signed(subjects.coordinator, forged({ k: "trigger", e: epoch, c: "forger", n: 1 }))
    // an ack with a malformed body, from the instance's own incarnation
    const incarnation = job.seen.get(text)!.incarnation
    signed(
      subjects.coordinator,
      forged({ k: "ack", e: epoch, c: text, i: incarnation, n: 1_000_000, b: { alignmentMs: "soon" } })
    )
  }
  // a flood on one mailbox: every message counted, the log rate-limited
  for (let i = 0; i < 5000; i++)
    publish(subjects.mailbox(InstanceId.make("total", 1)), new Uint8Array([0xc1, i & 0xff]))
  await nc.flush()

  // 2. requests get a typed refusal, not silence and not a crash
  const answer = async (subject: string, bytes: Uint8Array, tagged = true) => {
    const options = tagged ? { timeout: 5000, headers: auth.headers(subject, bytes) } : { timeout: 5000 }
    const r = decode(subject, (await nc.request(subject, bytes, options)).data)
    return r instanceof EnvelopeDecodeError ? r.reason : r
  }
  const untagged = await answer(
    subjects.control(InstanceId.make("total", 0)),
    new Uint8Array([0x82, 0xa1]),
    false
  )
  t.match(
    untagged,
    { k: "reply", ok: false, err: /not authenticated/ },
    "an untagged command is refused first"
  )
  const refusal = await answer(subjects.control(InstanceId.make("total", 0)), new Uint8Array([0x82, 0xa1]))
  t.match(refusal, { k: "reply", ok: false, err: /malformed message on .*\.ctl\.total\.0: not msgpack/ })
  const badRestore = await answer(
    subjects.control(InstanceId.make("parse", 1)),
    forged({ k: "restore", e: epoch + 5, c: "forger", b: { handles: [], checkpoint: -3 } })
  )
  t.match(badRestore, { k: "reply", ok: false, err: /checkpoint is not a whole number/ })
  const badAdmin = await answer(subjects.admin, forged({ k: "run", e: 0, c: "cli", b: { savepoint: 5 } }))
  t.match(badAdmin, { k: "reply", ok: false, err: /expected \{ savepoint: name \}/ })
  const garbageAdmin = await answer(subjects.admin, new Uint8Array([0xc1]))
  t.match(garbageAdmin, { k: "reply", ok: false })

  // the rejections show in the heartbeats and the status; nothing recovered so far
  const counted = await until("every instance's rejected count in the status", async () => {
    const s = await status(job)
    const all = s?.instances.every((i) => (i.rejected ?? 0) >= (i.id === "total#1" ? 5000 : 30))
    return s && all && (s.rejected ?? 0) >= 100 ? s : undefined
  })
  t.equal(
    counted.recoveries,
    0,
    `malformed messages alone caused no recovery ${JSON.stringify((counted.recoveryLog ?? []).map((r) => r.cause))}`
  )
  // neither failed nor restoring; a fast run may have read all its input already (FINISHING)
  t.ok(
    counted.state === "RUNNING" || counted.state === "FINISHING",
    `the job is running on (${counted.state})`
  )
  const total1 = counted.instances.find((i) => i.id === "total#1")!
  t.ok(total1.rejected >= 5000, `total#1 counted the flood (${total1.rejected} rejected)`)

  // 3. well-formed forgeries that a receiver cannot tell from a real failure: the job recovers
  const liveEpoch = (await status(job))!.epoch
  publish(
    subjects.mailbox(InstanceId.make("total", 0)),
    forged({ k: "batch", e: liveEpoch, c: "parse#0", s: 2 ** 40, r: [{ forged: true }] })
  )
  signed(
    subjects.coordinator,
    forged({
      k: "exited",
      e: liveEpoch,
      c: "parse#1",
      i: "launcher",
      b: { code: 2n ** 64n - 1n, signal: null }
    })
  )
  await nc.flush()

  const code = await exitWithin(run.exit)
  // the run's log, for a failure to be read afterwards
  mkdirSync("tmp/test-output", { recursive: true })
  writeFileSync("tmp/test-output/hostile-wire.log", run.output())
  t.equal(code, 0, "the job FINISHED")
  exactlyOnce(t, await job.verdict(), orders)
  const s = (await status(job))!
  t.equal(s.state, "FINISHED")
  t.ok(s.recoveries >= 1, `the well-formed forgeries caused ${s.recoveries} recoveries`)
  t.ok(
    (s.recoveryLog ?? []).some((r) => /parse#1 exited \(\{"code":"18446744073709551615"/.test(r.cause)),
    "the BigInt in the exit report is shown as digits, not a crash"
  )
  t.ok((s.rejected ?? 0) >= 100, `the coordinator rejected ${s.rejected} messages`)
  for (const i of s.instances) t.ok(i.rejected >= 30, `${i.id} rejected ${i.rejected} messages`)

  // the log names subject and reason, and a flood is summed up rather than logged line by line
  const out = run.output()
  const oneByOne = out.split("\n").filter((l) => /rejected malformed message on /.test(l)).length
  t.ok(oneByOne > 0, `rejections logged with subject and reason (${oneByOne} lines)`)
  t.ok(oneByOne < sent / 10, `${oneByOne} log lines for ${sent} hostile messages`)
  t.match(
    out,
    /total#1: \d+ more messages rejected in \d+ s, not logged one by one \(\d+ on exactor\.[^ ]+\.in\.total\.1/
  )
})
