// A runtime holding many waits that all move keeps its leases while its progress writes
// are slow (real PostgreSQL 15; the progress write is the real one, delayed in proportion
// to its rows by a test double around it, as a loaded database would be): the heartbeat
// renews on time, counted from the last renewal, and progress goes in bounded steps, so
// another live runtime with the same node never takes the waits over.
import should from 'should';
import { createTriggerSpec, type TriggerSpec } from '../../lib/trigger';
import { PostgresJobStore } from '../../lib/job-stores/postgres';
import { SharedWorkStore } from '../../lib/job-stores/shared-work';
import type { DurableRecord } from '../../lib/wait-store';
import { POSTGRES_MISSING, postgresBinaries, startPostgresServer, type PostgresServer, jobStoreSettingsOn } from '../support/postgres-server';

const LEASE_MS = 2_000;
const HEARTBEAT_MS = 400;
const WAITS = 2_000;
/** The slow database: each row of a progress write costs this long (2,000 rows: 3 s, past the lease). */
const MS_PER_PROGRESS_ROW = 1.5;

describe('shared work: the heartbeat under slow progress writes (real PostgreSQL 15, progress writes slowed by a test double)', function () {
  this.timeout(90_000);
  let server: PostgresServer;
  const closers: Array<() => Promise<unknown>> = [];

  before(async function () {
    if (!postgresBinaries()) {
      console.log(`      skipped: ${POSTGRES_MISSING}`);
      this.skip();
    }
    server = await startPostgresServer();
  });
  after(async () => {
    for (const close of closers.splice(0).reverse()) await close().catch(() => undefined);
    await server?.stop();
  });

  it('2,000 moving waits: their runtime renews its leases in time, and the other live runtime claims none', async () => {
    const record = (i: number): DurableRecord & { spec: TriggerSpec } => ({
      ownerId: 'sensor-1',
      spec: createTriggerSpec({ waitId: `w-${i}`, collection: 'docs', pollIntervalMs: 1000, maxPollIntervalMs: 1000, timeoutMs: 600_000 }),
      message: { topic: `t-${i}` },
    });
    const storeA = new PostgresJobStore({ settings: jobStoreSettingsOn(server, 'heartbeat_test'), callTimeoutMs: 10_000 });
    const realSave = storeA.saveSpecs.bind(storeA);
    storeA.saveSpecs = async (specs, instanceId) => {
      await new Promise((r) => setTimeout(r, specs.length * MS_PER_PROGRESS_ROW));
      return realSave(specs, instanceId);
    };
    const a = new SharedWorkStore({ store: storeA, instanceId: 'instance-a', leaseMs: LEASE_MS, heartbeatMs: HEARTBEAT_MS, capacity: 10_000, progressPerTick: 200 });
    const droppedByA: string[] = [];
    a.bind({ owners: () => ['sensor-1'], adopt: () => undefined, drop: (ids) => droppedByA.push(...ids) });
    closers.push(() => a.close());
    await a.load();
    const records = Array.from({ length: WAITS }, (_, i) => record(i));
    // A few at a time: the heartbeat's own statements are not queued behind thousands of saves.
    for (let i = 0; i < records.length; i += 20) await Promise.all(records.slice(i, i + 20).map((r) => a.put(r)));

    // B, live, with the same node deployed: it claims whatever lease runs out.
    const storeB = new PostgresJobStore({ settings: jobStoreSettingsOn(server, 'heartbeat_test'), callTimeoutMs: 10_000 });
    const b = new SharedWorkStore({ store: storeB, instanceId: 'instance-b', leaseMs: LEASE_MS, heartbeatMs: HEARTBEAT_MS, capacity: 10_000 });
    const claimedByB: string[] = [];
    b.bind({ owners: () => ['sensor-1'], adopt: (claimed) => claimedByB.push(...claimed.map((r) => r.spec.waitId)), drop: () => undefined });
    closers.push(() => b.close());
    await b.load();

    // Every wait moves every 100 ms for 8 s (four leases).
    for (let t = 0; t < 80; t++) {
      for (const r of records) {
        r.spec.polls += 1;
        a.update(r);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    should(claimedByB).have.length(0);
    should(droppedByA).have.length(0);
  });
});
