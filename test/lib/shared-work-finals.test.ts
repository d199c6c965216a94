// A final the database could not commit, or a delivered record it could not remove
// (real PostgreSQL 15, the record's row locked by another connection past the job
// store's lock_timeout): the runtime must not keep renewing a lease on work it
// forgot. The wait is claimed again and ends once; the delivered record leaves the
// table once the database answers.
import should from 'should';
import type * as Pg from 'pg';
import { MemoryBackend } from '../../lib/backends/memory';
import { PostgresJobStore } from '../../lib/job-stores/postgres';
import { SharedWorkStore } from '../../lib/job-stores/shared-work';
import { createTriggerSpec, type TriggerEvent } from '../../lib/trigger';
import { Triggerer, type WaitOwner, type WaitRecord } from '../../lib/triggerer';
import { POSTGRES_MISSING, postgresBinaries, startPostgresServer, type PostgresServer, jobStoreSettingsOn } from '../support/postgres-server';
import { until } from '../support/until';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Client } = require('pg') as typeof Pg;

// Long enough that a lease never runs out during a test: only a given-back lease moves.
const LEASE_MS = 30_000;
const HEARTBEAT_MS = 100;
const CALL_TIMEOUT_MS = 300;

describe('shared waits whose final or removal the database refused (real PostgreSQL 15)', function () {
  this.timeout(60_000);
  let server: PostgresServer;
  let table = 0;
  const closers: Array<() => Promise<unknown>> = [];

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
    for (const close of closers.splice(0).reverse()) await close().catch(() => undefined);
  });

  function setUp(removalGraceMs = 20) {
    const name = `finals_${++table}`;
    const store = new PostgresJobStore({
      settings: jobStoreSettingsOn(server, name),
      callTimeoutMs: CALL_TIMEOUT_MS,
    });
    const shared = new SharedWorkStore({ store, instanceId: 'instance-a', leaseMs: LEASE_MS, heartbeatMs: HEARTBEAT_MS, capacity: 1000 });
    const triggerer = new Triggerer({ waitStore: shared, removalGraceMs });
    closers.push(() => triggerer.close());
    const backend = new MemoryBackend({ dataDir: null, volatileKey: `finals-${table}`, indexingRate: 1e9, indexingDelay: 0 });
    closers.push(() => backend.close());
    const finals: Array<{ waitId: string; redelivered: boolean }> = [];
    const owner: WaitOwner = {
      backend,
      storeKey: 'store-1',
      onEvent(record, event) {
        const e = event as TriggerEvent;
        if (e.type === 'final') finals.push({ waitId: record.spec.waitId, redelivered: e.redelivered === true });
      },
    };
    triggerer.attach('sensor-1', owner);
    return { name, triggerer, backend, finals };
  }

  const waitRecord = (id: string): WaitRecord => ({
    ownerId: 'sensor-1',
    spec: createTriggerSpec({ waitId: id, collection: 'docs', expectedCount: 3, pollIntervalMs: 50, maxPollIntervalMs: 100, timeoutMs: 60_000 }),
    message: { topic: id },
  });

  /** Another connection holding the row's lock (as a stuck session would) until `release()`. */
  async function lockRow(tableName: string, id: string): Promise<{ release(): Promise<void> }> {
    const client = new Client({ host: '127.0.0.1', port: server.port, user: 'postgres', database: 'postgres' });
    await client.connect();
    closers.push(() => client.end());
    await client.query('BEGIN');
    await client.query(`SELECT id FROM "public"."${tableName}" WHERE id = $1 FOR UPDATE`, [id]);
    return {
      async release() {
        await client.query('ROLLBACK');
      },
    };
  }

  async function rows(tableName: string): Promise<Array<{ id: string; state: string; lease_holder: string | null }>> {
    const client = new Client({ host: '127.0.0.1', port: server.port, user: 'postgres', database: 'postgres' });
    await client.connect();
    try {
      return (await client.query(`SELECT id, state, lease_holder FROM "public"."${tableName}"`)).rows;
    } finally {
      await client.end();
    }
  }

  it('a final the database could not commit: the wait is claimed again and ends once', async () => {
    const { name, triggerer, backend, finals } = setUp();
    await triggerer.start();
    await backend.ensureCollection('docs', { dimensions: 2, metric: 'cosine' });
    await triggerer.defer(waitRecord('w1'));
    const lock = await lockRow(name, 'w1');
    // The wait's condition is met while its row is locked: the commit of its final times out.
    await backend.upsert('docs', Array.from({ length: 3 }, (_, i) => ({ id: `d${i}`, vector: [1, i + 1] })));
    await new Promise((r) => setTimeout(r, 4 * CALL_TIMEOUT_MS));
    should(finals).be.empty();
    await lock.release();
    await until('the wait to end', async () => (finals.length > 0 ? true : null), 10_000);
    await until('its record to leave the table', async () => ((await rows(name)).length === 0 ? true : null), 5_000);
    await new Promise((r) => setTimeout(r, 5 * HEARTBEAT_MS));
    should(finals).eql([{ waitId: 'w1', redelivered: false }]);
  });

  it('a delivered record the database could not remove: removed once it answers, never left leased here', async () => {
    const { name, triggerer, backend, finals } = setUp(1_000);
    await triggerer.start();
    await backend.ensureCollection('docs', { dimensions: 2, metric: 'cosine' });
    await triggerer.defer(waitRecord('w2'));
    await backend.upsert('docs', Array.from({ length: 3 }, (_, i) => ({ id: `d${i}`, vector: [1, i + 1] })));
    await until('the wait to end', async () => (finals.length > 0 ? true : null), 10_000);
    // Delivered; its record is removed after the removal grace (1 s): lock it before.
    should((await rows(name)).map((r) => r.state)).eql(['delivering']);
    const lock = await lockRow(name, 'w2');
    await new Promise((r) => setTimeout(r, 1_000 + 4 * CALL_TIMEOUT_MS));
    should((await rows(name)).map((r) => r.id)).eql(['w2']);
    await lock.release();
    await until('its record to leave the table', async () => ((await rows(name)).length === 0 ? true : null), 5_000);
    should(finals).eql([{ waitId: 'w2', redelivered: false }]);
  });
});
