import t from "tap"
import { Effect, Exit, Fiber } from "effect"
import { InstanceId, Subjects } from "../../lib/core/Address.ts"
import { defaultChannelOptions } from "../../lib/api/ChannelOptions.ts"
import { ChannelSender, Mailbox, subscribeCredits } from "../../lib/runtime/Channel.ts"
import { encode, type EnvelopeDecodeError } from "../../lib/runtime/Envelope.ts"
import { natsConnection } from "../../lib/runtime/Nats.ts"

const natsUrl = process.env.EXACTOR_NATS_URL ?? "nats://127.0.0.1:4222"
const uniqueJob = (name: string) => `t${process.pid}${Math.random().toString(36).slice(2, 8)}${name}`
const up = InstanceId.make("up", 0)
const down = InstanceId.make("down", 0)

/** A sender on one connection and a mailbox on another, as two actors would have. */
const pair = (job: string, options = defaultChannelOptions, epoch = 0) =>
  Effect.gen(function* () {
    const subjects = new Subjects(job)
    const ncOut = yield* natsConnection(natsUrl, { name: "sender" })
    const ncIn = yield* natsConnection(natsUrl, { name: "receiver" })
    const malformed: Array<EnvelopeDecodeError> = []
    const mailbox = yield* Mailbox.open(ncIn, subjects, down, [up], epoch, options, (e) => malformed.push(e))
    const sender = new ChannelSender(ncOut, subjects, up, down, epoch, options)
    const rejectedGrants: Array<EnvelopeDecodeError> = []
    yield* subscribeCredits(ncOut, subjects, up, epoch, new Map([[down.toString(), sender]]), (e) =>
      rejectedGrants.push(e)
    )
    return { subjects, ncOut, ncIn, mailbox, sender, malformed, rejectedGrants }
  })

t.test("100k records arrive in order across batches", async (t) => {
  const n = 100_000
  const received = await Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const { mailbox, sender } = yield* pair(uniqueJob("order"))
        const producer = yield* Effect.forkChild(
          Effect.gen(function* () {
            for (let i = 0; i < n; i += 1000) {
              const chunk: Array<number> = []
              for (let j = i; j < i + 1000; j++) chunk.push(j)
              yield* sender.push(chunk)
            }
            yield* sender.eos
          })
        )
        const got: Array<number> = []
        let batches = 0
        for (;;) {
          const { channel, envelope } = yield* mailbox.take
          if (envelope.k === "eos") break
          if (envelope.k === "batch") {
            batches++
            for (const r of envelope.r) got.push(r as number)
            mailbox.consumed(channel)
          }
        }
        yield* Fiber.join(producer)
        return { got, batches }
      })
    )
  )
  t.equal(received.got.length, n, "every record arrived")
  let inOrder = true
  for (let i = 0; i < n; i++) if (received.got[i] !== i) inOrder = false
  t.ok(inOrder, "in the order sent")
  t.ok(received.batches >= n / defaultChannelOptions.batchSize, `batched (${received.batches} batches)`)
})

t.test("a receiver that stops draining suspends the sender; memory stays bounded", async (t) => {
  const options = { ...defaultChannelOptions, creditWindow: 8, batchSize: 100 }
  const result = await Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const { mailbox, sender } = yield* pair(uniqueJob("bp"), options)
        const record = { id: "x".repeat(100) }
        let pushed = 0
        const heapBefore = process.memoryUsage().heapUsed
        const producer = yield* Effect.forkChild(
          Effect.gen(function* () {
            for (;;) {
              yield* sender.push([record])
              pushed++
            }
          })
        )
        yield* Effect.sleep("1500 millis")
        const stalled = { pushed, sent: sender.sentBatches, granted: sender.grantedBatches }
        yield* Effect.sleep("500 millis")
        const still = pushed
        const heapGrowth = process.memoryUsage().heapUsed - heapBefore
        // drain a little: the sender resumes
        for (let i = 0; i < 8; i++) {
          const d = yield* mailbox.take
          mailbox.consumed(d.channel)
        }
        yield* Effect.sleep("300 millis")
        const resumed = pushed
        yield* Fiber.interrupt(producer)
        return { stalled, still, resumed, heapGrowth, buffered: sender.buffered }
      })
    )
  )
  t.equal(result.stalled.sent, 8, "sent exactly the window of 8 batches")
  t.equal(result.stalled.granted, 8, "no more credit than the window")
  t.equal(result.still, result.stalled.pushed, "the sender is suspended, not looping")
  t.ok(
    result.stalled.pushed <= 8 * 100 + 100,
    `at most W batches + one partial batch accepted (${result.stalled.pushed})`
  )
  t.ok(result.heapGrowth < 32 * 1024 * 1024, `heap grew ${(result.heapGrowth / 1e6).toFixed(1)} MB`)
  t.ok(result.resumed > result.still, "draining the receiver resumes the sender")
})

t.test(
  "malformed bytes give a typed decode error and are not delivered; stale epochs are dropped",
  async (t) => {
    const outcome = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const { mailbox, sender, ncOut, subjects, malformed } = yield* pair(
            uniqueJob("bad"),
            defaultChannelOptions,
            3
          )
          const subject = subjects.mailbox(down)
          ncOut.publish(subject, new Uint8Array([0xc1, 0xff, 0x00]))
          ncOut.publish(subject, encode({ k: "credit", e: 3, c: "up#0", g: 1 }))
          ncOut.publish(subject, new TextEncoder().encode("hello"))
          // a stale epoch (2 < 3) and a valid message of epoch 3
          ncOut.publish(subject, encode({ k: "batch", e: 2, c: "up#0", s: 0, r: ["stale"] }))
          yield* sender.push(["fresh"])
          yield* sender.eos
          const first = yield* mailbox.take
          return { first, malformed: [...malformed], counters: { ...mailbox.counters } }
        })
      )
    )
    t.equal(outcome.first.envelope.k, "batch")
    t.same(
      outcome.first.envelope.k === "batch" ? outcome.first.envelope.r : [],
      ["fresh"],
      "only the valid record is delivered"
    )
    t.equal(outcome.counters.stale, 1, "the stale-epoch batch was dropped")
    t.equal(outcome.malformed.length, 3, "three malformed messages reported")
    t.ok(
      outcome.malformed.every((e) => e._tag === "EnvelopeDecodeError"),
      "as EnvelopeDecodeError"
    )
    t.match(outcome.malformed[0]!.message, /not msgpack/)
    t.match(outcome.malformed[1]!.message, /kind credit does not belong on a mailbox/)
  }
)

t.test("a gap in seq breaks the channel", async (t) => {
  const exit = await Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const { mailbox, ncOut, subjects } = yield* pair(uniqueJob("gap"))
        const subject = subjects.mailbox(down)
        ncOut.publish(subject, encode({ k: "batch", e: 0, c: "up#0", s: 0, r: [1] }))
        ncOut.publish(subject, encode({ k: "batch", e: 0, c: "up#0", s: 2, r: [3] }))
        const first = yield* mailbox.take
        const second = yield* Effect.exit(mailbox.take)
        return { first, second }
      })
    )
  )
  t.equal(exit.first.envelope.s, 0)
  t.ok(Exit.isFailure(exit.second), "the second take fails")
  if (Exit.isFailure(exit.second)) {
    const text = String(exit.second.cause)
    t.match(text, /ChannelBroken|gap/, "with ChannelBroken (gap)")
  }
})

t.test(
  "a well-formed message from a sender that is not an input channel is dropped, not a break",
  async (t) => {
    const outcome = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const { mailbox, sender, ncOut, subjects, malformed } = yield* pair(uniqueJob("foreign"))
          const subject = subjects.mailbox(down)
          // a forged sender, one far in the future and one with a huge seq: none is an input channel
          ncOut.publish(subject, encode({ k: "batch", e: 0, c: "nobody#0", s: 0, r: ["forged"] }))
          ncOut.publish(subject, encode({ k: "barrier", e: 0, c: "up#7", s: 2 ** 52, n: 1 }))
          yield* sender.push(["real"])
          yield* sender.eos
          const first = yield* mailbox.take
          const second = yield* mailbox.take
          return { first, second, malformed: [...malformed], counters: { ...mailbox.counters } }
        })
      )
    )
    t.same(
      outcome.first.envelope.k === "batch" ? outcome.first.envelope.r : [],
      ["real"],
      "the real batch arrives"
    )
    t.equal(outcome.second.envelope.k, "eos", "and the channel goes on to its eos")
    t.equal(outcome.counters.foreign, 2, "both forged messages counted")
    t.match(outcome.malformed[0]!.reason, /batch from "nobody#0", which is not an input channel of down#0/)
  }
)

t.test("grants that no receiver could have sent are rejected; the sender keeps its window", async (t) => {
  const outcome = await Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const { sender, ncIn, subjects, rejectedGrants } = yield* pair(uniqueJob("grants"))
        const subject = subjects.credit(up)
        const window = defaultChannelOptions.creditWindow
        ncIn.publish(subject, new Uint8Array([0x93, 0x01]))
        ncIn.publish(subject, encode({ k: "eos", e: 0, c: "down#0", s: 0 }))
        ncIn.publish(subject, encode({ k: "credit", e: 0, c: "nobody#0", g: window + 1 }))
        ncIn.publish(subject, encode({ k: "credit", e: 0, c: "down#0", g: 2 ** 50 }))
        // another epoch: a receiver that restored first; ignored without counting
        ncIn.publish(subject, encode({ k: "credit", e: 1, c: "down#0", g: window + 1 }))
        yield* Effect.promise(() => ncIn.flush())
        for (let i = 0; i < 50 && rejectedGrants.length < 4; i++) yield* Effect.sleep("20 millis")
        return { rejected: rejectedGrants.map((e) => e.reason), granted: sender.grantedBatches, window }
      })
    )
  )
  t.equal(outcome.rejected.length, 4, "garbage, a wrong kind, an unknown receiver and a grant too far ahead")
  t.match(outcome.rejected[0], /not msgpack|expected a map/)
  t.match(outcome.rejected[1], /kind eos does not belong on a credit subject/)
  t.match(outcome.rejected[2], /not a receiver of up#0/)
  t.match(outcome.rejected[3], /beyond the 0 batches sent plus one window/)
  t.equal(outcome.granted, outcome.window, "the sender's credit is still its first window")
})
