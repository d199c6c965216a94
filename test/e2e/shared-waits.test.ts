// Three real `node-red` processes with the same flows share their sensor waits through one
// PostgreSQL 15 table (vectorPipeline.jobStore in settings, given with -D): 60 waits started
// on one instance, that instance killed with kill -9, and every wait still ends exactly once
// (duplicates only flagged msg.redelivered), on the other two, within its deadline plus the
// lease and a heartbeat. The waits watch a collection that never gets its expected count, so
// each ends by its timeout (8 s): what ends it is the triggerer, not a store shared by the
// instances (each instance has its own memory store).
import should from 'should';
import { cleanupAll, Collector, startNodeRed, type FlowNode, type NodeRed } from './harness';
import { POSTGRES_MISSING, postgresBinaries, startPostgresServer, type PostgresServer } from '../support/postgres-server';

const WAITS = 60;
const TIMEOUT_S = 8;
const LEASE_S = 2;
const TAB = 'shared-tab';

function flows(): FlowNode[] {
  return [
    { id: TAB, type: 'tab', label: 'Shared waits', disabled: false, info: '' },
    { id: 'shared-store', type: 'vector-store', name: 'store', backend: 'memory', embedder: 'hash', dimensions: '16', indexingRate: '1000', indexingDelay: '0', persist: false },
    // On start, each instance writes one document, so the collection exists everywhere.
    { id: 'shared-seed', type: 'inject', z: TAB, props: [{ p: 'payload' }], payload: '["one document"]', payloadType: 'json', repeat: '', once: true, onceDelay: 0.1, topic: '', x: 100, y: 40, wires: [['shared-ingest']] },
    { id: 'shared-ingest', type: 'vector-ingest', z: TAB, store: 'shared-store', collection: 'docs', batchSize: '100', createCollection: true, buildIndex: true, x: 300, y: 40, wires: [[], []] },
    { id: 'shared-start', type: 'inject', z: TAB, props: [{ p: 'payload' }], payload: '', payloadType: 'date', repeat: '', once: false, topic: '', x: 100, y: 120, wires: [['shared-fan']] },
    {
      id: 'shared-fan',
      type: 'function',
      z: TAB,
      func: `for (let i = 0; i < ${WAITS}; i++) node.send({ ticket: 'T' + i, payload: i }); return null;`,
      outputs: 1,
      x: 260,
      y: 120,
      wires: [['shared-sensor']],
    },
    {
      id: 'shared-sensor',
      type: 'deferrable-sensor',
      z: TAB,
      store: 'shared-store',
      collection: 'docs',
      expectedCount: '1000',
      pollInterval: '1',
      maxPollInterval: '1',
      timeout: String(TIMEOUT_S),
      deferrable: true,
      x: 440,
      y: 120,
      wires: [[], []],
    },
    { id: 'shared-catch', type: 'catch', z: TAB, scope: ['shared-sensor'], uncaught: false, x: 100, y: 200, wires: [[]] },
  ];
}

describe('e2e: three node-red instances share waits through PostgreSQL 15', function () {
  this.timeout(120_000);
  let pg: PostgresServer;

  before(async function () {
    if (!postgresBinaries()) {
      console.log(`      skipped: ${POSTGRES_MISSING}`);
      this.skip();
    }
    pg = await startPostgresServer();
  });
  after(async () => {
    await cleanupAll();
    await pg?.stop();
  });

  it('kill -9 of the instance that took the waits: the others end each wait once, within timeout + lease + heartbeat', async () => {
    const collector = await Collector.start();
    const tapped = collector.tap(flows(), [{ label: 'ended', from: 'shared-catch' }]);
    const defines = {
      'vectorPipeline.jobStore.type': 'postgres',
      'vectorPipeline.jobStore.url': pg.url,
      'vectorPipeline.jobStore.leaseSeconds': String(LEASE_S),
      'vectorPipeline.jobStore.heartbeatSeconds': '0.5',
    };
    const instances: NodeRed[] = [];
    for (let i = 0; i < 3; i++) instances.push(await startNodeRed({ flows: tapped, defines }));
    for (const instance of instances) await instance.log.waitForLine(/shared through PostgreSQL/, 15_000);

    const startedAt = Date.now();
    await instances[0].inject('shared-start');
    // The waits are saved before the first poll: give them a moment, then kill their instance.
    await new Promise((r) => setTimeout(r, 1500));
    await instances[0].kill9();

    const ended = await collector.waitFor(
      (all) => {
        const tickets = new Set(all.filter((m) => m.label === 'ended').map((m) => m.msg.ticket));
        return tickets.size >= WAITS ? tickets : null;
      },
      (TIMEOUT_S + LEASE_S + 10) * 1000,
      `all ${WAITS} waits to end`,
    );
    await new Promise((r) => setTimeout(r, 2 * LEASE_S * 1000)); // room for a duplicate
    const finals = collector.byLabel('ended');
    should(ended.size).equal(WAITS);
    const unflagged = finals.filter((m) => m.msg.redelivered !== true);
    should(unflagged.length).equal(WAITS, `each wait ends once (unflagged): ${finals.length} finals`);
    for (const m of unflagged) should(m.msg.payload).containEql({ status: 'timeout' });
    // On time: the deadline, plus the lease running out and a heartbeat to claim it, plus a poll.
    const lastAt = Math.max(...finals.map((m) => m.at));
    should(lastAt - startedAt).be.below((TIMEOUT_S + LEASE_S + 0.5 + 1 + 3) * 1000);
    for (const instance of instances.slice(1)) should(instance.log.errors()).eql([]);
  });
});
