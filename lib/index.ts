/**
 * The engine, usable without Node-RED: what the nodes are built on, and what
 * tests and benchmarks drive directly.
 */
export * from './types';
export * from './errors';
export * from './schemas';
export * from './ids';
export * from './operations';
export * from './trigger';
export { Triggerer, type WaitOwner, type TriggererOptions, type TriggererStats, type JobRecord, type DurableRecord } from './triggerer';
export { WaitStore, type WaitRecord, type WaitStoreOptions, type WaitStoreStats } from './wait-store';
export { runLocally, type LocalWait } from './local-wait';
export { createBackend, dataRoot, type BackendEnvironment } from './backends';
export { MemoryBackend, type MemoryBackendOptions } from './backends/memory';
export { validateCollectionName } from './backends/collection-name';
export { createEmbedder, HashEmbedder, OpenAIEmbedder, type OpenAIEmbedderOptions, type OpenAIEmbedderStats } from './embedders';
export { splitText, chunkItem, chunkItems, sourcesStartingIn, CHARS_PER_TOKEN, type ChunkOptions, type TextChunk } from './chunking';
export { IngestGatherer, type GatheredResult } from './ingest-gatherer';
export { spoolIngestJob, runsAsJob, JOB_THRESHOLD, type SpooledJob } from './ingest-job/prepare';
export type { IngestJobSpec, JobProgressPayload, JobFinalPayload, JobSuccessPayload, JobFailurePayload } from './ingest-job/spec';
export { FileSpools, type JobSpools, type SpoolBatchReader } from './ingest-job/spools';
export { PostgresJobStore } from './job-stores/postgres';
export { PostgresSpools, type PostgresSpoolsOptions } from './job-stores/spool-table';
