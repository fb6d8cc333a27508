/**
 * exactor's public surface: what a pipeline module, a custom source or sink, or a program that
 * drives jobs imports. Everything else under lib/ is internal and may change between versions.
 * Invariant: each name here has one meaning (the runtime's `SourceReader` and `SinkWriter`).
 */

// Declaring pipelines (DESIGN §6)
export {
  type CoProcessDeclaration,
  type DeadLetter,
  type Declaration,
  deadLetters,
  type Emit,
  type FilterDeclaration,
  type FlatMapDeclaration,
  filter,
  flatMap,
  type KeyedState,
  keyedCoProcess,
  keyedProcess,
  type MapDeclaration,
  map,
  type OnError,
  type OperatorContext,
  type OutputTag,
  outputTag,
  type ProcessDeclaration,
  type Result,
  reduce,
  type SinkDeclaration,
  type SinkWriter,
  type SourceDeclaration,
  type SourceReader,
  sink,
  source,
  split,
  type SplitDeclaration,
  type UndecodedRecord,
  withDeadLetters
} from "./api/Operator.ts"
export {
  type Edge,
  type JobPlan,
  type OperatorNode,
  type Pipeline,
  PipelineInvalid,
  type PipelineProblem,
  validatePipeline
} from "./api/Pipeline.ts"
export {
  ConnectedStreams,
  KeyedStream,
  PipelineBuilder,
  pipeline,
  type SourceOptions,
  type StageOptions,
  Stream,
  WindowedStream
} from "./api/Stream.ts"
// Event time (DESIGN-dataflow §2–§4)
export {
  boundedOutOfOrderness,
  END_OF_TIME,
  START_OF_TIME,
  type WatermarkGenerator,
  type WatermarkStrategy,
  WatermarkStrategyInvalid
} from "./api/Watermark.ts"
export {
  type AggregateFunction,
  type Late,
  session,
  sliding,
  tumbling,
  type Window,
  type WindowAssigner,
  WindowInvalid,
  type WindowResult,
  type WindowSpec
} from "./api/Windows.ts"
export {
  IntervalJoinInvalid,
  type IntervalJoinSpec,
  intervalJoin,
  type JoinLate
} from "./api/IntervalJoin.ts"
export type { FiredTimer, ProcessContext, TimerTag, Timers } from "./api/Operator.ts"
export {
  type CheckpointOptions,
  defaultJobOptions,
  InvalidJobOption,
  type JobOptions,
  type JobOptionsInput,
  type RestartStrategy
} from "./api/JobOptions.ts"

// Built-in actors: the JetStream source and the exactly-once RabbitMQ sink
export { jetstreamSource } from "../actors/jetstreamSource.ts"
export { type RabbitmqSinkOptions, rabbitmqSink } from "../actors/rabbitmqSink.ts"
export { type RabbitmqStreamSinkOptions, rabbitmqStreamSink } from "../actors/rabbitmqStreamSink.ts"
export { type RabbitmqStreamSourceOptions, rabbitmqStreamSource } from "../actors/rabbitmqStreamSource.ts"
export { decodeJson, type JetStreamSourceOptions } from "./connectors/jetstream/JetStreamSourceOptions.ts"
export type { JetStreamPosition, PartitionedPosition } from "./connectors/jetstream/SourceReader.ts"
export {
  DecodeFailure,
  MalformedRecord,
  type SourceError,
  SourceOptionsInvalid,
  SourcePositionInvalid,
  SourceReadFailed
} from "./connectors/jetstream/SourceError.ts"
export {
  makeRabbitMqSink,
  type RabbitMqSinkFailure,
  type RabbitMqSinkWriter
} from "./connectors/rabbitmq/RabbitMqSink.ts"
export type { RabbitMqSinkOptions } from "./connectors/rabbitmq/RabbitMqSinkOptions.ts"
export {
  type RabbitMqSinkError,
  SinkChannelError,
  SinkConnectFailed,
  SinkConnectionLost,
  SinkFenced,
  SinkMarkerInvalid,
  SinkOptionsInvalid,
  SinkRecordUnencodable,
  SinkRecordUnroutable,
  SinkTimeout
} from "./connectors/rabbitmq/RabbitMqSinkErrors.ts"
export {
  makeRabbitMqStreamSink,
  type RabbitMqStreamSinkFailure,
  type RabbitMqStreamSinkWriter,
  type StreamPending
} from "./connectors/rabbitmq-stream/RabbitMqStreamSink.ts"
export type { RabbitMqStreamSinkOptions } from "./connectors/rabbitmq-stream/StreamSinkOptions.ts"
export {
  StreamCallFailed,
  StreamOptionsInvalid,
  StreamPublishFailed,
  StreamRecordUnencodable,
  type StreamSinkError,
  StreamSinkFenced,
  StreamSinkLockLost
} from "./connectors/rabbitmq-stream/StreamErrors.ts"
export {
  mergeStreamPositions,
  type RabbitMqStreamSourceReader,
  rabbitMqStreamSource,
  type StreamSourceError,
  type StreamSourcePosition
} from "./connectors/rabbitmq-stream/RabbitMqStreamSource.ts"
export {
  decodeJsonRecord,
  type RabbitMqStreamSourceOptions
} from "./connectors/rabbitmq-stream/StreamSourceOptions.ts"
export {
  StreamDecodeFailure,
  StreamPositionInvalid,
  StreamRecordMalformed
} from "./connectors/rabbitmq-stream/StreamSourceErrors.ts"
export { partitionStream, streamPartitionOf } from "./connectors/rabbitmq-stream/StreamPartitioning.ts"
export { writeStreamInput } from "./connectors/rabbitmq-stream/StreamInput.ts"

// The exactly-once PostgreSQL sink (prepared transactions, or local mode)
export { type PostgresSinkDeclarationOptions, postgresSink } from "../actors/postgresSink.ts"
export {
  makePostgresSink,
  type PostgresSinkFailure,
  type PostgresSinkWriter,
  type PreparedGid
} from "./connectors/postgres/PostgresSink.ts"
export type { PostgresSinkOptions, PostgresStatement } from "./connectors/postgres/PostgresSinkOptions.ts"
export {
  PgSinkFenced,
  PgSinkOptionsInvalid,
  PgSinkPreparedTransactionsDisabled,
  PgSinkQueryFailed,
  PgSinkRecordRejected,
  PgSinkSerializationFailure,
  PgSinkTransactionMissing,
  PgSinkUnavailable,
  type PostgresSinkError
} from "./connectors/postgres/PostgresSinkErrors.ts"

// Writing another exactly-once sink: Flink's TwoPhaseCommitSinkFunction over a transactional resource
export {
  checkPendingRecords,
  makeTwoPhaseCommitSink,
  type PendingIds,
  type PendingRecords,
  type PendingTransaction,
  SinkCheckpointOutOfOrder,
  SinkCommitFailed,
  type SinkSnapshot,
  SinkSnapshotInvalid,
  type TransactionalResource,
  TransactionInDoubt,
  type TwoPhaseCommitError,
  type TwoPhaseCommitOptions,
  type TwoPhaseCommitWriter
} from "./runtime/TwoPhaseCommitSink.ts"

// Brokers, input and the output check
export { defaultAmqpUrl, defaultNatsUrl } from "./brokers/BrokerUrls.ts"
export {
  type BrokerStatus,
  type BrokersOptions,
  ensureBrokers,
  ensureNats,
  ensureRabbitMq
} from "./brokers/Brokers.ts"
export {
  type BrokerError,
  BrokerStartFailed,
  BrokerUnavailable,
  BrokerUrlInvalid
} from "./brokers/BrokerError.ts"
export {
  type ProduceOptions,
  type ProduceResult,
  type ProducerError,
  produce
} from "./connectors/jetstream/Producer.ts"
export { type Partitioning, recordSubject } from "./connectors/jetstream/Partitioning.ts"
export { checkOrders, drainQueue, exactlyOnce, formatVerdict, type Verdict } from "./chaos/OutputCheck.ts"
export { drainStream, type StreamMessage } from "./chaos/StreamDrain.ts"
export type { JobState, JobStatus } from "./checkpoint/JobStatus.ts"

// Watching and managing jobs (docs/observe.md)
export {
  type JobSummary,
  listJobs
} from "./checkpoint/JobCatalog.ts"
export { CancelFailed, requestCancel } from "./checkpoint/CancelRequest.ts"
export { deleteJob, JobNotFound, type JobRemoved, JobStillRunning } from "./jobs/JobRemoval.ts"
export { type ObserveOptions, serveObserver } from "./observe/ObserveServer.ts"
export { logLayer, type LogFormat } from "./runtime/LogFormat.ts"
