// Several triggerers (as several Node-RED processes) sharing their waits through one
// PostgreSQL table (real PostgreSQL 15): every wait ends exactly once across them; a
// runtime that dies (its leases run out) has its waits finished by another that has the
// owning node; a closed runtime hands its waits over at once. Real memory backend
// (shared in this process by its volatile key), short leases, polled conditions.
import should from 'should';
import pg from 'pg';
import { MemoryBackend } from '../../lib/backends/memory';
import { PostgresJobStore } from '../../lib/job-stores/postgres';
import { SharedWorkStore } from '../../lib/job-stores/shared-work';
import { createTriggerSpec, type TriggerEvent } from '../../lib/trigger';
import { Triggerer, type WaitOwner, type WaitRecord } from '../../lib/triggerer';
import { POSTGRES_MISSING, postgresBinaries, startPostgresServer, type PostgresServer } from '../support/postgres-server';
import { until } from '../support/until';

const LEASE_MS = 400;
const HEARTBEAT_MS = 100;

describe('triggerers sharing waits through PostgreSQL (real PostgreSQL 15)', function () {
  this.timeout(60_000);
  let server: PostgresServer;
  let table = 0;
  const triggerers: Triggerer[] = [];
  const backends: MemoryBackend[] = [];

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
  afterEach(async () => {
    await Promise.all(triggerers.splice(0).map((t) => t.close().catch(() => undefined)));
    await Promise.all(backends.splice(0).map((b) => b.close()));
  });

  function runtime(name: string, tableName: string, leaseMs = LEASE_MS): { triggerer: Triggerer; shared: SharedWorkStore } {
    const store = new PostgresJobStore({
      settings: { host: '127.0.0.1', port: server.port, user: 'postgres', database: 'postgres', password: undefined, schema: 'public', table: tableName, where: `127.0.0.1:${server.port}/postgres` },
      callTimeoutMs: 5_000,
    });
    const shared = new SharedWorkStore({ store, instanceId: name, leaseMs, heartbeatMs: HEARTBEAT_MS, capacity: 1000 });
    const triggerer = new Triggerer({ waitStore: shared, removalGraceMs: 50 });
    triggerers.push(triggerer);
    return { triggerer, shared };
  }

  /** One backend per runtime, sharing its collections (as several processes share a real store). */
  function backend(): MemoryBackend {
    // One key per test (its table): collections shared by the test's runtimes only.
    const b = new MemoryBackend({ dataDir: null, volatileKey: `shared-work-${table}`, indexingRate: 1e9, indexingDelay: 0 });
    backends.push(b);
    return b;
  }

  function owner(finals: Array<{ waitId: string; by: string; redelivered: boolean }>, by: string): WaitOwner {
    return {
      backend: backend(),
      storeKey: 'store-1',
      onEvent(record, event) {
        const e = event as TriggerEvent;
        if (e.type === 'final') finals.push({ waitId: record.spec.waitId, by, redelivered: e.redelivered === true });
      },
    };
  }

  const waitRecord = (id: string, expectedCount: number): WaitRecord => ({
    ownerId: 'sensor-1',
    spec: createTriggerSpec({ waitId: id, collection: 'docs', expectedCount, pollIntervalMs: 50, maxPollIntervalMs: 100, timeoutMs: 60_000 }),
    message: { topic: id },
  });

  /** The collection the waits watch, empty: they stay pending until documents come. */
  async function emptyCollection(b: MemoryBackend): Promise<void> {
    await b.ensureCollection('docs', { dimensions: 2, metric: 'cosine' });
  }

  async function writeDocs(b: MemoryBackend, n: number): Promise<void> {
    await b.upsert('docs', Array.from({ length: n }, (_, i) => ({ id: `d${i}`, vector: [1, i + 1] })));
  }

  it('a runtime that dies mid-wait: another with the same node takes its waits over after the lease, and each ends exactly once', async () => {
    const name = `shared_${++table}`;
    const a = runtime('instance-a', name);
    const b = runtime('instance-b', name);
    const finals: Array<{ waitId: string; by: string; redelivered: boolean }> = [];
    a.triggerer.attach('sensor-1', owner(finals, 'a'));
    b.triggerer.attach('sensor-1', owner(finals, 'b'));
    await a.triggerer.start();
    await b.triggerer.start();
    await emptyCollection(backends[0]);
    const ids = Array.from({ length: 30 }, (_, i) => `w${i}`);
    for (const id of ids) await a.triggerer.defer(waitRecord(id, 10));
    // A dies: no release, no more heartbeats; its leases run out.
    await a.shared.abandon();
    a.triggerer.detach('sensor-1');
    await writeDocs(backends[1], 10);
    await until('every wait to end', async () => (finals.length >= ids.length ? true : null), 20_000);
    await new Promise((r) => setTimeout(r, 3 * LEASE_MS)); // room for a duplicate
    should(finals.map((f) => f.waitId).sort()).eql([...ids].sort());
    should(finals.every((f) => f.by === 'b')).be.true();
  });

  it('the progress of the waits held reaches the table with the heartbeat (written in batches)', async () => {
    const name = `shared_${++table}`;
    const a = runtime('instance-a', name);
    a.triggerer.attach('sensor-1', owner([], 'a'));
    await a.triggerer.start();
    await emptyCollection(backends[0]);
    const ids = Array.from({ length: 30 }, (_, i) => `p${i}`);
    for (const id of ids) await a.triggerer.defer(waitRecord(id, 100));
    await writeDocs(backends[0], 5);
    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    try {
      await until('the progress of every wait to be saved', async () => {
        const { rows } = await client.query(`SELECT count(*)::int AS n FROM public.${name} WHERE (spec->'lastProgress'->>'indexedCount')::int = 5`);
        return rows[0].n === ids.length ? true : null;
      });
    } finally {
      await client.end();
    }
  });

  it('progress made while the database was away is written once it answers, though the waits did not move again', async () => {
    const name = `shared_${++table}`;
    // A lease longer than the outage: the waits stay held here, nothing is claimed again.
    const a = runtime('instance-a', name, 60_000);
    const seen = new Map<string, number>();
    a.triggerer.attach('sensor-1', {
      ...owner([], 'a'),
      onEvent(record, event) {
        const e = event as TriggerEvent;
        if (e.type === 'progress') seen.set(record.spec.waitId, e.payload.indexedCount);
      },
    });
    await a.triggerer.start();
    await emptyCollection(backends[0]);
    const ids = Array.from({ length: 30 }, (_, i) => `o${i}`);
    for (const id of ids) await a.triggerer.defer(waitRecord(id, 100));
    const client = new pg.Client({ connectionString: server.url });
    const savedAt = async (count: number) => {
      const { rows } = await client.query(`SELECT count(*)::int AS n FROM public.${name} WHERE (spec->'lastProgress'->>'indexedCount')::int = $1`, [count]);
      return rows[0].n === ids.length ? true : null;
    };
    await client.connect();
    let connected = true;
    try {
      await until('the first progress of every wait to be saved', () => savedAt(0));
      connected = false;
      await client.end(); // before the server goes: its connection would break
      await server.halt();
      await writeDocs(backends[0], 5);
      await until('every wait to see 5 documents', async () => (ids.every((id) => seen.get(id) === 5) ? true : null));
      await new Promise((r) => setTimeout(r, 5 * HEARTBEAT_MS)); // heartbeats that fail to write it
      await server.resume();
    } finally {
      if (connected) await client.end();
    }
    const after = new pg.Client({ connectionString: server.url });
    await after.connect();
    try {
      const { rows } = await after.query(`SELECT count(*)::int AS n FROM public.${name}`);
      should(rows[0].n).equal(ids.length);
      await until('the progress written during the outage to be saved', async () => {
        const { rows: moved } = await after.query(`SELECT count(*)::int AS n FROM public.${name} WHERE (spec->'lastProgress'->>'indexedCount')::int = 5`);
        return moved[0].n === ids.length ? true : null;
      });
    } finally {
      await after.end();
    }
  });

  it('two live runtimes on the same waits: each wait ends once, on one of them', async () => {
    const name = `shared_${++table}`;
    const a = runtime('instance-a', name);
    const b = runtime('instance-b', name);
    const finals: Array<{ waitId: string; by: string; redelivered: boolean }> = [];
    a.triggerer.attach('sensor-1', owner(finals, 'a'));
    b.triggerer.attach('sensor-1', owner(finals, 'b'));
    await a.triggerer.start();
    await b.triggerer.start();
    await emptyCollection(backends[0]);
    const ids = Array.from({ length: 40 }, (_, i) => `v${i}`);
    await Promise.all(ids.map((id, i) => (i % 2 === 0 ? a : b).triggerer.defer(waitRecord(id, 5))));
    await writeDocs(backends[0], 5);
    await until('every wait to end', async () => (finals.length >= ids.length ? true : null), 20_000);
    await new Promise((r) => setTimeout(r, 3 * LEASE_MS));
    should(finals.map((f) => f.waitId).sort()).eql([...ids].sort());
  });

  it('a runtime that closes hands its waits over at once (no lease to wait out)', async () => {
    const name = `shared_${++table}`;
    const a = runtime('instance-a', name);
    const finals: Array<{ waitId: string; by: string; redelivered: boolean }> = [];
    a.triggerer.attach('sensor-1', owner(finals, 'a'));
    await a.triggerer.start();
    await emptyCollection(backends[0]);
    for (let i = 0; i < 10; i++) await a.triggerer.defer(waitRecord(`c${i}`, 3));
    await a.triggerer.close();
    const b = runtime('instance-b', name);
    b.triggerer.attach('sensor-1', owner(finals, 'b'));
    await b.triggerer.start();
    await writeDocs(backends[1], 3);
    await until('the waits to end on b', async () => (finals.length >= 10 ? true : null), 20_000);
    should(finals.every((f) => f.by === 'b')).be.true();
    should(new Set(finals.map((f) => f.waitId)).size).equal(10);
  });
});
