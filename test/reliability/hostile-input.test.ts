/**
 * Property-based hostile input (fast-check) on every node type and on the config
 * node, in a real Node-RED runtime (node-red-node-test-helper):
 *  - the process never crashes and no promise rejection goes unhandled;
 *  - every bad input ends, once, in done(err) with the package's own sentence (no
 *    schema library wording);
 *  - a rejected ingest writes nothing: the collection's count is unchanged and no
 *    empty collection is created (small batches: batchSize 1-3);
 *  - no secret (in any form a server may echo it) appears in a message, a status or
 *    a log line.
 * Run counts are kept small so the suite fits its time budget (RELIABILITY_NUM_RUNS scales them).
 */
import should from 'should';
import fc from 'fast-check';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { helper, load, logLines, recordProcessFaults, unload, type FlowNode, type Msg } from './runtime';
import { startPgliteServer, startPasswordRejectingServer, type PgliteServer } from '../support/pglite-server';
import { startChromaServer, startStandIn, type ChromaServer, type LocalServer } from '../support/chroma-server';
import { writeFigures } from './figures';

const SCALE = Math.max(0.2, Number(process.env.RELIABILITY_NUM_RUNS_SCALE ?? 1));
const runs = (n: number) => Math.max(3, Math.round(n * SCALE));
const DIMS = 8;
/** Longest any one input may take to end (the store timeout is 2 s here). */
const END_WITHIN_MS = 5000;

/** Wording of a schema library, or of an object printed as such: never what a user should read. */
const FOREIGN_WORDING = /Too (big|small)|expected (int|number|string|object|array|boolean)|Invalid (input|type)|received |ZodError|\[object Object\]|must be an object \(got an object\)|invalid_type|Maximum call stack/i;

/** The error a Catch node shows (`msg.error.message`, "Error: " + the sentence) is a sentence of the package's own. */
function checkSentence(message: unknown, what: string, input: unknown = undefined): string | null {
  const text = typeof message === 'string' ? message.replace(/^Error: /, '').trim() : message;
  if (typeof text !== 'string' || text.length < 15 || !/\s/.test(text)) return `${what}: not a sentence: ${JSON.stringify(message)}`;
  if (FOREIGN_WORDING.test(text)) return `${what}: foreign wording: ${text}`;
  // NaN printed through JSON: "(got null)" for something that was not null.
  if (input !== null && /\(got null\)/.test(text)) return `${what}: says "got null" for ${describeValue(input)}: ${text}`;
  return null;
}

function describeValue(value: unknown): string {
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  const text = safeString(value);
  return text.length > 80 ? `${text.slice(0, 80)}...` : text;
}

// ---------------------------------------------------------------------------------------
// Outcome of one input: the first output or catch message carrying its probe number

let probeCounter = 0;
interface Outcome {
  kind: 'output' | 'error' | 'hung';
  msg?: Msg;
  count: number;
}

/** Send `msg` to `nodeId`; resolve with how it ended (outputs go to `outputIds`, failures to the catch node). */
function send(nodeId: string, msg: Msg, outputIds: string[], waitMs = END_WITHIN_MS): Promise<Outcome> {
  const probe = ++probeCounter;
  msg.probe = probe;
  return new Promise((resolve) => {
    const seen: Array<{ kind: 'output' | 'error'; msg: Msg }> = [];
    const listeners: Array<[string, (m: Msg) => void]> = [];
    const listen = (id: string, kind: 'output' | 'error') => {
      const listener = (m: Msg) => {
        if (m.probe === probe) seen.push({ kind, msg: m });
      };
      helper.getNode(id).on('input', listener);
      listeners.push([id, listener]);
    };
    for (const id of outputIds) listen(id, 'output');
    listen('errors', 'error');
    const started = Date.now();
    const timer = setInterval(() => {
      // Settle a little after the first end, so a second end would be counted.
      const first = seen[0];
      if ((first && Date.now() - started > 50) || Date.now() - started > waitMs) {
        clearInterval(timer);
        setImmediate(() => {
          for (const [id, listener] of listeners) helper.getNode(id)?.removeListener('input', listener);
        });
        resolve(first ? { kind: first.kind, msg: first.msg, count: seen.length } : { kind: 'hung', count: 0 });
      }
    }, 20);
    helper.getNode(nodeId).receive(msg);
  });
}

// ---------------------------------------------------------------------------------------
// Generators

const oddChar = fc.constantFrom('\n', '\r\n', '\u0000', '"', "'", '\\', '\u2028', 'é', '🔑', ' ', '\t', '%', '=');
const oddText = fc.string({ unit: fc.oneof(fc.constantFrom('\n', '\u0000', '"', '\u2028', '🔑', 'é'), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 })), minLength: 1, maxLength: 40 });
const goodText = fc.string({ unit: fc.oneof(fc.constantFrom('é', '🔑', '"', "'", ' '), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 })), minLength: 1, maxLength: 60 }).filter((t) => t.trim().length > 0 && !t.includes('\u0000'));
const goodVector = fc.array(fc.float({ min: -1, max: 1, noNaN: true, noDefaultInfinity: true }).filter((x) => x !== 0), { minLength: DIMS, maxLength: DIMS });
const goodDoc = fc.oneof(goodText.map((text) => ({ text })), goodVector.map((vector) => ({ vector })));

function circular(): Record<string, unknown> {
  const value: Record<string, unknown> = { name: 'loop' };
  value.self = value;
  return value;
}

/** Documents that some backend refuses; `nul`: only stores that refuse NUL characters. */
const badDoc = (withNul: boolean) =>
  fc.oneof(
    fc.constant({ vector: Array(DIMS).fill(1e39) }),
    fc.constant({ vector: [...Array(DIMS - 1).fill(0.1), Number.NaN] }),
    fc.constant({ vector: [...Array(DIMS - 1).fill(0.1), Infinity] }),
    fc.integer({ min: 1, max: 20 }).filter((n) => n !== DIMS).map((n) => ({ vector: Array(n).fill(0.1) })),
    fc.constant({ text: 'has a BigInt', metadata: { big: BigInt(12) } }),
    fc.constant(null).map(() => ({ text: 'has a loop', metadata: circular() })),
    fc.constant({ text: 123 }),
    fc.constant({}),
    fc.constant(null),
    fc.constant({ id: { not: 'a string' }, text: 'odd id' }),
    fc.constant({ text: 'metadata is a string', metadata: 'nope' }),
    ...(withNul ? [oddText.map((t) => ({ text: `nul\u0000${t}` }))] : []),
  );

/** A valid prefix and suffix around one bad document, anywhere. */
const hostileBatch = (withNul: boolean) =>
  fc.tuple(fc.array(goodDoc, { maxLength: 4 }), badDoc(withNul), fc.array(goodDoc, { maxLength: 3 }), fc.integer({ min: 1, max: 3 }), fc.boolean());

// ---------------------------------------------------------------------------------------

describe('reliability: property-based hostile input on every node and the config node (fast-check, real Node-RED runtime)', function () {
  this.timeout(120_000);
  const processFaults = recordProcessFaults();
  const figures: Record<string, unknown> = {};
  const previousEnv = process.env.VECTOR_PIPELINE_STORE_TIMEOUT;
  let pg: PgliteServer;
  let chroma: ChromaServer;

  before(async function () {
    this.timeout(60_000);
    process.env.VECTOR_PIPELINE_STORE_TIMEOUT = '2';
    [pg, chroma] = await Promise.all([startPgliteServer({ maxConnections: 8 }), startChromaServer()]);
  });
  after(async () => {
    if (previousEnv === undefined) delete process.env.VECTOR_PIPELINE_STORE_TIMEOUT;
    else process.env.VECTOR_PIPELINE_STORE_TIMEOUT = previousEnv;
    processFaults.stop();
    await Promise.all([pg?.stop(), chroma?.stop()]);
    await writeFigures('hostile-input', { ...figures, processFaults: processFaults.faults.length });
  });
  afterEach(() => unload());

  const nodesFlow = (store: Record<string, unknown>): FlowNode[] => [
    { id: 'store', type: 'vector-store', name: 'hostile store', embedder: 'hash', dimensions: DIMS, ...store },
    // One ingest node per small batch size: a bad document in a later batch must still write nothing.
    ...[1, 2, 3].map((batchSize) => ({ id: `ingest-${batchSize}`, type: 'vector-ingest', store: 'store', collection: 'hostile', batchSize, wires: [['ingested']] })),
    { id: 'sensor', type: 'deferrable-sensor', store: 'store', collection: 'hostile', expectedCount: 0, pollInterval: 0.2, maxPollInterval: 0.5, timeout: 5, wires: [['ready'], ['progress']] },
    { id: 'health', type: 'index-health', store: 'store', collection: 'hostile', expectedCount: 0, countMode: 'atLeast', dimensions: 0, wires: [['healthy']] },
    { id: 'query', type: 'sample-query', store: 'store', collection: 'hostile', query: 'ships', topK: 3, failOnEmpty: false, wires: [['answers']] },
    ...['ingested', 'ready', 'progress', 'healthy', 'answers', 'errors', 'statuses'].map((id) => ({ id, type: 'helper' })),
    { id: 'catch-all', type: 'catch', scope: null, uncaught: false, wires: [['errors']] },
    { id: 'status-all', type: 'status', scope: null, wires: [['statuses']] },
  ];

  const backendOf = () => helper.getNode('store').getStore().backend;
  const countOf = async (collection: string) => ((await backendOf().collectionExists(collection)) ? (await backendOf().stats(collection)).documentCount : null);

  for (const target of ['memory', 'pgvector'] as const) {
    it(`vector-ingest (${target}, batchSize 1-3): a bad document anywhere writes nothing, ends in done(err) with a sentence`, async () => {
      const store = target === 'memory' ? { backend: 'memory', indexingRate: 10000, indexingDelay: 0, persist: true } : { backend: 'pgvector', url: pg.url };
      const userDir = await load(nodesFlow(store));
      const existing = `existing_${target}_${Date.now().toString(36)}`;
      const seeded = await send('ingest-1', { collection: existing, payload: ['first ship', 'second ship'] }, ['ingested']);
      should(seeded.kind).equal('output');
      const problems: string[] = [];
      let tried = 0;
      let counter = 0;
      await fc.assert(
        fc.asyncProperty(hostileBatch(target === 'pgvector'), async ([before, bad, afterDocs, batchSize, intoExisting]) => {
          tried += 1;
          const collection = intoExisting ? existing : `fresh_${target}_${++counter}_${Date.now().toString(36)}`;
          // A lone vector of another size may define a new collection's dimensions: not bad by itself.
          const wrongSize = Array.isArray((bad as { vector?: unknown } | null)?.vector) && (bad as { vector: unknown[] }).vector.length !== DIMS;
          if (wrongSize && !intoExisting && before.length + afterDocs.length === 0) return true;
          const countBefore = await countOf(collection);
          const outcome = await send('ingest-' + batchSize, { collection, payload: [...before, bad, ...afterDocs] }, ['ingested']);
          const countAfter = await countOf(collection);
          const label = `batchSize ${batchSize}, bad document ${before.length + 1} of ${before.length + 1 + afterDocs.length} (${describeDoc(bad)})`;
          if (outcome.kind !== 'error') problems.push(`${label}: ended with ${outcome.kind}, not done(err)`);
          else {
            const p = checkSentence(outcome.msg?.error?.message, label, bad);
            if (p) problems.push(p);
          }
          if (outcome.count > 1) problems.push(`${label}: ended ${outcome.count} times`);
          if (countAfter !== countBefore) problems.push(`${label}: count ${countBefore} -> ${countAfter} (${intoExisting ? 'existing' : 'new, an empty or partial collection was left'})`);
          if (target === 'memory' && !intoExisting) {
            const file = path.join(userDir, 'vector-pipeline', 'memory', `${collection}.jsonl`);
            if (await fsp.stat(file).then(() => true, () => false)) problems.push(`${label}: ${collection}.jsonl was created`);
          }
          return true;
        }),
        { numRuns: runs(target === 'memory' ? 40 : 20), seed: 7 },
      );
      figures[`ingest_${target}`] = { runs: tried, problems: problems.length, examples: problems.slice(0, 8) };
      should(problems).eql([], problems.slice(0, 5).join('\n'));
    });
  }

  it('deferrable-sensor, index-health, sample-query: hostile msg fields end in done(err) with a sentence, never hang', async () => {
    await load(nodesFlow({ backend: 'memory', indexingRate: 10000, indexingDelay: 0, persist: true }));
    should((await send('ingest-1', { collection: 'hostile', payload: ['a ship', 'a harbour', 'a tide'] }, ['ingested'])).kind).equal('output');
    const badCollection = fc.oneof(
      fc.constantFrom<unknown>(123, ['x'], { name: 'x' }, true, 'a'.repeat(300), '../etc/passwd', 'has space', 'nul\u0000name', '-dash-first'),
      oddText.filter((t) => /[^A-Za-z0-9_-]/.test(t)),
    );
    const badCount = fc.constantFrom<unknown>(-1, 1.5, Number.NaN, '12abc', { n: 1 }, [3], Infinity, -Infinity);
    const badQuery = fc.oneof(
      fc.constantFrom<unknown>(
        { vector: [Number.NaN, ...Array(DIMS - 1).fill(0.1)] },
        { vector: [0.1, 0.2] },
        { text: 123 },
        { text: 'ships', topK: -1 },
        { text: 'ships', topK: 1.5 },
        { text: 'ships', topK: 'many' },
        { text: 'ships', filter: 'not an object' },
        { text: 'ships', filter: circular() },
        { text: 'ships', filter: { big: BigInt(1) } },
        { text: '' },
        {},
        [],
        [null],
        12,
        null,
      ),
      oddText.map((t) => ({ vector: t })),
    );
    const cases = fc.oneof(
      fc.record({ node: fc.constant('sensor'), field: fc.constant('collection'), value: badCollection }),
      fc.record({ node: fc.constant('sensor'), field: fc.constant('expectedCount'), value: badCount }),
      fc.record({ node: fc.constant('health'), field: fc.constant('collection'), value: badCollection }),
      fc.record({ node: fc.constant('health'), field: fc.constant('expectedCount'), value: badCount }),
      fc.record({ node: fc.constant('query'), field: fc.constant('collection'), value: badCollection }),
      fc.record({ node: fc.constant('query'), field: fc.constant('payload'), value: badQuery }),
    );
    const outputs: Record<string, string[]> = { sensor: ['ready', 'progress'], health: ['healthy'], query: ['answers'] };
    const problems: string[] = [];
    let tried = 0;
    await fc.assert(
      fc.asyncProperty(cases, async ({ node, field, value }) => {
        tried += 1;
        const msg: Msg = { collection: 'hostile', [field]: value };
        if (node === 'query' && field !== 'payload') msg.payload = 'ships';
        const outcome = await send(node, msg, outputs[node]);
        const label = `${node} with msg.${field} = ${describeValue(value)}`;
        if (outcome.kind !== 'error') problems.push(`${label}: ended with ${outcome.kind}, not done(err)`);
        else {
          const p = checkSentence(outcome.msg?.error?.message, label, value);
          if (p) problems.push(p);
        }
        if (outcome.count > 1) problems.push(`${label}: ended ${outcome.count} times`);
        return true;
      }),
      { numRuns: runs(60), seed: 11 },
    );
    figures.otherNodes = { runs: tried, problems: problems.length, examples: problems.slice(0, 5) };
    should(problems).eql([], problems.slice(0, 5).join('\n'));
  });

  it('vector-store config node: odd characters in properties and credentials, no crash, no secret shown (stand-in embedding server and password-rejecting Postgres stand-in: they cannot run here)', async () => {
    // A TEST DOUBLE of an OpenAI-compatible server that echoes the token back in every form.
    const echoing: LocalServer = await startStandIn((request) => {
      const auth = String(request.headers.authorization ?? '');
      const token = auth.replace(/^Bearer /, '');
      return {
        status: 401,
        body: {
          error: {
            message: `Incorrect API key provided: ${token}; encoded ${encodeURIComponent(token)}; upper ${token.toUpperCase()}; base64 ${Buffer.from(token).toString('base64')}; cut ${token.slice(0, Math.ceil(token.length * 0.6))}`,
          },
        },
      };
    });
    const rejecting = await startPasswordRejectingServer();
    const problems: string[] = [];
    let tried = 0;
    try {
      const secretArb = fc
        .tuple(fc.stringMatching(/^[A-Za-z0-9]{10,16}$/), oddChar, fc.stringMatching(/^[A-Za-z0-9]{8,12}$/))
        .map(([a, odd, b]) => `sk-${a}${odd}${b}`);
      const propertyArb = fc.oneof(oddText, fc.constantFrom('', ' ', '"quoted"', "it's", 'line\nbreak', 'nul\u0000', '🔑'));
      const kindArb = fc.constantFrom('openai-embedder', 'chroma-apiKey', 'pgvector-password');
      await fc.assert(
        fc.asyncProperty(kindArb, secretArb, propertyArb, async (kind, secret, oddProperty) => {
          tried += 1;
          const store: Record<string, unknown> =
            kind === 'openai-embedder'
              ? { backend: 'memory', embedder: 'openai', embedUrl: `${echoing.url}/v1`, embedModel: `model ${oddProperty}`, dimensions: DIMS, name: oddProperty }
              : kind === 'chroma-apiKey'
                ? { backend: 'chroma', url: chroma.url, tenant: 'default_tenant', database: 'default_database', name: oddProperty }
                : { backend: 'pgvector', url: rejecting.url, name: oddProperty };
          const credentials = { store: kind === 'openai-embedder' ? { embedApiKey: secret } : kind === 'chroma-apiKey' ? { apiKey: secret } : { password: secret } };
          const logFrom = 0;
          try {
            await load(nodesFlow(store), { credentials });
          } catch (err) {
            problems.push(`${kind}: the flow did not load: ${(err as Error).message}`);
            return true;
          }
          const statuses: Msg[] = [];
          helper.getNode('statuses').on('input', (m: Msg) => statuses.push(m));
          const outcome = await send('ingest-1', { collection: 'secrets', payload: ['a text to embed'] }, ['ingested']);
          const health = await send('health', { collection: 'secrets' }, ['healthy']);
          const seen = [
            JSON.stringify(outcome.msg ?? {}, jsonSafe),
            JSON.stringify(health.msg ?? {}, jsonSafe),
            ...statuses.map((s) => JSON.stringify(s.status ?? {})),
            ...logLines().slice(logFrom),
          ].join('\n');
          for (const form of secretForms(secret)) {
            if (seen.includes(form)) problems.push(`${kind}: the secret shows as ${JSON.stringify(form)} (secret ${JSON.stringify(secret)})`);
          }
          if (outcome.kind === 'hung') problems.push(`${kind}: the ingest never ended`);
          if (outcome.kind === 'error') {
            const p = checkSentence(outcome.msg?.error?.message, kind);
            if (p) problems.push(p);
          }
          await unload();
          return true;
        }),
        { numRuns: runs(24), seed: 5 },
      );
    } finally {
      await echoing.close();
      await rejecting.stop();
    }
    figures.configNode = { runs: tried, problems: problems.length, examples: problems.slice(0, 5) };
    should(problems).eql([], problems.slice(0, 5).join('\n'));
  });

  describe('afterwards', () => {
    it('no unhandled rejection or uncaught exception', () => {
      should(processFaults.faults).eql([], processFaults.faults.slice(0, 3).join('\n'));
    });
  });
});

/** A secret as a server or a library may echo it: verbatim, its parts around the odd character, encoded, upper-cased, base64. */
function secretForms(secret: string): string[] {
  const parts = secret.split(/[^A-Za-z0-9-]+/).filter((p) => p.length >= 8);
  return [...new Set([secret, ...parts, encodeURIComponent(secret), secret.toUpperCase(), Buffer.from(secret).toString('base64'), JSON.stringify(secret).slice(1, -1)])];
}

/** A short description of a (hostile) document for failure messages. */
function describeDoc(doc: unknown): string {
  if (doc === null || typeof doc !== 'object') return describeValue(doc);
  const d = doc as Record<string, unknown>;
  const parts: string[] = [];
  if (Array.isArray(d.vector)) parts.push(`vector of ${d.vector.length} [${(d.vector as number[]).slice(-1)}...]`);
  if ('text' in d) parts.push(`text ${describeValue(d.text)}`);
  if ('id' in d) parts.push(`id ${describeValue(d.id)}`);
  if ('metadata' in d) parts.push(`metadata ${describeValue(d.metadata)}`);
  return parts.join(', ') || '{}';
}

function jsonSafe(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? `${value}n` : value;
}

function safeString(value: unknown): string {
  try {
    return JSON.stringify(value, jsonSafe) ?? String(value);
  } catch (err) {
    return /circular/i.test((err as Error).message) ? '(circular)' : '(too deep)';
  }
}
