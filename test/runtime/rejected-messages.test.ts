/**
 * The rejected-message log: every rejection counted, the first `burst` of an interval logged with
 * subject and reason, the rest summed up in one line per interval, never one line per message.
 */
import t from "tap"
import { EnvelopeDecodeError } from "../../lib/runtime/Envelope.ts"
import { RejectedMessages } from "../../lib/runtime/RejectedMessages.ts"

const bad = (subject: string) => new EnvelopeDecodeError({ subject, reason: "not msgpack (junk)" })

t.test("a flood is counted in full but logged as a burst plus one summary per interval", async (t) => {
  const lines: Array<string> = []
  const r = new RejectedMessages("count#1", (l) => lines.push(l), { burst: 3, intervalMs: 1000 })
  for (let i = 0; i < 10_000; i++)
    r.reject(bad(i % 2 === 0 ? "x.in.count.1" : "x.credit.count.1"), 5_000 + i / 100)
  t.equal(r.total, 10_000, "every rejection counted")
  t.equal(lines.length, 3, "only the burst is logged while the interval lasts")
  t.match(
    lines[0],
    /^count#1: rejected malformed message on x\.in\.count\.1: not msgpack/,
    "names subject and reason"
  )
  r.flush(5_500)
  t.equal(lines.length, 3, "no summary before the interval has ended")
  r.flush(6_000)
  t.equal(lines.length, 4, "one summary when it has")
  t.match(
    lines[3],
    /9997 more messages rejected in 1 s.*4999 on x\.credit\.count\.1, 4998 on x\.in\.count\.1.*10000 rejected since start/
  )
  r.flush(7_000)
  t.equal(lines.length, 4, "nothing more to sum up")
  r.reject(bad("x.ctl.count.1"), 7_100)
  t.equal(lines.length, 5, "a new interval logs again")
  t.match(lines[4], /x\.ctl\.count\.1/)
})

t.test("a summary is written when the next interval starts, even without a flush", async (t) => {
  const lines: Array<string> = []
  const r = new RejectedMessages("coordinator", (l) => lines.push(l), { burst: 1, intervalMs: 1000 })
  r.reject(bad("a"), 0)
  r.reject(bad("a"), 10)
  r.reject(bad("b"), 20)
  r.reject(bad("c"), 1500)
  t.equal(lines.length, 3, "first, summary, first of the new interval")
  t.match(lines[1], /^coordinator: 2 more messages rejected/)
  t.match(lines[2], /rejected malformed message on c/)
})
