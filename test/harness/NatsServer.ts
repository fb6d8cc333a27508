/**
 * Throwaway nats-server for fault tests: the implementation lives in lib/brokers/NatsServer.ts (the chaos
 * harness of the CLI uses it too). Invariant: it never touches the shared server on 4222.
 */
export * from "../../lib/brokers/NatsServer.ts"
