/**
 * Benchmark 4b: the memory backend's exact top-k over N vectors of 384
 * dimensions, through `Backend.query`, in bytes of vectors scanned per second
 * against the memory bandwidth measured in the same run, on uniform random
 * vectors and on clustered ones (like text embeddings); and the event-loop delay
 * while queries run.
 *
 * Bandwidth: `Buffer.indexOf` of a byte that is not there, over a buffer as
 * large as the vectors (the C library's vectorised memchr: it reads every byte
 * once and does next to nothing else, so it runs at what one core can read).
 * One search and one such read per repetition, back to back in alternating
 * order; the fraction of bandwidth is the median of the pairs' time ratios
 * (read / search), which stays steady on a busy machine where single timings do not.
 */
import { MemoryBackend } from '../lib/backends/memory';
import { SLICE_BYTES } from '../lib/backends/memory/vector-rows';
import { LoopDelayMonitor, compareInterleaved, ms, sleep, type LoopDelay } from './measure';
import { clustered, random, uniform, type Draw } from './vectors';

export interface SearchOptions {
  vectors: number;
  dimensions: number;
  queries: number;
  repetitions: number;
  topK: number;
  /** Queries run while the event-loop delay is measured, `concurrency` at a time. */
  loopDelayQueries: number;
}

export interface DatasetResult {
  data: 'uniform' | 'clustered';
  /** Median time of one query. */
  msPerQuery: number;
  /** Bytes of vectors scanned per second, from the median. */
  gbPerSecond: number;
  /** Median over the pairs of (bandwidth read time / search time). */
  fractionOfBandwidth: number;
  /** The bandwidth read over the same bytes, median, in the same pairs. */
  bandwidthGbPerSecond: number;
  /** Each repetition's time (one query), to see the spread. */
  searchRunsMs: number[];
  bandwidthRunsMs: number[];
}

export interface LoopDelayResult extends LoopDelay {
  queries: number;
  /**
   * Queries in flight at once; 0: no query, for as long as the run of one at a
   * time, the loop either idle or busy in turns as long as one slice (`busyTurnMs`):
   * on a busy machine, the delay the process gets anyway.
   */
  concurrency: number;
  durationMs: number;
  busyTurnMs?: number;
}

export interface SearchResult {
  vectors: number;
  dimensions: number;
  topK: number;
  /** Bytes of vectors one query reads. */
  bytesPerQuery: number;
  /** A search lets the event loop run after each slice of this many bytes. */
  sliceBytes: number;
  datasets: DatasetResult[];
  /** On the uniform data; the first two without queries (idle, then busy turns). */
  loopDelay: LoopDelayResult[];
}

/** Reads every byte of `buffer` once (see the top of this file); the byte searched for is never there. */
function readAll(buffer: Buffer): void {
  if (buffer.indexOf(1) !== -1) throw new Error('the bandwidth buffer must not hold the byte searched for');
}

async function withCollection<T>(options: SearchOptions, draw: Draw, use: (backend: MemoryBackend, queries: Float32Array[]) => Promise<T>): Promise<T> {
  const { vectors: n, dimensions } = options;
  const backend = new MemoryBackend({ dataDir: null, indexingRate: 1e9, indexingDelay: 0 });
  try {
    await backend.ensureCollection('search', { dimensions, metric: 'cosine' });
    for (let start = 0; start < n; start += 10_000) {
      const docs = [];
      for (let row = start; row < Math.min(n, start + 10_000); row++) docs.push({ id: `v${row}`, vector: draw() });
      await backend.upsert('search', docs);
    }
    const queries = Array.from({ length: options.queries }, draw);
    // The garbage of loading the vectors is collected now, not during the timed queries.
    (globalThis as { gc?: () => void }).gc?.();
    return await use(backend, queries);
  } finally {
    await backend.close();
  }
}

async function measureDataset(options: SearchOptions, data: DatasetResult['data'], draw: Draw, readBuffer: Buffer): Promise<DatasetResult> {
  return withCollection(options, draw, async (backend, queries) => {
    const search = async (rep: number) => {
      await backend.query('search', { vector: queries[rep % queries.length], topK: options.topK });
    };
    const read = async () => readAll(readBuffer);
    for (let rep = 0; rep < queries.length; rep++) {
      await search(rep); // warm-up
      await read();
    }
    const compared = await compareInterleaved(options.repetitions, search, read);
    const bytes = readBuffer.length;
    return {
      data,
      msPerQuery: compared.aMs,
      gbPerSecond: ms(bytes / compared.aMs / 1e6, 2),
      fractionOfBandwidth: Math.round((1 / compared.ratio) * 1000) / 1000,
      bandwidthGbPerSecond: ms(bytes / compared.bMs / 1e6, 2),
      searchRunsMs: compared.aRuns,
      bandwidthRunsMs: compared.bRuns,
    };
  });
}

/** Event-loop delay while `total` queries run, `concurrency` in flight at a time. */
async function loopDelayWhileQuerying(backend: MemoryBackend, queries: Float32Array[], options: SearchOptions, concurrency: number): Promise<LoopDelayResult> {
  let issued = 0;
  const worker = async () => {
    while (issued < options.loopDelayQueries) {
      const vector = queries[issued++ % queries.length];
      await backend.query('search', { vector, topK: options.topK });
    }
  };
  const started = performance.now();
  const monitor = new LoopDelayMonitor().start();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const delay = monitor.stop();
  return { queries: options.loopDelayQueries, concurrency, durationMs: ms(performance.now() - started), ...delay };
}

/** The same reading with nothing to do: on a busy machine, the delay the process gets anyway. */
async function idleLoopDelay(durationMs: number): Promise<LoopDelayResult> {
  const monitor = new LoopDelayMonitor().start();
  await sleep(durationMs);
  return { queries: 0, concurrency: 0, durationMs, ...monitor.stop() };
}

/**
 * The same reading with the loop kept busy in turns of `turnMs` (spinning), as a
 * search keeps it: a process that uses its CPU share is scheduled later than an idle
 * one on a busy machine, and this is what any such work gets.
 */
async function busyLoopDelay(durationMs: number, turnMs: number): Promise<LoopDelayResult> {
  const monitor = new LoopDelayMonitor().start();
  const end = performance.now() + durationMs;
  while (performance.now() < end) {
    const turnEnd = performance.now() + turnMs;
    while (performance.now() < turnEnd);
    await new Promise((resolve) => setImmediate(resolve));
  }
  return { queries: 0, concurrency: 0, durationMs, busyTurnMs: ms(turnMs, 2), ...monitor.stop() };
}

export async function run(options: SearchOptions): Promise<SearchResult> {
  const { vectors: n, dimensions } = options;
  const bytesPerQuery = n * dimensions * 4;
  // Written, not just allocated: untouched pages all map to one zero page and read far faster than memory.
  const readBuffer = Buffer.alloc(bytesPerQuery, 0x55);
  const datasets = [
    await measureDataset(options, 'uniform', uniform(random(42), dimensions), readBuffer),
    await measureDataset(options, 'clustered', clustered(random(43), dimensions), readBuffer),
  ];
  const loopDelay = await withCollection(options, uniform(random(44), dimensions), async (backend, queries) => {
    const oneAtATime = await loopDelayWhileQuerying(backend, queries, options, 1);
    const fourAtATime = await loopDelayWhileQuerying(backend, queries, options, 4);
    const sliceMs = (oneAtATime.durationMs / options.loopDelayQueries) * Math.min(1, SLICE_BYTES / bytesPerQuery);
    return [await idleLoopDelay(oneAtATime.durationMs), await busyLoopDelay(oneAtATime.durationMs, sliceMs), oneAtATime, fourAtATime];
  });
  return { vectors: n, dimensions, topK: options.topK, bytesPerQuery, sliceBytes: SLICE_BYTES, datasets, loopDelay };
}
