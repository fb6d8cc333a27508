/**
 * The oracle of an interval join (DESIGN-dataflow §4, §5), independent of lib/: from the two
 * splits' input alone it lists every pair (a of the left split, b of the right, same customer,
 * a.at + lower ≤ b.at ≤ a.at + upper) and checks the join's output against it. Which records are
 * late at the join depends on how the splits interleave, so the late rows decide that; the oracle
 * checks they are known records, never on-time ones (an on-time record is above its own split's
 * watermark, so above the join's, the minimum), each once, and that no pair with a late member was
 * emitted. Exactly once ⇔ lost = duplicated = unexpected = lateWrong = 0.
 */
import type { InputOrder, Order } from "./windowInput.ts"

/** A join result as the job writes it (JSON). */
export interface JoinRow {
  readonly customer: string
  readonly a: string
  readonly b: string
}
/** A late row of the join as the job writes it (JSON). */
export interface JoinLateRow {
  readonly record: Order
  readonly side: "left" | "right"
}

export interface JoinVerdict {
  /** pairs of records neither of which is late */
  readonly attempted: number
  readonly results: number
  readonly lateRecords: number
  readonly lost: number
  readonly duplicated: number
  readonly unexpected: number
  readonly lateWrong: number
  readonly ok: boolean
  readonly examples: ReadonlyArray<string>
}

export const checkJoin = (o: {
  readonly left: ReadonlyArray<InputOrder>
  readonly right: ReadonlyArray<InputOrder>
  readonly lower: number
  readonly upper: number
  readonly results: ReadonlyArray<JoinRow>
  readonly late: ReadonlyArray<JoinLateRow>
}): JoinVerdict => {
  const examples: Array<string> = []
  const note = (s: string) => {
    if (examples.length < 8) examples.push(s)
  }
  let duplicated = 0
  let unexpected = 0
  let lateWrong = 0
  const sides = { left: new Map(o.left.map((r) => [r.id, r])), right: new Map(o.right.map((r) => [r.id, r])) }
  const late = { left: new Set<string>(), right: new Set<string>() }
  for (const l of o.late) {
    const r = sides[l.side]?.get(l.record.id)
    if (r === undefined) {
      unexpected++
      note(`late row of no ${l.side} record: ${JSON.stringify(l)}`)
      continue
    }
    if (late[l.side].has(r.id)) duplicated++
    late[l.side].add(r.id)
    if (r.intended === "onTime") {
      lateWrong++
      note(`on-time ${l.side} record ${r.id} (ts ${r.at}) in the join's late output`)
    }
  }
  // every pair in bounds of records that are not late
  const rightByCustomer = new Map<string, Array<InputOrder>>()
  for (const b of o.right)
    if (!late.right.has(b.id))
      rightByCustomer.set(b.customer, [...(rightByCustomer.get(b.customer) ?? []), b])
  const want = new Set<string>()
  for (const a of o.left) {
    if (late.left.has(a.id)) continue
    for (const b of rightByCustomer.get(a.customer) ?? [])
      if (a.at + o.lower <= b.at && b.at <= a.at + o.upper) want.add(`${a.id}|${b.id}`)
  }
  const seen = new Map<string, number>()
  for (const r of o.results) {
    const id = `${r.a}|${r.b}`
    seen.set(id, (seen.get(id) ?? 0) + 1)
  }
  let lost = 0
  for (const id of want) {
    const n = seen.get(id) ?? 0
    if (n === 0) {
      lost++
      note(`pair ${id} never joined`)
    }
    if (n > 1) {
      duplicated += n - 1
      note(`pair ${id} joined ${n} times`)
    }
  }
  for (const [id, n] of seen)
    if (!want.has(id)) {
      unexpected += n
      note(`pair ${id} joined, but it is out of bounds, of unknown records or has a late member`)
    }
  const ok = lost + duplicated + unexpected + lateWrong === 0
  return {
    attempted: want.size,
    results: o.results.length,
    lateRecords: o.late.length,
    lost,
    duplicated,
    unexpected,
    lateWrong,
    ok,
    examples
  }
}
