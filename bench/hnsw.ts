/**
 * Benchmark 4c: the memory store's optional HNSW index (usearch) against its
 * exact search, through `Backend.query`: recall@10 (the share of the exact top
 * 10 it also returns) and the time of one query, on clustered vectors (like
 * text embeddings, as in bench/search.ts) and on texts embedded by the hash
 * embedder. Uniform random vectors are left out on purpose: no approximate
 * index finds their neighbours (recall 0.07 to 0.19 in issue 12), and real
 * embeddings are not like them.
 *
 * Two backends share one collection (the same volatile key): one searches
 * exactly, the other with the index, so both answer over the very same rows.
 * Also measured: how long the index takes to build in the background (from the
 * first health check at the size to `search: "hnsw"`) and the event-loop delay
 * meanwhile.
 */
import { MemoryBackend } from '../lib/backends/memory';
import { HNSW_MIN_DOCUMENTS } from '../lib/backends/memory/hnsw-index';
import { loadUsearch, requireUsearch } from '../lib/backends/memory/usearch-module';
import { HashEmbedder } from '../lib/embedders/hash';
import { LoopDelayMonitor, compareInterleaved, ms, type LoopDelay } from './measure';
import { clustered, random } from './vectors';

export interface HnswOptions {
  vectors: number;
  dimensions: number;
  /** Queries for the recall (each against the exact top-k). */
  recallQueries: number;
  /** Timed pairs (exact, hnsw) of one query each. */
  repetitions: number;
  topK: number;
}

/** The data sets measured, in order (their targets are listed even when none could be measured). */
export const HNSW_DATASETS = ['clustered', 'hash-embedded text'] as const;

export interface HnswDatasetResult {
  data: (typeof HNSW_DATASETS)[number];
  recallAtK: number;
  exactMsPerQuery: number;
  hnswMsPerQuery: number;
  /** Median over the pairs of exact / hnsw. */
  speedup: number;
  buildSeconds: number;
  buildLoopDelay: LoopDelay;
  /** Each pair's time of one query, to judge the speedup against the noise. */
  exactRunsMs: number[];
  hnswRunsMs: number[];
}

export interface HnswResult {
  vectors: number;
  dimensions: number;
  topK: number;
  minDocuments: number;
  datasets: HnswDatasetResult[];
}

/** Without usearch there is no index to measure (the store searches exactly, and would never report "hnsw"). */
export type HnswOutcome = HnswResult | { vectors: number; skipped: string };

/** The clustered vectors of bench/search.ts: one shared direction, 64 topics, noise of each vector's own. */
function clusteredVectors(count: number, dimensions: number, seed: number): Float32Array[] {
  return Array.from({ length: count }, clustered(random(seed), dimensions));
}

/**
 * Texts like short documents: each of 200 topics has 40 words of its own; a
 * text has 10 to 30 words, two thirds from its topic, the rest from 3,000
 * common words (the first ones far more often, as in any language).
 */
function texts(count: number, seed: number): string[] {
  const next = random(seed);
  const syllables = ['ka', 'lo', 'mi', 'ne', 'ru', 'sa', 'ti', 'vo', 'ze', 'pa', 'do', 'fi', 'gu', 'he', 'ja', 'bo'];
  const word = () => Array.from({ length: 2 + Math.floor(next() * 3) }, () => syllables[Math.floor(next() * syllables.length)]).join('');
  const common = Array.from({ length: 3000 }, word);
  const topics = Array.from({ length: 200 }, () => Array.from({ length: 40 }, word));
  return Array.from({ length: count }, () => {
    const topic = topics[Math.floor(next() * topics.length)];
    const length = 10 + Math.floor(next() * 21);
    const words: string[] = [];
    for (let i = 0; i < length; i++) {
      words.push(next() < 2 / 3 ? topic[Math.floor(next() * topic.length)] : common[Math.floor(common.length * next() ** 3)]);
    }
    return words.join(' ');
  });
}

async function hashEmbedded(count: number, dimensions: number, seed: number): Promise<Float32Array[]> {
  const embedder = new HashEmbedder(dimensions);
  const all = texts(count, seed);
  const vectors: Float32Array[] = [];
  for (let start = 0; start < all.length; start += 10_000) vectors.push(...(await embedder.embed(all.slice(start, start + 10_000))));
  return vectors;
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

async function measureDataset(options: HnswOptions, data: HnswDatasetResult['data'], vectors: Float32Array[], queries: Float32Array[]): Promise<HnswDatasetResult> {
  const volatileKey = `bench-hnsw-${data}`;
  const common = { dataDir: null, volatileKey, indexingRate: 1e9, indexingDelay: 0 };
  const exact = new MemoryBackend(common);
  const hnsw = new MemoryBackend({ ...common, index: 'hnsw' });
  try {
    await exact.ensureCollection('hnsw', { dimensions: options.dimensions, metric: 'cosine' });
    for (let start = 0; start < vectors.length; start += 10_000) {
      await exact.upsert('hnsw', vectors.slice(start, start + 10_000).map((vector, i) => ({ id: `v${start + i}`, vector })));
    }
    (globalThis as { gc?: () => void }).gc?.();

    const monitor = new LoopDelayMonitor().start();
    const started = performance.now();
    while ((await hnsw.stats('hnsw')).search !== 'hnsw') await nextTurn();
    const buildSeconds = ms((performance.now() - started) / 1000, 1);
    const buildLoopDelay = monitor.stop();

    let found = 0;
    for (const vector of queries.slice(0, options.recallQueries)) {
      const truth = new Set((await exact.query('hnsw', { vector, topK: options.topK })).map((h) => h.id));
      for (const hit of await hnsw.query('hnsw', { vector, topK: options.topK })) if (truth.has(hit.id)) found += 1;
    }
    const query = (backend: MemoryBackend) => async (rep: number) => {
      await backend.query('hnsw', { vector: queries[rep % queries.length], topK: options.topK });
    };
    const timed = await compareInterleaved(options.repetitions, query(exact), query(hnsw));
    return {
      data,
      recallAtK: Math.round((found / (options.recallQueries * options.topK)) * 1000) / 1000,
      exactMsPerQuery: timed.aMs,
      hnswMsPerQuery: timed.bMs,
      speedup: Math.round(timed.ratio * 10) / 10,
      buildSeconds,
      buildLoopDelay,
      exactRunsMs: timed.aRuns,
      hnswRunsMs: timed.bRuns,
    };
  } finally {
    await hnsw.close();
    await exact.close();
  }
}

export async function run(options: HnswOptions): Promise<HnswOutcome> {
  const { vectors: n, dimensions, recallQueries } = options;
  try {
    loadUsearch(requireUsearch);
  } catch (err) {
    return { vectors: n, skipped: `cannot start here: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}` };
  }
  const datasets: HnswDatasetResult[] = [];
  // The queries are drawn like the rows, but are not among them.
  const clustered = clusteredVectors(n + recallQueries, dimensions, 45);
  datasets.push(await measureDataset(options, 'clustered', clustered.slice(0, n), clustered.slice(n)));
  clustered.length = 0;
  const embedded = await hashEmbedded(n + recallQueries, dimensions, 46);
  datasets.push(await measureDataset(options, 'hash-embedded text', embedded.slice(0, n), embedded.slice(n)));
  return { vectors: n, dimensions, topK: options.topK, minDocuments: HNSW_MIN_DOCUMENTS, datasets };
}

/** Issue 12: at 100,000 x 384, recall@10 of at least 0.95 at 10 times the exact speed. */
export const HNSW_TARGETS = { vectors: 100_000, recall: 0.95, speedup: 10 };

/** The section of BENCHMARKS.md (bench/report.ts puts it after the exact search's). */
export function hnswSection(r: HnswOutcome): string[] {
  if ('skipped' in r) return ['### 4c. Memory store: HNSW index (usearch) against the exact search', '', `Not measured: ${r.skipped}`];
  const row = (cells: Array<string | number>) => `| ${cells.join(' | ')} |`;
  const header = ['vectors', `recall@${r.topK}`, 'exact (ms/query)', 'hnsw (ms/query)', 'exact / hnsw', 'index built in (s)', 'event-loop delay while building p50 / p99 / max (ms)'];
  return [
    `### 4c. Memory store: HNSW index (usearch) against the exact search, top ${r.topK}`,
    '',
    `${r.vectors.toLocaleString('en-US')} vectors of ${r.dimensions} dimensions, cosine; the index is used from ${r.minDocuments.toLocaleString('en-US')} documents on.`,
    '',
    row(header),
    row(header.map(() => '---')),
    ...r.datasets.map((d) =>
      row([d.data, `**${d.recallAtK}**`, d.exactMsPerQuery, d.hnswMsPerQuery, `**${d.speedup}x**`, d.buildSeconds, `${d.buildLoopDelay.p50Ms} / ${d.buildLoopDelay.p99Ms} / ${d.buildLoopDelay.maxMs}`]),
    ),
  ];
}
