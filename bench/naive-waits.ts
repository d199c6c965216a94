/**
 * Benchmark "naive-waits": what waiting costs through a real Node-RED, with the
 * deferrable-sensor against what a user would build without the package.
 *
 * One real `node-red` process per run (test/e2e/harness.ts), memory store, hash
 * embedder. The same ingest flow in every run: an inject starts a function node that
 * sends N messages of one document each (msg.seq = 0..N-1) into C collections, through
 * a `vector-ingest` node; each ingest output (msg.collection, msg.expectedCount =
 * totalCount) goes into node `wait`, which is, per variant:
 *
 * - `sensor`: a deferrable-sensor (polls from 1 s, backing off to 5 s; durable waits).
 * - `function`: a function node that polls the store with setTimeout every second
 *   until the collection has indexed msg.expectedCount documents. It reaches the store
 *   through `global.get('vectorStore').status(collection)`, which settings.js
 *   (functionGlobalContext) maps to the backend of the flow's vector-store node.
 * - `delay`: a delay-node loop: delay 1 s -> index-health -> final; index-health's
 *   "not healthy yet" goes to a catch node (scoped to it) -> switch (payload.healthy
 *   false) -> change (delete msg.error) -> back to the delay node; anything else to
 *   `errors`. Without the change node Node-RED drops a message caught more than 10
 *   times: the loop would lose every wait longer than about 10 s.
 * - `control`: no wait at all (`wait` is a debug node): what the ingest alone costs,
 *   subtracted from the other runs.
 *
 * The collections become ready 25-34 s after their writes: the store's indexing delay
 * is 25 s, and collection c holds a share of the documents growing with c, indexed at
 * a rate that makes the largest one take 9 s more.
 *
 * A preload in the node-red process (bench/naive-waits-probe.cjs) counts store calls
 * and messages and reads CPU, memory (after GC) and event-loop delay when asked
 * through a control file. Per run: reading A before the inject (after GC), B once all
 * waits are pending (after GC), end once every wait has delivered its final message.
 * CPU and store calls run from A to end, heap and RSS from A to B, each minus the
 * control's; the event-loop delay is the waiting's (B to end), the burst's (A to B)
 * apart: the ingest alone blocks the loop for long stretches.
 * Repetitions are interleaved (each repetition runs every variant, in a rotated
 * order); the figures are medians, with the spread (min..max) over repetitions.
 * Finally the sensor run is repeated once with a kill -9 while all waits are pending
 * and a restart on the same user directory: its finals are counted, and the time from
 * the restarted flows starting to every wait running again. The naive variants keep
 * their waits in timers of the process: they lose all of them to a kill -9 by
 * construction, so that is not run.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { cleanupAll, makeTempDir, startNodeRed, type FlowNode, type NodeRed } from '../test/e2e/harness';
import { median, sleep, type LoopDelay } from './measure';

export const VARIANTS = ['sensor', 'function', 'delay'] as const;
export type Variant = (typeof VARIANTS)[number];
type RunKind = Variant | 'control';

export interface NaiveWaitsOptions {
  waits: number;
  collections: number;
  repetitions: number;
  /** Seconds from a write until its indexing starts (the memory store's indexing delay). */
  readyFromS: number;
  /** The largest collection indexes this many seconds longer. */
  readySpanS: number;
  /** Also run the sensor with a kill -9 and a restart. */
  killRestart: boolean;
  /** Run only these (default: all three); for looking into one, as the targets need the sensor and the function node. */
  variants?: Variant[];
}

export interface StoreCalls {
  status: number;
  collectionExists: number;
  /** index-health's other reads: stats and a probe query. */
  statsAndQuery: number;
  /** All reads of the store (status, collectionExists, stats, query). */
  total: number;
}

/** One run of one variant, net of the same repetition's control run (the ingest alone). */
export interface VariantRun {
  variant: Variant;
  repetition: number;
  /** Inject to every wait pending (accepted: durable for the sensor). */
  burstMs: number;
  /** Inject to every final message. */
  runMs: number;
  /** CPU time of the process (user + system), minus the ingest's and the probe's forced GCs. */
  cpuMs: number;
  heapPerWaitBytes: number;
  rssGrowthBytes: number;
  storeCalls: StoreCalls;
  /** While the waits are pending, from all accepted to the last final (the probe's GCs left out). */
  loopDelay: LoopDelay;
  /** During the burst: the ingest, and the wait node taking the messages on (the control run has the ingest's alone). */
  burstLoopDelay: LoopDelay;
  finals: number;
  repeatedFinals: number;
  errors: number;
}

export interface ControlRun {
  repetition: number;
  burstMs: number;
  cpuMs: number;
  heapBytes: number;
  rssBytes: number;
  storeCalls: StoreCalls;
  /** During the ingest burst. */
  burstLoopDelay: LoopDelay;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
}

export interface VariantSummary {
  variant: Variant;
  cpuMs: Spread;
  heapPerWaitBytes: Spread;
  rssGrowthMB: Spread;
  statusCalls: Spread;
  storeCalls: Spread;
  /** While waiting (see VariantRun.loopDelay). */
  loopP99Ms: Spread;
  burstLoopP99Ms: Spread;
  runMs: Spread;
  /** Every run delivered every final once, and nothing went to `errors`. */
  allEndedOnce: boolean;
}

export interface KillRestart {
  waits: number;
  /** Waits pending (durable) when the process was killed. */
  pendingAtKill: number;
  /** Distinct final messages after the restart. */
  finals: number;
  repeatedFinals: number;
  errors: number;
  /** From the restarted flows starting to every pending wait running again; null: never. */
  resumeMs: number | null;
}

export interface NaiveWaitsResult {
  waits: number;
  collections: number;
  repetitions: number;
  readyFromS: number;
  readySpanS: number;
  indexingRate: number;
  runs: VariantRun[];
  controls: ControlRun[];
  summary: VariantSummary[];
  /**
   * Per repetition, sensor against function node: heap (sensor / function),
   * CPU and store calls (function / sensor), as medians with their spread.
   */
  ratios: { heapSensorOverFunction: Spread; cpuFunctionOverSensor: Spread; callsFunctionOverSensor: Spread; statusCallsFunctionOverSensor: Spread } | null;
  killRestart: KillRestart | null;
  durationS: number;
}

/** What the probe answers (bench/naive-waits-probe.cjs). */
interface Reading {
  at: number;
  cpuMicros: number;
  gcCpuMicros: number;
  heapUsed: number;
  rss: number;
  calls: { status: number; collectionExists: number; stats: number; query: number; upsert: number };
  defers: number;
  received: number;
  finals: number;
  repeatedFinals: number;
  finalMessages: number;
  errors: number;
  unnumbered: number;
  /** The first message that reached the errors node, in a few words (null: none). */
  firstError: string | null;
  loopDelay: LoopDelay;
  triggerer: { waits: number; running: number; finals: number } | null;
  flowsStartingAt: number | null;
  resumedAt: number | null;
}

const PROBE = path.join(__dirname, 'naive-waits-probe.cjs');
const DIMENSIONS = 16;
const SENSOR_POLL_S = 1;
const SENSOR_MAX_POLL_S = 5;
const NAIVE_POLL_MS = 1000;

function log(text: string): void {
  process.stderr.write(`[bench] naive-waits: ${text}\n`);
}

/**
 * Documents per collection: collection c gets a share growing with c + 1 (at least
 * one each), so that the last is ready `readySpanS` after the first.
 */
export function documentsPerCollection(waits: number, collections: number): number[] {
  if (waits < collections) throw new Error(`naive-waits needs at least one wait per collection (${waits} waits, ${collections} collections).`);
  const weights = Array.from({ length: collections }, (_, c) => c + 1);
  const total = weights.reduce((a, b) => a + b, 0);
  const spare = waits - collections;
  const exact = weights.map((w) => (spare * w) / total);
  const counts = exact.map((x) => 1 + Math.floor(x));
  // Largest remainders take what the floors left.
  let left = waits - counts.reduce((a, b) => a + b, 0);
  const byRemainder = exact.map((x, c) => ({ c, r: x - Math.floor(x) })).sort((a, b) => b.r - a.r || b.c - a.c);
  for (let k = 0; left > 0; k++, left--) counts[byRemainder[k % collections].c] += 1;
  return counts;
}

// ---------------------------------------------------------------------------------------
// The flows

const TAB = 'naive-tab';

function generatorCode(counts: number[]): string {
  return [
    '// One message per document, the collections taken in turn.',
    `const counts = ${JSON.stringify(counts)};`,
    'const rounds = Math.max(...counts);',
    'let seq = 0;',
    'for (let round = 0; round < rounds; round++) {',
    '    for (let c = 0; c < counts.length; c++) {',
    '        if (round >= counts[c]) continue;',
    "        node.send({ seq, collection: 'docs-' + c, payload: [{ id: 'doc-' + seq, text: 'Document ' + seq + ' of collection ' + c + ': harbours, tides and ships.' }] });",
    '        seq++;',
    '    }',
    '}',
    'return null;',
  ].join('\n');
}

/** The function-node poller, as a user would write it. */
export const POLLING_FUNCTION = [
  '// Poll the store every second until the collection has indexed the documents ingested.',
  "const store = global.get('vectorStore');",
  'const collection = msg.collection;',
  'const expected = msg.expectedCount;',
  'function check() {',
  '    store.status(collection).then((status) => {',
  "        if (status.state === 'failed') {",
  "            node.error('Indexing failed: ' + status.detail, msg);",
  '            node.done();',
  "        } else if (status.state === 'ready' && status.indexedCount >= expected) {",
  '            node.send(msg);',
  '            node.done();',
  '        } else {',
  `            setTimeout(check, ${NAIVE_POLL_MS});`,
  '        }',
  '    }).catch((err) => {',
  '        node.error(err, msg);',
  '        node.done();',
  '    });',
  '}',
  'check();',
  'return null;',
].join('\n');

const debug = (id: string): FlowNode => ({ id, type: 'debug', name: id, active: false, tosidebar: false, console: false, complete: 'true', wires: [] });

function waitNodes(kind: RunKind): FlowNode[] {
  switch (kind) {
    case 'control':
      return [debug('wait')];
    case 'sensor':
      return [
        {
          id: 'wait',
          type: 'deferrable-sensor',
          name: 'wait for indexing',
          store: 'store',
          collection: '',
          expectedCount: '0',
          pollInterval: String(SENSOR_POLL_S),
          maxPollInterval: String(SENSOR_MAX_POLL_S),
          timeout: '900',
          deferrable: true,
          wires: [['final'], []],
        },
      ];
    case 'function':
      return [
        { id: 'wait', type: 'function', name: 'poll until indexed', func: POLLING_FUNCTION, outputs: 1, timeout: 0, noerr: 0, initialize: '', finalize: '', libs: [], wires: [['final']] },
      ];
    case 'delay':
      return [
        { id: 'wait', type: 'delay', name: 'wait 1 s', pauseType: 'delay', timeout: '1', timeoutUnits: 'seconds', rate: '1', nbRateUnits: '1', rateUnits: 'second', randomFirst: '1', randomLast: '5', randomUnits: 'seconds', drop: false, allowrate: false, outputs: 1, wires: [['check']] },
        { id: 'check', type: 'index-health', name: 'indexed yet?', store: 'store', collection: '', expectedCount: '0', expectedCountType: 'num', countMode: 'atLeast', dimensions: '0', wires: [['final']] },
        { id: 'not-yet', type: 'catch', name: 'not healthy yet', scope: ['check'], uncaught: false, wires: [['retry']] },
        {
          id: 'retry',
          type: 'switch',
          name: 'retry?',
          property: 'payload.healthy',
          propertyType: 'msg',
          rules: [{ t: 'false' }, { t: 'else' }],
          checkall: 'false',
          repair: false,
          outputs: 2,
          wires: [['forget-error'], ['errors']],
        },
        // Node-RED drops a message caught more than 10 times ("Message exceeded maximum number
        // of catches"): a loop that waits longer than 10 s has to clear msg.error each turn.
        { id: 'forget-error', type: 'change', name: 'delete msg.error', rules: [{ t: 'delete', p: 'error', pt: 'msg' }], action: '', property: '', from: '', to: '', reg: false, wires: [['wait']] },
      ];
  }
}

function flows(kind: RunKind, counts: number[], options: NaiveWaitsOptions, indexingRate: number): FlowNode[] {
  const nodes: FlowNode[] = [
    { id: 'start', type: 'inject', name: 'start', props: [{ p: 'payload' }], repeat: '', crontab: '', once: false, onceDelay: 0.1, topic: '', payload: '', payloadType: 'date', wires: [['documents']] },
    { id: 'documents', type: 'function', name: 'N documents', func: generatorCode(counts), outputs: 1, timeout: 0, noerr: 0, initialize: '', finalize: '', libs: [], wires: [['ingest']] },
    {
      id: 'ingest',
      type: 'vector-ingest',
      name: 'ingest',
      store: 'store',
      collection: '',
      batchSize: '100',
      createCollection: true,
      buildIndex: true,
      gatherMs: '0',
      background: 'never',
      chunking: 'off',
      wires: [['wait']],
    },
    ...waitNodes(kind),
    debug('final'),
    debug('errors'),
    { id: 'failed', type: 'catch', name: 'failures', scope: ['ingest', 'wait'], uncaught: false, wires: [['errors']] },
  ];
  return [
    { id: TAB, type: 'tab', label: `naive-waits: ${kind}` },
    {
      id: 'store',
      type: 'vector-store',
      name: 'memory store',
      backend: 'memory',
      embedder: 'hash',
      dimensions: String(DIMENSIONS),
      indexingRate: String(indexingRate),
      indexingDelay: String(options.readyFromS),
      persist: true,
    },
    ...nodes.map((n, i) => ({ ...n, z: TAB, x: 150 + 200 * (i % 4), y: 60 + 60 * Math.floor(i / 4) })),
  ];
}

/** settings.js of every run: the function node's way to the store, and room for the waits. */
function settingsFile(): string {
  const nodeRed = require.resolve('node-red');
  return [
    `const RED = require(${JSON.stringify(nodeRed)});`,
    'module.exports = {',
    "  flowFile: 'flows.json',",
    '  credentialSecret: false,',
    "  logging: { console: { level: 'info', metrics: false, audit: false } },",
    '  // What a user adds so that function nodes can ask the store of the vector-store node for its status.',
    "  functionGlobalContext: { vectorStore: { status: (collection) => RED.nodes.getNode('store').getStore().backend.status(collection) } },",
    '  vectorPipeline: { maxPendingWaitsPerSensor: 10000000 },',
    '};',
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------
// Talking to the probe

class Probe {
  private seq = 0;
  private readonly dir: string;

  constructor(userDir: string) {
    this.dir = path.join(userDir, 'bench-probe');
  }

  async read(command: { gc?: boolean; resetLoop?: boolean; waits?: number } = {}, timeoutMs = 120_000): Promise<Reading> {
    const seq = ++this.seq;
    const control = path.join(this.dir, 'control.json');
    const answer = path.join(this.dir, `reading-${seq}.json`);
    const deadline = Date.now() + timeoutMs;
    let writtenAt = 0;
    for (;;) {
      // Rewritten now and then: a change the probe missed (it was busy) is seen again.
      if (Date.now() - writtenAt > 2_000) {
        await fs.writeFile(`${control}.tmp`, JSON.stringify({ seq, ...command }));
        await fs.rename(`${control}.tmp`, control);
        writtenAt = Date.now();
      }
      try {
        const reading = JSON.parse(await fs.readFile(answer, 'utf8')) as Reading;
        await fs.rm(answer, { force: true });
        return reading;
      } catch {
        // not answered yet
      }
      if (Date.now() > deadline) throw new Error(`The probe in the node-red process did not answer within ${timeoutMs} ms.`);
      await sleep(50);
    }
  }

  /** Read every `everyMs` until `done(reading)`; reject after `timeoutMs`. */
  async until(done: (r: Reading) => boolean, timeoutMs: number, what: string, everyMs: number): Promise<Reading> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const reading = await this.read();
      if (done(reading)) return reading;
      if (Date.now() > deadline) throw new Error(`Timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what} (last reading: ${JSON.stringify({ received: reading.received, defers: reading.defers, finals: reading.finals, errors: reading.errors })}).`);
      await sleep(everyMs);
    }
  }
}

async function start(userDir: string): Promise<{ nodeRed: NodeRed; probe: Probe }> {
  const nodeRed = await startNodeRed({ userDir, nodeArgs: ['--expose-gc', ...(process.env.BENCH_NODE_ARGS ? process.env.BENCH_NODE_ARGS.split(' ') : []), '-r', PROBE], startTimeoutMs: 120_000 });
  return { nodeRed, probe: new Probe(userDir) };
}

// ---------------------------------------------------------------------------------------
// One run

interface RawRun {
  burstMs: number;
  runMs: number;
  a: Reading;
  b: Reading;
  end: Reading;
}

function pendingAll(kind: RunKind, n: number): (r: Reading) => boolean {
  // The sensor's waits count once durable (or if one had ended at its first check). A message that
  // failed on the way (to `errors`) never arrives: it counts as done, and the run reports it.
  return (r) => r.received + r.errors >= n && (kind !== 'sensor' || r.defers + r.finals + r.errors >= n);
}

/** Long enough for the slowest wait, with the sensor's backoff and a loaded machine. */
function finalsTimeoutMs(options: NaiveWaitsOptions): number {
  return (options.readyFromS + options.readySpanS + 4 * SENSOR_MAX_POLL_S) * 1000 + 240_000;
}

async function runOnce(kind: RunKind, counts: number[], options: NaiveWaitsOptions, indexingRate: number): Promise<RawRun> {
  const n = options.waits;
  const userDir = await makeTempDir(`bench-naive-${kind}`);
  await fs.writeFile(path.join(userDir, 'settings.js'), settingsFile());
  await fs.writeFile(path.join(userDir, 'flows.json'), JSON.stringify(flows(kind, counts, options, indexingRate)));
  const { nodeRed, probe } = await start(userDir);
  try {
    const a = await probe.read({ waits: n, gc: true, resetLoop: true });
    await nodeRed.inject('start');
    const pending = await probe.until(pendingAll(kind, n), 600_000, `all ${n} waits pending (${kind})`, 100);
    // The loop delay restarts here: `b` has the burst's (ingest and accepting), `end` the waiting's.
    const b = await probe.read({ gc: true, resetLoop: true });
    if (kind === 'control') return { burstMs: pending.at - a.at, runMs: pending.at - a.at, a, b, end: b };
    const end = await probe.until((r) => r.finals + r.errors >= n, finalsTimeoutMs(options), `all ${n} final messages (${kind})`, 500);
    const errors = nodeRed.log.errors();
    if (errors.length > 0) log(`${kind}: ${errors.length} error lines in the Node-RED log, first: ${errors[0]}`);
    if (end.errors > 0) log(`${kind}: ${end.errors} messages went to the errors node, the first: ${end.firstError}`);
    return { burstMs: pending.at - a.at, runMs: end.at - a.at, a, b, end };
  } catch (err) {
    const tail = nodeRed.log.lines.slice(-15).join('\n');
    throw new Error(`${err instanceof Error ? err.message : String(err)}\nLast lines of the ${kind} run's Node-RED log:\n${tail}`);
  } finally {
    await nodeRed.stop(30_000);
    await fs.rm(userDir, { recursive: true, force: true });
  }
}

const reads = (r: Reading) => r.calls.status + r.calls.collectionExists + r.calls.stats + r.calls.query;

function callsBetween(from: Reading, to: Reading): StoreCalls {
  return {
    status: to.calls.status - from.calls.status,
    collectionExists: to.calls.collectionExists - from.calls.collectionExists,
    statsAndQuery: to.calls.stats + to.calls.query - from.calls.stats - from.calls.query,
    total: reads(to) - reads(from),
  };
}

const cpuMsBetween = (from: Reading, to: Reading) => (to.cpuMicros - from.cpuMicros - (to.gcCpuMicros - from.gcCpuMicros)) / 1000;

function control(raw: RawRun, repetition: number): ControlRun {
  return {
    repetition,
    burstMs: raw.burstMs,
    cpuMs: Math.round(cpuMsBetween(raw.a, raw.b)),
    heapBytes: raw.b.heapUsed - raw.a.heapUsed,
    rssBytes: raw.b.rss - raw.a.rss,
    storeCalls: callsBetween(raw.a, raw.b),
    burstLoopDelay: raw.b.loopDelay,
  };
}

function netRun(variant: Variant, raw: RawRun, base: ControlRun, repetition: number, n: number): VariantRun {
  const calls = callsBetween(raw.a, raw.end);
  return {
    variant,
    repetition,
    burstMs: raw.burstMs,
    runMs: raw.runMs,
    cpuMs: Math.round(cpuMsBetween(raw.a, raw.end) - base.cpuMs),
    heapPerWaitBytes: Math.round((raw.b.heapUsed - raw.a.heapUsed - base.heapBytes) / n),
    rssGrowthBytes: raw.b.rss - raw.a.rss - base.rssBytes,
    storeCalls: {
      status: calls.status - base.storeCalls.status,
      collectionExists: calls.collectionExists - base.storeCalls.collectionExists,
      statsAndQuery: calls.statsAndQuery - base.storeCalls.statsAndQuery,
      total: calls.total - base.storeCalls.total,
    },
    loopDelay: raw.end.loopDelay,
    burstLoopDelay: raw.b.loopDelay,
    finals: raw.end.finals,
    repeatedFinals: raw.end.repeatedFinals,
    errors: raw.end.errors,
  };
}

export function spread(values: number[], digits = 2): Spread {
  const round = (x: number) => Math.round(x * 10 ** digits) / 10 ** digits;
  return { median: round(median(values)), min: round(Math.min(...values)), max: round(Math.max(...values)) };
}

function summarise(variant: Variant, runs: VariantRun[], n: number): VariantSummary {
  const of = runs.filter((r) => r.variant === variant);
  return {
    variant,
    cpuMs: spread(of.map((r) => r.cpuMs), 0),
    heapPerWaitBytes: spread(of.map((r) => r.heapPerWaitBytes), 0),
    rssGrowthMB: spread(of.map((r) => r.rssGrowthBytes / 2 ** 20), 1),
    statusCalls: spread(of.map((r) => r.storeCalls.status), 0),
    storeCalls: spread(of.map((r) => r.storeCalls.total), 0),
    loopP99Ms: spread(of.map((r) => r.loopDelay.p99Ms), 1),
    burstLoopP99Ms: spread(of.map((r) => r.burstLoopDelay.p99Ms), 1),
    runMs: spread(of.map((r) => r.runMs), 0),
    allEndedOnce: of.every((r) => r.finals === n && r.repeatedFinals === 0 && r.errors === 0),
  };
}

/** Sensor against function node, repetition by repetition. */
function ratios(runs: VariantRun[], repetitions: number): NaiveWaitsResult['ratios'] {
  const pairs = Array.from({ length: repetitions }, (_, rep) => {
    const sensor = runs.find((r) => r.variant === 'sensor' && r.repetition === rep)!;
    const fn = runs.find((r) => r.variant === 'function' && r.repetition === rep)!;
    return { sensor, fn };
  });
  const safe = (x: number) => Math.max(1, x);
  return {
    heapSensorOverFunction: spread(pairs.map(({ sensor, fn }) => sensor.heapPerWaitBytes / safe(fn.heapPerWaitBytes))),
    cpuFunctionOverSensor: spread(pairs.map(({ sensor, fn }) => fn.cpuMs / safe(sensor.cpuMs))),
    callsFunctionOverSensor: spread(pairs.map(({ sensor, fn }) => fn.storeCalls.total / safe(sensor.storeCalls.total))),
    statusCallsFunctionOverSensor: spread(pairs.map(({ sensor, fn }) => fn.storeCalls.status / safe(sensor.storeCalls.status))),
  };
}

/** The sensor, killed with kill -9 while every wait is pending, restarted on the same user directory. */
async function killAndRestart(counts: number[], options: NaiveWaitsOptions, indexingRate: number): Promise<KillRestart> {
  const n = options.waits;
  const userDir = await makeTempDir('bench-naive-kill');
  await fs.writeFile(path.join(userDir, 'settings.js'), settingsFile());
  await fs.writeFile(path.join(userDir, 'flows.json'), JSON.stringify(flows('sensor', counts, options, indexingRate)));
  try {
    let pendingAtKill: number;
    {
      const { nodeRed, probe } = await start(userDir);
      await probe.read({ waits: n });
      await nodeRed.inject('start');
      const pending = await probe.until(pendingAll('sensor', n), 600_000, `all ${n} waits pending before the kill`, 100);
      pendingAtKill = pending.defers;
      await nodeRed.kill9();
    }
    const { nodeRed, probe } = await start(userDir);
    try {
      await probe.read({ waits: n });
      const end = await probe.until((r) => r.finals + r.errors >= n, finalsTimeoutMs(options), `all ${n} final messages after the restart`, 500).catch(() => probe.read());
      return {
        waits: n,
        pendingAtKill,
        finals: end.finals,
        repeatedFinals: end.repeatedFinals,
        errors: end.errors,
        resumeMs: end.resumedAt !== null && end.flowsStartingAt !== null ? end.resumedAt - end.flowsStartingAt : null,
      };
    } finally {
      await nodeRed.stop(30_000);
    }
  } finally {
    await fs.rm(userDir, { recursive: true, force: true });
  }
}

/** The run order of repetition `rep`: the control first, then the variants rotated. */
export function runOrder(rep: number): Variant[] {
  return VARIANTS.map((_, i) => VARIANTS[(i + rep) % VARIANTS.length]);
}

export async function run(options: NaiveWaitsOptions): Promise<NaiveWaitsResult> {
  const started = Date.now();
  const n = options.waits;
  const counts = documentsPerCollection(n, options.collections);
  const indexingRate = Math.max(...counts) / options.readySpanS;
  const runs: VariantRun[] = [];
  const controls: ControlRun[] = [];
  try {
    for (let rep = 0; rep < options.repetitions; rep++) {
      log(`${n.toLocaleString('en-US')} waits, repetition ${rep + 1} of ${options.repetitions}: control (ingest only)`);
      const base = control(await runOnce('control', counts, options, indexingRate), rep);
      controls.push(base);
      for (const variant of runOrder(rep).filter((v) => !options.variants || options.variants.includes(v))) {
        log(`${n.toLocaleString('en-US')} waits, repetition ${rep + 1} of ${options.repetitions}: ${variant}`);
        runs.push(netRun(variant, await runOnce(variant, counts, options, indexingRate), base, rep, n));
      }
    }
    let killRestart: KillRestart | null = null;
    if (options.killRestart) {
      log(`${n.toLocaleString('en-US')} waits: the sensor killed with kill -9 while they are pending, then restarted`);
      killRestart = await killAndRestart(counts, options, indexingRate);
    }
    return {
      waits: n,
      collections: options.collections,
      repetitions: options.repetitions,
      readyFromS: options.readyFromS,
      readySpanS: options.readySpanS,
      indexingRate: Math.round(indexingRate * 1000) / 1000,
      runs,
      controls,
      summary: VARIANTS.filter((v) => runs.some((r) => r.variant === v)).map((v) => summarise(v, runs, n)),
      ratios: runs.some((r) => r.variant === 'sensor') && runs.some((r) => r.variant === 'function') ? ratios(runs, options.repetitions) : null,
      killRestart,
      durationS: Math.round((Date.now() - started) / 1000),
    };
  } finally {
    await cleanupAll();
  }
}
