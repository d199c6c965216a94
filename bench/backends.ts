/**
 * The stores the ingest and query benchmarks run against: one entry per backend
 * that runs on this machine. An entry starts what the store needs and returns
 * the `vector-store` node's connection properties; the embedder (hash, 384
 * dimensions) is the same for all. Add a store with one more entry.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startChromaServer } from '../test/support/chroma-server';
import { startPgliteServer } from '../test/support/pglite-server';

export interface RunningStore {
  /** Properties of the vector-store node (backend and connection; none of these stores needs a credential). */
  config: Record<string, unknown>;
  stop(): Promise<void>;
}

export interface BenchBackend {
  name: string;
  /** What it runs on here, for the report. */
  describe: string;
  start(): Promise<RunningStore>;
}

async function tempDir(prefix: string): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  return { dir, remove: () => fs.rm(dir, { recursive: true, force: true }) };
}

export const BACKENDS: BenchBackend[] = [
  {
    name: 'memory',
    describe: 'embedded, persisted in the user directory (one fsync per batch)',
    async start() {
      // Indexing is simulated for the sensor; here it must not hold anything back.
      return { config: { backend: 'memory', indexingRate: 1_000_000, indexingDelay: 0, persist: true }, stop: async () => undefined };
    },
  },
  {
    name: 'lancedb',
    describe: 'embedded @lancedb/lancedb in a temporary directory',
    async start() {
      const { dir, remove } = await tempDir('bench-lancedb-');
      return { config: { backend: 'lancedb', path: dir }, stop: remove };
    },
  },
  {
    name: 'pgvector',
    describe: 'PGlite (Postgres 18 + pgvector, WebAssembly) served over the wire protocol in the same process',
    async start() {
      const server = await startPgliteServer();
      return { config: { backend: 'pgvector', url: server.url }, stop: () => server.stop() };
    },
  },
  {
    name: 'chroma',
    describe: '`chroma run` (chromadb CLI) on 127.0.0.1',
    async start() {
      const server = await startChromaServer();
      return { config: { backend: 'chroma', url: server.url }, stop: () => server.stop() };
    },
  },
];

export function backendNamed(name: string): BenchBackend {
  const found = BACKENDS.find((b) => b.name === name);
  if (!found) throw new Error(`No benchmark entry for backend "${name}"; known: ${BACKENDS.map((b) => b.name).join(', ')}.`);
  return found;
}
