/**
 * Which instance holds a shared wait (issue 11), on a real Node-RED runtime (test
 * helper) whose waits are shared through a real PostgreSQL 15: the sensor's status
 * names where its waits are. The other instance is a second job store on the same
 * table, holding waits of the same sensor node under its own instance name (as
 * another Node-RED process would), and releasing them (as it would when it stops).
 * The Vector waits plugin's holders endpoint and its cancel answer for a wait held
 * elsewhere, through the test helper's admin app (its RED.auth admits every request).
 * The nodes get this package's real en-US catalog (the test helper has none).
 */
import { promises as fs, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import should from 'should';
import { catchAll, helper, nodeModules, storeConfig, type FlowNode } from './flow-helper';
import { closeAllTriggerers } from '../../nodes/shared/runtime';
import { MAX_STATUS } from '../../nodes/shared/status';
import { sharedStatus, waitsElsewhere } from '../../nodes/shared/holder-status';
import { PostgresJobStore } from '../../lib/job-stores/postgres';
import { createTriggerSpec } from '../../lib/trigger';
import type { WaitRecord } from '../../lib/wait-store';
import { POSTGRES_MISSING, jobStoreSettingsOn, postgresBinaries, startPostgresServer, type PostgresServer } from '../support/postgres-server';
import { until } from '../support/until';

// ---------------------------------------------------------------------------
// The real catalog (as test/nodes/statuses.test.ts gives it to the nodes)

const LOCALES = path.join(__dirname, '../../nodes/locales/en-US');
const catalogs = new Map<string, unknown>();

function translate(key: string, values: Record<string, unknown> = {}): string {
  const [namespace, ...rest] = key.split('.');
  // The plugin (same RED object) has its own catalog: it falls back to it when RED._ answers the key.
  if (namespace === 'vector-waits') return key;
  if (!catalogs.has(namespace)) catalogs.set(namespace, JSON.parse(readFileSync(path.join(LOCALES, `${namespace}.json`), 'utf8'))[namespace]);
  let entry: unknown = catalogs.get(namespace);
  for (const part of rest) entry = (entry as Record<string, unknown> | undefined)?.[part];
  if (typeof entry !== 'string') throw new Error(`no catalog entry ${key}`);
  return entry.replace(/__(\w+)__/g, (whole, name: string) => (name in values ? String(values[name]) : whole));
}
const text = (key: string, values?: Record<string, string | number>) => translate(key, values);

type NodeModule = (red: { _: unknown }) => unknown;
const PACKAGE_MODULES = new Set(nodeModules.slice(0, 5));
const modulesWithCatalog = (nodeModules as NodeModule[]).map((register) =>
  PACKAGE_MODULES.has(register)
    ? (red: { _: unknown }) => {
        red._ = translate;
        return register(red);
      }
    : register,
);

// eslint-disable-next-line @typescript-eslint/no-require-imports
const plugin = require('../../nodes/plugins/vector-waits');

// ---------------------------------------------------------------------------

const HERE = 'host-a:100:aaaaaaaa';
const HOST_B = 'host-b:42:0badcafe';
const LONG_LEASE_MS = 60_000;
// Each wait starts now: a time taken when this file loads is minutes old once the full suite gets here (the waits would time out).
const waitOf = (id: string, ownerId = 'sensor', collection = 'docs'): WaitRecord => ({
  ownerId,
  spec: createTriggerSpec({ waitId: id, collection, expectedCount: 10, pollIntervalMs: 100, maxPollIntervalMs: 200, timeoutMs: 600_000, now: Date.now() }),
  message: { topic: id },
});

describe('shared waits: the status text of where they are', () => {
  const row = (holder: string | null, count: number, collection = 'docs') => ({ ownerId: 'sensor', collection, holder, count });

  it('all here: the usual text and "· here", the most detailed that fits', () => {
    const none = waitsElsewhere([row(HERE, 3)], HERE);
    should(none).eql({ holders: [], unheld: 0 });
    should(sharedStatus(text, 3, ['3 waiting · 40%', '3 waiting'], none)).equal('3 waiting · 40% · here');
    should(sharedStatus(text, 3, ['3 waiting · 40% · ETA 1h 5m', '3 waiting · 40%', '3 waiting'], none)).equal('3 waiting · 40% · here');
    should(sharedStatus(text, 0, ['0 waiting'], none)).be.null();
  });

  it('held elsewhere: counts per instance by short name, several instances summed, unheld ones when room is left', () => {
    should(sharedStatus(text, 0, ['0 waiting'], waitsElsewhere([row(HOST_B, 3), row(HOST_B, 2, 'faq')], HERE))).equal('0 here · 5 on host-b');
    should(sharedStatus(text, 2, ['2 waiting'], waitsElsewhere([row(HERE, 2), row(HOST_B, 5), row('host-c:7:cccccccc', 2)], HERE))).equal(
      '2 here · 7 on 2 others',
    );
    should(sharedStatus(text, 1, ['1 waiting'], waitsElsewhere([row('b1:9:99999999', 5), row(null, 1)], HERE))).equal('1 here · 5 on b1 · 1 unheld');
    // No room for the unheld ones ("1 here · 5 on host-b · 1 unheld" is 31 characters).
    should(sharedStatus(text, 1, ['1 waiting'], waitsElsewhere([row(HOST_B, 5), row(null, 1)], HERE))).equal('1 here · 5 on host-b');
    should(sharedStatus(text, 0, ['0 waiting'], waitsElsewhere([row(null, 4)], HERE))).equal('0 here · 4 unheld');
    // Two processes on host-b: told apart by their pid.
    const twoOnB = waitsElsewhere([row(HOST_B, 5), row('host-b:43:12345678', 1)], HERE);
    should(twoOnB.holders).eql([{ name: 'host-b:42', count: 5 }, { name: 'host-b:43', count: 1 }]);
  });

  it('a long host name is cut, never the counts', () => {
    const pod = 'node-red-7d9f8c6b5-x2k4q.cluster.internal:1:abcdef12';
    const shown = sharedStatus(text, 10, ['10 waiting'], waitsElsewhere([row(pod, 1234)], HERE))!;
    should(shown.length).be.belowOrEqual(MAX_STATUS);
    should(shown).startWith('10 here · 1234 on node-red-').and.endWith('…');
  });
});

describe('shared waits: the sensor status names where its waits are (real PostgreSQL 15, test helper)', function () {
  this.timeout(60_000);
  let server: PostgresServer;
  let tables = 0;
  let userDir: string;
  let table: string;
  const others: PostgresJobStore[] = [];

  before(async function () {
    if (!postgresBinaries()) {
      console.log(`      skipped: ${POSTGRES_MISSING}`);
      this.skip();
    }
    server = await startPostgresServer();
  });
  after(async () => {
    await server?.stop();
  });
  beforeEach(async () => {
    userDir = await fs.mkdtemp(path.join(os.tmpdir(), 'vp-holders-test-'));
    table = `holders_${++tables}`;
  });
  afterEach(async () => {
    await helper.unload();
    await closeAllTriggerers();
    await Promise.all(others.splice(0).map((store) => store.close()));
    helper.settings({ vectorPipeline: undefined });
    await fs.rm(userDir, { recursive: true, force: true });
  });

  /** Another instance on the same table (its own pool, as another Node-RED process). */
  async function otherInstance(): Promise<PostgresJobStore> {
    const store = new PostgresJobStore({
      settings: jobStoreSettingsOn(server, table),
      callTimeoutMs: 5_000,
    });
    others.push(store);
    await store.start();
    return store;
  }

  /** `toSensor`: the ingest node's output goes to the sensor (else to a helper node). */
  function flow(toSensor = false): FlowNode[] {
    return [
      storeConfig({ indexingRate: 10_000, indexingDelay: 0 }),
      { id: 'ingest', type: 'vector-ingest', store: 'store', collection: 'docs', wires: [[toSensor ? 'sensor' : 'ingested']] },
      { id: 'ingested', type: 'helper' },
      { id: 'sensor', type: 'deferrable-sensor', store: 'store', collection: 'docs', expectedCount: 0, pollInterval: 0.1, maxPollInterval: 0.2, timeout: 600, deferrable: true, wires: [['ready'], ['progress']] },
      { id: 'ready', type: 'helper' },
      { id: 'progress', type: 'helper' },
      ...catchAll(),
    ];
  }

  async function load(flows: FlowNode[], modules: unknown[] = modulesWithCatalog): Promise<void> {
    helper.settings({
      userDir,
      vectorPipeline: { jobStore: { type: 'postgres', url: server.url, table, leaseSeconds: 5, heartbeatSeconds: 0.1 } },
    });
    await helper.load(modules, flows);
  }

  function lastStatus(nodeId: string): { fill?: string; text?: string } {
    const spy = helper.getNode(nodeId).status as { getCalls(): Array<{ thisValue: { id: string }; args: [{ text?: string }] }> };
    const calls = spy.getCalls().filter((call) => call.thisValue.id === nodeId);
    return calls.length > 0 ? calls[calls.length - 1].args[0] : {};
  }

  const statusBecomes = (nodeId: string, wanted: RegExp | string) =>
    until(`the status of ${nodeId} to say ${String(wanted)}`, async () => {
      const shown = lastStatus(nodeId).text ?? '';
      return (typeof wanted === 'string' ? shown === wanted : wanted.test(shown)) ? shown : null;
    }).catch((err: Error) => {
      // What it said instead (CI once timed out here on a loaded machine).
      throw new Error(`${err.message}; it says "${lastStatus(nodeId).text ?? ''}"`);
    });

  it('waits another instance holds: "0 here · 5 on host-b"; released by it, claimed here: "5 waiting · here"', async () => {
    await load(flow());
    const b = await otherInstance();
    for (let i = 0; i < 5; i++) await b.put(waitOf(`b${i}`), HOST_B, LONG_LEASE_MS);
    await statusBecomes('sensor', '0 here · 5 on host-b');
    should(lastStatus('sensor')).match({ fill: 'blue' });

    // host-b stops: its leases end; this instance claims the waits of its sensor node.
    // One document in the collection: the waits (for 10) stay pending here.
    const ingested = new Promise<void>((resolve) => helper.getNode('ingested').on('input', () => resolve()));
    helper.getNode('ingest').receive({ payload: 'one document about harbours' });
    await ingested;
    await b.release(HOST_B);
    await statusBecomes('sensor', /^5 waiting.* · here$/);
  });

  it('waits released by another instance that end here at once (their deadline passed): the status keeps "timeout", never a blank', async () => {
    await load(flow());
    const b = await otherInstance();
    const late = (id: string): WaitRecord => {
      const w = waitOf(id);
      w.spec = createTriggerSpec({ waitId: id, collection: 'docs', expectedCount: 10, pollIntervalMs: 100, maxPollIntervalMs: 200, timeoutMs: 1_000, now: Date.now() - 60_000 });
      return w;
    };
    for (let i = 0; i < 3; i++) await b.put(late(`late${i}`), HOST_B, LONG_LEASE_MS);
    await statusBecomes('sensor', '0 here · 3 on host-b');
    await b.release(HOST_B);
    await statusBecomes('sensor', /^timeout/);
    // Two refreshes of the holder counts later (3 s each), stale counts and then none included.
    await new Promise((r) => setTimeout(r, 7_000));
    should(lastStatus('sensor')).match({ fill: 'red', text: /^timeout/ });
  });

  it('file mode: the status names no holder', async () => {
    helper.settings({ userDir, vectorPipeline: undefined });
    await helper.load(modulesWithCatalog, flow(true));
    const ready = new Promise<void>((resolve) => helper.getNode('ready').on('input', () => resolve()));
    helper.getNode('ingest').receive({ payload: ['a document about harbours', 'another one'] });
    await ready;
    const spy = helper.getNode('sensor').status as { getCalls(): Array<{ args: [{ text?: string }] }> };
    const texts = spy.getCalls().map((call) => call.args[0].text ?? '');
    should(texts[texts.length - 1]).equal('ready · 2 docs');
    should(texts.some((t) => / here|unheld| on /.test(t))).be.false();
  });

  describe('the Vector waits sidebar', () => {
    const DOCS = Array.from({ length: 40 }, (_, i) => `holder document ${i} about harbours`);

    /** A slow store (4 documents/s: a wait on 40 documents lasts ~10 s); a disabled sensor whose waits nobody here claims. */
    function sidebarFlow(): FlowNode[] {
      return [
        ...flow(true).map((n) => (n.id === 'store' ? storeConfig({ indexingRate: 4, indexingDelay: 0 }) : n)),
        { id: 'sensor-off', type: 'deferrable-sensor', d: true, store: 'store', collection: 'faq', expectedCount: 0, pollInterval: 0.1, maxPollInterval: 0.2, timeout: 600, deferrable: true, wires: [[], []] },
      ];
    }

    async function waitHere(): Promise<string> {
      const progress = new Promise<string>((resolve) => helper.getNode('progress').once('input', (m: { waitId: string }) => resolve(m.waitId)));
      helper.getNode('ingest').receive({ payload: DOCS });
      return progress;
    }

    it('GET /vector-pipeline/waits/holders: this instance, and per group the waits held here, by each other instance, and by none', async () => {
      await load(sidebarFlow(), [...modulesWithCatalog, plugin]);
      const b = await otherInstance();
      await waitHere();
      // Waits of the disabled sensor, given up by host-b: nobody claims them (the node runs nowhere here).
      for (let i = 0; i < 2; i++) await b.put(waitOf(`off${i}`, 'sensor-off', 'faq'), HOST_B, LONG_LEASE_MS);
      await b.release(HOST_B);
      for (let i = 0; i < 5; i++) await b.put(waitOf(`b${i}`), HOST_B, LONG_LEASE_MS);

      const expected = {
        shared: true,
        groups: [
          {
            key: 'store/docs',
            store: { id: 'store', name: 'test store' },
            collection: 'docs',
            holders: [
              { here: true, count: 1, name: os.hostname() },
              { instance: HOST_B, name: 'host-b', here: false, count: 5 },
            ],
          },
          { key: 'store/faq', store: { id: 'store', name: 'test store' }, collection: 'faq', holders: [{ instance: null, name: null, here: false, count: 2 }] },
        ],
      };
      const body = await until('the holders to be counted', async () => {
        const answer = (await helper.request().get('/vector-pipeline/waits/holders').expect(200)).body;
        try {
          should(answer).match(expected);
          return answer;
        } catch {
          return null;
        }
      });
      should(body.instance.name).equal(os.hostname());
      should(body.instance.id).startWith(`${os.hostname()}:${process.pid}:`);
      should(body.groups[0].holders[0].instance).equal(body.instance.id);
    });

    it('cancel of a wait another live instance holds: 409 naming it, the wait left alone; an unknown wait is still 404', async () => {
      await load(sidebarFlow(), [...modulesWithCatalog, plugin]);
      const b = await otherInstance();
      await b.put(waitOf('b0'), HOST_B, LONG_LEASE_MS);
      const refused = await helper.request().post('/vector-pipeline/waits/cancel').send({ waitId: 'b0' }).expect(409);
      should(refused.body).match({ error: 'held_elsewhere', holder: HOST_B });
      should(refused.body.message).match(/held by instance host-b:42:0badcafe/).and.match(/cancel it there/);
      should(await b.holderCounts(['sensor'])).eql([{ ownerId: 'sensor', collection: 'docs', holder: HOST_B, count: 1 }]);
      await helper.request().post('/vector-pipeline/waits/cancel').send({ waitId: 'nowhere' }).expect(404);
      // A whole collection none of whose waits is here: 409 too, once the counts (at most 3 s old) show host-b's.
      const group = await until('the group cancel to name host-b', async () => {
        const answer = await helper.request().post('/vector-pipeline/waits/cancel').send({ store: 'store', collection: 'docs' });
        return answer.status === 409 ? answer.body : (should(answer.status).equal(404), null);
      });
      should(group).match({ error: 'held_elsewhere', holders: [HOST_B] });
      should(group.message).match(/held by other instances \(host-b:42:0badcafe: 1\)/);

      // A wait held here is cancelled here, as before.
      const mine = await waitHere();
      const cancelled = await helper.request().post('/vector-pipeline/waits/cancel').send({ waitId: mine }).expect(200);
      should(cancelled.body).eql({ cancelled: 1, waitIds: [mine] });
    });

    it('file mode: the holders endpoint says the waits are not shared', async () => {
      helper.settings({ userDir, vectorPipeline: undefined });
      await helper.load([...modulesWithCatalog, plugin], sidebarFlow());
      const answer = await helper.request().get('/vector-pipeline/waits/holders').expect(200);
      should(answer.body).eql({ shared: false, instance: null, groups: [] });
    });
  });
});
