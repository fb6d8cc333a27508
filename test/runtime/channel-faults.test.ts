import t from "tap"
import { Effect, Exit, Fiber } from "effect"
import { InstanceId, Subjects } from "../../lib/core/Address.ts"
import { defaultChannelOptions } from "../../lib/api/ChannelOptions.ts"
import { ChannelSender, Mailbox, subscribeCredits } from "../../lib/runtime/Channel.ts"
import { failOnDisconnect, natsConnection } from "../../lib/runtime/Nats.ts"
import { startNatsServer } from "../harness/NatsServer.ts"

const up = InstanceId.make("up", 0)
const down = InstanceId.make("down", 0)

t.test("killing and restarting the NATS server mid-stream breaks the channel (seq gap)", async (t) => {
  const server = await startNatsServer()
  t.teardown(() => server.stop())
  const outcome = await Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const subjects = new Subjects("faults")
        const ncOut = yield* natsConnection(server.url, { name: "sender" })
        const ncIn = yield* natsConnection(server.url, { name: "receiver" })
        // A wide credit window keeps the sender publishing through the outage, as a fast one would.
        const options = { ...defaultChannelOptions, creditWindow: 100_000 }
        const mailbox = yield* Mailbox.open(ncIn, subjects, down, [up], 0, options)
        const sender = new ChannelSender(ncOut, subjects, up, down, 0, options)
        yield* subscribeCredits(ncOut, subjects, up, 0, new Map([[down.toString(), sender]]))
        const producer = yield* Effect.forkChild(
          Effect.gen(function* () {
            for (let i = 0; ; i += 100) {
              const chunk: Array<number> = []
              for (let j = i; j < i + 100; j++) chunk.push(j)
              yield* sender.push(chunk)
              yield* Effect.yieldNow
            }
          })
        )
        let received = 0
        let killed = 0
        const started = Date.now()
        const consumer = Effect.gen(function* () {
          for (;;) {
            const d = yield* mailbox.take
            if (d.envelope.k === "batch") {
              received += d.envelope.r.length
              mailbox.consumed(d.channel)
            }
          }
        })
        const killer = Effect.gen(function* () {
          // kill and restart until the gap shows (or 30 s), while records flow
          while (Date.now() - started < 30_000) {
            yield* Effect.sleep("700 millis")
            yield* Effect.promise(() => server.kill())
            yield* Effect.sleep("500 millis")
            yield* Effect.promise(() => server.restart())
            killed++
          }
        })
        const exit = yield* Effect.exit(Effect.raceFirst(consumer, killer))
        yield* Fiber.interrupt(producer)
        return { exit, received, killed }
      })
    )
  )
  t.ok(outcome.received > 0, `records flowed before the crash (${outcome.received})`)
  t.ok(Exit.isFailure(outcome.exit), `the receiver failed (after ${outcome.killed} restarts)`)
  if (Exit.isFailure(outcome.exit)) t.match(String(outcome.exit.cause), /ChannelBroken[\s\S]*gap/)
})

t.test("a disconnect of the data connection is reported", async (t) => {
  const server = await startNatsServer()
  t.teardown(() => server.stop())
  const exit = await Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const nc = yield* natsConnection(server.url, { name: "watched" })
        const watch = yield* Effect.forkChild(Effect.exit(failOnDisconnect(nc, server.url)))
        yield* Effect.sleep("100 millis")
        yield* Effect.promise(() => server.kill())
        const result = yield* Fiber.join(watch)
        yield* Effect.promise(() => server.restart())
        return result
      })
    )
  )
  t.ok(Exit.isFailure(exit), "failOnDisconnect failed")
  t.match(String(Exit.isFailure(exit) ? exit.cause : ""), /NatsDisconnected/)
})
