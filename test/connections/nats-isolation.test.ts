/**
 * Isolation by the broker: a private nats-server whose users are confined by the permissions of
 * lib/brokers/NatsPermissions.ts. Job A runs to FINISHED exactly once under its own user while an
 * outsider (no permissions of its own) and job B's user try its mailbox, control, coordinator,
 * launcher and admin subjects and its KV bucket and Object Store: the server refuses every one
 * (a permissions violation), nothing of theirs reaches job A, and job A's user can use its own.
 */
import { randomBytes } from "node:crypto"
import { Kvm } from "@nats-io/kv"
import { Objm } from "@nats-io/obj"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import t from "tap"
import { adminPermissions, authorizationBlock, jobPermissions } from "../../lib/brokers/NatsPermissions.ts"
import { startNatsServer } from "../../lib/brokers/NatsServer.ts"
import { jobInboxPrefix } from "../../lib/internal/NatsConnectOptions.ts"
import { exactlyOnce, until } from "../harness/checks.ts"
import { uniqueName } from "../harness/env.ts"
import { startOrdersJob } from "../harness/job.ts"

const a = { job: uniqueName("jobA"), stream: uniqueName("orders"), outStream: uniqueName("out") }
const b = uniqueName("jobB")
const pw = () => randomBytes(9).toString("hex")
const users = {
  // the admin also writes the source stream (`exactor produce`)
  admin: {
    user: "admin",
    password: pw(),
    permissions: { ...adminPermissions, publish: [...adminPermissions.publish, `${a.stream}.>`] }
  },
  a: {
    user: "job-a",
    password: pw(),
    permissions: jobPermissions(a.job, {
      sourceStreams: [a.stream],
      sinkSubjects: [`${a.outStream}.records`]
    })
  },
  b: {
    user: "job-b",
    password: pw(),
    permissions: jobPermissions(b, { sourceStreams: [uniqueName("orders")] })
  },
  // named by the config but given nothing: `default_permissions` applies
  outsider: { user: "outsider", password: pw() }
}

const server = await startNatsServer({
  config: authorizationBlock(Object.values(users))
})
t.teardown(() => server.stop())

const as = (u: { readonly user: string; readonly password: string }) => ({
  EXACTOR_NATS_USER: u.user,
  EXACTOR_NATS_PASSWORD: u.password
})
// the test's own connections (producer, heartbeat watch, cleanup) are the admin's
Object.assign(process.env, as(users.admin))

/**
 * Connects as `u` and collects the permissions violations the server reports; a job's user with
 * its job's inbox prefix, as the runtime's connections for that job have.
 */
const connectAs = async (u: { readonly user: string; readonly password: string }, job?: string) => {
  const nc = await connect({
    servers: server.url,
    user: u.user,
    pass: u.password,
    name: `isolation/${u.user}`,
    ...(job === undefined ? {} : { inboxPrefix: jobInboxPrefix(job) })
  })
  const violations: Array<string> = []
  void (async () => {
    for await (const s of nc.status())
      if (s.type === "error" && /permission/i.test(String(s.error))) violations.push(String(s.error))
  })()
  return { nc, violations }
}

const outcome = (p: Promise<unknown>) =>
  p.then(
    () => "allowed",
    (e: unknown) => (e instanceof Error ? e.message : String(e))
  )
const refused = /permission|denied|timeout/i

/** Every way into job A that the brief names; each returns what the server did. */
const attack = async (nc: NatsConnection, violations: Array<string>, marker: string) => {
  const core: Record<string, string> = {}
  for (const subject of [
    `exactor.${a.job}.in.total.0`,
    `exactor.${a.job}.ctl.total.0`,
    `exactor.${a.job}.credit.parse.0`,
    `exactor.${a.job}.coord`,
    `exactor.${a.job}.launcher`,
    `exactor.${a.job}.admin`
  ]) {
    nc.publish(subject, marker)
    await nc.flush()
    await until(
      `the server's answer to a publish on ${subject}`,
      () => (violations.some((v) => v.includes(subject)) ? true : undefined),
      2000
    ).catch(() => undefined)
    core[subject] = violations.some((v) => v.includes(subject)) ? "refused" : "published"
  }
  /** Subscribes to `subject`; what the server did ("allowed", or the refusal). */
  const subscribe = (subject: string) => {
    const sub = nc.subscribe(subject)
    return outcome(
      (async () => {
        await nc.flush()
        await until(
          `a subscription violation on ${subject}`,
          () => violations.some((v) => /subscription/i.test(v) && v.includes(subject)),
          2000
        )
        sub.unsubscribe()
        throw new Error("subscription refused: permissions violation")
      })()
    )
  }
  const subscribed = await subscribe(`exactor.${a.job}.>`)
  // job A's replies (its JetStream API answers, its control replies) arrive on `_INBOX.<A>.…`
  const inboxes = await subscribe(`_INBOX.${a.job}.>`)
  const kvm = new Kvm(nc)
  const objm = new Objm(nc)
  const buckets = {
    "KV status": await outcome(kvm.open(`exactor-${a.job}`).then((kv) => kv.status())),
    "put KV status": await outcome(
      kvm.open(`exactor-${a.job}`, { bindOnly: true }).then((kv) => kv.put("status", marker))
    ),
    "get KV latest": await outcome(
      kvm.open(`exactor-${a.job}`, { bindOnly: true }).then((kv) => kv.get("latest"))
    ),
    "open Object Store": await outcome(objm.open(`exactor-${a.job}`)),
    "put object": await outcome(
      objm.open(`exactor-${a.job}`).then((os) => os.putBlob({ name: "x" }, new TextEncoder().encode(marker)))
    )
  }
  return { core, subscribed, inboxes, buckets }
}

t.test("job A's user runs it exactly once; the outsider and job B's user cannot touch it", async (t) => {
  const orders = 400
  const job = await startOrdersJob({
    orders,
    output: "jetstream",
    env: { EXACTOR_NATS_URL: server.url },
    names: a
  })
  t.teardown(() => job.cleanup())
  const seen: Array<string> = []
  const watch = job.nc.subscribe(`exactor.${a.job}.>`, {
    callback: (_e, m) => {
      if (m.string().startsWith("intruder-")) seen.push(m.subject)
    }
  })
  await job.nc.flush()
  const run = job.run([], as(users.a))
  await until("every instance running", () => job.seen.size >= 7)

  for (const who of ["outsider", "b"] as const) {
    const { nc, violations } = await connectAs(users[who], who === "b" ? b : undefined)
    const result = await attack(nc, violations, `intruder-${who}`)
    t.comment(`${who}: ${JSON.stringify(result)}`)
    for (const [subject, what] of Object.entries(result.core))
      t.equal(what, "refused", `${who}: publish on ${subject}`)
    t.match(result.subscribed, refused, `${who}: subscribe to exactor.${a.job}.>`)
    t.match(result.inboxes, refused, `${who}: subscribe to job A's inboxes _INBOX.${a.job}.>`)
    for (const [op, what] of Object.entries(result.buckets)) t.match(what, refused, `${who}: ${op}`)
    await nc.close()
  }

  t.equal(await run.exit, 0, "job A FINISHED under its own user")
  const v = await job.verdict()
  t.comment(JSON.stringify({ ...v, examples: v.examples.slice(0, 3) }))
  exactlyOnce(t, v, orders)
  watch.unsubscribe()
  t.same(seen, [], "no intruder's message reached job A's subjects")
  const status = await job.cli(["status", a.job], as(users.a))
  t.match(status.output, /FINISHED/, "exactor status <job> works as the job's user")
  const jobs = await job.cli(["jobs"], as(users.admin))
  t.match(jobs.output, a.job, "exactor jobs works as the admin")
  const foreign = await job.cli(["status", a.job], as(users.b))
  t.notMatch(foreign.output, /FINISHED/, "exactor status of job A as job B's user shows nothing of it")

  // job A's own user may use its Object Store (the orders job's snapshots fit in KV, so it was not exercised)
  const own = await connectAs(users.a, a.job)
  const os = await new Objm(own.nc).open(`exactor-${a.job}`)
  await os.putBlob({ name: "probe" }, new TextEncoder().encode("hello"))
  t.equal(
    new TextDecoder().decode((await os.getBlob("probe")) ?? undefined),
    "hello",
    "job A's user: its Object Store"
  )
  await os.delete("probe")
  t.same(own.violations, [], "job A's user: no permissions violation")
  await own.nc.close()
})
