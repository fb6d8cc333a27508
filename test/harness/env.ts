/**
 * Broker URLs for integration tests and unique names for what a test creates on the shared brokers.
 * Invariant: two test runs (or two tests in one run) never share a stream, subject, bucket or queue
 * name, so tests need no cleanup to stay independent.
 */
export const natsUrl: string = process.env.EXACTOR_NATS_URL ?? "nats://127.0.0.1:4222"
export const amqpUrl: string = process.env.EXACTOR_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672"

const run = `${process.pid.toString(36)}${Date.now().toString(36)}`
let counter = 0

/**
 * `<prefix>_<run>_<n>`: letters, digits, `_` and `-` only, so it is valid as a JetStream stream,
 * KV bucket and object store name, as one subject token, and as a RabbitMQ queue name.
 */
export const uniqueName = (prefix: string): string => {
  counter += 1
  return `${prefix.replace(/[^A-Za-z0-9_-]/g, "_")}_${run}_${counter}`
}
