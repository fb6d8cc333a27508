/**
 * lib/internal/ — small helpers with no domain (cause text, option checks), the connect options of
 * every NATS and RabbitMQ connection (authentication, TLS) and URL redaction. Imports nothing of lib/.
 *
 * The text of a caught cause, for error fields, error messages and log lines: an `Error` gives
 * its message, anything else its string form. One definition, so a cause reads the same wherever
 * exactor reports it.
 */
export const causeMessage = (cause: unknown): string =>
  cause instanceof Error ? cause.message : String(cause)
