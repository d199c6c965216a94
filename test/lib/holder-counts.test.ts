// Who holds the shared waits: the grouped count on a real PostgreSQL 15 (live leases,
// leases released or run out, other owners and ingest jobs left out), the cache every
// sensor status and the sidebar read through (one query at a time, at most one per
// max age), the short names of instances, and what the triggerer exposes.
import should from 'should';
import { HolderCounts, shortHolder, type HolderCount } from '../../lib/job-stores/holder-counts';
import { PostgresJobStore } from '../../lib/job-stores/postgres';
import { SharedWorkStore } from '../../lib/job-stores/shared-work';
import { createIngestJobSpec } from '../../lib/ingest-job/spec';
import { createTriggerSpec } from '../../lib/trigger';
import { Triggerer } from '../../lib/triggerer';
import type { JobRecord, WaitRecord } from '../../lib/wait-store';
import { POSTGRES_MISSING, jobStoreSettingsOn, postgresBinaries, startPostgresServer, type PostgresServer } from '../support/postgres-server';
import { until } from '../support/until';

const LONG_LEASE_MS = 60_000;
const SHORT_LEASE_MS = 300;
const T0 = Date.UTC(2026, 0, 1);

const wait = (id: string, ownerId: string, collection = 'docs'): WaitRecord => ({
  ownerId,
  spec: createTriggerSpec({ waitId: id, collection, expectedCount: 10, pollIntervalMs: 1000, maxPollIntervalMs: 5000, timeoutMs: 600_000, now: T0 }),
  message: { topic: id },
});

/** Rows in a stable order, for comparing. */
const sorted = (rows: HolderCount[]): HolderCount[] =>
  [...rows].sort((x, y) => `${x.ownerId}/${x.collection}/${x.holder}`.localeCompare(`${y.ownerId}/${y.collection}/${y.holder}`));

describe('holder counts: the cache', () => {
  /** A read that answers when told to, counting its calls and the owners asked. */
  function controlledRead() {
    const calls: string[][] = [];
    const pending: Array<{ resolve: (rows: HolderCount[]) => void; reject: (err: Error) => void }> = [];
    return {
      calls,
      answer(rows: HolderCount[]) {
        pending.shift()!.resolve(rows);
      },
      fail(err: Error) {
        pending.shift()!.reject(err);
      },
      read: (ownerIds: string[]) => {
        calls.push([...ownerIds].sort());
        return new Promise<HolderCount[]>((resolve, reject) => pending.push({ resolve, reject }));
      },
    };
  }
  const row = (ownerId: string, holder: string | null, count: number): HolderCount => ({ ownerId, collection: 'docs', holder, count });

  it('callers share the query in flight and its answer until it is maxAge old; each gets only its owners', async () => {
    let now = 1000;
    const source = controlledRead();
    const counts = new HolderCounts({ read: source.read, maxAgeMs: 3000, now: () => now });
    const first = counts.get(['a']);
    const again = counts.get(['a']);
    source.answer([row('a', 'x', 2)]);
    should(await first).eql([row('a', 'x', 2)]);
    should(await again).eql([row('a', 'x', 2)]);
    should(source.calls).eql([['a']]);
    now += 2999;
    should(await counts.get(['a'])).eql([row('a', 'x', 2)]);
    should(source.calls.length).equal(1);
    now += 1;
    const fresh = counts.get(['a']);
    source.answer([row('a', 'y', 1)]);
    should(await fresh).eql([row('a', 'y', 1)]);
    should(source.calls.length).equal(2);
  });

  it('an owner not in the query in flight waits for it, then one query reads every owner asked about lately', async () => {
    let now = 1000;
    const source = controlledRead();
    const counts = new HolderCounts({ read: source.read, maxAgeMs: 3000, now: () => now });
    const a = counts.get(['a']);
    const b = counts.get(['b']);
    const c = counts.get(['c']);
    should(source.calls).eql([['a']]); // one query at a time
    source.answer([row('a', 'x', 1)]);
    await a;
    await until('the second query', async () => source.calls.length === 2);
    should(source.calls[1]).eql(['a', 'b', 'c']);
    source.answer([row('a', 'x', 1), row('b', 'y', 2), row('c', null, 3)]);
    should(await b).eql([row('b', 'y', 2)]);
    should(await c).eql([row('c', null, 3)]);
    should(source.calls.length).equal(2);
    // Owners nobody asks about any more drop out of the query.
    now += 20_000;
    const later = counts.get(['c']);
    should(source.calls[2]).eql(['c']);
    source.answer([row('c', null, 3)]);
    should(await later).eql([row('c', null, 3)]);
  });

  it('a failure is each caller\'s to handle, kept maxAge long (a database away is not asked again at once)', async () => {
    let now = 1000;
    const source = controlledRead();
    const counts = new HolderCounts({ read: source.read, maxAgeMs: 3000, now: () => now });
    const first = counts.get(['a']);
    source.fail(new Error('database away'));
    await should(first).be.rejectedWith('database away');
    await should(counts.get(['a'])).be.rejectedWith('database away');
    should(source.calls.length).equal(1);
    now += 3000;
    const retry = counts.get(['a']);
    source.answer([]);
    should(await retry).eql([]);
  });
});

describe('holder counts: short instance names', () => {
  const a1 = 'host-a:1234:0123abcd';
  const a2 = 'host-a:5678:89abcdef';
  const b = 'host-b.example:1:deadbeef';

  it('the host name alone when no other instance has that host name', () => {
    should(shortHolder(a1, [a1, b, null])).equal('host-a');
    should(shortHolder(b, [a1, b])).equal('host-b.example');
    should(shortHolder(a1)).equal('host-a');
  });

  it('host:pid when two instances share a host name; the whole name when even the pids agree', () => {
    should(shortHolder(a1, [a1, a2, b])).equal('host-a:1234');
    should(shortHolder(a2, [a1, a2])).equal('host-a:5678');
    const twin = 'host-a:1234:ffffffff';
    should(shortHolder(a1, [a1, twin])).equal(a1);
  });

  it('a name of another form is shown as it is', () => {
    should(shortHolder('instance-a', ['instance-b'])).equal('instance-a');
    should(shortHolder('a:b:c')).equal('a:b:c');
  });
});

describe('holder counts on PostgreSQL (real PostgreSQL 15)', function () {
  this.timeout(60_000);
  let server: PostgresServer;
  let tables = 0;
  const closers: Array<() => Promise<void>> = [];

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

  const storeOn = (table: string): PostgresJobStore => {
    const store = new PostgresJobStore({
      settings: jobStoreSettingsOn(server, table),
      callTimeoutMs: 5_000,
    });
    closers.push(() => store.close());
    return store;
  };

  it('one grouped count per owner, collection and live holder: released and run-out leases count as unheld; other owners and ingest jobs are left out', async () => {
    const table = `holders_${++tables}`;
    const [a, b, c] = [storeOn(table), storeOn(table), storeOn(table)];
    await Promise.all([a.start(), b.start(), c.start()]);
    for (let i = 0; i < 3; i++) await a.put(wait(`a${i}`, 'sensor-1'), 'host-a:1:00000000', LONG_LEASE_MS);
    await a.put(wait('a-other', 'sensor-1', 'other'), 'host-a:1:00000000', LONG_LEASE_MS);
    for (let i = 0; i < 5; i++) await b.put(wait(`b${i}`, 'sensor-1'), 'host-b:2:11111111', LONG_LEASE_MS);
    await b.put(wait('b-2', 'sensor-2'), 'host-b:2:11111111', LONG_LEASE_MS);
    await b.put(wait('not-asked', 'sensor-3'), 'host-b:2:11111111', LONG_LEASE_MS);
    // Released: nobody holds it until the next claim.
    await c.put(wait('released', 'sensor-1'), 'host-c:3:22222222', LONG_LEASE_MS);
    await c.release('host-c:3:22222222');
    // A lease that runs out (its holder died) counts as unheld too, by the database's clock.
    await c.put(wait('ran-out', 'sensor-1'), 'host-d:4:33333333', SHORT_LEASE_MS);
    const job: JobRecord = {
      ownerId: 'sensor-1', // not a real pairing, but a job must never count as a wait
      spec: createIngestJobSpec({
        jobId: 'job-1', collection: 'docs', spool: 'job-1.jsonl', documents: 10, chunks: 10, batches: 1,
        createCollection: true, buildIndex: false, startedAt: T0, offset: 0, spoolMs: 1,
      }),
      message: {},
    };
    await c.put(job, 'host-c:3:22222222', LONG_LEASE_MS);
    const expected = sorted([
      { ownerId: 'sensor-1', collection: 'docs', holder: 'host-a:1:00000000', count: 3 },
      { ownerId: 'sensor-1', collection: 'other', holder: 'host-a:1:00000000', count: 1 },
      { ownerId: 'sensor-1', collection: 'docs', holder: 'host-b:2:11111111', count: 5 },
      { ownerId: 'sensor-1', collection: 'docs', holder: null, count: 2 },
      { ownerId: 'sensor-2', collection: 'docs', holder: 'host-b:2:11111111', count: 1 },
    ]);
    await until('the short lease to run out', async () => {
      const rows = sorted(await a.holderCounts(['sensor-1', 'sensor-2']));
      return JSON.stringify(rows) === JSON.stringify(expected) ? rows : null;
    });
    should(await a.holderCounts([])).eql([]);
  });

  it('the shared work store answers through its cache and names the holder of one wait; the triggerer exposes it only when shared', async () => {
    const table = `holders_${++tables}`;
    const other = storeOn(table);
    await other.start();
    const shared = new SharedWorkStore({ store: storeOn(table), instanceId: 'here:1:aaaaaaaa', leaseMs: LONG_LEASE_MS, heartbeatMs: 10_000, capacity: 100 });
    const triggerer = new Triggerer({ waitStore: shared });
    closers.push(() => triggerer.close());
    await triggerer.start();
    should(triggerer.sharedWork).equal(shared);
    should(shared.instanceId).equal('here:1:aaaaaaaa');
    await shared.put(wait('mine', 'sensor-1'));
    await other.put(wait('theirs', 'sensor-1'), 'there:2:bbbbbbbb', LONG_LEASE_MS);
    should(sorted(await shared.holderCounts(['sensor-1']))).eql(sorted([
      { ownerId: 'sensor-1', collection: 'docs', holder: 'here:1:aaaaaaaa', count: 1 },
      { ownerId: 'sensor-1', collection: 'docs', holder: 'there:2:bbbbbbbb', count: 1 },
    ]));
    should(await shared.holderOf('theirs')).equal('there:2:bbbbbbbb');
    should(await shared.holderOf('mine')).equal('here:1:aaaaaaaa');
    should(await shared.holderOf('nowhere')).be.null();

    const fileMode = new Triggerer({});
    closers.push(() => fileMode.close());
    should(fileMode.sharedWork).be.null();
  });
});
