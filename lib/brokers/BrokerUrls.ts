/**
 * Where the brokers are: `EXACTOR_NATS_URL` and `EXACTOR_AMQP_URL`, else the local defaults.
 * Kept apart from `Brokers.ts` (which starts brokers) so that actor processes load only this.
 */
export const defaultNatsUrl = "nats://127.0.0.1:4222"
export const defaultAmqpUrl = "amqp://guest:guest@127.0.0.1:5672"

export interface BrokerUrls {
  readonly natsUrl: string
  readonly amqpUrl: string
}

export const brokerUrlsFromEnv = (): BrokerUrls => ({
  natsUrl: process.env.EXACTOR_NATS_URL ?? defaultNatsUrl,
  amqpUrl: process.env.EXACTOR_AMQP_URL ?? defaultAmqpUrl
})
