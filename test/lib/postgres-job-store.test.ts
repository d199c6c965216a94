// The PostgreSQL job store on a real PostgreSQL 15 server: several store
// instances (own pools, as several Node-RED processes) sharing one table through
// leases. Leases are short (300 ms) and checked by polling, never by timing.
import should from 'should';
import pg from 'pg';
import { PostgresJobStore, PROGRESS_BATCH, toJobStoreError, type ClaimedRecord } from '../../lib/job-stores/postgres';
import { VERSION_TABLE } from '../../lib/job-stores/migrations';
import { createTriggerSpec, type FinalPayload } from '../../lib/trigger';
import type { JobRecord, WaitRecord } from '../../lib/wait-store';
import { createIngestJobSpec } from '../../lib/ingest-job/spec';
import { VectorStoreError } from '../../lib/errors';
import { POSTGRES_MISSING, postgresBinaries, startPostgresServer, type PostgresServer, jobStoreSettingsOn } from '../support/postgres-server';
import { until } from '../support/until';

const SHORT_LEASE_MS = 300;
const LONG_LEASE_MS = 60_000;
const T0 = Date.UTC(2026, 0, 1);

const wait = (id: string, ownerId = 'sensor-1'): WaitRecord => ({
  ownerId,
  spec: createTriggerSpec({ waitId: id, collection: 'docs', expectedCount: 10, pollIntervalMs: 1000, maxPollIntervalMs: 5000, timeoutMs: 600_000, now: T0 }),
  message: { _msgid: `m-${id}`, topic: id },
});

const final: FinalPayload = {
  status: 'success', collection: 'docs', documentCount: 10, indexedCount: 10, expectedCount: 10, elapsedMs: 5, polls: 1, deferred: true,
};

const ids = (records: ClaimedRecord[]): string[] => records.map((r) => r.spec.waitId);

describe('PostgreSQL job store (real PostgreSQL 15)', function () {
  this.timeout(60_000);
  let server: PostgresServer;
  let tables = 0;
  const stores: PostgresJobStore[] = [];
  let admin: pg.Pool;

  before(async function () {
    if (!postgresBinaries()) {
      console.log(`      skipped: ${POSTGRES_MISSING}`);
      this.skip();
    }
    server = await startPostgresServer();
    admin = new pg.Pool({ connectionString: server.url, max: 2 });
    admin.on('error', () => undefined);
  });
  after(async () => {
    await admin?.end();
    await server?.stop();
  });
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((store) => store.close()));
  });

  /** A store of its own (own pool, as one Node-RED process) on `table`. */
  const storeOn = (table: string, warnings: string[] = [], schema = 'public', callTimeoutMs = 5_000): PostgresJobStore => {
    const store = new PostgresJobStore({
      settings: jobStoreSettingsOn(server, table, schema),
      callTimeoutMs,
      log: { warn: (message) => warnings.push(message) },
    });
    stores.push(store);
    return store;
  };
  const newTable = (): string => `work_${++tables}`;
  /** `count` pending records of `ownerId`, put by a feeder that then lets them go (nobody holds them). */
  async function feed(table: string, count: number, ownerId = 'sensor-1', prefix = 'w'): Promise<string[]> {
    const feeder = storeOn(table);
    await feeder.start();
    const made: string[] = [];
    for (let i = 0; i < count; i += 50) {
      const batch = Array.from({ length: Math.min(50, count - i) }, (_, j) => `${prefix}${i + j}`);
      await Promise.all(batch.map((id) => feeder.put(wait(id, ownerId), 'feeder', LONG_LEASE_MS)));
      made.push(...batch);
    }
    await feeder.release('feeder');
    return made;
  }

  it('migrates once: starting twice, and from five instances at once, is safe; a newer table is refused with what to do', async () => {
    const table = newTable();
    const five = Array.from({ length: 5 }, () => storeOn(table));
    await Promise.all(five.map((store) => store.start()));
    await five[0].start();
    const version = await admin.query(`SELECT version FROM public.${VERSION_TABLE} WHERE table_name = $1`, [table]);
    version.rows.should.eql([{ version: PostgresJobStore.schemaVersion }]);
    (await five[1].stats()).records.should.equal(0);

    await admin.query(`UPDATE public.${VERSION_TABLE} SET version = 99 WHERE table_name = $1`, [table]);
    const err = await storeOn(table).start().then(() => null, (e: unknown) => e);
    should(err).be.instanceOf(VectorStoreError);
    (err as VectorStoreError).code.should.equal('INVALID_INPUT');
    (err as VectorStoreError).transient.should.be.false();
    (err as VectorStoreError).message.should.match(/newer version/).and.match(/upgrade the package/);
  });

  it('creates its own schema; two tables of one new schema migrated at once share its version table', async () => {
    const both = ['first', 'second'].flatMap((table) => [storeOn(table, [], 'jobs_schema'), storeOn(table, [], 'jobs_schema')]);
    await Promise.all(both.map((store) => store.start()));
    const versions = await admin.query(`SELECT table_name, version FROM jobs_schema.${VERSION_TABLE} ORDER BY table_name`);
    versions.rows.should.eql([
      { table_name: 'first', version: PostgresJobStore.schemaVersion },
      { table_name: 'second', version: PostgresJobStore.schemaVersion },
    ]);
    await both[0].put(wait('s1'), 'a', LONG_LEASE_MS);
    (await both[2].stats()).records.should.equal(0); // another table
    (await both[1].holders(['s1'])).get('s1')!.should.equal('a');
  });

  it('three instances claiming 1,000 pending records at once: each record goes to exactly one of them', async () => {
    const table = newTable();
    const all = await feed(table, 1000);
    const three = ['a', 'b', 'c'].map((name) => ({ name, store: storeOn(table), got: [] as string[] }));
    await Promise.all(three.map((instance) => instance.store.start()));
    await Promise.all(
      three.map(async (instance) => {
        for (;;) {
          const claimed = await instance.store.claim(instance.name, ['sensor-1'], 37, LONG_LEASE_MS);
          if (claimed.length === 0) return;
          claimed.length.should.be.belowOrEqual(37);
          instance.got.push(...ids(claimed));
        }
      }),
    );
    const claimedIds = three.flatMap((instance) => instance.got);
    claimedIds.length.should.equal(1000); // no record twice
    new Set(claimedIds).size.should.equal(1000);
    [...claimedIds].sort().should.eql([...all].sort());
    for (const instance of three) instance.got.length.should.be.above(0);

    const holders = await three[0].store.holders(all);
    holders.size.should.equal(1000);
    for (const instance of three) for (const id of instance.got) holders.get(id)!.should.equal(instance.name);
    (await three[0].store.stats()).should.containEql({ records: 1000, pending: 1000, leased: 1000 });
  });

  it('heartbeats keep the leases; without them the leases run out and another instance with the owner takes over (one without it does not)', async () => {
    const table = newTable();
    const fed = await feed(table, 10);
    const [a, b, c] = [storeOn(table), storeOn(table), storeOn(table)];
    await Promise.all([a.start(), b.start(), c.start()]);
    const leaseMs = 2_000;
    ids(await a.claim('a', ['sensor-1'], 100, leaseMs)).sort().should.eql([...fed].sort());

    // Renewed back to back for more than two lease times: B never gets one.
    const renewedUntil = Date.now() + 2 * leaseMs + 200;
    while (Date.now() < renewedUntil) {
      (await a.heartbeat('a', leaseMs)).should.equal(10);
      (await b.claim('b', ['sensor-1'], 100, leaseMs)).should.have.length(0);
    }

    // A stops heartbeating (its process died): B, which has the node, takes all ten; C, which has not, none.
    const takenByB: string[] = [];
    await until('B to take over the expired leases', async () => {
      (await c.claim('c', ['sensor-2'], 100, leaseMs)).should.have.length(0);
      takenByB.push(...ids(await b.claim('b', ['sensor-1'], 100, leaseMs)));
      return takenByB.length === 10;
    });
    takenByB.sort().should.eql([...fed].sort());
    (await a.heartbeat('a', leaseMs)).should.equal(0); // A learns it holds nothing
    [...(await a.holders(fed)).values()].should.eql(Array(10).fill('b'));
  });

  it('only the lease holder commits a final, once; after a takeover, two racing holders: exactly one wins', async () => {
    const table = newTable();
    const [id] = await feed(table, 1);
    const [a, b] = [storeOn(table), storeOn(table)];
    await Promise.all([a.start(), b.start()]);
    (await a.claim('a', ['sensor-1'], 1, SHORT_LEASE_MS)).should.have.length(1);
    (await b.markFinal(id, 'b', final)).should.be.false(); // not the holder
    (await b.saveSpec(id, 'b', wait(id).spec)).should.be.false();

    await until('B to take the wait over', async () => (await b.claim('b', ['sensor-1'], 1, LONG_LEASE_MS)).length === 1);
    // A still believes it holds the wait: both end it at the same moment.
    const results = await Promise.all([a.markFinal(id, 'a', final), b.markFinal(id, 'b', final)]);
    results.should.eql([false, true]);
    (await b.markFinal(id, 'b', final)).should.be.false(); // once
    (await a.saveSpec(id, 'a', wait(id).spec)).should.be.false();
    (await b.saveSpec(id, 'b', wait(id).spec)).should.be.true();
    (await b.stats()).should.containEql({ pending: 0, delivering: 1 });
  });

  it('progress of many waits in a few statements: only those the instance holds live are saved, the others named', async () => {
    const table = newTable();
    const fed = await feed(table, 2 * PROGRESS_BATCH + 1);
    const [a, b] = [storeOn(table), storeOn(table)];
    await Promise.all([a.start(), b.start()]);
    (await a.claim('a', ['sensor-1'], fed.length - 1, LONG_LEASE_MS)).should.have.length(fed.length - 1);
    const [bHolds] = ids(await b.claim('b', ['sensor-1'], 1, LONG_LEASE_MS));
    should(fed).containEql(bHolds);
    const moved = (id: string) => ({ ...wait(id).spec, polls: 7 });

    const before = (await a.stats()).statements;
    const saved = await a.saveSpecs([...fed, 'not-there'].map(moved), 'a');
    (await a.stats()).statements.should.equal(before + 3 + 1); // three batches, then stats() itself
    [...saved].sort().should.eql(fed.filter((id) => id !== bHolds).sort());
    const polls = await admin.query(`SELECT (spec->>'polls')::int AS polls, count(*)::int AS n FROM public.${table} GROUP BY 1 ORDER BY 1`);
    polls.rows.should.eql([{ polls: 0, n: 1 }, { polls: 7, n: fed.length - 1 }]);
    (await b.saveSpecs([moved(fed[0])], 'b')).size.should.equal(0); // held by A
    (await b.saveSpecs([], 'b')).size.should.equal(0);

    // A's leases run out: nothing of its progress is saved any more.
    (await a.heartbeat('a', SHORT_LEASE_MS)).should.equal(fed.length - 1);
    const live = async () => (await admin.query(`SELECT count(*)::int AS n FROM public.${table} WHERE lease_holder = 'a' AND lease_until >= now()`)).rows[0].n;
    await until('A\'s leases to run out', async () => (await live()) === 0);
    (await a.saveSpecs(fed.slice(0, 5).map(moved), 'a')).size.should.equal(0);
  });

  it('a record whose holder died between committing the final and removing it is claimed back with its final (a redelivery)', async () => {
    const table = newTable();
    const [id] = await feed(table, 1);
    const [a, b] = [storeOn(table), storeOn(table)];
    await Promise.all([a.start(), b.start()]);
    await a.claim('a', ['sensor-1'], 1, LONG_LEASE_MS);
    (await a.markFinal(id, 'a', final)).should.be.true();
    // Its last heartbeat, then A dies before delivering: no more heartbeats, no remove.
    (await a.heartbeat('a', SHORT_LEASE_MS)).should.equal(1);
    const [back] = await until('B to claim the delivering record', async () => {
      const claimed = await b.claim('b', ['sensor-1'], 1, LONG_LEASE_MS);
      return claimed.length === 1 ? claimed : null;
    });
    back.state.should.equal('delivering');
    should(back.final).eql(final);
    back.message.should.eql(wait(id).message);
    back.spec.should.eql(wait(id).spec);
    (await b.markFinal(id, 'b', final)).should.be.false(); // the final was committed already
    (await b.remove(id)).should.be.true();
    (await b.stats()).records.should.equal(0);
  });

  it('release() and close() end the leases at once: another instance claims without waiting for them to run out', async () => {
    const table = newTable();
    await feed(table, 5);
    const [a, b] = [storeOn(table), storeOn(table)];
    await Promise.all([a.start(), b.start()]);
    (await a.claim('a', ['sensor-1'], 3, LONG_LEASE_MS)).should.have.length(3);
    (await a.claim('a2', ['sensor-1'], 2, LONG_LEASE_MS)).should.have.length(2);
    (await b.claim('b', ['sensor-1'], 10, LONG_LEASE_MS)).should.have.length(0);
    (await a.release('a')).should.equal(3);
    (await b.claim('b', ['sensor-1'], 10, LONG_LEASE_MS)).should.have.length(3);
    await a.close(); // releases 'a2' too
    (await b.claim('b', ['sensor-1'], 10, LONG_LEASE_MS)).should.have.length(2);
  });

  it('put: leased by the instance that accepted it, idempotent for it, refused for an id another instance holds; removeOwners removes deleted nodes\' work', async () => {
    const table = newTable();
    const [a, b] = [storeOn(table), storeOn(table)];
    await Promise.all([a.start(), b.start()]);
    await a.put(wait('x'), 'a', LONG_LEASE_MS);
    await a.put(wait('x'), 'a', LONG_LEASE_MS); // a retry after a lost answer
    const refused = await b.put(wait('x'), 'b', LONG_LEASE_MS).then(() => null, (e: unknown) => e as VectorStoreError);
    should(refused).be.instanceOf(VectorStoreError);
    refused!.code.should.equal('INVALID_INPUT');
    refused!.message.should.match(/Wait x .*held by another instance/);
    (await a.holders(['x', 'nothing'])).should.eql(new Map([['x', 'a']]));
    (await b.claim('b', ['sensor-1'], 10, LONG_LEASE_MS)).should.have.length(0);

    await a.put(wait('y', 'sensor-2'), 'a', LONG_LEASE_MS);
    await a.put(wait('z', 'sensor-3'), 'a', LONG_LEASE_MS);
    (await b.removeOwners(['sensor-2', 'sensor-3'])).should.equal(2);
    (await b.stats()).records.should.equal(1);
    (await b.remove('x')).should.be.true();
    (await b.remove('x')).should.be.false();

    const nul = await a.put({ ...wait('n'), message: { text: 'a\u0000b' } }, 'a', LONG_LEASE_MS).then(() => null, (e: unknown) => e as VectorStoreError);
    should(nul).be.instanceOf(VectorStoreError);
    nul!.should.containEql({ code: 'INVALID_INPUT', transient: false });
    nul!.message.should.match(/NUL characters/);
    const noLease = await a.heartbeat('a', Number.NaN).then(() => null, (e: unknown) => e as VectorStoreError);
    should(noLease).be.instanceOf(VectorStoreError);
    noLease!.message.should.match(/lease must be a positive number of milliseconds, not NaN/);
  });

  it('an ingest job is kept beside the waits, as kind "ingest-job", and read back with its spec', async () => {
    const table = newTable();
    const [a, b] = [storeOn(table), storeOn(table)];
    await Promise.all([a.start(), b.start()]);
    const job: JobRecord = {
      ownerId: 'ingest-1',
      spec: createIngestJobSpec({
        jobId: 'job-1', collection: 'docs', spool: 'job-1.jsonl', documents: 10, chunks: 10, batches: 1,
        createCollection: true, buildIndex: false, startedAt: T0, offset: 0, spoolMs: 1,
      }),
      message: { topic: 'big ingest' },
    };
    await a.put(job, 'a', LONG_LEASE_MS);
    await a.put(wait('w'), 'a', LONG_LEASE_MS);
    const kinds = await admin.query(`SELECT id, kind FROM public.${table} ORDER BY id`);
    kinds.rows.should.eql([{ id: job.spec.waitId, kind: 'ingest-job' }, { id: 'w', kind: 'wait' }]);
    await a.release('a');
    const [back] = await b.claim('b', ['ingest-1'], 10, LONG_LEASE_MS);
    back.should.containEql({ ownerId: 'ingest-1', state: 'pending', message: { topic: 'big ingest' } });
    back.spec.should.eql(job.spec);
  });

  it('a record of a format this version cannot read stays in the table, unheld, reported once', async () => {
    const table = newTable();
    const warnings: string[] = [];
    const store = storeOn(table, warnings);
    await store.start();
    await feed(table, 2);
    await admin.query(
      `INSERT INTO public.${table} (id, kind, owner_id, spec, message) VALUES ('future', 'wait', 'sensor-1', '{"v": 99, "waitId": "future"}', '{}')`,
    );
    ids(await store.claim('a', ['sensor-1'], 10, LONG_LEASE_MS)).sort().should.eql(['w0', 'w1']);
    await store.release('a');
    ids(await store.claim('a', ['sensor-1'], 10, LONG_LEASE_MS)).sort().should.eql(['w0', 'w1']);
    warnings.should.have.length(1);
    warnings[0].should.match(/Wait future .*cannot be read by this version/).and.match(/left in the table/);
    (await store.holders(['future'])).size.should.equal(0); // free for an instance that reads it
    (await store.stats()).should.containEql({ records: 3, unreadable: 1 });
  });

  it('a table locked by another session: calls end at the deadline as transient TIMEOUTs, and work once the lock is gone', async () => {
    const table = newTable();
    await feed(table, 3);
    const store = storeOn(table, [], 'public', 300);
    await store.start();
    const locker = await admin.connect();
    try {
      await locker.query('BEGIN');
      await locker.query(`LOCK TABLE public.${table} IN ACCESS EXCLUSIVE MODE`);
      for (const call of [() => store.claim('a', ['sensor-1'], 10, LONG_LEASE_MS), () => store.heartbeat('a', LONG_LEASE_MS), () => store.stats()]) {
        const err = await call().then(() => null, (e: unknown) => e as VectorStoreError);
        should(err).be.instanceOf(VectorStoreError);
        err!.should.containEql({ code: 'TIMEOUT', transient: true });
        err!.message.should.match(/did not answer within 0\.3 s/).and.match(/statement_timeout|lock_timeout/);
      }
    } finally {
      await locker.query('ROLLBACK');
      locker.release();
    }
    (await store.claim('a', ['sensor-1'], 10, LONG_LEASE_MS)).should.have.length(3);
  });

  it('the database restarted mid-run: calls fail as transient meanwhile, then work again, and nothing is lost', async () => {
    const table = newTable();
    const fed = await feed(table, 20);
    const [a, b] = [storeOn(table), storeOn(table)];
    await Promise.all([a.start(), b.start()]);
    (await a.claim('a', ['sensor-1'], 10, LONG_LEASE_MS)).should.have.length(10);
    await server.halt();
    try {
      for (const call of [() => a.heartbeat('a', LONG_LEASE_MS), () => b.claim('b', ['sensor-1'], 10, LONG_LEASE_MS), () => a.stats()]) {
        const err = await call().then(() => null, (e: unknown) => e as VectorStoreError);
        should(err).be.instanceOf(VectorStoreError);
        err!.transient.should.be.true();
        err!.message.should.match(/PostgreSQL job store at 127\.0\.0\.1:\d+\/postgres/);
      }
    } finally {
      await server.resume();
    }
    const renewed = await until('the heartbeat to work again', () => a.heartbeat('a', LONG_LEASE_MS).catch(() => null));
    renewed.should.equal(10);
    const rest = ids(await b.claim('b', ['sensor-1'], 100, LONG_LEASE_MS));
    rest.should.have.length(10);
    (await b.stats()).should.containEql({ records: 20, pending: 20, leased: 20 });
    const holders = await b.holders(fed);
    holders.size.should.equal(20);
  });
});

describe('PostgreSQL job store errors (what pg throws, as a server echoing the password would throw it: stub errors)', () => {
  const PASSWORD = 'Sup3r-Secret-Pw';
  const context = { where: 'db.example:5432/flows', password: PASSWORD, callTimeoutMs: 2000, doing: 'claiming waits' };
  const pgError = (code: string, message: string): Error => Object.assign(new Error(message), { code });

  it('a refused login is AUTH, not transient, names the settings to check, and never shows the password', () => {
    const err = toJobStoreError(pgError('28P01', `password authentication failed for user "nodered" (tried ${PASSWORD})`), context);
    err.should.containEql({ code: 'AUTH', transient: false });
    err.message.should.match(/db\.example:5432\/flows rejected the login while claiming waits/).and.match(/VECTOR_PIPELINE_JOB_STORE_PASSWORD/);
    err.message.should.not.containEql(PASSWORD);
    String((err.cause as Error).message).should.not.containEql(PASSWORD);
  });

  it('connection problems and a server shutting down are transient', () => {
    for (const thrown of [pgError('ECONNREFUSED', 'connect ECONNREFUSED 10.0.0.5:5432'), pgError('57P01', 'terminating connection due to administrator command'), new Error('Connection terminated unexpectedly')]) {
      toJobStoreError(thrown, context).should.containEql({ code: 'UNAVAILABLE', transient: true });
    }
    toJobStoreError(pgError('42P07', 'relation already exists'), context).should.containEql({ code: 'INTERNAL', transient: false });
  });
});
