/**
 * The PostgreSQL two-phase-commit sink as an actor declaration (lib/connectors/postgres/PostgresSink.ts
 * does the work): each instance writes its checkpoint's records into a transaction that is prepared
 * at the barrier and committed only when the checkpoint is complete (or, in local mode, written in
 * one local transaction then). The server is `url`, else `EXACTOR_PG_URL`.
 */
import { makePostgresSink, pgUrlFromEnv } from "../lib/connectors/postgres/PostgresSink.ts"
import type { PostgresSinkOptions } from "../lib/connectors/postgres/PostgresSinkOptions.ts"
import { type SinkDeclaration, sink } from "../lib/api/Operator.ts"

/** Options as a pipeline gives them; job, sink and instance come from where the actor runs. */
export type PostgresSinkDeclarationOptions<A> = Omit<
  PostgresSinkOptions<A>,
  "url" | "job" | "sink" | "instance"
> & {
  /** default: `EXACTOR_PG_URL`, else `postgres://postgres@127.0.0.1:5432/postgres` */
  readonly url?: string
}

export const postgresSink = <A>(
  name: string,
  options: PostgresSinkDeclarationOptions<A>
): SinkDeclaration<A> =>
  sink<A>(name, (ctx) =>
    makePostgresSink<A>({
      ...options,
      url: options.url ?? pgUrlFromEnv(),
      job: ctx.job,
      sink: ctx.operator,
      instance: ctx.index
    })
  )
