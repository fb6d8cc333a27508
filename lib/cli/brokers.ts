/**
 * `npm run brokers`: makes sure NATS (with JetStream) and RabbitMQ are up, starting them if needed
 * (see lib/brokers/Brokers.ts), and prints one line per broker, PostgreSQL too (lib/brokers/PostgresBroker.ts,
 * never fatal) and the browser of the web view's test (lib/brokers/Chromium.ts, never fatal). Exits 0 only when NATS and RabbitMQ answer; otherwise
 * it exits 1 and the failing broker's line says what to install or which env var to set.
 */
import { runMain } from "@effect/platform-node/NodeRuntime"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type { BrokerName } from "../brokers/BrokerError.ts"
import { ensureNats, ensureRabbitMq } from "../brokers/Brokers.ts"
import { ensureChromium } from "../brokers/Chromium.ts"
import { ensurePostgres } from "../brokers/PostgresBroker.ts"
import { ensureStreamPlugin } from "../brokers/StreamPlugin.ts"

class BrokersNotReady extends Data.TaggedError("BrokersNotReady")<{
  readonly brokers: ReadonlyArray<BrokerName>
}> {
  override get message(): string {
    return `not ready: ${this.brokers.join(", ")}`
  }
}

const main = Effect.gen(function* () {
  const results = yield* Effect.all(
    [
      Effect.result(ensureNats()).pipe(Effect.map((result) => ({ broker: "NATS" as const, result }))),
      Effect.result(ensureRabbitMq()).pipe(Effect.map((result) => ({ broker: "RabbitMQ" as const, result })))
    ],
    { concurrency: 2 }
  )
  const notReady: Array<BrokerName> = []
  for (const { broker, result } of results) {
    if (result._tag === "Success") {
      yield* Console.log(`${broker.padEnd(8)} ${result.success.url}: ${result.success.how}`)
    } else {
      notReady.push(broker)
      yield* Console.error(`${broker.padEnd(8)} ${result.failure.message}`)
    }
  }
  // PostgreSQL is only for the PostgreSQL sink (its tests start private clusters): reported, never fatal
  const pgStatus = yield* Effect.result(ensurePostgres())
  if (pgStatus._tag === "Success") {
    const { url, how, maxPreparedTransactions: m } = pgStatus.success
    const note =
      m === 0 ? ' (max_prepared_transactions = 0: the PostgreSQL sink needs mode: "local" there)' : ""
    yield* Console.log(`${"Postgres".padEnd(8)} ${url.replace(/\/\/[^@/]*@/, "//")}: ${how}${note}`)
  } else
    yield* Console.error(
      `${"Postgres".padEnd(8)} ${pgStatus.failure.message} (only the PostgreSQL sink needs it)`
    )
  // the web view's browser test drives Debian's chromium: installed here when missing, never fatal
  yield* Console.log(`${"browser".padEnd(8)} ${yield* ensureChromium()}`)
  if (notReady.length > 0) return yield* new BrokersNotReady({ brokers: notReady })
  const rabbit = results[1]
  if (rabbit.result._tag === "Success")
    yield* Console.log(`${"streams".padEnd(8)} ${yield* ensureStreamPlugin(rabbit.result.success.url)}`)
})

runMain(main, { disableErrorReporting: true })
