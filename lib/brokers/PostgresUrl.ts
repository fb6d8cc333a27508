/**
 * Where PostgreSQL is: `EXACTOR_PG_URL`, else the local default. Kept apart from the cluster helper
 * (PostgresServer.ts, which starts servers) so that actor processes load only this.
 * Invariant: one default, written here.
 */
export const defaultPgUrl = "postgres://postgres@127.0.0.1:5432/postgres"

export const pgUrlFromEnv = (): string => process.env.EXACTOR_PG_URL ?? defaultPgUrl
