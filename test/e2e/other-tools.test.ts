// A real Node-RED process watching a LanceDB table another tool wrote (the real
// @lancedb/lancedb client, in this test process): the sensor set to "another tool"
// defers while that tool's rows are unindexed, survives kill -9 and a restart (the
// wait keeps its source on disk), and ends once, after the tool optimized; then the
// health check reads the same table by msg.collection.
import should from 'should';
import type * as LanceDb from '@lancedb/lancedb';
import { cleanupAll, Collector, makeTempDir, sleep, startNodeRed, type CollectedMessage, type FlowNode, type NodeRed } from './harness';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const lancedb = require('@lancedb/lancedb') as typeof LanceDb;

const TAB = 'other-tools-tab';
const STORE = 'other-tools-store';
const SENSOR = 'other-tools-sensor';
const HEALTH = 'other-tools-health';
const INJECT = 'other-tools-inject';
const CATCH = 'other-tools-catch';
const TABLE = 'Their.Docs-v2';
const DIM = 8;

const row = (i: number) => ({ id: `a${i}`, text: `text ${i}`, vector: Array.from({ length: DIM }, (_, d) => Math.sin(i * 5 + d + 1)) });

function flows(dir: string): FlowNode[] {
  return [
    { id: TAB, type: 'tab', label: 'Other tools', disabled: false, info: '' },
    { id: STORE, type: 'vector-store', name: 'their lancedb', backend: 'lancedb', embedder: 'hash', dimensions: String(DIM), path: dir },
    { id: INJECT, type: 'inject', z: TAB, name: '', props: [{ p: 'payload' }], repeat: '', once: false, topic: '', payload: '', payloadType: 'date', x: 120, y: 80, wires: [[SENSOR]] },
    {
      id: SENSOR,
      type: 'deferrable-sensor',
      z: TAB,
      store: STORE,
      origin: 'other',
      collection: TABLE,
      expectedCount: '0',
      pollInterval: '0.3',
      maxPollInterval: '0.5',
      timeout: '120',
      deferrable: true,
      x: 320,
      y: 80,
      wires: [[HEALTH], []],
    },
    // The health check gets the table from msg.collection (the sensor passes it on).
    { id: HEALTH, type: 'index-health', z: TAB, store: STORE, collection: '', expectedCount: '0', countMode: 'atLeast', dimensions: '0', x: 520, y: 80, wires: [[]] },
    { id: CATCH, type: 'catch', z: TAB, name: '', scope: null, uncaught: false, x: 120, y: 200, wires: [[]] },
  ];
}

describe('e2e: watching a LanceDB table another tool made (real node-red process, real LanceDB)', function () {
  this.timeout(90_000);
  let collector: Collector;
  let nodeRed: NodeRed;
  let connection: LanceDb.Connection;
  after(async () => {
    connection?.close();
    await cleanupAll();
  });

  it('defers on that tool\'s unindexed rows, survives kill -9, ends once after the tool optimized, and the health check reads the same table', async () => {
    const dir = await makeTempDir('other-tools-lancedb');
    connection = await lancedb.connect(dir);
    const table = await connection.createTable(TABLE, Array.from({ length: 300 }, (_, i) => row(i)));
    await table.createIndex('vector', { config: lancedb.Index.ivfFlat({ numPartitions: 2 }) });
    await table.add(Array.from({ length: 25 }, (_, k) => row(300 + k))); // unindexed until optimize()

    collector = await Collector.start();
    const tapped = collector.tap(flows(dir), [
      { label: 'ready', from: SENSOR, output: 0 },
      { label: 'progress', from: SENSOR, output: 1 },
      { label: 'health', from: HEALTH, output: 0 },
      { label: 'caught', from: CATCH },
    ]);
    nodeRed = await startNodeRed({ flows: tapped });
    await nodeRed.inject(INJECT);
    const first = await collector.waitFor((all) => all.find((m) => m.label === 'progress'), 20_000, 'a progress message');
    should(first.msg.payload).containEql({ status: 'indexing', collection: TABLE, phase: 'waiting for optimize' });
    should(first.msg.payload.detail).match(/25 rows not yet in the vector index/);
    const waitId = first.msg.waitId as string;

    await nodeRed.kill9();
    await table.optimize(); // the other tool indexes its rows while Node-RED is down
    nodeRed = await startNodeRed({ userDir: nodeRed.userDir });

    const ofWait = (label: string) => collector.messages.filter((m: CollectedMessage) => m.label === label && m.msg.waitId === waitId);
    const final = await collector.waitFor(() => ofWait('ready')[0], 30_000, `the final message of wait ${waitId}`);
    should(final.msg.payload).containEql({ status: 'success', collection: TABLE, documentCount: 325, indexedCount: 325 });
    should(final.msg.collection).eql({ name: TABLE }); // passed on, so the health check reads the same table
    const health = await collector.waitFor(() => ofWait('health')[0], 20_000, 'the health report');
    should(health.msg.payload).containEql({ collection: TABLE, healthy: true, documentCount: 325, indexType: 'ivf_flat' });
    await sleep(1500); // room for a duplicate to show up
    should(ofWait('ready')).have.length(1);
    should(ofWait('caught')).have.length(0);
    should(nodeRed.log.errors()).eql([]);
  });
});
