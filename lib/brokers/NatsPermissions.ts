/**
 * The nats-server permissions that confine a job's processes to what is theirs: the subjects
 * `exactor.<job>.>`, the JetStream API of its own streams only (its KV bucket and Object Store
 * `exactor-<job>`, its source streams, its keys of the shared bounds bucket), and the subjects its
 * sinks publish to. Invariant: no grant names another job's stream, bucket or subject, and nothing
 * grants `$JS.API.>` wholesale (that would let a job manage every bucket of the account).
 */

import { jobInboxPrefix } from "../internal/NatsConnectOptions.ts"

export interface JobPermissionsOptions {
  /** the JetStream streams the job reads (consumers, info, message gets) */
  readonly sourceStreams?: ReadonlyArray<string>
  /** the subjects the job's JetStream sinks publish to (e.g. `totals.records`) */
  readonly sinkSubjects?: ReadonlyArray<string>
  /** the shared KV bucket of bounded sources (default `exactor-source-bounds`) */
  readonly boundsBucket?: string
}

export interface NatsPermissions {
  readonly publish: ReadonlyArray<string>
  readonly subscribe: ReadonlyArray<string>
}

/** The JetStream API a client needs to own a stream (create it, read it, consume it). */
const ownStream = (stream: string) => [
  `$JS.API.STREAM.CREATE.${stream}`,
  `$JS.API.STREAM.INFO.${stream}`,
  `$JS.API.STREAM.MSG.GET.${stream}`,
  `$JS.API.STREAM.PURGE.${stream}`,
  `$JS.API.DIRECT.GET.${stream}.>`,
  `$JS.API.CONSUMER.CREATE.${stream}.>`,
  `$JS.API.CONSUMER.INFO.${stream}.>`,
  `$JS.API.CONSUMER.DELETE.${stream}.>`
]

/** Reading a stream: info, message gets, ordered consumers. */
const readStream = (stream: string) => [
  `$JS.API.STREAM.INFO.${stream}`,
  `$JS.API.STREAM.MSG.GET.${stream}`,
  `$JS.API.DIRECT.GET.${stream}.>`,
  `$JS.API.CONSUMER.CREATE.${stream}.>`,
  `$JS.API.CONSUMER.INFO.${stream}.>`,
  `$JS.API.CONSUMER.DELETE.${stream}.>`,
  `$JS.API.CONSUMER.MSG.NEXT.${stream}.>`
]

/** What the processes of `job` (launcher, coordinator, actors, `exactor status <job>`) may publish and subscribe. */
export const jobPermissions = (job: string, options: JobPermissionsOptions = {}): NatsPermissions => {
  const bounds = options.boundsBucket ?? "exactor-source-bounds"
  return {
    publish: [
      `exactor.${job}.>`,
      "$JS.API.INFO",
      ...ownStream(`KV_exactor-${job}`),
      `$KV.exactor-${job}.>`,
      ...ownStream(`OBJ_exactor-${job}`),
      `$O.exactor-${job}.>`,
      `$JS.API.STREAM.CREATE.KV_${bounds}`,
      `$JS.API.STREAM.INFO.KV_${bounds}`,
      `$JS.API.DIRECT.GET.KV_${bounds}.$KV.${bounds}.${job}.>`,
      `$KV.${bounds}.${job}.>`,
      ...(options.sourceStreams ?? []).flatMap(readStream),
      ...(options.sinkSubjects ?? [])
    ],
    subscribe: [`exactor.${job}.>`, `${jobInboxPrefix(job)}.>`]
  }
}

/** What `exactor jobs`, `status`, `cancel`, `savepoint` and `delete` need for every job: all of exactor's. */
export const adminPermissions: NatsPermissions = {
  publish: ["exactor.>", "$JS.API.>", "$KV.>", "$O.>"],
  subscribe: ["exactor.>", "_INBOX.>"]
}

const list = (subjects: ReadonlyArray<string>) =>
  subjects.length === 0 ? "[]" : `[\n${subjects.map((s) => `        "${s}"`).join("\n")}\n      ]`

const block = (p: NatsPermissions, indent: string) =>
  [
    `${indent}publish: { allow: ${list(p.publish).replaceAll("\n", `\n${indent.slice(4)}`)} }`,
    `${indent}subscribe: { allow: ${list(p.subscribe).replaceAll("\n", `\n${indent.slice(4)}`)} }`,
    // a process may answer a request it received (control commands) without a grant on the inbox
    `${indent}allow_responses: true`
  ].join("\n")

export interface NatsUser {
  readonly user: string
  readonly password: string
  /** none: `default_permissions`, which grant nothing */
  readonly permissions?: NatsPermissions
}

/**
 * The `authorization { ... }` block of a nats-server config with these users; any user of the
 * server without permissions of its own gets `default_permissions`: nothing.
 */
export const authorizationBlock = (users: ReadonlyArray<NatsUser>): string =>
  [
    "authorization {",
    '  default_permissions: { publish: { deny: ">" }, subscribe: { deny: ">" } }',
    "  users: [",
    ...users.map((u) =>
      u.permissions === undefined
        ? `    { user: "${u.user}", password: "${u.password}" }`
        : [
            `    { user: "${u.user}", password: "${u.password}", permissions: {`,
            block(u.permissions, "      "),
            "    } }"
          ].join("\n")
    ),
    "  ]",
    "}",
    ""
  ].join("\n")
