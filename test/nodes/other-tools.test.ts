/**
 * The sensor, the health check and sample queries on a collection another tool
 * made: a LanceDB table written with @lancedb/lancedb directly (real LanceDB in a
 * temporary directory), under a name the package's own rule refuses.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import should from 'should';
import { catchAll, collect, delay, helper, loadFlow, nextMessage, redeploy, storeConfig, unloadFlow, type FlowNode } from './flow-helper';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const lancedb = require('@lancedb/lancedb') as typeof import('@lancedb/lancedb');

const TABLE = 'Other.Tool-Items';
const DIM = 8;

function row(i: number) {
  return { id: `a${i}`, text: `text ${i}`, source: 'another tool', vector: Array.from({ length: DIM }, (_, d) => Math.sin(i * 3 + d + 1)) };
}

/** A LanceDB table made the way another tool would, holding `n` rows; with an IVF index when `indexed`. */
async function otherToolTable(dir: string, n: number, indexed: boolean) {
  const db = await lancedb.connect(dir);
  const table = await db.createTable(TABLE, Array.from({ length: n }, (_, i) => row(i)));
  if (indexed) await table.createIndex('vector', { config: lancedb.Index.ivfFlat({ numPartitions: 2 }) });
  return { db, table };
}

function flow(dir: string, node: Record<string, unknown>): FlowNode[] {
  return [
    storeConfig({ backend: 'lancedb', path: dir }),
    { id: 'ingest', type: 'vector-ingest', store: 'store', collection: 'docs', wires: [['out']] },
    { id: 'node', type: 'deferrable-sensor', wires: [['out'], ['progress']], store: 'store', ...node },
    { id: 'out', type: 'helper' },
    { id: 'progress', type: 'helper' },
    ...catchAll(),
  ];
}

const sensor = { id: 'node', type: 'deferrable-sensor', pollInterval: 0.1, maxPollInterval: 0.2, timeout: 20, deferrable: true, expectedCount: 0 };

describe('nodes on a collection another tool made (real LanceDB table written by its own client)', function () {
  this.timeout(60_000);
  let dir: string;
  const closers: Array<() => void> = [];

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vp-other-tools-'));
  });
  afterEach(async () => {
    await unloadFlow();
    for (const close of closers.splice(0)) close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('sensor set to "another tool": ready at once, the payload naming the table; msg.collection as an object on index-health and sample-query', async () => {
    const { db } = await otherToolTable(dir, 20, false);
    closers.push(() => db.close());
    await loadFlow(flow(dir, { ...sensor, origin: 'other', collection: TABLE }));
    const ready = nextMessage('out');
    helper.getNode('node').receive({ expectedCount: 20 });
    const msg = await ready;
    should(msg.payload).match({ status: 'success', collection: TABLE, documentCount: 20, indexedCount: 20, deferred: false });

    await redeploy(flow(dir, { id: 'node', type: 'index-health', expectedCount: 0, countMode: 'atLeast', dimensions: 0 }));
    const healthy = nextMessage('out');
    helper.getNode('node').receive({ collection: { name: TABLE }, expectedCount: 20 });
    const report = (await healthy).payload;
    should(report).match({ collection: TABLE, healthy: true, documentCount: 20, dimensions: DIM, queryable: true });

    await redeploy(flow(dir, { id: 'node', type: 'sample-query', topK: 2, failOnEmpty: true, query: '' }));
    const hits = nextMessage('out');
    helper.getNode('node').receive({ collection: { name: TABLE }, payload: { vector: row(7).vector } });
    const answer = await hits;
    should(answer.payload[0]).match({ id: 'a7', text: 'text 7' });
    should(answer.collection).eql({ name: TABLE });
  });

  it('a wait on rows another tool left unindexed is deferred, survives a redeploy, and ends ready once, after that tool indexed them', async () => {
    const { db, table } = await otherToolTable(dir, 300, true);
    closers.push(() => db.close());
    await table.add(Array.from({ length: 40 }, (_, k) => row(300 + k))); // beside the index until optimize()
    await loadFlow(flow(dir, { ...sensor, origin: 'other', collection: TABLE }));
    const firstProgress = nextMessage('progress');
    helper.getNode('node').receive({});
    const progress = await firstProgress;
    should(progress.payload).match({ status: 'indexing', collection: TABLE });
    // The wait is durable with its source: a redeploy resumes it about the same table.
    await redeploy(flow(dir, { ...sensor, origin: 'other', collection: TABLE }));
    const resumed = collect('out');
    const afterRedeploy = nextMessage('progress');
    await afterRedeploy;
    await table.optimize();
    const msg = await nextMessage('out', () => true, 30_000);
    should(msg.payload).match({ status: 'success', collection: TABLE, documentCount: 340, indexedCount: 340, deferred: true });
    should(msg.waitId).equal(progress.waitId);
    await delay(500);
    should(resumed.length).equal(1);
  });

  it('bad names and fields: done(err) naming the field and the fix', async () => {
    await loadFlow(flow(dir, { ...sensor, origin: 'other', collection: '' }));
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{}, /No collection given: set the Collection property of the node to the name the other tool uses/],
      [{ collection: { name: TABLE, tabel: 'x' } }, /msg\.collection has a field this package does not know: "tabel"/],
      [{ collection: { name: TABLE, table: 'x' } }, /gives both a name \("Other\.Tool-Items"\) and a table \("x"\)/],
      [{ collection: { name: TABLE, schema: 'public' } }, /"schema"/],
      [{ collection: { name: 'no-such-table' } }, /does not exist/],
    ];
    for (const [msg, expected] of cases) {
      const error = nextMessage('errors');
      helper.getNode('node').receive(msg);
      should((await error).error.message).match(expected);
    }
    // Writing goes only to the package's own collections.
    const error = nextMessage('errors');
    helper.getNode('ingest').receive({ collection: { name: TABLE }, payload: ['a text'] });
    should((await error).error.message).match(/documents are written only to collections this package made/);
  });
});
