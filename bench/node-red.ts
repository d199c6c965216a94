/**
 * Benchmark 2, through Node-RED: N messages into one `deferrable-sensor` node of
 * a running runtime (bench/runtime.ts), on memory-store collections that become
 * ready one after another once every message has been taken on.
 *
 * Accepted means durable: the wait is on disk and running in the runtime's
 * triggerer (what the sensor promises before its first progress message).
 * Memory per pending wait is read once every wait has polled (after a full GC).
 * Every final message must arrive exactly once: each `msg.waitId` is counted,
 * and the run goes on for a while after the last one to catch late repeats.
 */
import { performance } from 'node:perf_hooks';
import { memoryAfterGc, ms, perItem, sleep, until } from './measure';
import { onTab, runtimeTriggerer, sink, startNodeRed, type FlowNode } from './runtime';

export interface NodeRedOptions {
  messages: number;
  collections: number;
  /** The store's indexingDelay: collections start indexing this long after their write. */
  indexingDelaySeconds: number;
  /** Documents of the first collection; collection k holds (k + 1) times as many. */
  documentsStep: number;
  /** How long to keep listening after the last final message. */
  quietMs: number;
}

export interface NodeRedResult {
  messages: number;
  collections: number;
  acceptMs: number;
  acceptedPerSecond: number;
  memoryPerWait: { rssBytes: number; heapBytes: number };
  finals: number;
  duplicateFinals: number;
  missingFinals: number;
  errors: number;
  progressMessages: number;
  runMs: number;
  exactlyOnce: boolean;
}

const INDEXING_RATE = 200;
const DIMENSIONS = 16;

function flow(options: NodeRedOptions): FlowNode[] {
  const store: FlowNode = {
    id: 'store',
    type: 'vector-store',
    name: 'bench store',
    backend: 'memory',
    embedder: 'hash',
    dimensions: DIMENSIONS,
    indexingRate: INDEXING_RATE,
    indexingDelay: options.indexingDelaySeconds,
    persist: true,
  };
  return onTab(
    [store],
    [
      {
        id: 'sensor',
        type: 'deferrable-sensor',
        store: 'store',
        collection: '',
        expectedCount: 0,
        pollInterval: 1,
        maxPollInterval: 5,
        timeout: 600,
        deferrable: true,
        wires: [['ready'], ['progress']],
      },
      sink('ready'),
      sink('progress'),
      { id: 'catch-all', type: 'catch', scope: null, uncaught: false, wires: [['errors']] },
      sink('errors'),
    ],
  );
}

export async function run(options: NodeRedOptions): Promise<NodeRedResult> {
  const n = options.messages;
  const runtime = await startNodeRed(flow(options));
  try {
    const finalsByWait = new Map<string, number>();
    let finals = 0;
    let errors = 0;
    let progressMessages = 0;
    runtime.onInput('ready', (msg) => {
      finals += 1;
      finalsByWait.set(msg.waitId, (finalsByWait.get(msg.waitId) ?? 0) + 1);
    });
    runtime.onInput('progress', () => {
      progressMessages += 1;
    });
    runtime.onInput('errors', () => {
      errors += 1;
    });

    // Collections that start indexing `indexingDelay` after this write, one after another.
    const { backend } = runtime.store('store');
    const names = Array.from({ length: options.collections }, (_, k) => `bench-${k}`);
    for (const [k, name] of names.entries()) {
      await backend.ensureCollection(name, { dimensions: DIMENSIONS });
      const docs = Array.from({ length: options.documentsStep * (k + 1) }, (_, i) => ({ id: `doc-${i}`, vector: Array.from({ length: DIMENSIONS }, (_, d) => (d === i % DIMENSIONS ? 1 : 0.1)) }));
      await backend.upsert(name, docs);
    }
    const triggerer = await runtimeTriggerer(runtime.userDir);
    const sensor = runtime.node('sensor');
    const baseline = memoryAfterGc();

    const started = performance.now();
    for (let i = 0; i < n; i++) {
      const collection = names[i % names.length];
      sensor.receive({
        topic: 'bench',
        collection,
        payload: { collection, ingested: 10, totalCount: 10, batches: 1, durationMs: 12 },
        seq: i,
      });
      if (i % 500 === 499) await new Promise((resolve) => setImmediate(resolve));
    }
    await until(() => triggerer.stats().running === n, 120_000, `all ${n} messages to be taken on`, 5);
    const acceptMs = performance.now() - started;

    await until(() => progressMessages >= n, 60_000, 'a progress message for every wait');
    const loaded = memoryAfterGc();

    await until(() => finalsByWait.size + errors >= n, 300_000, `all ${n} final messages`);
    const runMs = performance.now() - started;
    await sleep(options.quietMs); // late repeats would show up here
    let duplicateFinals = 0;
    for (const count of finalsByWait.values()) duplicateFinals += count - 1;
    const missingFinals = n - finalsByWait.size;
    return {
      messages: n,
      collections: names.length,
      acceptMs: ms(acceptMs),
      acceptedPerSecond: Math.round(n / (acceptMs / 1000)),
      memoryPerWait: perItem(baseline, loaded, n),
      finals,
      duplicateFinals,
      missingFinals,
      errors,
      progressMessages,
      runMs: ms(runMs),
      exactlyOnce: finals === n && duplicateFinals === 0 && missingFinals === 0 && errors === 0,
    };
  } finally {
    await runtime.stop();
  }
}
