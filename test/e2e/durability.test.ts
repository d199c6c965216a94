// A pending wait of the deferrable sensor, on a real Node-RED with default settings,
// survives a full redeploy and a crash (kill -9) and ends with exactly one final message;
// deleting the sensor cancels it for good.
//
// Flow: inject (50 documents, msg.ticket) -> vector-ingest -> deferrable-sensor, on a slow
// memory store (5 documents/s after a 1 s delay: a wait lasts ~11 s), polled every second.
import should from 'should';
import path from 'node:path';
import { promises as fsp } from 'node:fs';
import { cleanupAll, Collector, sleep, startNodeRed, type CollectedMessage, type FlowNode, type NodeRed } from './harness';

const DOCS = 50;
const RATE = 5; // documents indexed per second
const DELAY_S = 1;
const POLL_S = 1;
const WAIT_MS = (DOCS / RATE + DELAY_S) * 1000;

const TAB = 'durability-tab';
const STORE = 'durability-store';
const INGEST = 'durability-ingest';
const SENSOR = 'durability-sensor';
const CATCH = 'durability-catch';

/** One inject per test case, each ingesting into its own collection. */
function injectNode(id: string, collection: string, ticket: string, y: number): FlowNode {
  const docs = Array.from({ length: DOCS }, (_, i) => `Durability document ${i} of ${collection}: ships, harbours and tides number ${i}.`);
  return {
    id,
    type: 'inject',
    z: TAB,
    name: `ingest ${collection}`,
    props: [
      { p: 'payload' },
      { p: 'collection', v: collection, vt: 'str' },
      { p: 'ticket', v: ticket, vt: 'str' },
    ],
    repeat: '',
    crontab: '',
    once: false,
    onceDelay: 0.1,
    topic: '',
    payload: JSON.stringify(docs),
    payloadType: 'json',
    x: 120,
    y,
    wires: [[INGEST]],
  };
}

function baseFlows(): FlowNode[] {
  return [
    { id: TAB, type: 'tab', label: 'Durability', disabled: false, info: '' },
    {
      id: STORE,
      type: 'vector-store',
      name: 'slow memory store',
      backend: 'memory',
      embedder: 'hash',
      dimensions: '64',
      indexingRate: String(RATE),
      indexingDelay: String(DELAY_S),
      persist: true,
    },
    injectNode('inject-a', 'durability-a', 'T-A', 60),
    injectNode('inject-b', 'durability-b', 'T-1', 120),
    injectNode('inject-c', 'durability-c', 'T-C', 180),
    {
      id: INGEST,
      type: 'vector-ingest',
      z: TAB,
      name: '',
      store: STORE,
      collection: 'durability-default',
      batchSize: '100',
      createCollection: true,
      buildIndex: true,
      x: 360,
      y: 120,
      wires: [[SENSOR]],
    },
    {
      id: SENSOR,
      type: 'deferrable-sensor',
      z: TAB,
      name: '',
      store: STORE,
      collection: 'durability-default',
      expectedCount: '0',
      pollInterval: String(POLL_S),
      maxPollInterval: String(POLL_S),
      timeout: '300',
      deferrable: true,
      x: 580,
      y: 120,
      wires: [[], []],
    },
    { id: CATCH, type: 'catch', z: TAB, name: '', scope: null, uncaught: false, x: 120, y: 260, wires: [[]] },
  ];
}

/** The messages of one wait (by waitId) seen on a given tap. */
const ofWait = (messages: CollectedMessage[], label: string, waitId: string) =>
  messages.filter((m) => m.label === label && m.msg.waitId === waitId);

describe('e2e: durable waits of the deferrable sensor', function () {
  this.timeout(90_000);
  let collector: Collector;
  let nodeRed: NodeRed;
  let flows: FlowNode[];

  before(async () => {
    collector = await Collector.start();
    flows = collector.tap(baseFlows(), [
      { label: 'ready', from: SENSOR, output: 0 },
      { label: 'progress', from: SENSOR, output: 1 },
      { label: 'ingested', from: INGEST, output: 0 },
      { label: 'caught', from: CATCH },
    ]);
    nodeRed = await startNodeRed({ flows });
  });
  after(cleanupAll);

  /** Inject, then resolve with the first progress message of the new wait (the wait is durable by then). */
  async function startWait(injectId: string, collection: string): Promise<{ waitId: string; injectedAt: number; firstProgress: CollectedMessage }> {
    const injectedAt = Date.now();
    await nodeRed.inject(injectId);
    const firstProgress = await collector.waitFor(
      (all) => all.find((m) => m.label === 'progress' && m.msg.collection === collection && m.at >= injectedAt),
      15_000,
      `a progress message for ${collection}`,
    );
    should(firstProgress.msg.payload.status).equal('indexing');
    should(firstProgress.msg.waitId).be.a.String();
    return { waitId: firstProgress.msg.waitId, injectedAt, firstProgress };
  }

  it('(a) a full redeploy during a wait: exactly one final success, after the redeploy', async () => {
    const { waitId } = await startWait('inject-a', 'durability-a');
    const redeployedAt = Date.now();
    await nodeRed.deploy(await nodeRed.getFlows(), 'full');

    const final = await collector.waitFor((all) => ofWait(all, 'ready', waitId)[0], WAIT_MS + 15_000, `the final message of wait ${waitId}`);
    await sleep(3 * POLL_S * 1000); // room for a duplicate to show up
    should(ofWait(collector.messages, 'ready', waitId)).have.length(1);
    should(ofWait(collector.messages, 'caught', waitId)).have.length(0);
    should(final.at).be.above(redeployedAt);
    should(final.msg.ticket).equal('T-A');
    should(final.msg.payload).containEql({ status: 'success', collection: 'durability-a', deferred: true, indexedCount: DOCS });
  });

  it('(b) kill -9 during a wait, restart on the same user dir: the wait resumes and ends once, with its original start', async () => {
    const { waitId, firstProgress } = await startWait('inject-b', 'durability-b');
    // Let the wait run a while so a reset start time would show in elapsedMs.
    const lastBeforeKill = await collector.waitFor(
      (all) => ofWait(all, 'progress', waitId).find((m) => m.msg.payload.elapsedMs >= 2500),
      15_000,
      'a progress message 2.5 s into the wait',
    );
    const killedAt = Date.now();
    await nodeRed.kill9();
    // The wait had run at least this long when the process died.
    const elapsedBeforeKill = lastBeforeKill.msg.payload.elapsedMs + (killedAt - lastBeforeKill.at);
    should(ofWait(collector.messages, 'ready', waitId)).have.length(0);

    nodeRed = await startNodeRed({ userDir: nodeRed.userDir });
    const final = await collector.waitFor((all) => ofWait(all, 'ready', waitId)[0], WAIT_MS + 20_000, `the resumed wait ${waitId} to end`);
    await sleep(3 * POLL_S * 1000);

    should(ofWait(collector.messages, 'ready', waitId)).have.length(1);
    should(ofWait(collector.messages, 'caught', waitId)).have.length(0);
    should(final.msg.ticket).equal('T-1');
    should(final.msg.collection).equal('durability-b');
    should(final.msg.payload).containEql({ status: 'success', collection: 'durability-b', indexedCount: DOCS });
    should(final.msg.payload.elapsedMs).be.aboveOrEqual(elapsedBeforeKill);
    // Measured from the original start, not from the restart: the whole wait, give or take a second.
    const wallClockWait = final.at - (firstProgress.at - firstProgress.msg.payload.elapsedMs);
    should(final.msg.payload.elapsedMs).be.aboveOrEqual(wallClockWait - 1000);
    should(nodeRed.log.errors()).eql([]);
  });

  it('(c) deleting the sensor during a wait cancels it: no final message, nothing resumes after a restart', async () => {
    const { waitId, injectedAt } = await startWait('inject-c', 'durability-c');
    const withoutSensor = flows
      .filter((node) => node.id !== SENSOR)
      .map((node) => (node.id === INGEST ? { ...node, wires: [[]] } : node));
    await nodeRed.deploy(withoutSensor, 'full');

    // Wait until the collection is fully indexed plus a few poll intervals.
    const wouldHaveEndedAt = injectedAt + WAIT_MS;
    await sleep(Math.max(0, wouldHaveEndedAt - Date.now()) + 3 * POLL_S * 1000);
    should(ofWait(collector.messages, 'ready', waitId)).have.length(0);
    should(ofWait(collector.messages, 'caught', waitId)).have.length(0);

    // Restart with the sensor back under the same id: the cancelled wait must not come back.
    await nodeRed.stop();
    await fsp.writeFile(path.join(nodeRed.userDir, 'flows.json'), JSON.stringify(flows));
    const progressBefore = ofWait(collector.messages, 'progress', waitId).length;
    nodeRed = await startNodeRed({ userDir: nodeRed.userDir });
    await sleep(4 * POLL_S * 1000);
    should(ofWait(collector.messages, 'ready', waitId)).have.length(0);
    should(ofWait(collector.messages, 'caught', waitId)).have.length(0);
    should(ofWait(collector.messages, 'progress', waitId)).have.length(progressBefore);
    should(nodeRed.log.errors()).eql([]);
  });
});
