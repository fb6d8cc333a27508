/**
 * How the PostgreSQL sink writes a batch of records inside a transaction: multi-row INSERTs of the
 * configured columns (named server-side statements, one per chunk size), or the user's statement
 * once per record. Invariant: one batch is one uninterruptible Effect (a plain loop inside), so no
 * statement of it can outlive it; a rejected statement fails with the error naming its first
 * record, and nothing after it is sent.
 */
import * as Effect from "effect/Effect"
import { classify, PgSinkQueryFailed } from "./PostgresSinkErrors.ts"
import type { Conn } from "./PostgresSession.ts"
import { quoteQualified, type Resolved } from "./PostgresSinkOptions.ts"

const fieldsOf = (record: unknown, columns: ReadonlyArray<string>, out: Array<unknown>) => {
  const r = (typeof record === "object" && record !== null ? record : {}) as Record<string, unknown>
  for (const c of columns) out.push(r[c] ?? null)
}

/** Builds the batch writer of `o` (table or statement). */
export const makeRowWriter = <A>(o: Resolved<A>) => {
  const texts = new Map<number, string>()
  const insertText = (rows: number) => {
    let t = texts.get(rows)
    if (t === undefined) {
      const cols = o.columns.map((c) => `"${c}"`).join(", ")
      const tuples: Array<string> = []
      let p = 1
      for (let i = 0; i < rows; i++) {
        const ps: Array<string> = []
        for (let j = 0; j < o.columns.length; j++) ps.push(`$${p++}`)
        tuples.push(`(${ps.join(", ")})`)
      }
      t = `INSERT INTO ${quoteQualified(o.table ?? "")} (${cols}) VALUES ${tuples.join(", ")}`
      texts.set(rows, t)
    }
    return t
  }

  const insert = (c: Conn, checkpoint: number, records: ReadonlyArray<A>) =>
    Effect.tryPromise({
      try: async () => {
        for (let from = 0; from < records.length; from += o.insertBatchRows) {
          const chunk = records.slice(from, from + o.insertBatchRows)
          const values: Array<unknown> = []
          for (const r of chunk) fieldsOf(r, o.columns, values)
          try {
            await c.client.query({
              name: `exactor_insert_${chunk.length}`,
              text: insertText(chunk.length),
              values
            })
          } catch (e) {
            throw { cause: e, record: chunk[0] }
          }
        }
      },
      catch: (e) => {
        const { cause, record } = e as { cause: unknown; record: unknown }
        return classify(o.id, "insert", checkpoint, record)(cause)
      }
    })

  /** `write.params` of every record first (user code: a throw fails the batch before anything is sent). */
  const paramsOf = (checkpoint: number, records: ReadonlyArray<A>) =>
    Effect.try({
      try: () => records.map((r) => o.write!.params(r) as Array<unknown>),
      catch: (cause) =>
        new PgSinkQueryFailed({
          sink: o.id,
          operation: "write.params",
          checkpoint,
          sqlstate: undefined,
          cause
        })
    })

  const statement = (c: Conn, checkpoint: number, records: ReadonlyArray<A>) =>
    Effect.flatMap(paramsOf(checkpoint, records), (params) =>
      Effect.tryPromise({
        try: () => {
          const sql = o.write!.sql
          const all: Array<Promise<unknown>> = new Array(records.length)
          for (let i = 0; i < records.length; i++) {
            const r = records[i]
            all[i] = c.client.query(sql, params[i]).catch((cause: unknown) => {
              throw { cause, record: r }
            })
          }
          return Promise.all(all)
        },
        catch: (e) => {
          const { cause, record } = (e ?? {}) as { cause?: unknown; record?: unknown }
          return classify(o.id, "write", checkpoint, record)(cause ?? e)
        }
      })
    )

  return (
    c: Conn,
    checkpoint: number,
    records: ReadonlyArray<A>
  ): Effect.Effect<void, ReturnType<ReturnType<typeof classify>> | PgSinkQueryFailed> =>
    records.length === 0
      ? Effect.void
      : // uninterruptible: an interrupted Effect would not stop the statements already queued on the
        // connection, and a ROLLBACK sent meanwhile would let the later ones run outside the transaction
        Effect.uninterruptible(
          Effect.asVoid(
            o.table !== undefined ? insert(c, checkpoint, records) : statement(c, checkpoint, records)
          )
        )
}
