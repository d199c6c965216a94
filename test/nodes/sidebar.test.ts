// The Vector waits plugin's admin endpoints on a real Node-RED runtime (node-red-node-test-helper):
// the pending waits of a real flow listed by store and collection, one wait and a whole collection
// cancelled, the feed on the comms channel. Permissions are tested on a real node-red process with
// adminAuth (test/e2e/sidebar-auth.test.ts): the test helper's RED.auth lets every request through.
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import should from 'should';
import { catchAll, delay, helper, nextMessage, nodeModules, silence, storeConfig, type FlowNode, type Msg } from './flow-helper';
import { closeAllTriggerers, waitStoreFile } from '../../nodes/shared/runtime';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const plugin = require('../../nodes/plugins/vector-waits');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { events } = require('@node-red/util') as { events: NodeJS.EventEmitter };

const DOCS = Array.from({ length: 40 }, (_, i) => `sidebar document ${i} about harbours`);

/** A slow memory store (4 documents/s: a wait on 40 documents lasts ~10 s), two sensors. */
function flow(sensor: Record<string, unknown> = {}): FlowNode[] {
  const sensorDefaults = { type: 'deferrable-sensor', z: 'tab', store: 'store', expectedCount: 0, pollInterval: 0.1, maxPollInterval: 0.2, timeout: 60, deferrable: true };
  return [
    { id: 'tab', type: 'tab', label: 'Sidebar' },
    { ...storeConfig({ indexingRate: 4, indexingDelay: 0 }), name: 'harbour store' },
    { id: 'ingest', type: 'vector-ingest', z: 'tab', store: 'store', collection: 'docs', wires: [['sensor']] },
    { id: 'sensor', ...sensorDefaults, name: 'wait for docs', collection: 'docs', wires: [['ready'], ['progress']], ...sensor },
    { id: 'ingest-faq', type: 'vector-ingest', z: 'tab', store: 'store', collection: 'faq', wires: [['sensor-faq']] },
    { id: 'sensor-faq', ...sensorDefaults, collection: 'faq', wires: [['ready'], ['progress']] },
    { id: 'on-complete', type: 'complete', z: 'tab', scope: ['sensor'], uncaught: false, wires: [['completed']] },
    { id: 'on-status', type: 'status', z: 'tab', scope: ['sensor'], wires: [['statuses']] },
    { id: 'ready', type: 'helper', z: 'tab' },
    { id: 'progress', type: 'helper', z: 'tab' },
    { id: 'completed', type: 'helper', z: 'tab' },
    { id: 'statuses', type: 'helper', z: 'tab' },
    ...catchAll().map((n) => ({ ...n, z: 'tab' })),
  ];
}

describe('Vector waits plugin: admin endpoints on a real runtime (test helper; its RED.auth admits every request)', function () {
  let userDir: string;
  const modules = [...nodeModules, plugin];

  async function load(flows: FlowNode[]): Promise<void> {
    helper.settings({ userDir });
    await helper.load(modules, flows);
  }

  beforeEach(async () => {
    userDir = await fs.mkdtemp(path.join(os.tmpdir(), 'vp-sidebar-test-'));
  });

  afterEach(async () => {
    await helper.unload();
    await closeAllTriggerers();
    await fs.rm(userDir, { recursive: true, force: true });
  });

  /** Ingest into a collection and resolve once its wait is deferred (the first progress message). */
  async function startWait(ingestId = 'ingest', expect = (m: Msg) => m.payload.collection === 'docs'): Promise<string> {
    const progress = nextMessage('progress', expect);
    helper.getNode(ingestId).receive({ payload: DOCS });
    return (await progress).waitId;
  }

  it('lists the pending waits grouped by store and collection, and pages the waits of a group', async () => {
    await load(flow());
    const feed: Array<Record<string, any>> = [];
    const onComms = (m: { topic: string; data: Record<string, any> }) => m.topic === 'vector-pipeline/waits' && feed.push(m.data);
    events.on('comms', onComms);
    try {
      const waitId = await startWait();
      await startWait('ingest-faq', (m) => m.payload.collection === 'faq');

      const groups = await helper.request().get('/vector-pipeline/waits').expect(200);
      should(groups.body.total).equal(2);
      should(groups.body.groups.map((g: any) => [g.store.name, g.collection, g.count])).eql([
        ['harbour store', 'docs', 1],
        ['harbour store', 'faq', 1],
      ]);
      should(groups.body.groups[0]).match({ store: { id: 'store' }, running: 1, dormant: 0 });

      const page = await helper.request().get('/vector-pipeline/waits').query({ store: 'store', collection: 'docs', offset: 0, limit: 50 }).expect(200);
      should(page.body).match({ total: 1, offset: 0, group: { collection: 'docs', count: 1 } });
      should(page.body.waits).have.length(1);
      should(page.body.waits[0]).match({ waitId, nodeId: 'sensor', nodeName: 'wait for docs', flowId: 'tab', collection: 'docs', state: 'running', durable: true, expectedCount: 40 });
      should(page.body.waits[0].polls).be.aboveOrEqual(1);
      should(page.body.waits[0]).have.properties(['progress', 'indexedCount', 'etaSeconds', 'elapsedMs', 'phase', 'detail', 'lastWarning', 'startedAt']);

      // The feed on the comms channel: group summaries, not one entry per wait.
      await delay(1200);
      should(feed.length).be.above(0);
      const last = feed[feed.length - 1];
      should(last).have.properties(['v', 'total', 'groups', 'removed']);
      should(feed.some((m) => m.groups.some((g: any) => g.collection === 'docs'))).be.true();
    } finally {
      events.removeListener('comms', onComms);
    }
  });

  it('lists and cancels the waits of a sensor with "deferrable" off (run in its node, not on disk) like the others; nothing of them is left after', async () => {
    await load(flow({ deferrable: false }));
    const waitId = await startWait();
    const page = await helper.request().get('/vector-pipeline/waits').query({ store: 'store', collection: 'docs' }).expect(200);
    should(page.body.waits).have.length(1);
    should(page.body.waits[0]).match({ waitId, nodeId: 'sensor', nodeName: 'wait for docs', state: 'running', durable: false, expectedCount: 40 });
    // Its progress reaches the list as the node polls.
    await delay(600);
    const later = await helper.request().get('/vector-pipeline/waits').query({ store: 'store', collection: 'docs' }).expect(200);
    should(later.body.waits[0].polls).be.above(1);

    const completed = nextMessage('completed');
    const status = nextMessage('statuses', (m) => /cancelled from sidebar/.test(m.status?.text ?? ''));
    const noFinal = silence('ready', 1500);
    const answer = await helper.request().post('/vector-pipeline/waits/cancel').send({ waitId }).expect(200);
    should(answer.body).eql({ cancelled: 1, waitIds: [waitId] });
    should((await completed).waitId).equal(waitId);
    await status;
    await noFinal; // the in-node poller stopped: no final message
    const after = await helper.request().get('/vector-pipeline/waits').expect(200);
    should(after.body.total).equal(0);
  });

  it('cancels one wait as msg.reset does: no final message, the message completes, the status and the log say so, the wait leaves the disk', async () => {
    await load(flow());
    const waitId = await startWait();
    const completed = nextMessage('completed');
    const status = nextMessage('statuses', (m) => /cancelled from sidebar/.test(m.status?.text ?? ''));
    const noFinal = silence('ready', 1500);

    const answer = await helper.request().post('/vector-pipeline/waits/cancel').send({ waitId }).expect(200);
    should(answer.body).eql({ cancelled: 1, waitIds: [waitId] });
    should((await completed).waitId).equal(waitId);
    should((await status).status).match({ fill: 'green', text: 'cancelled from sidebar' });
    await noFinal;

    const onDisk = await fs.readFile(waitStoreFile(userDir), 'utf8');
    const lines = onDisk.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    should(lines[lines.length - 1]).match({ op: 'del', id: waitId });
    const logged = helper.log().args.map((a: unknown[]) => a[0]).filter((e: any) => /cancelled 1 pending wait/.test(String(e?.msg)));
    should(logged).have.length(1);
    should(logged[0].msg).containEql(`wait ${waitId}`);
    should(logged[0].msg).containEql('wait for docs');

    const groups = await helper.request().get('/vector-pipeline/waits').expect(200);
    should(groups.body).match({ total: 0, groups: [] });
  });

  it('cancels all the waits of one collection and leaves the others', async () => {
    await load(flow());
    await startWait();
    // Two more waits on docs, from the same sensor.
    const sensor = helper.getNode('sensor');
    for (let i = 0; i < 2; i++) {
      // This wait's own progress (its message's field n), not the first wait's.
      const progress = nextMessage('progress', (m) => m.payload.collection === 'docs' && m.n === i);
      sensor.receive({ collection: 'docs', expectedCount: 40, n: i });
      await progress;
    }
    await startWait('ingest-faq', (m) => m.payload.collection === 'faq');

    const answer = await helper.request().post('/vector-pipeline/waits/cancel').send({ store: 'store', collection: 'docs' }).expect(200);
    should(answer.body.cancelled).equal(3);
    const groups = await helper.request().get('/vector-pipeline/waits').expect(200);
    should(groups.body.groups.map((g: any) => [g.collection, g.count])).eql([['faq', 1]]);
    should(helper.getNode('sensor').status.lastCall.args[0]).match({ text: 'cancelled from sidebar' });
  });

  it('says how many waits are left in the status when the sensor still has some', async () => {
    await load(flow());
    const first = await startWait();
    const progress = nextMessage('progress', (m) => m.payload.collection === 'docs' && m.waitId !== first);
    helper.getNode('sensor').receive({ collection: 'docs', expectedCount: 40 });
    await progress;
    const status = nextMessage('statuses', (m) => /cancelled/.test(m.status?.text ?? ''));
    await helper.request().post('/vector-pipeline/waits/cancel').send({ waitId: first }).expect(200);
    should((await status).status).match({ fill: 'blue', shape: 'dot', text: '1 waiting · cancelled' });
  });

  it('answers 404 with a sentence when the wait is not pending, and 400 when the request says nothing to cancel', async () => {
    await load(flow());
    const missing = await helper.request().post('/vector-pipeline/waits/cancel').send({ waitId: 'no-such-wait' }).expect(404);
    should(missing.body.message).match(/Nothing was cancelled: wait no-such-wait is not pending/);
    const bad = await helper.request().post('/vector-pipeline/waits/cancel').send({ collection: 'docs' }).expect(400);
    should(bad.body.message).match(/\{"waitId": "\.\.\."\} for one wait/);
  });

  it('shows the wait of a disabled sensor as dormant, and cancels it too', async () => {
    await load(flow());
    const waitId = await startWait();
    // A redeploy with the sensor disabled: its wait stays on disk, not polled.
    await helper.unload();
    await load(flow({ d: true }));
    await delay(100);
    const page = await helper.request().get('/vector-pipeline/waits').query({ store: 'store', collection: 'docs' }).expect(200);
    should(page.body.waits).have.length(1);
    should(page.body.waits[0]).match({ waitId, state: 'dormant', durable: true, nodeName: 'wait for docs' });
    await helper.request().post('/vector-pipeline/waits/cancel').send({ waitId }).expect(200);
    const groups = await helper.request().get('/vector-pipeline/waits').expect(200);
    should(groups.body.total).equal(0);
  });
});
