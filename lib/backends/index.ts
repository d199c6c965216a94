/**
 * Picks the backend module for a store configuration. Real stores are loaded on
 * demand so that their (optional, sometimes native) client packages are only
 * required by users who chose them.
 */
import * as path from 'node:path';
import type { Backend } from '../types';
import type { StoreConfig } from '../schemas';
import { VectorStoreError } from '../errors';
import { DEFAULT_SETTINGS } from '../settings';
import { secretProblem } from '../redact';
import { MemoryBackend } from './memory';
import { withCallTimeouts } from './timeouts';

export interface BackendEnvironment {
  /** Node-RED's user directory: where embedded stores keep their files. Null: keep nothing on disk. */
  userDir: string | null;
  /** Identifies the config node: in-process collections are shared under it across redeploys. */
  storeKey: string;
  credentials: { password?: string; apiKey?: string };
  /**
   * Longest time one store call may take (the runtime setting storeTimeout), in
   * milliseconds; default 10 000. Given to the client where it has a timeout of its
   * own, and enforced around every call in any case (see ./timeouts.ts).
   */
  callTimeoutMs?: number;
  /** Where embedded stores report damage they found in their files (once per file). */
  log?: { warn(message: string): void };
}

/** The credential each backend sends, and how the vector-store configuration calls it. */
const CREDENTIAL_OF: Record<string, { field: 'password' | 'apiKey'; label: string }> = {
  pgvector: { field: 'password', label: 'Password' },
  chroma: { field: 'apiKey', label: 'API key' },
};

/**
 * The backend's credential, if it cannot be sent (a line break, a control
 * character, a space at either end), is a configuration error naming the field,
 * never the value; it is not worth retrying. Throws INVALID_INPUT. A credential
 * the backend does not use (left over from another backend) is not looked at.
 */
export function checkBackendSecrets(backend: unknown, credentials: BackendEnvironment['credentials']): void {
  const used = typeof backend === 'string' ? CREDENTIAL_OF[backend] : undefined;
  if (!used) return;
  const problem = secretProblem(used.label, credentials[used.field]);
  if (problem) throw new VectorStoreError('INVALID_INPUT', problem, { transient: false });
}

/** Where this package keeps its files inside the Node-RED user directory. */
export function dataRoot(userDir: string): string {
  return path.join(userDir, 'vector-pipeline');
}

/** The backend for this configuration, every call of which settles within the call timeout. */
export function createBackend(config: StoreConfig, env: BackendEnvironment): Backend {
  // Secrets: the config node checks them up front (checkBackendSecrets), and each backend's constructor again.
  // Whole milliseconds: the clients' timeout options take integers.
  const callTimeoutMs = Math.max(1, Math.ceil(env.callTimeoutMs ?? DEFAULT_SETTINGS.storeTimeoutMs));
  return withCallTimeouts(createClient(config, env, callTimeoutMs), callTimeoutMs);
}

function createClient(config: StoreConfig, env: BackendEnvironment, callTimeoutMs: number): Backend {
  switch (config.backend) {
    case 'memory':
      return new MemoryBackend({
        dataDir: config.persist && env.userDir ? path.join(dataRoot(env.userDir), 'memory') : null,
        volatileKey: env.storeKey,
        indexingRate: config.indexingRate,
        indexingDelay: config.indexingDelay,
        index: config.memoryIndex,
        log: env.log,
      });
    case 'pgvector': {
      // Loaded on demand: only users of this backend load its client.
      const { PgVectorBackend } = require('./pgvector') as typeof import('./pgvector');
      return new PgVectorBackend({
        connectionString: config.url,
        password: env.credentials.password,
        ssl: config.ssl,
        callTimeoutMs,
      });
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
        timeoutMs: callTimeoutMs,
      });
    }
    default:
      throw new VectorStoreError(
        'INVALID_INPUT',
        `Unknown backend "${String(config.backend)}": choose memory, lancedb, pgvector or chroma in the vector-store configuration.`,
      );
  }
}
