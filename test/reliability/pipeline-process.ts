/**
 * What the process-level reliability suites (kill -9 matrix, corrupted state files,
 * 10,000 waits) share: a real `node-red` process (test/e2e/harness.ts) on a user
 * directory with a small settings.js, and a flow whose sensor writes every event
 * (progress, final, failure) as one JSON line to an events file, synchronously,
 * in a function node: what reached the node after the sensor is on disk before
 * the next tick, so a kill -9 cannot lose a delivery that happened.
 *
 * Flow: POST /reliability/start {run, collections, docs, waits, quiet}
 *   -> function (one ingest message per collection `<run>-c<k>`)
 *   -> vector-ingest -> function (`waits` sensor messages per collection, ticket
 *      `<collection>-w<i>`) -> deferrable-sensor -> recorders.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { httpRequest, makeTempDir, startNodeRed, type FlowNode, type NodeRed, type StartOptions } from '../e2e/harness';

export interface PipelineOptions {
  /** Memory store: documents indexed per second, and seconds before indexing starts. */
  indexingRate: number;
  indexingDelay: number;
  pollS: number;
  maxPollS?: number;
  timeoutS: number;
  /** vector-ingest batchSize (default 100): small batches give a collection file of many lines. */
  ingestBatchSize?: number;
}

export const TAB = 'rel-tab';
export const STORE = 'rel-store';
export const SENSOR = 'rel-sensor';
export const INGEST = 'rel-ingest';

/** One line of the events file. */
export interface SensorEvent {
  kind: 'progress' | 'final' | 'failed' | 'error';
  waitId?: string;
  ticket?: string;
  run?: string;
  collection?: string;
  redelivered: boolean;
  status?: string;
  elapsedMs?: number;
  indexedCount?: number;
  progress?: number | null;
  message?: string;
  at: number;
}

/** The recorder's body: one appendFileSync per event (test flow code, not the package's). */
function recorder(kind: SensorEvent['kind']): string {
  return [
    "const fs = global.get('fs');",
    "const file = global.get('eventsFile');",
    'const p = msg.payload || {};',
    kind === 'progress'
      ? "if (msg.quiet) { const seen = context.get('seen') || new Set(); if (seen.has(msg.waitId)) return null; seen.add(msg.waitId); context.set('seen', seen); }"
      : '',
    `const event = { kind: '${kind}', waitId: msg.waitId, ticket: msg.ticket, run: msg.run, collection: msg.collection,`,
    '  redelivered: msg.redelivered === true, status: p.status, elapsedMs: p.elapsedMs, indexedCount: p.indexedCount, progress: p.progress,',
    '  message: (msg.error && msg.error.message) || p.message, at: Date.now() };',
    "if (event.kind === 'failed' && !msg.waitId) event.kind = 'error';",
    "fs.appendFileSync(file, JSON.stringify(event) + '\\n');",
    'return null;',
  ]
    .filter(Boolean)
    .join('\n');
}

const fn = (id: string, func: string, wires: string[][], outputs = 1): FlowNode => ({
  id,
  type: 'function',
  z: TAB,
  name: id,
  func,
  outputs,
  noerr: 0,
  initialize: '',
  finalize: '',
  libs: [],
  x: 300,
  y: 300,
  wires,
});

export function pipelineFlows(options: PipelineOptions): FlowNode[] {
  return [
    { id: TAB, type: 'tab', label: 'Reliability', disabled: false, info: '' },
    {
      id: STORE,
      type: 'vector-store',
      name: 'reliability memory store',
      backend: 'memory',
      embedder: 'hash',
      dimensions: '16',
      indexingRate: String(options.indexingRate),
      indexingDelay: String(options.indexingDelay),
      persist: true,
    },
    { id: 'rel-http', type: 'http in', z: TAB, name: '', url: '/reliability/start', method: 'post', upload: false, swaggerDoc: '', x: 100, y: 100, wires: [['rel-start']] },
    fn(
      'rel-start',
      [
        'const { run, collections, docs, waits, quiet, names, expectAll } = msg.payload;',
        'const out = [];',
        'for (let c = 0; c < (names ? names.length : collections); c++) {',
        "  const collection = names ? names[c] : run + '-c' + c;",
        '  const texts = [];',
        "  for (let d = 0; d < docs; d++) texts.push('Reliability ' + collection + ' document ' + d + ': harbours, tides and ships.');",
        '  out.push({ payload: texts, collection, run, waits, quiet, expectAll });',
        '}',
        "msg.payload = 'started';",
        'return [out, msg];',
      ].join('\n'),
      [[INGEST], ['rel-http-res']],
      2,
    ),
    { id: 'rel-http-res', type: 'http response', z: TAB, name: '', statusCode: '', headers: {}, x: 500, y: 60, wires: [] },
    { id: INGEST, type: 'vector-ingest', z: TAB, name: '', store: STORE, collection: 'unused', batchSize: String(options.ingestBatchSize ?? 100), createCollection: true, buildIndex: true, x: 300, y: 160, wires: [['rel-fanout']] },
    fn(
      'rel-fanout',
      [
        'const out = [];',
        'for (let i = 0; i < msg.waits; i++) {',
        "  out.push({ collection: msg.collection, expectedCount: msg.expectAll === false ? 0 : msg.expectedCount, run: msg.run, quiet: msg.quiet, ticket: msg.collection + '-w' + i });",
        '}',
        'return [out];',
      ].join('\n'),
      [[SENSOR]],
    ),
    {
      id: SENSOR,
      type: 'deferrable-sensor',
      z: TAB,
      name: '',
      store: STORE,
      collection: 'unused',
      expectedCount: '0',
      pollInterval: String(options.pollS),
      maxPollInterval: String(options.maxPollS ?? options.pollS),
      timeout: String(options.timeoutS),
      deferrable: true,
      x: 500,
      y: 160,
      wires: [['rel-rec-final'], ['rel-rec-progress']],
    },
    fn('rel-rec-final', recorder('final'), [[]]),
    fn('rel-rec-progress', recorder('progress'), [[]]),
    { id: 'rel-catch', type: 'catch', z: TAB, name: '', scope: null, uncaught: false, x: 100, y: 400, wires: [['rel-rec-failed']] },
    fn('rel-rec-failed', recorder('failed'), [[]]),
    // GET /reliability/health?collection=<name>: index-health's payload (healthy or not) as JSON.
    { id: 'rel-health-http', type: 'http in', z: TAB, name: '', url: '/reliability/health', method: 'get', upload: false, swaggerDoc: '', x: 100, y: 500, wires: [['rel-health-prep']] },
    fn('rel-health-prep', 'msg.collection = msg.req.query.collection;\nreturn msg;', [['rel-health']]),
    { id: 'rel-health', type: 'index-health', z: TAB, name: '', store: STORE, collection: 'unused', expectedCount: '0', countMode: 'atLeast', dimensions: '0', x: 500, y: 500, wires: [['rel-health-res']] },
    { id: 'rel-health-catch', type: 'catch', z: TAB, name: '', scope: ['rel-health'], uncaught: false, x: 100, y: 560, wires: [['rel-health-res']] },
    { id: 'rel-health-res', type: 'http response', z: TAB, name: '', statusCode: '', headers: {}, x: 700, y: 500, wires: [] },
  ];
}

/** A user directory with a settings.js giving the recorders `fs` and the events file. */
export async function prepareUserDir(vectorPipeline: Record<string, unknown> = {}): Promise<{ userDir: string; eventsFile: string }> {
  const root = await makeTempDir('vp-reliability');
  const userDir = path.join(root, 'user');
  const eventsFile = path.join(root, 'events.jsonl');
  await fsp.mkdir(userDir, { recursive: true });
  await fsp.writeFile(eventsFile, '');
  const settings = [
    '// Written by the reliability suite: Node-RED defaults, plus what the test flow needs.',
    'module.exports = {',
    "  flowFile: 'flows.json',",
    `  functionGlobalContext: { fs: require('fs'), eventsFile: ${JSON.stringify(eventsFile)} },`,
    `  vectorPipeline: ${JSON.stringify(vectorPipeline)},`,
    '};',
    '',
  ].join('\n');
  await fsp.writeFile(path.join(userDir, 'settings.js'), settings);
  return { userDir, eventsFile };
}

export async function startPipeline(userDir: string, options: Omit<StartOptions, 'userDir'> = {}): Promise<NodeRed> {
  return startNodeRed({ userDir, ...options });
}

/** Ask the flow to start a run (answers once the ingest messages are on their way). */
export interface RunRequest {
  run: string;
  collections: number;
  docs: number;
  waits: number;
  /** Record only the first progress message of each wait. */
  quiet?: boolean;
  /** Collection names instead of `<run>-c<k>`. */
  names?: string[];
  /** false: the waits wait for "ready" alone (expectedCount 0), not for every document. */
  expectAll?: boolean;
}

export async function startRun(nodeRed: NodeRed, run: RunRequest): Promise<void> {
  const result = await httpRequest('POST', `${nodeRed.url}/reliability/start`, run);
  if (result.status !== 200) throw new Error(`Starting run ${run.run} failed with HTTP ${result.status}: ${result.body}`);
}

/** index-health's payload for a collection (documentCount...), or its failure payload. */
export async function healthOf(nodeRed: NodeRed, collection: string): Promise<Record<string, any>> {
  const result = await httpRequest('GET', `${nodeRed.url}/reliability/health?collection=${encodeURIComponent(collection)}`);
  return JSON.parse(result.body) as Record<string, any>;
}

/** Reads the events file incrementally (only the new bytes each time). */
export class EventsReader {
  readonly events: SensorEvent[] = [];
  private offset = 0;
  private partial = '';

  constructor(readonly file: string) {}

  async poll(): Promise<SensorEvent[]> {
    const handle = await fsp.open(this.file, 'r');
    try {
      const { size } = await handle.stat();
      if (size <= this.offset) return [];
      const buffer = Buffer.alloc(size - this.offset);
      await handle.read(buffer, 0, buffer.length, this.offset);
      this.offset = size;
      const text = this.partial + buffer.toString('utf8');
      const lines = text.split('\n');
      this.partial = lines.pop() ?? '';
      const fresh = lines.filter(Boolean).map((line) => JSON.parse(line) as SensorEvent);
      this.events.push(...fresh);
      return fresh;
    } finally {
      await handle.close();
    }
  }

  /** Poll every `intervalMs` until `predicate(events)` holds; false when `timeoutMs` passes. */
  async until(predicate: (events: SensorEvent[]) => boolean, timeoutMs: number, intervalMs = 5): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      await this.poll();
      if (predicate(this.events)) return true;
      if (Date.now() >= deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  }
}

/** Per wait of a run: its events, in order. */
export function byWait(events: SensorEvent[], run: string): Map<string, SensorEvent[]> {
  const waits = new Map<string, SensorEvent[]>();
  for (const event of events) {
    if (event.run !== run || !event.waitId) continue;
    waits.set(event.waitId, [...(waits.get(event.waitId) ?? []), event]);
  }
  return waits;
}

export const isFinal = (event: SensorEvent) => event.kind === 'final' || event.kind === 'failed';
