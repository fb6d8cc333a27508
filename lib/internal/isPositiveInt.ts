/**
 * A guard shared by the JetStream source's option and context checks.
 * Invariant: true only for a number that is an integer > 0 (never NaN, Infinity or a non-number).
 */
export const isPositiveInt = (n: unknown): n is number =>
  typeof n === "number" && Number.isInteger(n) && n > 0
