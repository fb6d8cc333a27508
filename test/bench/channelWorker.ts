/**
 * One side of the channel benchmark, as its own process: `receive` or `send`, over exactor's
 * channel or over raw NATS pub/sub (one msgpack record per message, the raw limit).
 * Prints `ready` when subscribed, and one JSON line with its figures when done.
 */
import { Effect } from "effect"
import { Packr } from "msgpackr"
import { InstanceId, Subjects } from "../../lib/core/Address.ts"
import { defaultChannelOptions } from "../../lib/api/ChannelOptions.ts"
import { ChannelSender, Mailbox, subscribeCredits } from "../../lib/runtime/Channel.ts"
import { natsConnection } from "../../lib/runtime/Nats.ts"

const [mode, role, url, countText, job] = process.argv.slice(2) as [string, string, string, string, string]
const count = Number(countText)
const record = (i: number) => ({ id: i, customer: `c${i % 1000}`, amount: i % 10_000 })
const up = InstanceId.make("up", 0)
const down = InstanceId.make("down", 0)
const subjects = new Subjects(job)
const packr = new Packr({ useRecords: false })

const raw = Effect.scoped(
  Effect.gen(function* () {
    const nc = yield* natsConnection(url, { name: `bench-${role}` })
    const subject = `${job}.raw`
    if (role === "receive") {
      let n = 0
      let first = 0
      const done = Promise.withResolvers<void>()
      nc.subscribe(subject, {
        callback: (_e, m) => {
          if (n === 0) first = performance.now()
          packr.unpack(m.data)
          if (++n === count) done.resolve()
        }
      })
      yield* Effect.promise(() => nc.flush())
      console.log("ready")
      const idle = setInterval(() => {
        // a raw subscriber may lose messages (slow consumer): stop when nothing more comes
        if (n > 0 && performance.now() - first > 60_000) done.resolve()
      }, 100)
      let last = -1
      const stall = setInterval(() => {
        if (n === last && n > 0) done.resolve()
        last = n
      }, 1000)
      yield* Effect.promise(() => done.promise)
      clearInterval(idle)
      clearInterval(stall)
      console.log(JSON.stringify({ received: n, seconds: (performance.now() - first) / 1000 }))
    } else {
      for (let i = 0; i < count; i++) {
        nc.publish(subject, packr.pack(record(i)))
        if (i % 1000 === 999) yield* Effect.promise(() => nc.flush())
      }
      yield* Effect.promise(() => nc.flush())
    }
  })
)

const channel = Effect.scoped(
  Effect.gen(function* () {
    const nc = yield* natsConnection(url, { name: `bench-${role}` })
    if (role === "receive") {
      const mailbox = yield* Mailbox.open(nc, subjects, down, [up], 0, defaultChannelOptions)
      console.log("ready")
      let n = 0
      let first = 0
      for (;;) {
        const d = yield* mailbox.take
        if (d.envelope.k === "eos") break
        if (d.envelope.k === "batch") {
          if (n === 0) first = performance.now()
          n += d.envelope.r.length
          mailbox.consumed(d.channel)
        }
      }
      console.log(JSON.stringify({ received: n, seconds: (performance.now() - first) / 1000 }))
    } else {
      const sender = new ChannelSender(nc, subjects, up, down, 0, defaultChannelOptions)
      yield* subscribeCredits(nc, subjects, up, 0, new Map([[String(down), sender]]))
      const chunk: Array<unknown> = []
      for (let i = 0; i < count; i++) {
        chunk.push(record(i))
        if (chunk.length === 1000) {
          yield* sender.push(chunk.splice(0))
        }
      }
      yield* sender.push(chunk)
      yield* sender.eos
      yield* Effect.promise(() => nc.flush())
    }
  })
)

Effect.runPromise(mode === "raw" ? raw : channel).then(
  () => process.exit(0),
  (e) => {
    console.error(e)
    process.exit(1)
  }
)
