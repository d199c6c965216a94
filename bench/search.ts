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
 *
 * The event-loop delay is read twice: in a process doing nothing else, and with
 * 10,000 sensor waits pending in the same process (the real Triggerer and
 * WaitStore, polling memory-backend collections that stay in indexing, as in
 * bench/waits.ts), which is what issue 12 checks: "a query at 100k x 384 while
 * 10,000 waits run".
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MemoryBackend } from '../lib/backends/memory';
import { SLICE_BYTES } from '../lib/backends/memory/vector-rows';
import { Triggerer, type WaitOwner } from '../lib/triggerer';
import { WaitStore } from '../lib/wait-store';
import { LOOP_DELAY_RESOLUTION_MS, compareInterleaved, ms, percentile, sleep, until, type LoopDelay } from './measure';
import { clustered, random, uniform, type Draw } from './vectors';
import { collectionNames, createPendingCollections, deferAll, newWaitRecord } from './waits';

export interface SearchOptions {
  vectors: number;
  dimensions: number;
  queries: number;
  repetitions: number;
  topK: number;
  /** Queries run while the event-loop delay is measured, `concurrency` at a time. */
  loopDelayQueries: number;
  /** Sensor waits pending in the same process for the second reading of the delay (default PENDING_WAITS; 0: not measured). */
  pendingWaits?: number;
}

/** Issue 12: "a query at 100k x 384 while 10,000 waits run (loop delay)". */
export const PENDING_WAITS = 10_000;
/** The waits as bench/waits.ts sets them: 100 collections, ten sensors, poll every 1 s backing off to 5 s. */
const WAITS_SETTING = { collections: 100, owners: 10, pollIntervalMs: 1000, maxPollIntervalMs: 5000 };

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
   * Queries in flight at once; 0: no query, for as long as the queries one at a
   * time, the loop either idle or busy in turns as long as one slice (`busyTurnMs`):
   * on a busy machine, the delay the process gets anyway. Every row is measured in
   * blocks interleaved with the others' (see `loopDelayRows`).
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
  /** The same rows with sensor waits pending and polling in the same process; null or absent (an older run) when not measured. */
  withWaits?: WaitsLoopDelayResult | null;
}

export interface WaitsLoopDelayResult {
  waits: number;
  collections: number;
  pollIntervalMs: number;
  maxPollIntervalMs: number;
  /** The waits' polls per second over the rows (status calls made, and answered by a shared call): they did run. */
  pollsPerSecond: number;
  /** Waits still pending at the end (all of them: their collections stay in indexing). */
  pendingAtEnd: number;
  rows: LoopDelayResult[];
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

/**
 * Event-loop delay as `monitorEventLoopDelay` reads it (LoopDelayMonitor): a
 * timer every LOOP_DELAY_RESOLUTION_MS, each firing late by the delay. Its
 * samples can be pooled over several stretches of work, which a histogram of
 * Node's cannot (paused and resumed, it counts the pause as delay).
 */
class LoopDelaySampler {
  private readonly samples: number[] = [];
  private timer: NodeJS.Timeout | null = null;

  /** Sample until `stop`; `start` again adds to the same samples. */
  start(): void {
    let due = performance.now() + LOOP_DELAY_RESOLUTION_MS;
    const tick = () => {
      const now = performance.now();
      this.samples.push(Math.max(0, now - due));
      due = now + LOOP_DELAY_RESOLUTION_MS;
      this.timer = setTimeout(tick, LOOP_DELAY_RESOLUTION_MS);
    };
    this.timer = setTimeout(tick, LOOP_DELAY_RESOLUTION_MS);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  read(): LoopDelay {
    return { p50Ms: ms(percentile(this.samples, 50)), p99Ms: ms(percentile(this.samples, 99)), maxMs: ms(Math.max(0, ...this.samples)) };
  }
}

/** `count` queries, `concurrency` in flight at a time. */
async function runQueries(backend: MemoryBackend, queries: Float32Array[], topK: number, count: number, concurrency: number, first: number): Promise<void> {
  let issued = 0;
  const worker = async () => {
    while (issued < count) {
      const vector = queries[(first + issued++) % queries.length];
      await backend.query('search', { vector, topK });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

/** The loop kept busy in turns of `turnMs` (spinning), as a search keeps it, for `durationMs`. */
async function busyTurns(durationMs: number, turnMs: number): Promise<void> {
  const end = performance.now() + durationMs;
  while (performance.now() < end) {
    const turnEnd = performance.now() + turnMs;
    while (performance.now() < turnEnd);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Loop-delay rows are measured in this many blocks, interleaved, the order turning from block to block. */
const LOOP_DELAY_BLOCKS = 5;

/**
 * The four loop-delay rows: no query with the loop idle; no query with the loop
 * busy in turns as long as one slice (a process that uses its CPU share is
 * scheduled later than a sleeping one on a busy machine: what any such work
 * gets); queries one at a time; four at a time. Each row is measured in
 * LOOP_DELAY_BLOCKS blocks taken in turn with the other rows' (A B C D, B C D A,
 * ...), its samples pooled: a burst of the machine's other work then falls on
 * every row alike, not on whichever ran at the time. The idle and busy blocks
 * last as long as a block of queries one at a time (timed first, not counted).
 */
async function loopDelayRows(backend: MemoryBackend, queries: Float32Array[], options: SearchOptions): Promise<LoopDelayResult[]> {
  const bytesPerQuery = options.vectors * options.dimensions * 4;
  const perBlock = Math.max(1, Math.round(options.loopDelayQueries / LOOP_DELAY_BLOCKS));
  // A block of queries one at a time, twice (the first warms up): how long the idle and busy blocks last.
  let blockMs = 0;
  for (let probe = 0; probe < 2; probe++) {
    const started = performance.now();
    await runQueries(backend, queries, options.topK, perBlock, 1, 0);
    blockMs = performance.now() - started;
  }
  const sliceMs = (blockMs / perBlock) * Math.min(1, SLICE_BYTES / bytesPerQuery);

  const kinds: Array<{ concurrency: number; busyTurnMs?: number; work: (block: number) => Promise<void> }> = [
    { concurrency: 0, work: () => sleep(blockMs) },
    { concurrency: 0, busyTurnMs: sliceMs, work: () => busyTurns(blockMs, sliceMs) },
    { concurrency: 1, work: (block) => runQueries(backend, queries, options.topK, perBlock, 1, block) },
    { concurrency: 4, work: (block) => runQueries(backend, queries, options.topK, perBlock, 4, block) },
  ];
  const samplers = kinds.map(() => new LoopDelaySampler());
  const durations = kinds.map(() => 0);
  for (let block = 0; block < LOOP_DELAY_BLOCKS; block++) {
    for (let k = 0; k < kinds.length; k++) {
      const kind = (block + k) % kinds.length;
      const started = performance.now();
      samplers[kind].start();
      await kinds[kind].work(block);
      samplers[kind].stop();
      durations[kind] += performance.now() - started;
    }
  }
  return kinds.map((kind, k) => ({
    queries: kind.concurrency > 0 ? perBlock * LOOP_DELAY_BLOCKS : 0,
    concurrency: kind.concurrency,
    durationMs: ms(durations[k]),
    ...(kind.busyTurnMs === undefined ? {} : { busyTurnMs: ms(kind.busyTurnMs, 2) }),
    ...samplers[k].read(),
  }));
}

/**
 * `measure` with `waits` sensor waits pending and polling: deferred through a
 * Triggerer on a temporary file, on collections of their own store whose indexing
 * starts in an hour (so none ends), every wait polled once and then left to back
 * off for two of its longest intervals, so the rows see the waits' steady polling
 * (ten sensors of 1,000 waits each, each polling on its own phase).
 */
async function withPendingWaits<T>(waits: number, measure: () => Promise<T>): Promise<{ measured: T; pollsPerSecond: number; pendingAtEnd: number }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'bench-search-waits-'));
  const volatileKey = `bench-search-waits-${process.pid}`;
  const names = collectionNames('waits', WAITS_SETTING.collections);
  await createPendingCollections(volatileKey, names);
  const store = new MemoryBackend({ dataDir: null, volatileKey, indexingRate: 1, indexingDelay: 0 });
  const triggerer = new Triggerer({ waitStore: new WaitStore(path.join(dir, 'waits.jsonl')) });
  try {
    await triggerer.start();
    await deferAll(triggerer, waits, (i) => newWaitRecord(i, names[i % names.length], WAITS_SETTING));
    const polled = new Set<string>();
    const owner: WaitOwner = { backend: store, storeKey: 'bench-search', onEvent: (wait) => polled.add(wait.spec.waitId) };
    // The sensors attach one after the other over one longest interval, so their waits poll at
    // different times (as waits deferred over time do), not all 10,000 in one burst every 5 s.
    for (let k = 0; k < WAITS_SETTING.owners; k++) {
      triggerer.attach(`sensor-${k}`, owner);
      await sleep(WAITS_SETTING.maxPollIntervalMs / WAITS_SETTING.owners);
    }
    await until(() => polled.size === waits, 120_000, 'every wait to poll once');
    await sleep(2 * WAITS_SETTING.maxPollIntervalMs);
    const before = triggerer.stats();
    const started = performance.now();
    const measured = await measure();
    const after = triggerer.stats();
    const polls = after.statusCalls + after.sharedStatus - (before.statusCalls + before.sharedStatus);
    return { measured, pollsPerSecond: Math.round(polls / ((performance.now() - started) / 1000)), pendingAtEnd: after.waits };
  } finally {
    await triggerer.close();
    await store.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
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
  const pendingWaits = options.pendingWaits ?? PENDING_WAITS;
  const { loopDelay, withWaits } = await withCollection(options, uniform(random(44), dimensions), async (backend, queries) => {
    const alone = await loopDelayRows(backend, queries, options);
    if (pendingWaits === 0) return { loopDelay: alone, withWaits: null };
    const waiting = await withPendingWaits(pendingWaits, () => loopDelayRows(backend, queries, options));
    const result: WaitsLoopDelayResult = {
      waits: pendingWaits,
      collections: WAITS_SETTING.collections,
      pollIntervalMs: WAITS_SETTING.pollIntervalMs,
      maxPollIntervalMs: WAITS_SETTING.maxPollIntervalMs,
      pollsPerSecond: waiting.pollsPerSecond,
      pendingAtEnd: waiting.pendingAtEnd,
      rows: waiting.measured,
    };
    return { loopDelay: alone, withWaits: result };
  });
  return { vectors: n, dimensions, topK: options.topK, bytesPerQuery, sliceBytes: SLICE_BYTES, datasets, loopDelay, withWaits };
}
