/**
 * Loading `usearch` (an optional peer dependency with prebuilt binaries) at first
 * use, for the memory store's HNSW index (./hnsw-index.ts). When it is missing
 * the memory store searches exactly, and says once why (see MemoryBackend).
 *
 * Only the few parts of its API the index uses are typed here, so a test can
 * hand in a loader that fails the way a missing package does.
 */
import { VectorStoreError, messageOf } from '../../errors';

/** The metric kinds of usearch we use: inner product (unit vectors for cosine) and squared L2. */
export type UsearchMetric = 'ip' | 'l2sq';

export interface UsearchIndexConfig {
  dimensions: number;
  metric: UsearchMetric;
  quantization: 'i8' | 'f16';
  connectivity: number;
  expansion_add: number;
  expansion_search: number;
  multi: false;
}

export interface UsearchIndex {
  add(keys: bigint | BigUint64Array, vectors: Float32Array, threads?: number): void;
  search(vector: Float32Array, k: number, threads: number): { keys: BigUint64Array; distances: Float32Array };
  contains(key: bigint): boolean;
  remove(key: bigint): number;
  size(): number;
}

export interface UsearchModule {
  Index: new (config: UsearchIndexConfig) => UsearchIndex;
}

/** Returns the module, or throws (like `require`) when it cannot be loaded. */
export type UsearchLoader = () => UsearchModule;

export const USEARCH_INSTALL_COMMAND = 'npm install usearch@2.26';

let loaded: UsearchModule | null = null;

/** The real module, from node_modules. Only a successful load is cached. */
export const requireUsearch: UsearchLoader = () => {
  if (loaded) return loaded;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  loaded = require('usearch') as UsearchModule;
  return loaded;
};

/** Run the loader, turning any failure into a NOT_INSTALLED error a person can act on. */
export function loadUsearch(loader: UsearchLoader): UsearchModule {
  try {
    return loader();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const missing = e?.code === 'MODULE_NOT_FOUND' && messageOf(err).includes("'usearch'");
    const why = missing ? 'the usearch package is not installed' : `the usearch package could not be loaded (${messageOf(err)})`;
    throw new VectorStoreError(
      'NOT_INSTALLED',
      `The memory store's HNSW index needs usearch, but ${why}: run "${USEARCH_INSTALL_COMMAND}" in your Node-RED ` +
        'user directory (~/.node-red) and restart Node-RED. Until then it searches exactly (same results, slower on large collections).',
      { cause: err },
    );
  }
}
