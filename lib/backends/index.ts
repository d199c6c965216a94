/**
 * Picks the backend module for a store configuration. Real stores are loaded on
 * demand so that their (optional, sometimes native) client packages are only
 * required by users who chose them.
 */
import * as path from 'node:path';
import type { Backend } from '../types';
import type { StoreConfig } from '../schemas';
import { VectorStoreError } from '../errors';
import { MemoryBackend } from './memory';

export interface BackendEnvironment {
  /** Node-RED's user directory: where embedded stores keep their files. Null: keep nothing on disk. */
  userDir: string | null;
  /** Identifies the config node: in-process collections are shared under it across redeploys. */
  storeKey: string;
  credentials: { password?: string; apiKey?: string };
}

/** Where this package keeps its files inside the Node-RED user directory. */
export function dataRoot(userDir: string): string {
  return path.join(userDir, 'vector-pipeline');
}

export function createBackend(config: StoreConfig, env: BackendEnvironment): Backend {
  switch (config.backend) {
    case 'memory':
      return new MemoryBackend({
        dataDir: config.persist && env.userDir ? path.join(dataRoot(env.userDir), 'memory') : null,
        volatileKey: env.storeKey,
        indexingRate: config.indexingRate,
        indexingDelay: config.indexingDelay,
      });
    case 'pgvector': {
      // Loaded on demand: only users of this backend load its client.
      const { PgVectorBackend } = require('./pgvector') as typeof import('./pgvector');
      return new PgVectorBackend({ connectionString: config.url, password: env.credentials.password, ssl: config.ssl });
    }
    case 'lancedb': {
      const { LanceDbBackend } = require('./lancedb') as typeof import('./lancedb');
      const defaultPath = env.userDir ? path.join(dataRoot(env.userDir), 'lancedb') : null;
      if (!config.path && !defaultPath) {
        throw new VectorStoreError('INVALID_INPUT', 'The LanceDB backend needs a directory: set Path in the vector-store configuration.');
      }
      return new LanceDbBackend({ path: config.path || (defaultPath as string) });
    }
    case 'chroma': {
      const { ChromaBackend } = require('./chroma') as typeof import('./chroma');
      return new ChromaBackend({
        url: config.url,
        tenant: config.tenant || undefined,
        database: config.database || undefined,
        apiKey: env.credentials.apiKey,
      });
    }
    default:
      throw new VectorStoreError(
        'INVALID_INPUT',
        `Unknown backend "${String(config.backend)}": choose memory, lancedb, pgvector or chroma in the vector-store configuration.`,
      );
  }
}
