/**
 * EXACTOR_LOG_FORMAT=json: one JSON object per log line with job, instance, epoch and checkpoint
 * fields (from annotations, else from the message's words); anything else keeps the human format.
 */
import { Effect, Logger } from "effect"
import { TestConsole } from "effect/testing"
import t from "tap"
import { jsonLogLine, logFormatFromEnv } from "../../lib/runtime/LogFormat.ts"

const logged = (effect: Effect.Effect<void>) =>
  Effect.runPromise(
    Effect.gen(function* () {
      yield* effect.pipe(Effect.provide(Logger.layer([Logger.withConsoleLog(jsonLogLine)])))
      return yield* TestConsole.logLines
    }).pipe(Effect.provide(TestConsole.layer))
  )

t.test("a log line is one JSON object with job, instance, epoch and checkpoint", async (t) => {
  const lines = await logged(
    Effect.logInfo("checkpoint 12 completed in 40 ms (epoch 3)").pipe(
      Effect.annotateLogs({ job: "orders", instance: "total#1" })
    )
  )
  t.equal(lines.length, 1)
  const o = JSON.parse(String(lines[0]))
  t.match(o, { level: "INFO", job: "orders", instance: "total#1", epoch: 3, checkpoint: 12 })
  t.match(o.message, /checkpoint 12 completed/)
  t.type(o.timestamp, "string")
})

t.test("annotations win over the message's words; no number, no field", async (t) => {
  const lines = await logged(
    Effect.logError("epoch 1: recovery failed").pipe(
      Effect.annotateLogs({ epoch: 7 }),
      Effect.andThen(Effect.logWarning("no numbers here"))
    )
  )
  const [a, b] = lines.map((l) => JSON.parse(String(l)))
  t.equal(a.epoch, 7)
  t.equal(a.level, "ERROR")
  t.notOk("epoch" in b, "no epoch field when nothing says one")
})

t.test("EXACTOR_LOG_FORMAT", async (t) => {
  t.equal(logFormatFromEnv({ EXACTOR_LOG_FORMAT: "json" }), "json")
  t.equal(logFormatFromEnv({}), "human")
  t.equal(logFormatFromEnv({ EXACTOR_LOG_FORMAT: "text" }), "human")
})
