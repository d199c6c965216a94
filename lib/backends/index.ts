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
    default:
      throw new VectorStoreError(
        'INVALID_INPUT',
        `The "${config.backend}" backend is not available in this version: choose "memory" in the vector-store configuration.`,
      );
  }
}
