/**
 * The independent oracle of windowed jobs (DESIGN-dataflow §4, §5): it re-derives watermarks and
 * window fates from the input alone and checks a job's drained output as a Jepsen-style table.
 * Imports nothing from lib/. Exactly once ⇔ lost = duplicated = unexpected = lateWrong =
 * brokenChains = mismatch = 0.
 */
import {
  splitEvents,
  type InputOrder,
  type Order,
  type WatermarkOptions,
  type WindowEvent
} from "./windowInput.ts"

export type Assigner =
  | { readonly kind: "tumbling"; readonly size: number; readonly offset?: number }
  | { readonly kind: "sliding"; readonly size: number; readonly slide: number; readonly offset?: number }
  | { readonly kind: "session"; readonly gap: number }

export interface WindowConfig extends WatermarkOptions {
  readonly assigner: Assigner
  /** L, ms */
  readonly lateness: number
}

export interface Window {
  readonly start: number
  readonly end: number
}
export interface Aggregate {
  readonly count: number
  readonly sum: number
  readonly idHash: number
}
/** A result row as the job writes it (JSON). */
export interface WindowResultRow {
  readonly key: string
  readonly window: Window
  readonly value: Aggregate
  readonly firing: number
  /** no later firing can come: the window's cleanup time end − 1 + L ≤ wm when it fired */
  readonly final: boolean
}
/** A late row as the job writes it (JSON). */
export interface LateRow {
  readonly record: Order
  readonly timestamp: number
  readonly windows: ReadonlyArray<Window>
}

/** one encoder for every call (the aggregate hashes once per record) */
const utf8 = new TextEncoder()

/** FNV-1a, 32 bits, over the UTF-8 bytes of `s`. */
export const fnv1a32 = (s: string): number => {
  let h = 0x811c9dc5
  for (const byte of utf8.encode(s)) h = Math.imul(h ^ byte, 0x01000193) >>> 0
  return h
}

/** Σ fnv1a32(id) mod 2³²: equal member sets have equal hashes, in any order. */
export const idHash = (ids: Iterable<string>): number => {
  let h = 0
  for (const id of ids) h = (h + fnv1a32(id)) % 4294967296
  return h
}

const EMPTY: Aggregate = { count: 0, sum: 0, idHash: 0 }
const addOrder = (a: Aggregate, o: Order): Aggregate => ({
  count: a.count + 1,
  sum: a.sum + o.amount,
  idHash: (a.idHash + fnv1a32(o.id)) % 4294967296
})
const mergeAggregates = (a: Aggregate, b: Aggregate): Aggregate => ({
  count: a.count + b.count,
  sum: a.sum + b.sum,
  idHash: (a.idHash + b.idHash) % 4294967296
})
const sameAggregate = (a: Aggregate, b: Aggregate) =>
  a.count === b.count && a.sum === b.sum && a.idHash === b.idHash

const floorMod = (a: number, n: number) => ((a % n) + n) % n

/** The windows a timestamp belongs to, by start ascending (a session: its own [ts, ts + gap)). */
export const assignWindows = (assigner: Assigner, ts: number): Array<Window> => {
  if (assigner.kind === "session") return [{ start: ts, end: ts + assigner.gap }]
  const offset = assigner.offset ?? 0
  if (assigner.kind === "tumbling") {
    const start = ts - floorMod(ts - offset, assigner.size)
    return [{ start, end: start + assigner.size }]
  }
  const windows: Array<Window> = []
  const last = ts - floorMod(ts - offset, assigner.slide)
  for (let start = last; start > ts - assigner.size; start -= assigner.slide)
    windows.unshift({ start, end: start + assigner.size })
  return windows
}

interface OpenWindow {
  start: number
  end: number
  value: Aggregate
  /** the last firing emitted, 0 before the first */
  firing: number
  /** it holds members no firing has shown yet */
  pending: boolean
}

/**
 * The window operator, from its input events: keyed by customer, aggregate {count, sum, idHash},
 * emit "atEnd". Fires at wm ≥ end − 1 in (end − 1, key, start) order, re-fires on each allowed-late
 * record, drops state at end − 1 + L, and at END fires whatever has not fired.
 */
export const simulateEvents = (events: ReadonlyArray<WindowEvent>, config: WindowConfig) => {
  const { assigner, lateness } = config
  const results: Array<WindowResultRow> = []
  const late: Array<LateRow> = []
  const open = new Map<string, Array<OpenWindow>>()
  let wm = Number.NEGATIVE_INFINITY
  const isLate = (w: Window) => w.end - 1 + lateness <= wm
  const fire = (key: string, w: OpenWindow) => {
    w.firing++
    w.pending = false
    const final = w.end - 1 + lateness <= wm
    results.push({ key, window: { start: w.start, end: w.end }, value: w.value, firing: w.firing, final })
  }
  const lateRow = (r: Order, windows: Array<Window>) => {
    const record = { id: r.id, customer: r.customer, amount: r.amount, at: r.at }
    late.push({ record, timestamp: r.at, windows })
  }
  const addFixed = (r: Order, list: Array<OpenWindow>) => {
    const missed: Array<Window> = []
    for (const w of assignWindows(assigner, r.at)) {
      if (isLate(w)) {
        missed.push(w)
        continue
      }
      let state = list.find((o) => o.start === w.start)
      if (!state) {
        state = { start: w.start, end: w.end, value: EMPTY, firing: 0, pending: false }
        list.push(state)
      }
      state.value = addOrder(state.value, r)
      state.pending = true
      if (state.end - 1 <= wm) fire(r.customer, state)
    }
    if (missed.length > 0) lateRow(r, missed)
  }
  const addSession = (r: Order, list: Array<OpenWindow>) => {
    const own = assignWindows(assigner, r.at)[0]!
    const touching = list.filter((o) => o.start <= own.end && own.start <= o.end)
    if (touching.length === 0 && isLate(own)) return lateRow(r, [own])
    const merged: OpenWindow = { ...own, value: addOrder(EMPTY, r), firing: 0, pending: true }
    for (const o of touching) {
      merged.start = Math.min(merged.start, o.start)
      merged.end = Math.max(merged.end, o.end)
      merged.value = mergeAggregates(merged.value, o.value)
      merged.firing = Math.max(merged.firing, o.firing)
      list.splice(list.indexOf(o), 1)
    }
    list.push(merged)
    if (merged.end - 1 <= wm) fire(r.customer, merged)
  }
  const advance = (to: number) => {
    wm = to
    const due: Array<[string, OpenWindow]> = []
    for (const [key, list] of open) for (const w of list) if (w.pending && w.end - 1 <= wm) due.push([key, w])
    due.sort(([ka, a], [kb, b]) => a.end - b.end || (ka < kb ? -1 : ka > kb ? 1 : 0) || a.start - b.start)
    for (const [key, w] of due) fire(key, w)
    for (const [key, list] of open) {
      const kept = list.filter((w) => !isLate(w))
      if (kept.length === 0) open.delete(key)
      else open.set(key, kept)
    }
  }
  for (const event of events) {
    if ("watermark" in event) {
      advance(event.watermark)
      continue
    }
    const list = open.get(event.record.customer) ?? []
    open.set(event.record.customer, list)
    if (assigner.kind === "session") addSession(event.record, list)
    else addFixed(event.record, list)
  }
  return { results, late }
}

/** Single-split mode: the records of one split, in its order, through its watermarks. */
export const simulateWindows = (records: ReadonlyArray<Order>, config: WindowConfig) =>
  simulateEvents(splitEvents(records, config), config)

export interface WindowVerdict {
  /** (record, window) pairs; for sessions, records */
  readonly attempted: number
  readonly results: number
  readonly lateRecords: number
  readonly lost: number
  readonly duplicated: number
  readonly unexpected: number
  readonly lateWrong: number
  readonly brokenChains: number
  readonly mismatch: number
  readonly ok: boolean
  readonly examples: ReadonlyArray<string>
}

const windowId = (key: string, w: Window) => `${key}|${w.start}|${w.end}`
const show = (w: Window) => `[${w.start}, ${w.end})`

interface Chain {
  readonly key: string
  readonly window: Window
  readonly rows: Array<WindowResultRow>
}

/** Canonical strings of rows, for the exact comparison of single-split mode. */
const resultText = (r: WindowResultRow) =>
  JSON.stringify([String(r.key), r.window.start, r.window.end, r.firing, r.value, r.final])
const lateText = (l: LateRow) =>
  JSON.stringify([
    l.record.id,
    l.record.customer,
    l.record.amount,
    l.record.at,
    l.timestamp,
    [...l.windows].sort((a, b) => a.start - b.start).map((w) => [w.start, w.end])
  ])

/** Rows of `a` that `b` lacks, as a multiset difference. */
const missingFrom = (a: ReadonlyArray<string>, b: ReadonlyArray<string>): Array<string> => {
  const left = new Map<string, number>()
  for (const s of b) left.set(s, (left.get(s) ?? 0) + 1)
  const missing: Array<string> = []
  for (const s of a) {
    const n = left.get(s) ?? 0
    if (n === 0) missing.push(s)
    else left.set(s, n - 1)
  }
  return missing
}

/**
 * Checks a windowed job's output against its input (all splits). Multi-split mode checks
 * conservation only (interleaving makes watermarks nondeterministic, E3); single-split mode also
 * requires every result and late row to equal the simulation exactly.
 */
export const checkWindows = (o: {
  readonly input: ReadonlyArray<InputOrder>
  readonly kind: Assigner["kind"]
  readonly config: WindowConfig
  readonly results: ReadonlyArray<WindowResultRow>
  readonly late: ReadonlyArray<LateRow>
  readonly singleSplit: boolean
}): WindowVerdict => {
  const { assigner } = o.config
  if (assigner.kind !== o.kind) throw new Error(`checkWindows: kind ${o.kind} but assigner ${assigner.kind}`)
  const examples: Array<string> = []
  const note = (s: string) => {
    if (examples.length < 8) examples.push(s)
  }
  let attempted = 0
  let lost = 0
  let duplicated = 0
  let unexpected = 0
  let lateWrong = 0
  let brokenChains = 0
  let mismatch = 0
  /** expected total `want` against what came out, `got` (one window or, for sessions, one key) */
  const conserve = (what: string, want: Aggregate, got: Aggregate) => {
    if (sameAggregate(want, got)) return
    const diff = got.count - want.count
    if (diff > 0) duplicated += diff
    if (diff < 0) lost -= diff
    if (diff === 0) {
      lost++
      duplicated++
    }
    note(`${what}: expected ${JSON.stringify(want)}, got ${JSON.stringify(got)}`)
  }

  const byId = new Map<string, InputOrder>()
  const perKey = new Map<string, Array<InputOrder>>()
  for (const r of o.input) {
    byId.set(r.id, r)
    const list = perKey.get(r.customer) ?? []
    perKey.set(r.customer, list)
    list.push(r)
  }

  // late rows: known record, windows it belongs to, never an on-time one, once per window
  const lateIds = new Map<string, Set<string>>() // window id (session: key) → record ids
  for (const l of o.late) {
    const r = byId.get(l.record.id)
    if (!r || r.customer !== l.record.customer || r.amount !== l.record.amount || r.at !== l.record.at) {
      unexpected++
      note(`unexpected late row ${JSON.stringify(l.record)}`)
      continue
    }
    if (r.intended === "onTime") {
      lateWrong++
      note(`on-time record ${r.id} (ts ${r.at}) in the late output`)
    }
    const own = assignWindows(assigner, r.at)
    for (const w of l.windows) {
      if (!own.some((x) => x.start === w.start && x.end === w.end)) {
        unexpected++
        note(`late row of ${r.id} names ${show(w)}, not a window of ts ${r.at}`)
        continue
      }
      const id = assigner.kind === "session" ? r.customer : windowId(r.customer, w)
      const ids = lateIds.get(id) ?? new Set<string>()
      lateIds.set(id, ids)
      if (ids.has(r.id)) {
        duplicated++
        note(`record ${r.id} late twice for ${show(w)}`)
      }
      ids.add(r.id)
    }
  }

  // chains: firings of one (key, window) run 1..k, each once, count and sum never shrink
  const chains = new Map<string, Chain>()
  const chainsOfKey = new Map<string, Array<Chain>>()
  for (const row of o.results) {
    const id = windowId(String(row.key), row.window)
    let chain = chains.get(id)
    if (!chain) {
      chain = { key: String(row.key), window: row.window, rows: [] }
      chains.set(id, chain)
      const ofKey = chainsOfKey.get(chain.key) ?? []
      chainsOfKey.set(chain.key, ofKey)
      ofKey.push(chain)
    }
    chain.rows.push(row)
  }
  const highest = new Map<string, WindowResultRow>()
  for (const [id, chain] of chains) {
    const rows = [...chain.rows].sort((a, b) => a.firing - b.firing)
    let broken = rows[0]!.firing !== 1
    if (broken && assigner.kind === "session")
      broken = !continuesMerged(chainsOfKey.get(chain.key)!, chain, rows[0]!.firing)
    for (let i = 1; i < rows.length; i++) {
      const prev = rows[i - 1]!
      const row = rows[i]!
      if (row.firing === prev.firing && sameAggregate(row.value, prev.value)) {
        duplicated++
        note(`firing ${row.firing} of ${chain.key} ${show(chain.window)} came out twice`)
      } else if (row.firing !== prev.firing + 1) broken = true
      else if (row.value.count < prev.value.count || row.value.sum < prev.value.sum) broken = true
    }
    if (broken) {
      brokenChains++
      note(`broken chain ${chain.key} ${show(chain.window)}: firings ${rows.map((r) => r.firing).join(",")}`)
    }
    highest.set(id, lastFiring(chain))
  }

  if (assigner.kind !== "session") {
    // each (key, window): the highest firing plus its late records are exactly its input records
    const expected = new Map<string, Array<InputOrder>>()
    for (const r of o.input) {
      for (const w of assignWindows(assigner, r.at)) {
        attempted++
        const id = windowId(r.customer, w)
        const list = expected.get(id) ?? []
        expected.set(id, list)
        list.push(r)
      }
    }
    for (const [id, members] of expected) {
      const lateHere = lateIds.get(id) ?? new Set<string>()
      const inWindow = members.filter((r) => !lateHere.has(r.id))
      const top = highest.get(id)
      if (top && inWindow.length === 0) {
        unexpected++
        note(`result ${id} although all its members were late`)
      } else conserve(`window ${id}`, inWindow.reduce(addOrder, EMPTY), top?.value ?? EMPTY)
    }
    for (const [id, chain] of chains) {
      if (expected.has(id)) continue
      unexpected++
      note(`result for ${chain.key} ${show(chain.window)}, a window no input record maps to`)
    }
  } else {
    // each key: the highest firings of its final sessions plus its late records are its input
    attempted = o.input.length
    for (const [key, records] of perKey) {
      const lateHere = lateIds.get(key) ?? new Set<string>()
      let got = records.filter((r) => lateHere.has(r.id)).reduce(addOrder, EMPTY)
      for (const chain of chainsOfKey.get(key) ?? [])
        if (!superseded(chainsOfKey.get(key)!, chain)) got = mergeAggregates(got, lastFiring(chain).value)
      conserve(`key ${key}`, records.reduce(addOrder, EMPTY), got)
    }
    for (const chain of chains.values()) {
      const starts = (perKey.get(chain.key) ?? []).map((r) => r.at)
      if (starts.includes(chain.window.start) && starts.includes(chain.window.end - assigner.gap)) continue
      unexpected++
      note(`session ${chain.key} ${show(chain.window)} is not bounded by records of its key`)
    }
  }

  if (o.singleSplit) {
    if (new Set(o.input.map((r) => r.split)).size > 1)
      throw new Error("checkWindows: singleSplit with several splits")
    const sim = simulateWindows(o.input, o.config)
    const want = [...sim.results.map(resultText), ...sim.late.map(lateText)]
    const got = [...o.results.map(resultText), ...o.late.map(lateText)]
    for (const s of missingFrom(want, got)) note(`simulation has ${s}, the output not`)
    for (const s of missingFrom(got, want)) note(`output has ${s}, the simulation not`)
    mismatch = missingFrom(want, got).length + missingFrom(got, want).length
  }

  const ok = lost + duplicated + unexpected + lateWrong + brokenChains + mismatch === 0
  const { results, late } = o
  return {
    attempted,
    results: results.length,
    lateRecords: late.length,
    lost,
    duplicated,
    unexpected,
    lateWrong,
    brokenChains,
    mismatch,
    ok,
    examples
  }
}

const contains = (outer: Window, inner: Window) =>
  outer.start <= inner.start &&
  inner.end <= outer.end &&
  (outer.start !== inner.start || outer.end !== inner.end)

const lastFiring = (chain: Chain): WindowResultRow =>
  chain.rows.reduce((top, r) => (r.firing > top.firing ? r : top))
const firstFiring = (chain: Chain): number => Math.min(...chain.rows.map((r) => r.firing))

/** A session whose first firing is k > 1 grew from a merged one (same key) that last fired k − 1. */
const continuesMerged = (ofKey: ReadonlyArray<Chain>, chain: Chain, first: number) =>
  ofKey.some((c) => contains(chain.window, c.window) && lastFiring(c).firing === first - 1)

/**
 * A session was merged into a larger one: that one contains it and fired only after it (a merged
 * session continues the firings of its parts; one reopened after cleanup starts again at 1).
 */
const superseded = (ofKey: ReadonlyArray<Chain>, chain: Chain) =>
  ofKey.some((c) => contains(c.window, chain.window) && firstFiring(c) > lastFiring(chain).firing)

/** The verdict as a Jepsen-style table, for a test's output. */
export const verdictTable = (v: WindowVerdict): string =>
  [
    "attempted",
    "results",
    "lateRecords",
    "lost",
    "duplicated",
    "unexpected",
    "lateWrong",
    "brokenChains",
    "mismatch"
  ]
    .map((k) => `${k.padEnd(13)} ${v[k as keyof WindowVerdict]}`)
    .concat(`${"ok".padEnd(13)} ${v.ok}`, ...v.examples.map((e) => `  ${e}`))
    .join("\n")
