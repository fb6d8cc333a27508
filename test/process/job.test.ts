/**
 * The runtime end to end over NATS alone: the orders job with a JetStream sink, every actor its
 * own process under `exactor run`. Totals are checked against the input (Jepsen-style counts and
 * the per-customer running-total chains), also across kills and a rescale.
 */
import { rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import t from "tap"
import { exactlyOnce, status, until } from "../harness/checks.ts"
import { uniqueName } from "../harness/env.ts"
import { startOrdersJob } from "../harness/job.ts"

const wedgedSinkModule = fileURLToPath(new URL("../fixtures/wedgedSinkJob.ts", import.meta.url))

t.test("a pipeline of processes computes the same totals as the input", async (t) => {
  const job = await startOrdersJob({ orders: 5000, output: "jetstream" })
  t.teardown(() => job.cleanup())
  const run = job.run()
  t.equal(await run.exit, 0, "the job FINISHED")
  exactlyOnce(t, await job.verdict(), 5000)
  const s = await status(job)
  t.equal(s?.state, "FINISHED")
  t.equal(s?.instances.length, 7, "7 instances reported (2 sources, 2 parse, 2 total, 1 sink)")
})

t.test("kill -9 of a keyed instance: detected, restarted with backoff, same totals", async (t) => {
  const job = await startOrdersJob({
    orders: 60_000,
    output: "jetstream",
    env: { EXACTOR_CHECKPOINT_INTERVAL: "300" }
  })
  t.teardown(() => job.cleanup())
  const run = job.run()
  const before = await job.running("total#1")
  await until("a completed checkpoint", async () => ((await status(job))?.checkpoints.completed ?? 0) >= 1)
  const killedAt = Date.now()
  process.kill(before.pid, "SIGKILL")
  const exited = await until("the launcher's exit report", () =>
    job.reports.find((r) => r.k === "exited" && r.c === "total#1")
  )
  t.ok(
    exited.at - killedAt < 3000,
    `the launcher reported the exit after ${exited.at - killedAt} ms (heartbeat timeout 3000 ms)`
  )
  const after = await job.running("total#1", before.epoch)
  t.not(after.pid, before.pid, "a new process runs total#1")
  t.ok(after.epoch > before.epoch, `in a new epoch (${before.epoch} -> ${after.epoch})`)
  t.equal(await run.exit, 0, "the job FINISHED")
  exactlyOnce(t, await job.verdict(), 60_000)
  t.match(run.output(), /total#1 killed by SIGKILL; restarting in \d+ ms/, "the launcher logged the restart")
})

t.test("an instance that stops answering is caught by the coordinator's heartbeat check", async (t) => {
  const job = await startOrdersJob({ orders: 60_000, output: "jetstream" })
  t.teardown(() => job.cleanup())
  const run = job.run()
  const before = await job.running("total#0")
  process.kill(before.pid, "SIGSTOP")
  const stoppedAt = Date.now()
  const s = await until("a recovery for missed heartbeats", async () => {
    const s = await status(job)
    return s?.lastRecoveryReason?.includes("missed heartbeats") ? s : undefined
  })
  const detectedMs = Date.now() - stoppedAt
  t.match(s.lastRecoveryReason, /total#0 missed heartbeats for \d+ ms \(timeout 3000 ms\)/)
  t.ok(
    detectedMs < 3000 + 2000,
    `detected after ${detectedMs} ms (timeout 3000 ms, status written every second)`
  )
  process.kill(before.pid, "SIGKILL") // the zombie: the launcher restarts it
  t.equal(await run.exit, 0, "the job FINISHED")
  exactlyOnce(t, await job.verdict(), 60_000)
})

t.test(
  "a sink that never answers its restore is killed by its launcher at the coordinator's request, restarted, same totals",
  async (t) => {
    // the fixture's sink fails its first commit and then hangs in every restore, heartbeating all along:
    // without the kill, every recovery would wait for it until the restart strategy gave up
    const marker = join(tmpdir(), uniqueName("wedge"))
    const job = await startOrdersJob({
      orders: 20_000,
      output: "jetstream",
      module: wedgedSinkModule,
      env: { EXACTOR_WEDGE_MARKER: marker }
    })
    t.teardown(async () => {
      await job.cleanup()
      rmSync(marker, { force: true })
    })
    const run = job.run()
    t.equal(await run.exit, 0, "the job FINISHED")
    exactlyOnce(t, await job.verdict(), 20_000)
    const output = run.output()
    // whichever of the two sink instances commits first is the one that wedges
    const killed = output.match(
      /\[launcher\] (sink#\d) \(pid (\d+)\) killed at the coordinator's request: \1 did not answer restore \(epoch \d+\)/
    )
    t.ok(killed, `the launcher killed the wedged sink: ${killed?.[0]}`)
    const id = killed?.[1] ?? "sink#?"
    t.match(output, new RegExp(`${id} killed by SIGKILL; restarting in \\d+ ms`), "and restarted it")
    t.not(job.seen.get(id)?.pid, Number(killed?.[2]), `a new process ran ${id} to the end`)
    const s = await status(job)
    // the budget is 20; a loaded machine adds a recovery or two from heartbeat and checkpoint
    // timeouts (CI saw 6), a wedged restore without the kill would use all 20
    t.ok(
      (s?.recoveries ?? 0) <= 10,
      `recovered in ${s?.recoveries} recoveries, far from the restart budget (20)`
    )
  }
)

t.test("kill -9 of the coordinator: a new one reads epoch and manifest and recovers", async (t) => {
  const job = await startOrdersJob({
    orders: 60_000,
    output: "jetstream",
    env: { EXACTOR_CHECKPOINT_INTERVAL: "300" }
  })
  t.teardown(() => job.cleanup())
  const run = job.run()
  const before = await job.running("sink#0")
  const s = await until("a completed checkpoint", async () => {
    const s = await status(job)
    return (s?.checkpoints.completed ?? 0) >= 1 ? s : undefined
  })
  process.kill(s.pid, "SIGKILL")
  const after = await job.running("sink#0", before.epoch)
  t.ok(after.epoch > before.epoch, `the new coordinator started epoch ${after.epoch}`)
  t.equal(await run.exit, 0, "the job FINISHED")
  exactlyOnce(t, await job.verdict(), 60_000)
})

t.test("past the restart intensity limit the job FAILS with the reason", async (t) => {
  const job = await startOrdersJob({ orders: 200_000, output: "jetstream" })
  t.teardown(() => job.cleanup())
  const run = job.run(["--max-restarts", "1", "--restart-window", "60"])
  let epoch = 0
  for (let i = 0; i < 2; i++) {
    const s = await job.running("orders#0", epoch)
    epoch = s.epoch
    process.kill(s.pid, "SIGKILL")
  }
  t.equal(await run.exit, 3, "exit code 3 (restart intensity exceeded)")
  t.match(
    run.output(),
    /restart intensity exceeded: 2 restarts within 60 s \(limit 1\); last: orders#0 killed by SIGKILL/
  )
})

t.test("two launchers share one job (as two hosts would): each starts its own instances", async (t) => {
  const job = await startOrdersJob({ orders: 5000, output: "jetstream" })
  t.teardown(() => job.cleanup())
  const hostA = job.run(["launch", "--instances", "coordinator,orders#0,orders#1,parse#0,parse#1"])
  const hostB = job.run(["launch", "--instances", "total#0,total#1,sink#0"])
  t.equal(await hostA.exit, 0, "host A's launcher ends when the coordinator declares FINISHED")
  t.equal(await hostB.exit, 0, "host B's launcher ends when its instances are stopped")
  exactlyOnce(t, await job.verdict(), 5000)
  const bad = job.run(["launch", "--instances", "total#7"])
  t.not(await bad.exit, 0, "an instance that is not in the pipeline is refused")
  t.match(bad.output(), /has no instance total#7; available: .*total#0/)
})

t.test("when its launcher dies, no actor outlives it", async (t) => {
  const job = await startOrdersJob({ orders: 100_000, output: "jetstream" })
  t.teardown(() => job.cleanup())
  const run = job.run()
  await job.running("sink#0")
  const pids = [...job.seen.values()].map((s) => s.pid)
  run.child.kill("SIGKILL")
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0)
      return true
    } catch {
      return false
    }
  }
  const deadline = Date.now() + 15_000
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200))
  t.same(pids.filter(alive), [], `all ${pids.length} actor processes stopped`)
})
