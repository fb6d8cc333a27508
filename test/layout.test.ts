/**
 * The layout of lib/ and actors/ as docs/layout.md's table states it: no import cycle
 * between files, every folder imports only the folders its row allows, and lib/ itself holds at most
 * three files. Reads the import statements as text (relative specifiers only); runs nothing.
 */
import { readdirSync, readFileSync, statSync } from "node:fs"
import { dirname, join, relative, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import t from "tap"

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..")

/** folder → the folders it may import (besides itself); docs/layout.md's table says the same */
const mayImport: Readonly<Record<string, ReadonlyArray<string>>> = {
  "lib/internal": [],
  "lib/core": ["lib/internal"],
  "lib/api": ["lib/core", "lib/internal"],
  "lib/runtime": ["lib/api", "lib/core", "lib/internal"],
  "lib/checkpoint": ["lib/runtime", "lib/api", "lib/core", "lib/internal"],
  "lib/brokers": ["lib/internal"],
  "lib/connectors": ["lib/runtime", "lib/api", "lib/core", "lib/internal", "lib/brokers"],
  "lib/process": ["lib/checkpoint", "lib/runtime", "lib/api", "lib/core", "lib/internal", "lib/brokers"],
  "lib/chaos": [
    "lib/process",
    "lib/checkpoint",
    "lib/runtime",
    "lib/api",
    "lib/core",
    "lib/internal",
    "lib/brokers",
    "lib/connectors"
  ],
  "lib/jobs": [
    "lib/checkpoint",
    "lib/runtime",
    "lib/api",
    "lib/core",
    "lib/internal",
    "lib/brokers",
    "lib/connectors"
  ],
  "lib/observe": ["lib/checkpoint", "lib/runtime", "lib/api", "lib/core", "lib/internal"],
  "lib/cli": ["*"],
  lib: ["*"],
  actors: ["lib/connectors", "lib/runtime", "lib/api", "lib/core", "lib/internal"],
  "actors/examples": [
    "actors",
    "lib/api",
    "lib/core",
    "lib/internal",
    "lib/connectors",
    "lib/chaos",
    "lib/index.ts"
  ]
}

/** The row of a file: its folder, with lib/connectors/<name> and test-free actors/examples grouped. */
const rowOf = (file: string): string => {
  const parts = file.split("/")
  if (parts[0] === "actors") return parts.length > 2 ? `actors/${parts[1]}` : "actors"
  if (parts.length === 2) return "lib"
  return `lib/${parts[1]}`
}

const tsFiles = (dir: string): Array<string> =>
  readdirSync(join(root, dir)).flatMap((name) => {
    const path = `${dir}/${name}`
    if (statSync(join(root, path)).isDirectory()) return tsFiles(path)
    return name.endsWith(".ts") ? [path] : []
  })

const files = [...tsFiles("lib"), ...tsFiles("actors")]
const specifier =
  /(?:^|\n)\s*(?:import|export)[^"'`;]*?from\s+"(\.{1,2}\/[^"]+)"|import\(\s*"(\.{1,2}\/[^"]+)"\s*\)/g

/** file → the files of lib/ and actors/ it imports */
const imports = new Map<string, Array<string>>(
  files.map((file) => {
    const text = readFileSync(join(root, file), "utf8")
    const targets = [...text.matchAll(specifier)].map((m) =>
      relative(root, resolve(root, dirname(file), (m[1] ?? m[2]) as string))
    )
    return [file, targets]
  })
)

const allowed = (from: string, to: string): boolean => {
  const a = rowOf(from)
  const b = to.startsWith("lib/connectors/") ? "lib/connectors" : rowOf(to)
  const rule = mayImport[a.startsWith("lib/connectors") ? "lib/connectors" : a]
  if (rule === undefined) return false
  if (a === b || rule.includes("*")) return true
  if (rule.includes(to)) return true
  // one connector never imports another
  if (a === "lib/connectors" && b === "lib/connectors") return from.split("/")[2] === to.split("/")[2]
  return rule.includes(b)
}

/** Every cycle's files, by depth-first search with colours. */
const findCycles = (graph: ReadonlyMap<string, ReadonlyArray<string>>): Array<Array<string>> => {
  const colour = new Map<string, "grey" | "black">()
  const stack: Array<string> = []
  const cycles: Array<Array<string>> = []
  const visit = (node: string) => {
    colour.set(node, "grey")
    stack.push(node)
    for (const next of graph.get(node) ?? []) {
      if (!graph.has(next)) continue
      const c = colour.get(next)
      if (c === "grey") cycles.push([...stack.slice(stack.indexOf(next)), next])
      else if (c === undefined) visit(next)
    }
    stack.pop()
    colour.set(node, "black")
  }
  for (const node of graph.keys()) if (!colour.has(node)) visit(node)
  return cycles
}

t.test("no import cycle among the files of lib/ and actors/", async (t) => {
  t.ok(files.length > 50, `read ${files.length} files`)
  t.same(
    findCycles(imports).map((c) => c.join(" -> ")),
    [],
    "no cycles"
  )
})

t.test("the cycle finder finds a cycle", async (t) => {
  const graph = new Map([
    ["a", ["b"]],
    ["b", ["c"]],
    ["c", ["a"]],
    ["d", ["a"]]
  ])
  t.same(findCycles(graph), [["a", "b", "c", "a"]])
})

t.test("every import runs the way the Architecture table allows", async (t) => {
  const wrong = [...imports].flatMap(([from, targets]) =>
    targets.filter((to) => !allowed(from, to)).map((to) => `${from} imports ${to}`)
  )
  t.same(wrong, [], "no import against the layering")
  t.notOk(
    allowed("lib/runtime/Actor.ts", "lib/connectors/rabbitmq/RabbitMqSink.ts"),
    "runtime -> connector is refused"
  )
  t.notOk(
    allowed("lib/connectors/rabbitmq/RabbitMqSink.ts", "lib/cli/exactor.ts"),
    "connector -> cli is refused"
  )
  t.notOk(
    allowed("lib/checkpoint/Coordinator.ts", "lib/process/Launcher.ts"),
    "checkpoint -> process is refused"
  )
})

t.test("lib/ itself holds at most three files; every folder of lib/ has a row", async (t) => {
  const top = files.filter((f) => f.split("/").length === 2 && f.startsWith("lib/"))
  t.ok(top.length <= 3, `lib/ holds ${top.join(", ")}`)
  const rows = new Set(files.map((f) => (f.startsWith("lib/connectors/") ? "lib/connectors" : rowOf(f))))
  t.same(
    [...rows].filter((r) => mayImport[r] === undefined),
    [],
    "every folder is in the table"
  )
})
