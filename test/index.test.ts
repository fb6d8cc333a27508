/**
 * The public surface (lib/index.ts): the README's example pipeline declared from it alone, and
 * the errors and entry points a program needs are there.
 */
import t from "tap"
import { parseOrder, runningTotal } from "../actors/examples/orderOperators.ts"
import * as exactor from "../lib/index.ts"

t.test("the README's pipeline is declared from lib/index.ts alone and validates", async (t) => {
  const { jetstreamSource, pipeline, rabbitmqSink, validatePipeline, PipelineInvalid, InvalidJobOption } =
    exactor
  const p = pipeline("orders", { checkpoint: { interval: 1000 } })
    .source(jetstreamSource("orders", { stream: "orders", partitions: 4, bounded: "atStart" }), {
      parallelism: 2
    })
    .map(parseOrder)
    .keyBy((o) => o.customer)
    .process(runningTotal, { parallelism: 2 })
    .sink(rabbitmqSink("sink", { queue: "orders-totals" }))
  const plan = validatePipeline(p)
  t.notOk(plan instanceof PipelineInvalid || plan instanceof InvalidJobOption, "a valid plan")
  if (plan instanceof PipelineInvalid || plan instanceof InvalidJobOption) return
  t.same(
    plan.instances.map(String),
    ["orders#0", "orders#1", "parse#0", "parse#1", "total#0", "total#1", "sink#0", "sink#1"],
    "every instance, sources first (the sink takes its upstream's parallelism)"
  )
  t.equal(plan.options.checkpoint.interval, 1000)
})

t.test("a bad declaration made from lib/index.ts names what is wrong", async (t) => {
  const { pipeline, rabbitmqSink, jetstreamSource, validatePipeline, PipelineInvalid } = exactor
  const p = pipeline("bad job")
    .source(jetstreamSource("orders", { stream: "orders" }))
    .sink(rabbitmqSink("sink", { queue: "q" }))
  const plan = validatePipeline(p)
  t.ok(plan instanceof PipelineInvalid)
  t.match(String((plan as InstanceType<typeof PipelineInvalid>).message), /bad job/)
})

t.test("the entry points and error classes a program needs are exported", async (t) => {
  const entries = {
    makeTwoPhaseCommitSink: exactor.makeTwoPhaseCommitSink,
    makeRabbitMqSink: exactor.makeRabbitMqSink,
    ensureBrokers: exactor.ensureBrokers,
    produce: exactor.produce,
    checkOrders: exactor.checkOrders,
    exactlyOnce: exactor.exactlyOnce,
    decodeJson: exactor.decodeJson,
    MalformedRecord: exactor.MalformedRecord,
    SinkFenced: exactor.SinkFenced,
    TransactionInDoubt: exactor.TransactionInDoubt,
    BrokerUnavailable: exactor.BrokerUnavailable
  }
  for (const [name, value] of Object.entries(entries)) t.type(value, "function", name)
})
