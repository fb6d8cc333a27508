/**
 * Starts test/fixtures/postgres-sink-child.ts (a PostgreSQL sink instance in its own process) and
 * reads its `@@<json>` event lines, for kill -9 and zombie tests. Invariant: the child is SIGKILLed
 * at the end of the test that started it.
 */
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"

const fixture = fileURLToPath(new URL("../fixtures/postgres-sink-child.ts", import.meta.url))

export interface SinkChild {
  readonly next: (event: string) => Promise<Record<string, unknown>>
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  readonly send: (line: string) => void
  readonly kill: () => void
  readonly stop: () => void
  readonly cont: () => void
}

export interface SinkChildConfig {
  readonly mode: "precommit" | "committed" | "twoPrepared" | "zombie"
  readonly url: string
  readonly job: string
  readonly table: string
  readonly sinkMode: "prepared" | "local"
  readonly records: ReadonlyArray<{ v: string }>
  readonly more?: ReadonlyArray<{ v: string }>
}

export const sinkChild = (config: SinkChildConfig, teardown: (f: () => void) => void): SinkChild => {
  const p = spawn(process.execPath, [fixture], {
    env: { ...process.env, EXACTOR_PG_SINK_CHILD: JSON.stringify({ more: [], ...config }) },
    stdio: ["pipe", "pipe", "inherit"]
  })
  const events: Array<Record<string, unknown>> = []
  const waiting: Array<() => void> = []
  let buffer = ""
  p.stdout.on("data", (chunk: Buffer) => {
    buffer += chunk.toString("utf8")
    let nl = buffer.indexOf("\n")
    while (nl >= 0) {
      const line = buffer.slice(0, nl)
      buffer = buffer.slice(nl + 1)
      if (line.startsWith("@@")) events.push(JSON.parse(line.slice(2)) as Record<string, unknown>)
      nl = buffer.indexOf("\n")
    }
    for (const w of waiting.splice(0)) w()
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    p.on("exit", (code, signal) => resolve({ code, signal }))
  )
  const next = async (event: string): Promise<Record<string, unknown>> => {
    for (;;) {
      const i = events.findIndex((e) => e.event === event || e.event === "error")
      if (i >= 0) {
        const [e] = events.splice(i, 1)
        if (e?.event === "error") throw new Error(`child failed: ${String(e.message)}`)
        return e ?? {}
      }
      const gone = await Promise.race([
        exited.then(() => true),
        new Promise<false>((r) => waiting.push(() => r(false)))
      ])
      if (gone && !events.some((e) => e.event === event || e.event === "error"))
        throw new Error(`child exited before reporting ${event}`)
    }
  }
  teardown(() => void p.kill("SIGKILL"))
  return {
    next,
    exited,
    send: (line) => void p.stdin.write(`${line}\n`),
    kill: () => void p.kill("SIGKILL"),
    stop: () => void p.kill("SIGSTOP"),
    cont: () => void p.kill("SIGCONT")
  }
}
