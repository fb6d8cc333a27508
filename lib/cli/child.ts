#!/usr/bin/env node
/**
 * The entry of the processes a launcher starts, apart from the `exactor` CLI so that each actor
 * process loads only the runtime it runs (the CLI's modules cost tens of MB of RSS per process):
 *   child.ts actor <pipeline-module> <instance>
 *   child.ts coordinator <pipeline-module>
 * Exit codes as `exactor`'s.
 */
import { runMain } from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"
import { brokerUrlsFromEnv } from "../brokers/BrokerUrls.ts"
import { actorProcess, coordinatorProcess, exitCodeTeardown } from "../process/ChildProcesses.ts"

const [role, module, instance] = process.argv.slice(2)
const usage = "usage: child.ts actor <pipeline-module> <instance> | child.ts coordinator <pipeline-module>"

const program =
  role === "actor" && module !== undefined && instance !== undefined
    ? actorProcess(module, instance, brokerUrlsFromEnv())
    : role === "coordinator" && module !== undefined
      ? coordinatorProcess(module, brokerUrlsFromEnv())
      : Effect.sync(() => {
          console.error(`${usage}\n(got: ${process.argv.slice(2).join(" ") || "nothing"})`)
          process.exitCode = 1
        })

runMain(program, { teardown: exitCodeTeardown })
