/**
 * How exactor's processes log: the human format by default, or with `EXACTOR_LOG_FORMAT=json`
 * one JSON object per line (for log shippers) through Effect's logger, carrying `job`,
 * `instance`, `epoch` and `checkpoint` fields. Invariant: a JSON line is always one complete
 * object; `epoch`/`checkpoint` come from the log annotations, else from the message's own words
 * ("epoch 3", "checkpoint 12"), so every log line of a process gets them without a change at its call site.
 */
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as References from "effect/References"

export type LogFormat = "human" | "json"

/** The format `EXACTOR_LOG_FORMAT` asks for (`json`; anything else or nothing: human). */
export const logFormatFromEnv = (env: NodeJS.ProcessEnv = process.env): LogFormat =>
  env.EXACTOR_LOG_FORMAT === "json" ? "json" : "human"

const number = (text: string, word: string): number | undefined => {
  const m = new RegExp(`\\b${word} (\\d+)\\b`).exec(text)
  return m?.[1] === undefined ? undefined : Number(m[1])
}

/** One log event as a JSON object: time, level, message, job/instance/epoch/checkpoint, other annotations, cause. */
export const jsonLogLine = Logger.map(Logger.formatStructured, (o): string => {
  const message = (Array.isArray(o.message) ? o.message : [o.message])
    .map((m) => (typeof m === "string" ? m : JSON.stringify(m)))
    .join(" ")
  const { job, instance, epoch, checkpoint, ...rest } = o.annotations
  const fields: Record<string, unknown> = {
    timestamp: o.timestamp,
    level: o.level,
    message,
    ...(job === undefined ? {} : { job }),
    ...(instance === undefined ? {} : { instance })
  }
  const e = epoch ?? number(message, "epoch")
  const c = checkpoint ?? number(message, "checkpoint")
  if (e !== undefined) fields.epoch = e
  if (c !== undefined) fields.checkpoint = c
  return JSON.stringify({
    ...fields,
    ...rest,
    ...(o.cause === undefined ? {} : { cause: o.cause }),
    fiber: o.fiberId
  })
})

/** Writes each JSON line where the default logger would write (stdout, or stderr with `LogToStderr`). */
export const jsonLogger = Logger.make((options) => {
  const line = jsonLogLine.log(options)
  if (options.fiber.getRef(References.LogToStderr)) console.error(line)
  else console.log(line)
})

/** The logger layer of `format`: JSON replaces the default logger; human keeps it. */
export const logLayer = (format: LogFormat = logFormatFromEnv()): Layer.Layer<never> =>
  format === "json" ? Logger.layer([jsonLogger]) : Layer.empty
