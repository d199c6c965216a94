// Which instance holds a shared wait, on two real `node-red` processes sharing one PostgreSQL 15
// table (the same flows, vectorPipeline.jobStore given with -D): waits started on A show on A's
// sensor as held here and on B's as held by A (by host:pid, the two run on one host); B's
// sidebar endpoint counts them under A, and B refuses to cancel one (409 naming A). A is killed
// with kill -9: once its leases run out B holds them, and says so.
import * as os from 'node:os';
import should from 'should';
import pgClient from 'pg';
import { cleanupAll, Collector, httpRequest, startNodeRed, waitFor, type FlowNode, type NodeRed } from './harness';
import { POSTGRES_MISSING, postgresBinaries, startPostgresServer, type PostgresServer } from '../support/postgres-server';

const WAITS = 3;
const LEASE_S = 2;
const TAB = 'holders-tab';
const TABLE = 'holders_e2e';

function flows(): FlowNode[] {
  return [
    { id: TAB, type: 'tab', label: 'Holders', disabled: false, info: '' },
    { id: 'h-store', type: 'vector-store', name: 'store', backend: 'memory', embedder: 'hash', dimensions: '16', indexingRate: '1000', indexingDelay: '0', persist: false },
    // Each instance writes one document on start, so the collection exists everywhere; the waits want 10.
    { id: 'h-seed', type: 'inject', z: TAB, props: [{ p: 'payload' }], payload: '["one document"]', payloadType: 'json', repeat: '', once: true, onceDelay: 0.1, topic: '', x: 100, y: 40, wires: [['h-ingest']] },
    { id: 'h-ingest', type: 'vector-ingest', z: TAB, store: 'h-store', collection: 'docs', batchSize: '100', createCollection: true, buildIndex: true, x: 300, y: 40, wires: [[], []] },
    { id: 'h-start', type: 'inject', z: TAB, props: [{ p: 'payload' }], payload: '', payloadType: 'date', repeat: '', once: false, topic: '', x: 100, y: 120, wires: [['h-fan']] },
    { id: 'h-fan', type: 'function', z: TAB, func: `for (let i = 0; i < ${WAITS}; i++) node.send({ ticket: 'T' + i }); return null;`, outputs: 1, x: 260, y: 120, wires: [['h-sensor']] },
    {
      id: 'h-sensor', type: 'deferrable-sensor', z: TAB, name: '', store: 'h-store', collection: 'docs', expectedCount: '10',
      pollInterval: '0.5', maxPollInterval: '1', timeout: '300', deferrable: true, x: 460, y: 120, wires: [[], []],
    },
    { id: 'h-status', type: 'status', z: TAB, scope: ['h-sensor'], x: 100, y: 200, wires: [[]] },
  ];
}

describe('e2e: which node-red instance holds a shared wait (PostgreSQL 15)', function () {
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

  const getJson = async (instance: NodeRed, route: string): Promise<{ status: number; body: any }> => {
    const answer = await httpRequest('GET', `${instance.url}${route}`);
    return { status: answer.status, body: JSON.parse(answer.body) };
  };

  it('the status and the sidebar of each instance name the holder; cancel elsewhere is refused with its name; after a kill -9 the other holds them', async () => {
    const collector = await Collector.start();
    const tapped = collector.tap(flows(), [
      { label: 'status', from: 'h-status' },
      { label: 'seeded', from: 'h-ingest' },
    ]);
    const defines = {
      'vectorPipeline.jobStore.type': 'postgres',
      'vectorPipeline.jobStore.url': pg.url,
      'vectorPipeline.jobStore.table': TABLE,
      'vectorPipeline.jobStore.leaseSeconds': String(LEASE_S),
      'vectorPipeline.jobStore.heartbeatSeconds': '0.5',
    };
    const a = await startNodeRed({ flows: tapped, defines });
    const b = await startNodeRed({ flows: tapped, defines });
    const aName = (await a.log.waitForLine(/shared through PostgreSQL .* as instance \S+/, 15_000)).match(/as instance (\S+)/)![1];
    await b.log.waitForLine(/shared through PostgreSQL/, 15_000);
    await collector.waitFor((all) => all.filter((m) => m.label === 'seeded').length >= 2 || null, 15_000, 'both instances to seed their collection');
    should(aName).startWith(`${os.hostname()}:${a.pid}:`);

    await a.inject('h-start');
    // Both instances run the same sensor node: one status says "here", the other names A by host:pid.
    const texts = () => collector.byLabel('status').map((m) => String(m.msg.status?.text ?? ''));
    await collector.waitFor(() => texts().find((t) => /^3 waiting.* · here$/.test(t)), 30_000, 'A to say it holds the 3 waits');
    const onB = await collector.waitFor(() => texts().find((t) => t.startsWith('0 here · 3 on ')), 30_000, 'B to say another instance holds them');
    should(`${os.hostname()}:${a.pid}`).startWith(onB.slice('0 here · 3 on '.length).replace(/…$/, ''));

    const holders = await waitFor(async () => {
      const { body } = await getJson(b, '/vector-pipeline/waits/holders');
      return body.groups?.length === 1 && body.groups[0].holders[0]?.count === WAITS ? body : null;
    }, 30_000, 'B to count the waits under A');
    should(holders).match({ shared: true, instance: { name: `${os.hostname()}:${b.pid}` } });
    should(holders.groups[0]).match({ key: 'h-store/docs', collection: 'docs', holders: [{ instance: aName, name: `${os.hostname()}:${a.pid}`, here: false, count: WAITS }] });

    const client = new pgClient.Client({ connectionString: pg.url });
    await client.connect();
    const { rows } = await client.query(`SELECT id FROM public.${TABLE} LIMIT 1`).finally(() => client.end());
    const refused = await httpRequest('POST', `${b.url}/vector-pipeline/waits/cancel`, { waitId: rows[0].id });
    should(refused.status).equal(409);
    should(JSON.parse(refused.body).message).containEql(`held by instance ${aName}`);

    // A dies; once its leases run out, B claims the waits of its sensor node and says so.
    const before = texts().length;
    await a.kill9();
    await collector.waitFor(() => texts().slice(before).find((t) => /^3 waiting.* · here$/.test(t)), 60_000, 'B to say it holds the waits now');
    await waitFor(async () => {
      const { body } = await getJson(b, '/vector-pipeline/waits/holders');
      return body.groups[0]?.holders.length === 1 && body.groups[0].holders[0].here && body.groups[0].holders[0].count === WAITS ? body : null;
    }, 30_000, 'B to count the waits as its own');
    should(b.log.errors()).eql([]);
  });
});
