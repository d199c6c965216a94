/**
 * Benchmark 1, waits at scale: N concurrent deferred waits through the real
 * Triggerer and WaitStore (on a temporary file), polling memory-backend
 * collections that become ready at spread-out times. Runs in its own process
 * (bench/child.ts), one size per process.
 *
 * Timeline of one run:
 * 1. N waits are deferred (made durable) while no sensor is attached: dormant.
 * 2. Each collection gets one write whose simulated indexing ends at its own
 *    time, spread evenly over [readyFromMs, readyFromMs + readySpanMs] from now;
 *    its exact ready time is read from the memory backend's status (its ETA).
 * 3. The sensors ("owners") attach: every wait starts polling.
 * 4. Once every wait has polled once, memory is read (after a full GC).
 * 5. The run ends when every wait has delivered its final event.
 *
 * Measured: memory per wait, event-loop delay over steps 1-5, status calls
 * (in total and per scheduler tick), detection latency (final event time minus
 * the collection's ready time), wait-store bytes and writes per second.
 * Optionally it then writes a file of N pending waits for the resume benchmark.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { MemoryBackend } from '../lib/backends/memory';
import type { Timers } from '../lib/scheduler';
import { createTriggerSpec, longestPollDelay, madeProgress, type ProgressPayload, type TriggerEvent } from '../lib/trigger';
import { Triggerer, type WaitOwner, type WaitRecord } from '../lib/triggerer';
import type { Backend, CollectionStatus } from '../lib/types';
import { WaitStore, type WaitStoreStats } from '../lib/wait-store';
import { LoopDelayMonitor, memoryAfterGc, ms, perItem, percentile, until, type LoopDelay } from './measure';

export interface WaitsOptions {
  waits: number;
  collections: number;
  owners: number;
  pollIntervalMs: number;
  maxPollIntervalMs: number;
  /** First collection ready this long after the waits are deferred. */
  readyFromMs: number;
  /** Ready times spread over this span after the first one. */
  readySpanMs: number;
  /** How long each collection indexes (progress is visible) before it is ready. */
  indexingMs: number;
  /** Also write a file of `waits` pending waits for the resume benchmark. */
  prepareResume: boolean;
}

export interface WaitsResult {
  waits: number;
  collections: number;
  owners: number;
  pollIntervalMs: number;
  maxPollIntervalMs: number;
  /** JSON size of the message parked with each wait. */
  messageBytes: number;
  deferMs: number;
  defersPerSecond: number;
  memoryPerWait: { rssBytes: number; heapBytes: number };
  loopDelay: LoopDelay;
  statusCalls: { total: number; ticks: number; perTickAvg: number; perTickMax: number; perWaitPoll: number };
  polls: number;
  detectionLatencyMs: { p50: number; p99: number; max: number };
  /** Per wait: detection latency minus the wait's current poll interval (its upper bound). */
  latencyOverIntervalMs: { p50: number; p99: number; max: number };
  waitStore: { defer: IoFigures; run: IoFigures };
  runMs: number;
  finals: number;
  duplicateFinals: number;
  failedFinals: number;
  resume: ResumeFile | null;
}

export interface IoFigures {
  bytes: number;
  writes: number;
  bytesPerSecond: number;
  writesPerSecond: number;
  compactions: number;
}

/** What the resume benchmark needs to rebuild the same setting in a new process. */
export interface ResumeFile {
  dir: string;
  file: string;
  waits: number;
  /** Collections `resume-000` ... */
  collections: number;
  owners: number;
}

const STORE_KEY = 'bench-store';
export const RESUME_PREFIX = 'resume';
const DIMENSIONS = 4;
const DOCS_PER_COLLECTION = 200;

/** A UUID-shaped wait id that carries its index, so events map to arrays without a Map. */
export function waitIdOf(index: number): string {
  return `00000000-0000-4000-8000-${String(index).padStart(12, '0')}`;
}

export function indexOfWaitId(waitId: string): number {
  return Number(waitId.slice(24));
}

export function ownerIdOf(index: number, owners: number): string {
  return `sensor-${index % owners}`;
}

/** What a sensor parks with a wait: the JSON fields of the message from vector-ingest. */
export function parkedMessage(index: number, collection: string): Record<string, unknown> {
  return {
    _msgid: index.toString(16).padStart(16, '0'),
    topic: 'bench',
    collection,
    payload: { collection, ingested: 10, totalCount: 10, batches: 1, durationMs: 12 },
    expectedCount: 10,
  };
}

export function newWaitRecord(index: number, collection: string, options: Pick<WaitsOptions, 'owners' | 'pollIntervalMs' | 'maxPollIntervalMs'>): WaitRecord {
  const spec = createTriggerSpec({
    waitId: waitIdOf(index),
    collection,
    pollIntervalMs: options.pollIntervalMs,
    maxPollIntervalMs: options.maxPollIntervalMs,
    timeoutMs: 3_600_000,
  });
  return { ownerId: ownerIdOf(index, options.owners), spec, message: parkedMessage(index, collection) };
}

export function collectionNames(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}-${String(i).padStart(3, '0')}`);
}

/** Defer records in chunks (as messages arrive in bursts), each chunk sharing one write. */
export async function deferAll(triggerer: Triggerer, count: number, record: (index: number) => WaitRecord, chunk = 1000): Promise<void> {
  for (let start = 0; start < count; start += chunk) {
    const batch: Array<Promise<void>> = [];
    for (let i = start; i < Math.min(count, start + chunk); i++) batch.push(triggerer.defer(record(i)));
    await Promise.all(batch);
  }
}

/** Give a collection one write whose simulated indexing runs from `readyAt - indexingMs` to `readyAt`. */
async function scheduleReadiness(volatileKey: string, collection: string, readyAt: number, indexingMs: number): Promise<void> {
  const startsIn = Math.max(0, readyAt - indexingMs - Date.now());
  const writer = new MemoryBackend({
    dataDir: null,
    volatileKey,
    indexingRate: DOCS_PER_COLLECTION / (indexingMs / 1000),
    indexingDelay: startsIn / 1000,
  });
  const docs = Array.from({ length: DOCS_PER_COLLECTION }, (_, i) => ({ id: `doc-${i}`, vector: [1, i, 0, 1] }));
  await writer.upsert(collection, docs);
  await writer.close();
}

export function ioFigures(before: WaitStoreStats, after: WaitStoreStats, durationMs: number): IoFigures {
  const bytes = after.bytesWritten - before.bytesWritten;
  const writes = after.writes - before.writes;
  const seconds = durationMs / 1000;
  return {
    bytes,
    writes,
    bytesPerSecond: Math.round(bytes / seconds),
    writesPerSecond: Math.round((writes / seconds) * 10) / 10,
    compactions: after.compactions - before.compactions,
  };
}

/**
 * Counts `backend.status` calls per scheduler timer firing: the triggerer's timers
 * are wrapped so that each firing opens a new "tick"; calls made until the next
 * firing belong to it.
 */
class TickCounter {
  tick = 0;
  maxPerTick = 0;
  private callsInTick = 0;
  private tickOfCalls = -1;

  readonly timers: Timers = {
    setTimeout: (callback, delayMs) =>
      setTimeout(() => {
        this.tick += 1;
        callback();
      }, delayMs),
    clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
  };

  countCall(): void {
    if (this.tickOfCalls !== this.tick) {
      this.tickOfCalls = this.tick;
      this.callsInTick = 0;
    }
    this.callsInTick += 1;
    if (this.callsInTick > this.maxPerTick) this.maxPerTick = this.callsInTick;
  }
}

/** The store the sensors poll, counting status calls per tick. Only `status` is used by the triggerer. */
function countingBackend(backend: Backend, ticks: TickCounter): Backend {
  return Object.assign(Object.create(backend) as Backend, {
    status(collection: string): Promise<CollectionStatus> {
      ticks.countCall();
      return backend.status(collection);
    },
  });
}

export async function run(options: WaitsOptions): Promise<WaitsResult> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'bench-waits-'));
  try {
    // Memory first, in a phase of its own: the full GC it needs would otherwise
    // show up as event-loop delay in the timed run. It also writes the file the
    // resume benchmark restarts from.
    const memory = await measureMemory(dir, options);
    const timed = await timedRun(dir, options);
    return { ...timed, memoryPerWait: memory.perWait, resume: options.prepareResume ? memory.resume : null };
  } finally {
    if (!options.prepareResume) await fs.rm(dir, { recursive: true, force: true });
  }
}

/**
 * Memory per wait, in the state a runtime holds them: N waits deferred and
 * running, each having polled once, on collections that stay in indexing.
 * Stopping the triggerer then leaves a waits file as a restart finds it (every
 * wait with its checkpointed progress).
 */
async function measureMemory(dir: string, options: WaitsOptions): Promise<{ perWait: WaitsResult['memoryPerWait']; resume: ResumeFile }> {
  const n = options.waits;
  const names = collectionNames(RESUME_PREFIX, options.collections);
  const volatileKey = `bench-pending-${process.pid}`;
  await createPendingCollections(volatileKey, names);
  const backend = new MemoryBackend({ dataDir: null, volatileKey, indexingRate: 1, indexingDelay: 0 });
  const polled = new Uint8Array(n);
  let waitsPolled = 0;
  const owner: WaitOwner = {
    backend,
    storeKey: STORE_KEY,
    onEvent: (wait) => {
      const i = indexOfWaitId(wait.spec.waitId);
      if (polled[i] === 0) waitsPolled += 1;
      polled[i] = 1;
    },
  };

  const baseline = memoryAfterGc();
  const file = path.join(dir, 'resume.jsonl');
  const triggerer = new Triggerer({ waitStore: new WaitStore(file) });
  await triggerer.start();
  await deferAll(triggerer, n, (i) => newWaitRecord(i, names[i % names.length], options));
  for (let k = 0; k < options.owners; k++) triggerer.attach(`sensor-${k}`, owner);
  await until(() => waitsPolled === n, 120_000, 'every wait to poll once');
  const loaded = memoryAfterGc();
  await triggerer.close();
  await backend.close();
  return { perWait: perItem(baseline, loaded, n), resume: { dir, file, waits: n, collections: names.length, owners: options.owners } };
}

type TimedFigures = Omit<WaitsResult, 'memoryPerWait' | 'resume'>;

/** Defer, then run every wait to its end, timing it all. */
async function timedRun(dir: string, options: WaitsOptions): Promise<TimedFigures> {
  const { waits: n, owners } = options;
  const volatileKey = `bench-waits-${process.pid}`;
  const names = collectionNames('bench', options.collections);
  const backend = new MemoryBackend({ dataDir: null, volatileKey, indexingRate: 1, indexingDelay: 0 });
  for (const name of names) await backend.ensureCollection(name, { dimensions: DIMENSIONS });

  const readyAt = new Float64Array(names.length);
  const collectionOfWait = new Uint16Array(n);
  const finalAt = new Float64Array(n);
  const finalCount = new Uint8Array(n);
  // Each wait's polls in a row without progress, counted from its events as the trigger counts them.
  const lastProgress: Array<ProgressPayload | null> = new Array(n).fill(null);
  const stalePolls = new Uint8Array(n);
  let finals = 0;
  let failedFinals = 0;

  const ticks = new TickCounter();
  const onEvent = (wait: WaitRecord, event: TriggerEvent): void => {
    const i = indexOfWaitId(wait.spec.waitId);
    if (event.type === 'progress') {
      stalePolls[i] = madeProgress(lastProgress[i], event.payload) ? 0 : Math.min(stalePolls[i] + 1, 255);
      lastProgress[i] = event.payload;
    } else if (event.type === 'warning') {
      stalePolls[i] = Math.min(stalePolls[i] + 1, 255);
    } else if (event.type === 'final') {
      finalCount[i] += 1;
      if (finalCount[i] === 1) {
        finalAt[i] = Date.now();
        finals += 1;
        if (event.payload.status !== 'success') failedFinals += 1;
      }
    }
  };
  const owner: WaitOwner = { backend: countingBackend(backend, ticks), storeKey: STORE_KEY, onEvent };

  const monitor = new LoopDelayMonitor().start();
  const store = new WaitStore(path.join(dir, 'waits.jsonl'));
  const triggerer = new Triggerer({ waitStore: store, timers: ticks.timers });
  await triggerer.start();

  // 1. Defer every wait (dormant: no owner attached yet).
  const deferStarted = performance.now();
  const ioStart = store.stats;
  await deferAll(triggerer, n, (i) => {
    const c = i % names.length;
    collectionOfWait[i] = c;
    return newWaitRecord(i, names[c], options);
  });
  const deferMs = performance.now() - deferStarted;
  const ioDeferred = store.stats;

  // 2. Spread-out ready times, read back from the backend's ETA.
  const origin = Date.now();
  for (let c = 0; c < names.length; c++) {
    const target = origin + options.readyFromMs + (names.length > 1 ? (c * options.readySpanMs) / (names.length - 1) : 0);
    await scheduleReadiness(volatileKey, names[c], target, options.indexingMs);
    const before = Date.now();
    const status = await backend.status(names[c]);
    readyAt[c] = before + (status.etaSeconds ?? 0) * 1000;
  }

  // 3. The sensors attach: every wait starts polling, until every wait has ended.
  const runStarted = performance.now();
  for (let k = 0; k < owners; k++) triggerer.attach(`sensor-${k}`, owner);
  const lastReady = Math.max(...readyAt);
  await until(() => finals === n, lastReady - Date.now() + options.maxPollIntervalMs * 2 + 30_000, `all ${n} final events`);
  const runMs = performance.now() - runStarted;
  const loopDelay = monitor.stop();
  const stats = triggerer.stats();
  const ioEnd = store.stats;
  await triggerer.close();
  await backend.close();

  const latency = new Float64Array(n);
  const overInterval = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    latency[i] = finalAt[i] - readyAt[collectionOfWait[i]];
    // The longest the wait may have been sleeping: the trigger's own schedule at its top jitter.
    const interval = longestPollDelay(stalePolls[i], options);
    overInterval[i] = latency[i] - interval;
  }
  const summary = (values: Float64Array) => ({ p50: ms(percentile(values, 50)), p99: ms(percentile(values, 99)), max: ms(Math.max(...values)) });
  let duplicateFinals = 0;
  for (let i = 0; i < n; i++) if (finalCount[i] > 1) duplicateFinals += finalCount[i] - 1;

  return {
    waits: n,
    collections: names.length,
    owners,
    pollIntervalMs: options.pollIntervalMs,
    maxPollIntervalMs: options.maxPollIntervalMs,
    messageBytes: Buffer.byteLength(JSON.stringify(parkedMessage(0, names[0]))),
    deferMs: ms(deferMs),
    defersPerSecond: Math.round(n / (deferMs / 1000)),
    loopDelay,
    statusCalls: {
      total: stats.statusCalls,
      ticks: stats.ticks,
      perTickAvg: Math.round((stats.statusCalls / Math.max(1, stats.ticks)) * 100) / 100,
      perTickMax: ticks.maxPerTick,
      perWaitPoll: Math.round((stats.statusCalls / Math.max(1, stats.statusCalls + stats.sharedStatus)) * 10000) / 10000,
    },
    polls: stats.statusCalls + stats.sharedStatus,
    detectionLatencyMs: summary(latency),
    latencyOverIntervalMs: summary(overInterval),
    waitStore: { defer: ioFigures(ioStart, ioDeferred, deferMs), run: ioFigures(ioDeferred, ioEnd, runMs) },
    runMs: ms(runMs),
    finals,
    duplicateFinals,
    failedFinals,
  };
}

/** Collections whose indexing starts in an hour: a wait on them stays pending. */
export async function createPendingCollections(volatileKey: string, names: string[]): Promise<void> {
  const writer = new MemoryBackend({ dataDir: null, volatileKey, indexingRate: 100, indexingDelay: 3600 });
  for (const name of names) {
    await writer.ensureCollection(name, { dimensions: DIMENSIONS });
    await writer.upsert(name, [{ id: 'doc-0', vector: [1, 0, 0, 1] }]);
  }
  await writer.close();
}
