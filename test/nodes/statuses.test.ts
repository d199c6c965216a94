/**
 * Statuses that read at a glance (issue 9, item 2): every failure kind of every
 * node shows a few short words (at most MAX_STATUS characters) while the whole
 * sentence stays in msg.error.message. A real Node-RED runtime (test helper)
 * with this package's real en-US message catalog: the test helper has none (its
 * RED._ returns the key), so the nodes here get a RED._ that reads
 * nodes/locales/en-US/*.json and fills in `__name__` placeholders as i18next does.
 */
import { readFileSync } from 'node:fs';
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import should from 'should';
import { catchAll, delay, helper, nextMessage, nodeModules, storeConfig, type FlowNode, type Msg } from './flow-helper';
import { closeAllTriggerers } from '../../nodes/shared/runtime';
import { MAX_STATUS, clip, failureStatus, withDetail } from '../../nodes/shared/status';
import { VectorStoreError } from '../../lib/errors';

// ---------------------------------------------------------------------------
// The runtime, with the real catalog

const LOCALES = path.join(__dirname, '../../nodes/locales/en-US');
const catalogs = new Map<string, unknown>();

/** RED._ as Node-RED's i18next answers it for this package's nodes (en-US). */
function translate(key: string, values: Record<string, unknown> = {}): string {
  const [namespace, ...rest] = key.split('.');
  if (!catalogs.has(namespace)) {
    const file = path.join(LOCALES, `${namespace}.json`);
    catalogs.set(namespace, JSON.parse(readFileSync(file, 'utf8'))[namespace]);
  }
  let entry: unknown = catalogs.get(namespace);
  for (const part of rest) entry = (entry as Record<string, unknown> | undefined)?.[part];
  if (typeof entry !== 'string') throw new Error(`no catalog entry ${key}`);
  return entry.replace(/__(\w+)__/g, (whole, name: string) => (name in values ? String(values[name]) : whole));
}

const PACKAGE_MODULES = new Set(nodeModules.slice(0, 5));
type NodeModule = (red: { _: unknown }) => unknown;
const modulesWithCatalog = (nodeModules as NodeModule[]).map((register) =>
  PACKAGE_MODULES.has(register)
    ? (red: { _: unknown }) => {
        red._ = translate;
        return register(red);
      }
    : register,
);

let userDir: string | null = null;

async function load(flow: FlowNode[], credentials: Record<string, unknown> = {}, settings: Record<string, unknown> = {}): Promise<void> {
  userDir = await fs.mkdtemp(path.join(os.tmpdir(), 'vp-status-test-'));
  helper.settings({ userDir, ...settings });
  await helper.load(modulesWithCatalog, flow, credentials);
}

async function unload(): Promise<void> {
  await helper.unload();
  await closeAllTriggerers();
  if (userDir) await fs.rm(userDir, { recursive: true, force: true });
  userDir = null;
  helper.settings({ vectorPipeline: undefined });
}

type Status = { fill?: string; shape?: string; text?: string };

/** Every status a node has shown so far (the test helper spies on Node.prototype.status). */
function statusesOf(nodeId: string): Status[] {
  const spy = helper.getNode(nodeId).status as { getCalls(): Array<{ thisValue: { id: string }; args: [Status] }> };
  return spy
    .getCalls()
    .filter((call) => call.thisValue.id === nodeId)
    .map((call) => call.args[0]);
}

function lastStatus(nodeId: string): Status {
  const all = statusesOf(nodeId);
  return all[all.length - 1] ?? {};
}

/** Send `msg` to `nodeId`; the error a Catch node gets, and the status the node shows then. */
async function failure(nodeId: string, msg: Msg, statusOf = nodeId): Promise<{ err: Msg; status: Status }> {
  const errors = nextMessage('errors', () => true, 15_000);
  helper.getNode(nodeId).receive(msg);
  const err = await errors;
  return { err, status: lastStatus(statusOf) };
}

/** A short red status, and the full sentence in msg.error.message. */
function shouldFailWith(result: { err: Msg; status: Status }, text: string, sentence: RegExp): void {
  should(result.status).match({ fill: 'red', text });
  should(result.status.text!.length).be.belowOrEqual(MAX_STATUS);
  should(result.err.error.message).match(sentence);
}

function shouldBeShort(status: Status): void {
  should(status.text).be.a.String();
  should(status.text!.length).be.belowOrEqual(MAX_STATUS);
}

function docs(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `document number ${i} about vectors`);
}

/** A collection name as long as the rule allows: statuses must not carry it. */
const LONG = 'a-collection-with-a-name-as-long-as-the-rule-allows-0123456789';

function vectors(n: number, dims: number): Array<{ id: string; vector: number[] }> {
  return Array.from({ length: n }, (_, i) => ({ id: `v${i}`, vector: Array.from({ length: dims }, (_, k) => (k === i % dims ? 1 : 0.1)) }));
}

/** A local HTTP server answering every request with `status` (an embedding service refusing the key). */
function startRefusingServer(status: number): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'Incorrect API key provided' } }));
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({ url: `http://127.0.0.1:${port}/v1`, close: () => new Promise((r) => server.close(() => r())) });
    });
  });
}

/** A port nothing listens on: connections are refused at once. */
async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

// ---------------------------------------------------------------------------

describe('node statuses read at a glance (real runtime, real catalog)', function () {
  this.timeout(30_000);
  afterEach(unload);

  describe('vector-ingest', function () {
    function flow(ingest: Record<string, unknown> = {}, store: Record<string, unknown> = {}): FlowNode[] {
      return [
        storeConfig(store),
        { id: 'ingest', type: 'vector-ingest', store: 'store', collection: 'docs', wires: [['out']], ...ingest },
        { id: 'out', type: 'helper' },
        ...catchAll(),
      ];
    }

    it('writing and written: counts, never the collection name', async function () {
      await load(flow({ collection: LONG }));
      const out = nextMessage('out');
      helper.getNode('ingest').receive({ payload: docs(3) });
      await out;
      const shown = statusesOf('ingest');
      should(shown.map((s) => s.text)).eql(['writing 3 docs…', '3 written · 3 total']);
      shown.forEach(shouldBeShort);
    });

    it('a bad config names the dialog label, in the status and in the error', async function () {
      await load(flow({ batchSize: 0 }));
      should(lastStatus('ingest')).match({ fill: 'red', text: 'bad config: Batch size' });
      const result = await failure('ingest', { payload: docs(1) });
      shouldFailWith(result, 'bad config: Batch size', /^Error: "Batch size" must be an integer between 1 and 10000 \(got 0\)$/);
      should(result.err.error.message).not.match(/batchSize/);
    });

    it('several bad fields: the first one in the status, all of them in the error', async function () {
      await load(flow({ batchSize: 'lots', createCollection: 'maybe' }));
      const result = await failure('ingest', { payload: docs(1) });
      shouldFailWith(result, 'bad config: Batch size', /"Batch size" must be .*; "Create the collection" must be true or false/);
    });

    it('no store chosen', async function () {
      await load(flow({ store: '' }));
      shouldFailWith(await failure('ingest', { payload: docs(1) }), 'no vector store', /No vector store is configured/);
    });

    it('a store whose own config is bad names its field', async function () {
      await load(flow({}, { dimensions: 'lots' }));
      shouldFailWith(
        await failure('ingest', { payload: docs(1) }),
        'bad store config: Dimensions',
        /Invalid vector-store configuration "test store": "Dimensions" must be an integer between 1 and 8192/,
      );
    });

    it('no collection, and a bad collection name', async function () {
      await load(flow({ collection: '' }));
      shouldFailWith(await failure('ingest', { payload: docs(1) }), 'no collection set', /No collection given/);
      shouldFailWith(await failure('ingest', { payload: docs(1), collection: '-bad name' }), 'bad collection name', /collection name "-bad name" is not valid/);
      shouldFailWith(await failure('ingest', { payload: docs(1), collection: 42 }), 'bad msg.collection', /msg\.collection must be a string/);
    });

    it('bad documents name the field, cut to what fits', async function () {
      await load(flow());
      shouldFailWith(await failure('ingest', { payload: 42 }), 'bad msg.payload', /msg\.payload/);
      shouldFailWith(await failure('ingest', { payload: [{ vector: [1, Number.NaN, 3] }] }), 'bad msg.payload[0].vector[1]', /msg\.payload\[0\]\.vector\[1\]/);
      shouldFailWith(await failure('ingest', { payload: ['x'], simulate: 'no' }), 'bad msg.simulate', /msg\.simulate must be an object/);
    });

    it('a missing collection (not created), and vectors of the wrong size', async function () {
      await load(flow({ createCollection: false }));
      shouldFailWith(await failure('ingest', { payload: docs(1) }), 'missing collection', /does not exist/);
      await unload();
      await load(flow());
      const out = nextMessage('out');
      helper.getNode('ingest').receive({ payload: docs(1) });
      await out;
      shouldFailWith(await failure('ingest', { payload: vectors(1, 8) }), 'wrong vector size', /64|8/);
    });

    it('a store that refuses connections, and an embedding service that refuses the key', async function () {
      const port = await closedPort();
      await load(flow({}, { backend: 'chroma', url: `http://127.0.0.1:${port}` }));
      shouldFailWith(await failure('ingest', { payload: docs(1) }), 'store unavailable', /Chroma/);
      await unload();
      const service = await startRefusingServer(401);
      try {
        await load(flow({}, { embedder: 'openai', embedUrl: service.url, embedModel: 'm', dimensions: 4 }), { store: { embedApiKey: 'sk-wrong' } });
        shouldFailWith(await failure('ingest', { payload: docs(1) }), 'auth failed', /401|key/i);
      } finally {
        await service.close();
      }
    });

    it('a config saved by a newer version of the package', async function () {
      await load(flow({ configVersion: 99 }));
      shouldFailWith(await failure('ingest', { payload: docs(1) }), 'bad config: newer version', /saved by a newer version .*\(config version 99; this one reads up to 1\)/);
    });

    it('a failed ingest keeps its documents in msg.payload (the error is in msg.error)', async function () {
      await load(flow({ createCollection: false }));
      const payload = docs(2);
      const { err } = await failure('ingest', { payload });
      should(err.payload).eql(payload);
      should(err.error.message).match(/does not exist/);
    });
  });

  describe('deferrable-sensor', function () {
    function flow(sensor: Record<string, unknown> = {}, store: Record<string, unknown> = {}): FlowNode[] {
      return [
        storeConfig(store),
        { id: 'ingest', type: 'vector-ingest', store: 'store', collection: 'docs', wires: [['sensor']] },
        {
          id: 'sensor',
          type: 'deferrable-sensor',
          store: 'store',
          collection: 'docs',
          expectedCount: 0,
          pollInterval: 0.1,
          maxPollInterval: 0.2,
          timeout: 20,
          deferrable: true,
          wires: [['ready'], ['progress']],
          ...sensor,
        },
        { id: 'ready', type: 'helper' },
        { id: 'progress', type: 'helper' },
        ...catchAll(),
      ];
    }

    it('checking, waiting with progress, ready: short, without the collection name', async function () {
      await load(flow({ collection: LONG }, { indexingRate: 20, indexingDelay: 0 }));
      const ready = nextMessage('ready', () => true, 15_000);
      helper.getNode('ingest').receive({ payload: docs(30), collection: LONG });
      await ready;
      const texts = statusesOf('sensor').map((s) => s.text ?? '');
      should(texts[0]).equal('checking…');
      should(texts.some((t) => /^1 waiting · \d+%/.test(t))).be.true();
      should(texts[texts.length - 1]).equal('ready · 30 docs');
      statusesOf('sensor').forEach(shouldBeShort);
    });

    it('bad configs name the dialog labels', async function () {
      await load(flow({ timeout: -1 }));
      should(lastStatus('sensor')).match({ fill: 'red', text: 'bad config: Timeout' });
      shouldFailWith(await failure('sensor', { payload: 'x' }), 'bad config: Timeout', /"Timeout" must be a number greater than 0/);
      await unload();
      await load(flow({ pollInterval: 10, maxPollInterval: 1 }));
      shouldFailWith(await failure('sensor', { payload: 'x' }), 'bad config: Back off to', /"Back off to" must be at least "Poll every" \(10 s\)/);
    });

    it('a missing collection', async function () {
      await load(flow());
      shouldFailWith(await failure('sensor', { collection: 'no-such-collection' }), 'missing collection', /does not exist/);
    });

    it('a bad msg.expectedCount and a bad msg.reset target', async function () {
      await load(flow());
      shouldFailWith(await failure('sensor', { collection: 'docs', expectedCount: 'lots' }), 'bad msg.expectedCount', /msg\.expectedCount must be a whole number/);
      shouldFailWith(await failure('sensor', { reset: true, collection: 42 }), 'bad msg.collection', /nothing was cancelled/);
    });

    it('timeout 1s: how long it waited, the rest in the error', async function () {
      await load(flow({ timeout: 1 }, { indexingRate: 2, indexingDelay: 0 }));
      shouldFailWith(await failure('ingest', { payload: docs(40) }, 'sensor'), 'timeout 1s', /Timed out after 1 s waiting for collection "docs" to be indexed/);
    });

    it('failed: the store\'s reason, without its asides', async function () {
      await load(flow({}, { indexingRate: 20, indexingDelay: 0.2 }));
      shouldFailWith(await failure('ingest', { payload: docs(10), simulate: { fail: 'disk full (simulated)' } }, 'sensor'), 'failed: disk full', /failed: disk full \(simulated\)/);
    });

    it('store not answering at the deadline, and giving up after N errors', async function () {
      const port = await closedPort();
      const store = { backend: 'chroma', url: `http://127.0.0.1:${port}` };
      await load(flow({ timeout: 1 }, store));
      const retrying = failure('sensor', { collection: 'docs' });
      await delay(700);
      should(lastStatus('sensor')).match({ fill: 'yellow', text: '1 waiting · retrying' });
      shouldFailWith(await retrying, 'store not answering', /did not answer/);
      await unload();
      await load(flow({ maxErrors: 2 }, store));
      shouldFailWith(await failure('sensor', { collection: 'docs' }), 'gave up after 2 errors', /Gave up on collection "docs" after 2 consecutive errors/);
    });

    it('no vector store (none chosen, or its config node deleted)', async function () {
      await load(flow({ store: '' }));
      await delay(100); // the node attaches to the runtime's triggerer first
      should(lastStatus('sensor')).match({ fill: 'red', text: 'no vector store' });
      shouldFailWith(await failure('sensor', { collection: 'docs' }), 'no vector store', /No vector store is configured/);
    });

    it('limit: the pending-waits cap', async function () {
      process.env.VECTOR_PIPELINE_MAX_PENDING_WAITS = '1';
      try {
        await load(flow({}, { indexingRate: 2, indexingDelay: 0 }));
      } finally {
        delete process.env.VECTOR_PIPELINE_MAX_PENDING_WAITS;
      }
      const progress = nextMessage('progress');
      helper.getNode('ingest').receive({ payload: docs(20) });
      await progress;
      shouldFailWith(await failure('sensor', { collection: 'docs', expectedCount: 20 }), 'limit: 1 wait', /already has 1 pending waits/);
      helper.getNode('sensor').receive({ reset: true });
      await delay(100);
      should(lastStatus('sensor')).match({ fill: 'green', text: 'reset · 1 cancelled' });
    });
  });

  describe('index-health', function () {
    function flow(health: Record<string, unknown> = {}, store: Record<string, unknown> = {}): FlowNode[] {
      return [
        storeConfig(store),
        { id: 'ingest', type: 'vector-ingest', store: 'store', collection: 'docs', wires: [['out']] },
        { id: 'health', type: 'index-health', store: 'store', collection: 'docs', expectedCount: 0, countMode: 'atLeast', dimensions: 0, wires: [['out']], ...health },
        { id: 'out', type: 'helper' },
        ...catchAll(),
      ];
    }

    async function ingest(n: number): Promise<void> {
      const out = nextMessage('out');
      helper.getNode('ingest').receive({ payload: docs(n) });
      await out;
    }

    it('healthy: counts and latency, never the collection name', async function () {
      await load(flow({ collection: LONG }));
      const out = nextMessage('out');
      helper.getNode('ingest').receive({ payload: docs(3), collection: LONG });
      await out;
      await delay(50);
      const healthy = nextMessage('out');
      helper.getNode('health').receive({});
      await healthy;
      const shown = statusesOf('health');
      should(shown[0].text).equal('checking…');
      should(shown[shown.length - 1].text).match(/^healthy · 3 docs · [\d.]+ ms$/);
      shown.forEach(shouldBeShort);
    });

    it('each failed check in a few words', async function () {
      await load(flow({ expectedCount: 10, dimensions: 32 }));
      shouldFailWith(await failure('health', {}), 'missing collection', /does not exist/);
      await ingest(3);
      await delay(50);
      shouldFailWith(await failure('health', {}), '3 docs, want ≥10', /3 documents, expected at least 10; dimensions: 64 dimensions, expected 32/);
      await unload();
      await load(flow({ dimensions: 32 }));
      await ingest(3);
      await delay(50);
      shouldFailWith(await failure('health', {}), '64 dims, want 32', /64 dimensions, expected 32/);
      await unload();
      await load(flow({}, { indexingRate: 0.5, indexingDelay: 5 }));
      await ingest(3);
      shouldFailWith(await failure('health', {}), 'not indexed: 0 of 3', /0 of 3 documents indexed/);
    });

    it('a bad config names the dialog label', async function () {
      await load(flow({ countMode: 'most' }));
      shouldFailWith(await failure('health', {}), 'bad config: Count', /"Count" must be one of "atLeast", "exact" \(got "most"\)/);
    });
  });

  describe('sample-query', function () {
    function flow(query: Record<string, unknown> = {}): FlowNode[] {
      return [
        storeConfig(),
        { id: 'ingest', type: 'vector-ingest', store: 'store', collection: 'docs', wires: [['out']] },
        { id: 'query', type: 'sample-query', store: 'store', collection: 'docs', query: '', topK: 3, failOnEmpty: true, wires: [['out']], ...query },
        { id: 'out', type: 'helper' },
        ...catchAll(),
      ];
    }

    it('results and no results, never the collection name', async function () {
      await load(flow({ collection: LONG, failOnEmpty: false }));
      const out = nextMessage('out');
      helper.getNode('ingest').receive({ payload: docs(5), collection: LONG });
      await out;
      await delay(50);
      const answered = nextMessage('out');
      helper.getNode('query').receive({ payload: 'vectors' });
      await answered;
      should(statusesOf('query').map((s) => s.text)).match([/^querying…$/, /^3 results · best [\d.]+$/]);
      const empty = nextMessage('out');
      helper.getNode('query').receive({ payload: { text: 'vectors', filter: { topic: 'none' } } });
      await empty;
      should(lastStatus('query')).match({ fill: 'yellow', text: 'no results' });
      statusesOf('query').forEach(shouldBeShort);
    });

    it('failures: no results, missing collection, bad input, bad config', async function () {
      await load(flow());
      shouldFailWith(await failure('query', { payload: 'anything' }), 'missing collection', /does not exist|not found/i);
      const out = nextMessage('out');
      helper.getNode('ingest').receive({ payload: docs(5) });
      await out;
      await delay(50);
      shouldFailWith(await failure('query', { payload: { text: 'vectors', filter: { topic: 'none' } } }), 'no results', /No results for the query .* Turn off "Fail when a query finds nothing"/);
      shouldFailWith(await failure('query', { payload: 42 }), 'bad msg.payload', /msg\.payload/);
      await unload();
      await load(flow({ topK: 0 }));
      shouldFailWith(await failure('query', { payload: 'x' }), 'bad config: Results', /"Results" must be an integer between 1 and 1000 \(got 0\)/);
    });
  });
});

describe('failureStatus (the one function deciding a failure\'s short text)', function () {
  it('names every error code of the engine in a few words', function () {
    const cases: Array<[string, string, string]> = [
      ['NOT_INSTALLED', 'LanceDB needs the optional package @lancedb/lancedb: run npm install.', 'package not installed'],
      ['TIMEOUT', 'The pgvector store at x did not answer within 0.5 s while querying.', 'store timed out'],
      ['UNAVAILABLE', 'Chroma could not be reached.', 'store unavailable'],
      ['AUTH', 'The server refused the API key.', 'auth failed'],
      ['DIMENSION_MISMATCH', 'Vectors have 8 dimensions, the collection 64.', 'wrong vector size'],
      ['NOT_FOUND', 'Collection "x" does not exist.', 'missing collection'],
      ['LIMIT', 'This sensor already has 1000 pending waits, its limit.', 'limit: 1000 waits'],
      ['INTERNAL', 'Postgres failed while writing: out of shared memory (SQLSTATE 53200).', 'error: Postgres failed while…'],
    ];
    for (const [code, message, short] of cases) {
      const text = failureStatus(new VectorStoreError(code as never, message));
      should(text).equal(short);
      should(text.length).be.belowOrEqual(MAX_STATUS);
    }
  });

  it('takes a sensor\'s failure payload: timeout with its duration, index failures with the store\'s reason', function () {
    const base = { collection: 'c', elapsedMs: 125_000, polls: 3, lastProgress: null };
    should(failureStatus({ ...base, status: 'timeout', code: 'TIMEOUT', message: 'Timed out after 2 min 5 s.' })).equal('timeout 2m 5s');
    should(failureStatus({ ...base, status: 'timeout', code: 'STORE_MISSING', message: '...' })).equal('no vector store');
    should(failureStatus({ ...base, status: 'failed', code: 'INDEX_FAILED', message: 'Indexing of collection "c" failed: the HNSW build ran out of maintenance_work_mem while loading tuples (code 53200).' })).equal(
      'failed: the HNSW build ran…',
    );
  });

  it('clips at a word boundary, and drops a detail that would not show', function () {
    should(clip('one two three four five six seven eight', 20)).equal('one two three four…');
    should(clip('short')).equal('short');
    should(withDetail('bad store config', 'Keep collections on disk')).equal('bad store config');
    should(withDetail('failed', 'disk full')).equal('failed: disk full');
  });
});
