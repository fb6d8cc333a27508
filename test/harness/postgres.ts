/**
 * PostgreSQL for tests: a private, killable cluster (lib/brokers/PostgresServer.ts; never the
 * machine's shared server) and plain-SQL looks at what a sink left there: rows per key, and the
 * prepared transactions still pending. Invariant: each helper opens and closes its own connection.
 */
import pg from "pg"
export * from "../../lib/brokers/PostgresServer.ts"

/** Runs one statement on a fresh connection. */
export const sql = async <R extends pg.QueryResultRow = pg.QueryResultRow>(
  url: string,
  text: string,
  values?: Array<unknown>
): Promise<Array<R>> => {
  const c = new pg.Client({ connectionString: url })
  c.on("error", () => undefined)
  await c.connect()
  try {
    return (await c.query<R>(text, values)).rows
  } finally {
    await c.end().catch(() => undefined)
  }
}

/** The gids still prepared on the server. */
export const preparedGids = async (url: string): Promise<Array<string>> =>
  (await sql<{ gid: string }>(url, "SELECT gid FROM pg_prepared_xacts ORDER BY gid")).map((r) => r.gid)

/** Jepsen-style counts of `table`'s column `v` against the expected values: lost, duplicated, unexpected. */
export const countValues = async (url: string, table: string, expected: ReadonlyArray<string>) => {
  const rows = await sql<{ v: string; n: string }>(url, `SELECT v, count(*) AS n FROM ${table} GROUP BY v`)
  const seen = new Map(rows.map((r) => [r.v, Number(r.n)]))
  const want = new Set(expected)
  let lost = 0
  let duplicated = 0
  let unexpected = 0
  for (const v of want) {
    const n = seen.get(v) ?? 0
    if (n === 0) lost++
    else duplicated += n - 1
  }
  for (const [v, n] of seen) if (!want.has(v)) unexpected += n
  return {
    attempted: want.size,
    rows: rows.reduce((a, r) => a + Number(r.n), 0),
    lost,
    duplicated,
    unexpected
  }
}
