// Three real `node-red` processes with the same flows share their sensor waits through one
// PostgreSQL 15 table (vectorPipeline.jobStore in settings, given with -D). (1) 1,000 waits
// started on one instance, that instance killed with kill -9, then the next one holding
// waits: every wait still ends exactly once (duplicates only flagged msg.redelivered), within
// its deadline plus two lease takeovers. (2) The database restarted while waits are pending:
// nothing lost, each ends once. (3) The holding instance cut from the database (a blackholing
// proxy) once its waits are saved, a second instance started later: its leases run out and
// the second ends each wait once. The waits watch a collection that never gets its expected count, so
// each ends by its timeout (8 s): what ends it is the triggerer, not a store shared by the
// instances (each instance has its own memory store).
import should from 'should';
import pgClient from 'pg';
import { cleanupAll, Collector, startNodeRed, type FlowNode, type NodeRed } from './harness';
import { FaultProxy } from '../support/fault-proxy';
import { POSTGRES_MISSING, postgresBinaries, startPostgresServer, type PostgresServer } from '../support/postgres-server';

const WAITS = 1000;
const TIMEOUT_S = 12;
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

describe('e2e: node-red instances share waits through PostgreSQL 15', function () {
  this.timeout(180_000);
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

  const defines = () => ({
    'vectorPipeline.jobStore.type': 'postgres',
    'vectorPipeline.jobStore.url': pg.url,
    'vectorPipeline.jobStore.leaseSeconds': String(LEASE_S),
    'vectorPipeline.jobStore.heartbeatSeconds': '0.5',
  });

  async function startInstances(collector: Collector, table: string, count: number, url = pg.url): Promise<NodeRed[]> {
    const tapped = collector.tap(flows(), [
      { label: 'ended', from: 'shared-catch' },
      { label: 'seeded', from: 'shared-ingest' },
    ]);
    const seededBefore = collector.byLabel('seeded').length;
    const instances: NodeRed[] = [];
    for (let i = 0; i < count; i++) {
      instances.push(await startNodeRed({ flows: tapped, defines: { ...defines(), 'vectorPipeline.jobStore.url': url, 'vectorPipeline.jobStore.table': table } }));
    }
    for (const instance of instances) await instance.log.waitForLine(/shared through PostgreSQL/, 15_000);
    // Each instance's collection exists before any wait is started on it.
    await collector.waitFor((all) => all.filter((m) => m.label === 'seeded').length >= seededBefore + count || null, 15_000, 'the instances to seed their collection');
    return instances;
  }

  /** Resolves once all `count` waits are saved in `table` (durable: what a crash can no longer lose). */
  async function allSaved(table: string, count: number): Promise<void> {
    const client = new pgClient.Client({ connectionString: pg.url });
    await client.connect();
    try {
      for (const deadline = Date.now() + 30_000; ; ) {
        // The instance logs that it shares before it has created the table: until then, none saved.
        const saved = await client.query(`SELECT count(*)::int AS n FROM public.${table}`).then(
          ({ rows }) => rows[0].n as number,
          (err) => { if (err.code === '42P01') return 0; throw err; },
        );
        if (saved >= count) return;
        if (Date.now() > deadline) throw new Error(`only ${saved} of ${count} waits were saved in ${table}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      await client.end();
    }
  }

  /** Every wait ended once, unflagged, as a timeout; duplicates only flagged. */
  async function everyWaitEndsOnce(collector: Collector, waits: number, withinMs: number): Promise<void> {
    await collector.waitFor(
      (all) => new Set(all.filter((m) => m.label === 'ended').map((m) => m.msg.ticket)).size >= waits || null,
      withinMs,
      `all ${waits} waits to end`,
    );
    await new Promise((r) => setTimeout(r, 2 * LEASE_S * 1000)); // room for a duplicate
    const finals = collector.byLabel('ended');
    const unflagged = finals.filter((m) => m.msg.redelivered !== true);
    should(new Set(unflagged.map((m) => m.msg.ticket)).size).equal(waits);
    should(unflagged.length).equal(waits, `each wait ends once (unflagged): ${finals.length} finals`);
    for (const m of unflagged) should(m.msg.payload).containEql({ status: 'timeout' });
  }

  it('kill -9 of the instance that took the waits, then of the next: the last one ends each wait once, on time', async () => {
    const collector = await Collector.start();
    const instances = await startInstances(collector, 'kill_test', 3);
    const startedAt = Date.now();
    await instances[0].inject('shared-start');
    // Once the waits are saved (acknowledged), kill their instance.
    await allSaved('kill_test', WAITS);
    await instances[0].kill9();
    // Once the lease ran out, one of the others holds them: kill that one too.
    await new Promise((r) => setTimeout(r, (LEASE_S + 1.5) * 1000));
    await instances[1].kill9();
    await everyWaitEndsOnce(collector, WAITS, (TIMEOUT_S + 3 * LEASE_S + 15) * 1000);
    // On time: the deadline, plus at most two takeovers (lease + heartbeat each), plus a poll and slack.
    const lastAt = Math.max(...collector.byLabel('ended').map((m) => m.at));
    should(lastAt - startedAt).be.below((TIMEOUT_S + 2 * (LEASE_S + 0.5) + 1 + 5) * 1000);
    should(instances[2].log.errors()).eql([]);
  });

  it('a network fault between the holding instance and the database: its waits move to an instance started later, each ending once', async () => {
    const collector = await Collector.start();
    const proxy = await FaultProxy.start({ port: pg.port });
    const watcher = new pgClient.Client({ connectionString: pg.url });
    await watcher.connect();
    const samples: string[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        try {
          const t = await watcher.query(`SELECT lease_holder, (lease_until < now()) AS expired, state, count(*)::int AS n FROM public.fault_test GROUP BY 1,2,3`);
          const a = await watcher.query(`SELECT pid, state, wait_event, now()-xact_start AS xact_age, left(query, 60) AS q FROM pg_stat_activity WHERE application_name LIKE 'node-red-vector%'`);
          const l = await watcher.query(`SELECT l.pid, l.mode, count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity s USING (pid) WHERE s.application_name LIKE 'node-red-vector%' AND l.granted GROUP BY 1,2`);
          samples.push(`${new Date().toISOString()} rows=${JSON.stringify(t.rows)}\n  act=${JSON.stringify(a.rows)}\n  locks=${JSON.stringify(l.rows)}\n  ended=${new Set(collector.byLabel('ended').map((m) => m.msg.ticket)).size} proxy=${proxy.connections()}`);
        } catch (err) {
          samples.push(String(err));
        }
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
    try {
      const cut = new URL(pg.url);
      cut.port = String(proxy.port);
      const [alone] = await startInstances(collector, 'fault_test', 1, cut.href);
      await alone.inject('shared-start');
      await allSaved('fault_test', WAITS);
      await proxy.setMode('blackhole'); // the first instance can no longer reach the database
      samples.push(`${new Date().toISOString()} BLACKHOLE`);
      const [later] = await startInstances(collector, 'fault_test', 1);
      await everyWaitEndsOnce(collector, WAITS, (TIMEOUT_S + 3 * LEASE_S + 20) * 1000);
      should(later.log.errors()).eql([]);
    } catch (err) {
      console.log(samples.join('\n'));
      const finals = collector.byLabel('ended');
      console.log('finals', finals.length, JSON.stringify(finals.filter((m) => m.msg.payload?.status !== 'timeout' || m.msg.redelivered).slice(0, 5).map((m) => m.msg)));
      throw err;
    } finally {
      sampling = false;
      await sampler;
      await watcher.end();
      await proxy.stop();
    }
  });

  it('the database restarted while waits are pending: nothing lost, each wait ends once', async () => {
    const collector = await Collector.start();
    const instances = await startInstances(collector, 'restart_test', 2);
    await instances[0].inject('shared-start');
    await allSaved('restart_test', WAITS);
    await pg.halt();
    await new Promise((r) => setTimeout(r, 2000));
    await pg.resume();
    await everyWaitEndsOnce(collector, WAITS, (TIMEOUT_S + 3 * LEASE_S + 20) * 1000);
  });
});
