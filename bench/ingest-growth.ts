/**
 * Ingest growth (issue 12): does a batch cost the same at the end of a large
 * ingest as at its start? One collection, N documents (hash embedder, 384
 * dimensions), batches of 100 embedded and upserted one after the other with
 * `buildIndex` on (the default of vector-ingest), without Node-RED. Per size and
 * store, in a fresh child process and a fresh store directory:
 * - the time of each batch (embed + upsert), averaged over the first and the
 *   last 10% of the batches; their ratio is 1 when ingest stays linear;
 * - the ingest time (first batch to last), and the catch-up after it (the last
 *   write until the status says "ready": the store's index work left over);
 * - the bytes on disk once ready (data, index, the versions of the last
 *   keepVersionsMs kept), and once those are removed too (LanceDB: the run that
 *   removes them comes keepVersionsMs after the last one, which may end after
 *   "ready"; the disk is read until it has not changed for longer than that).
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { LanceDbBackend } from '../lib/backends/lancedb';
import { DEFAULT_CATCH_UP } from '../lib/backends/lancedb/maintenance';
import { MemoryBackend } from '../lib/backends/memory';
import { HashEmbedder } from '../lib/embedders/hash';
import type { Backend, VectorDocument } from '../lib/types';
import { documentText } from './store';

export type GrowthStore = 'memory' | 'lancedb';
export const GROWTH_STORES: GrowthStore[] = ['memory', 'lancedb'];

export interface IngestGrowthOptions {
  store: GrowthStore;
  documents: number;
  batchSize: number;
}

export interface IngestGrowthResult {
  store: GrowthStore;
  documents: number;
  batchSize: number;
  batches: number;
  /** Mean time of one batch (embed + upsert) over the first and the last 10% of the batches. */
  firstBatchesMs: number;
  lastBatchesMs: number;
  /** lastBatchesMs / firstBatchesMs: 1 = flat. */
  growth: number;
  /** The slowest batch (it waited for index work, say). */
  slowestBatchMs: number;
  /** First batch to last. */
  ingestMs: number;
  /** After the last write, until the status is "ready". */
  catchUpMs: number;
  totalMs: number;
  diskBytes: number;
  /** Once old versions are removed (LanceDB); the same as diskBytes for memory. */
  diskSettledBytes: number;
}

const DIMENSIONS = 384;
const COLLECTION = 'growth';
/** Status polls while waiting for "ready" after the last write. */
const POLL_MS = 50;
/** The catch-up after the last write must end within this (a wait that hangs is a failure, not a figure). */
const CATCH_UP_BUDGET_MS = 10 * 60_000;
/**
 * The disk is settled when it has not changed for keepVersionsMs and this much more (read a
 * second apart, at most DISK_SETTLE_BUDGET_MS): the run that removes what the last run
 * replaced comes keepVersionsMs (and a second) after that run wrote, whenever "ready" was.
 */
const DISK_STABLE_SLACK_MS = 3_000;
const DISK_SETTLE_BUDGET_MS = 180_000;

const round1 = (n: number) => Math.round(n * 10) / 10;

function openBackend(store: GrowthStore, dir: string): Backend {
  // Indexing is simulated by the memory store for the sensor; here it must not hold anything back.
  if (store === 'memory') return new MemoryBackend({ dataDir: dir, indexingRate: 1_000_000, indexingDelay: 0 });
  return new LanceDbBackend({ path: dir });
}

/** Bytes of the files under dir; a file or folder removed while it is read (LanceDB removing old versions) counts 0. */
async function diskBytes(dir: string): Promise<number> {
  const gone = (err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  };
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(gone);
  let total = 0;
  for (const entry of entries ?? []) {
    const full = path.join(dir, entry.name);
    total += entry.isDirectory() ? await diskBytes(full) : ((await fs.stat(full).catch(gone))?.size ?? 0);
  }
  return total;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** LanceDB: read the disk until it has not changed since the run that removes old versions was due (see DISK_STABLE_SLACK_MS). */
async function settledDiskBytes(dir: string): Promise<number> {
  const deadline = performance.now() + DISK_SETTLE_BUDGET_MS;
  let last = await diskBytes(dir);
  let changedAt = performance.now();
  while (performance.now() - changedAt < DEFAULT_CATCH_UP.keepVersionsMs + DISK_STABLE_SLACK_MS && performance.now() < deadline) {
    await sleep(1_000);
    const now = await diskBytes(dir);
    if (now !== last) changedAt = performance.now();
    last = now;
  }
  return last;
}

function mean(values: number[]): number {
  return values.reduce((sum, v) => sum + v, 0) / values.length;
}

export async function run(options: IngestGrowthOptions): Promise<IngestGrowthResult> {
  const { store, documents, batchSize } = options;
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), `bench-growth-${store}-`));
  const backend = openBackend(store, dir);
  const embedder = new HashEmbedder(DIMENSIONS);
  try {
    await backend.ensureCollection(COLLECTION, { dimensions: DIMENSIONS });
    const batchMs: number[] = [];
    const started = performance.now();
    for (let from = 0; from < documents; from += batchSize) {
      const batchStarted = performance.now();
      const texts = Array.from({ length: Math.min(batchSize, documents - from) }, (_, k) => documentText(from + k));
      const vectors = await embedder.embed(texts);
      const docs: VectorDocument[] = texts.map((text, k) => ({ id: `doc-${from + k}`, vector: vectors[k], text, metadata: { n: from + k } }));
      await backend.upsert(COLLECTION, docs, { buildIndex: true });
      batchMs.push(performance.now() - batchStarted);
    }
    const ingested = performance.now();
    const deadline = ingested + CATCH_UP_BUDGET_MS;
    for (;;) {
      const status = await backend.status(COLLECTION);
      if (status.state === 'ready' && status.documentCount === documents) break;
      if (status.state === 'failed') throw new Error(`The ${store} store's index work failed: ${status.detail}`);
      if (performance.now() > deadline) throw new Error(`The ${store} store was still ${status.state} ${CATCH_UP_BUDGET_MS / 1000} s after the last write.`);
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    const ready = performance.now();
    const diskAtReady = await diskBytes(dir);
    const diskSettled = store === 'lancedb' ? await settledDiskBytes(dir) : diskAtReady;
    const tenth = Math.max(1, Math.floor(batchMs.length / 10));
    const firstBatchesMs = mean(batchMs.slice(0, tenth));
    const lastBatchesMs = mean(batchMs.slice(-tenth));
    return {
      store,
      documents,
      batchSize,
      batches: batchMs.length,
      firstBatchesMs: round1(firstBatchesMs),
      lastBatchesMs: round1(lastBatchesMs),
      growth: Math.round((lastBatchesMs / firstBatchesMs) * 100) / 100,
      slowestBatchMs: Math.round(Math.max(...batchMs)),
      ingestMs: Math.round(ingested - started),
      catchUpMs: Math.round(ready - ingested),
      totalMs: Math.round(ready - started),
      diskBytes: diskAtReady,
      diskSettledBytes: diskSettled,
    };
  } finally {
    await backend.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
}
