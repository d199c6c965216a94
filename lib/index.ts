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
export { Triggerer, type WaitOwner, type TriggererOptions, type TriggererStats } from './triggerer';
export { WaitStore, type WaitRecord, type WaitStoreOptions, type WaitStoreStats } from './wait-store';
export { runLocally, type LocalWait } from './local-wait';
export { createBackend, dataRoot, type BackendEnvironment } from './backends';
export { MemoryBackend, type MemoryBackendOptions } from './backends/memory';
export { validateCollectionName } from './backends/collection-name';
export { createEmbedder, HashEmbedder, OpenAIEmbedder, type OpenAIEmbedderOptions } from './embedders';
