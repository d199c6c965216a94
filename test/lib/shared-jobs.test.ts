// Background ingest jobs shared by two runtimes through PostgreSQL (real PostgreSQL 15):
// the job's documents are spooled in the database (PostgresSpools), so when the runtime
// running a job dies mid-job, the other one claims it after the lease, resumes at the
// first unfinished batch from the database spool, and ends it once. Real memory backend
// (shared by its volatile key, as several processes share a real store), hash embedder.
import should from 'should';
import type * as Pg from 'pg';
import { MemoryBackend } from '../../lib/backends/memory';
import { HashEmbedder } from '../../lib/embedders/hash';
import { newWaitId } from '../../lib/ids';
import { spoolIngestJob } from '../../lib/ingest-job/prepare';
import type { JobEvent } from '../../lib/ingest-job/run';
import type { JobSuccessPayload } from '../../lib/ingest-job/spec';
import { PostgresJobStore } from '../../lib/job-stores/postgres';
import { PostgresSpools } from '../../lib/job-stores/spool-table';
import { SharedWorkStore } from '../../lib/job-stores/shared-work';
import { Triggerer, type JobRecord, type WaitOwner } from '../../lib/triggerer';
import type { Embedder } from '../../lib/types';
import { POSTGRES_MISSING, postgresBinaries, startPostgresServer, type PostgresServer, jobStoreSettingsOn } from '../support/postgres-server';
import { until } from '../support/until';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Client } = require('pg') as typeof Pg;

const LEASE_MS = 600;
const HEARTBEAT_MS = 100;

/** Counts each text embedded; `gate` may hold a call (to stop a runtime mid-job). */
class CountingEmbedder implements Embedder {
  readonly name = 'hash';
  readonly inner = new HashEmbedder(16);
  embedded = new Map<string, number>();
  calls = 0;
  gate: (call: number) => Promise<void> | void = () => undefined;
  get dimensions(): number {
    return 16;
  }
  async embed(texts: string[]): Promise<Float32Array[]> {
    this.calls += 1;
    await this.gate(this.calls);
    for (const t of texts) this.embedded.set(t, (this.embedded.get(t) ?? 0) + 1);
    return this.inner.embed(texts);
  }
}

describe('ingest jobs shared through PostgreSQL (real PostgreSQL 15)', function () {
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

  function runtime(name: string, tableName: string, removalGraceMs = 20, leaseMs = LEASE_MS, heartbeatMs = HEARTBEAT_MS) {
    const store = new PostgresJobStore({
      settings: jobStoreSettingsOn(server, tableName),
      callTimeoutMs: 5_000,
    });
    const shared = new SharedWorkStore({ store, instanceId: name, leaseMs, heartbeatMs, capacity: 1000 });
    const spools = new PostgresSpools(store);
    const triggerer = new Triggerer({ waitStore: shared, spools, removalGraceMs });
    closers.push(() => triggerer.close());
    return { triggerer, shared, spools };
  }

  async function count(sql: string): Promise<number> {
    const client = new Client({ host: '127.0.0.1', port: server.port, user: 'postgres', database: 'postgres' });
    await client.connect();
    try {
      return Number((await client.query(sql)).rows[0].n);
    } finally {
      await client.end();
    }
  }

  const texts = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `doc-${i}`, text: `document number ${i} about vectors` }));

  it('spools in the database: batches read back from any offset, the header, and nothing left after remove', async () => {
    const name = `jobs_${++table}`;
    const { triggerer, spools } = runtime('instance-a', name);
    await triggerer.start();
    const backend = new MemoryBackend({ dataDir: null, volatileKey: `shared-jobs-${table}`, indexingRate: 1e9, indexingDelay: 0 });
    closers.push(() => backend.close());
    const { spec } = await spoolIngestJob({ backend, embedder: new HashEmbedder(16) }, texts(25), spools, {
      jobId: newWaitId(),
      collection: 'docs',
      batchSize: 10,
      createCollection: true,
      buildIndex: true,
    });
    should(spec.batches).equal(3);
    const header = await spools.header(spec.spool);
    should(header.ids).eql(texts(25).map((t) => t.id));
    const reader = spools.reader(spec.spool, spec.offset);
    const sizes: number[] = [];
    let offset = spec.offset;
    for (let next = await reader.next(); next; next = await reader.next()) {
      sizes.push(next.batch.docs.length);
      offset = next.nextOffset;
    }
    await reader.close();
    should(sizes).eql([10, 10, 5]);
    // From the offset after the first batch: the other two only.
    const later = spools.reader(spec.spool, spec.offset + 1);
    const rest: number[] = [];
    for (let next = await later.next(); next; next = await later.next()) rest.push(next.batch.docs.length);
    await later.close();
    should(rest).eql([10, 5]);
    should(offset).be.above(spec.offset);
    await spools.remove(spec.spool);
    should(await count(`SELECT count(*) AS n FROM public.${name}_spool`)).equal(0);
  });

  it('a spool write that fails midway (after its first 500 rows went in) leaves nothing; the retry under the same name is whole', async () => {
    const name = `jobs_${++table}`;
    const { triggerer, spools } = runtime('instance-a', name);
    await triggerer.start();
    const header = { v: 1 as const, jobId: 'job-x', collection: 'docs', documents: 600, chunks: 600, batches: 600, ids: texts(600).map((t) => t.id) };
    function* batches(failAt: number) {
      for (let i = 0; i < 600; i++) {
        if (i === failAt) throw new Error('the documents could not be prepared');
        yield { docs: [{ id: `doc-${i}`, text: `document ${i}`, vector: [i] }] } as never;
      }
    }
    const failed = await spools.write('spool-x', header, batches(550)).then(() => null, (e: Error) => e);
    should(failed?.message).match(/Nothing was written: send the message again/);
    should(await count(`SELECT count(*) AS n FROM public.${name}_spool`)).equal(0);
    await spools.write('spool-x', header, batches(-1));
    should(await count(`SELECT count(*) AS n FROM public.${name}_spool`)).equal(601);
    should((await spools.header('spool-x')).ids).have.length(600);
  });

  it('the runtime running a job dies mid-job: the other resumes it from the database spool after the lease and ends it once', async () => {
    const name = `jobs_${++table}`;
    const a = runtime('instance-a', name);
    const b = runtime('instance-b', name);
    const backendA = new MemoryBackend({ dataDir: null, volatileKey: `shared-jobs-${table}`, indexingRate: 1e9, indexingDelay: 0 });
    const backendB = new MemoryBackend({ dataDir: null, volatileKey: `shared-jobs-${table}`, indexingRate: 1e9, indexingDelay: 0 });
    closers.push(() => backendA.close(), () => backendB.close());
    const embedderA = new CountingEmbedder();
    const embedderB = new CountingEmbedder();
    const finals: Array<{ by: string; payload: JobSuccessPayload; redelivered: boolean }> = [];
    const owner = (by: string, backend: MemoryBackend, embedder: Embedder): WaitOwner => ({
      backend,
      embedder,
      storeKey: 'store-1',
      onEvent(_record, event) {
        const e = event as JobEvent;
        if (e.type === 'final') finals.push({ by, payload: e.payload as JobSuccessPayload, redelivered: e.redelivered === true });
      },
    });
    // A stops for good at its fourth embedding call (three batches written).
    let stopA!: () => void;
    const stoppedA = new Promise<void>((resolve) => (stopA = resolve));
    embedderA.gate = (call) => (call >= 4 ? (stopA(), new Promise<void>(() => undefined)) : undefined);
    a.triggerer.attach('ingest-1', owner('a', backendA, embedderA));
    b.triggerer.attach('ingest-1', owner('b', backendB, embedderB));
    await a.triggerer.start();
    await b.triggerer.start();
    const { spec, batches } = await spoolIngestJob({ backend: backendA, embedder: embedderA }, texts(100), a.spools, {
      jobId: newWaitId(),
      collection: 'docs',
      batchSize: 10,
      createCollection: true,
      buildIndex: true,
    });
    const record: JobRecord = { ownerId: 'ingest-1', spec, message: { topic: 't' } };
    await a.triggerer.defer(record, { batches });
    await stoppedA;
    // A dies: no release, no more heartbeats; its lease runs out.
    await a.shared.abandon();
    await until('the job to end', async () => (finals.length > 0 ? true : null), 30_000);
    await new Promise((r) => setTimeout(r, 3 * LEASE_MS)); // room for a duplicate
    should(finals.map((f) => f.by)).eql(['b']);
    should(finals[0].payload).containEql({ status: 'success', ingested: 100, totalCount: 100 });
    should(finals[0].payload.resumed).be.above(0);
    // B embedded only what A had not written: from the fourth batch on.
    should(embedderB.embedded.size).equal(70);
    should((await backendB.stats('docs')).documentCount).equal(100);
    await until('the job and its spool to leave the tables', async () =>
      (await count(`SELECT count(*) AS n FROM public.${name}`)) + (await count(`SELECT count(*) AS n FROM public.${name}_spool`)) === 0 ? true : null,
    );
  });

  it('the runtime that ended a job dies after committing its final, before removing it: the other sends it again, flagged, with its ids', async () => {
    const name = `jobs_${++table}`;
    // A keeps the delivered record for a minute (its removal grace): it dies before removing it.
    const a = runtime('instance-a', name, 60_000);
    const b = runtime('instance-b', name);
    const backendA = new MemoryBackend({ dataDir: null, volatileKey: `shared-jobs-${table}`, indexingRate: 1e9, indexingDelay: 0 });
    const backendB = new MemoryBackend({ dataDir: null, volatileKey: `shared-jobs-${table}`, indexingRate: 1e9, indexingDelay: 0 });
    closers.push(() => backendA.close(), () => backendB.close());
    const finals: Array<{ by: string; payload: JobSuccessPayload; redelivered: boolean; ids: Promise<string[]> }> = [];
    // As the node does: the final's ids are read back from the spool when it is delivered.
    const owner = (by: string, backend: MemoryBackend, spools: PostgresSpools): WaitOwner => ({
      backend,
      embedder: new HashEmbedder(16),
      storeKey: 'store-1',
      onEvent(record, event) {
        const e = event as JobEvent;
        if (e.type !== 'final') return;
        const ids = spools.header((record as JobRecord).spec.spool).then((h) => h.ids);
        ids.catch(() => undefined);
        finals.push({ by, payload: e.payload as JobSuccessPayload, redelivered: e.redelivered === true, ids });
      },
    });
    a.triggerer.attach('ingest-1', owner('a', backendA, a.spools));
    await a.triggerer.start();
    const { spec, batches } = await spoolIngestJob({ backend: backendA, embedder: new HashEmbedder(16) }, texts(30), a.spools, {
      jobId: newWaitId(),
      collection: 'docs',
      batchSize: 10,
      createCollection: true,
      buildIndex: true,
    });
    await a.triggerer.defer({ ownerId: 'ingest-1', spec, message: { topic: 't' } } satisfies JobRecord, { batches });
    await until('A to end the job', async () => (finals.length > 0 ? true : null), 30_000);
    should(await count(`SELECT count(*) AS n FROM public.${name} WHERE state = 'delivering'`)).equal(1);
    await a.shared.abandon();
    // B starts after A died: it finds the committed final, leased to nobody once A's lease ran out.
    b.triggerer.attach('ingest-1', owner('b', backendB, b.spools));
    await b.triggerer.start();
    await until('B to send the final again', async () => (finals.length > 1 ? true : null), 30_000);
    await new Promise((r) => setTimeout(r, 3 * LEASE_MS)); // room for a third
    should(finals.map((f) => [f.by, f.redelivered])).eql([['a', false], ['b', true]]);
    should(finals[1].payload).containEql({ status: 'success', ingested: 30, totalCount: 30 });
    should(await finals[1].ids).eql(texts(30).map((t) => t.id));
    await until('the job and its spool to leave the tables', async () =>
      (await count(`SELECT count(*) AS n FROM public.${name}`)) + (await count(`SELECT count(*) AS n FROM public.${name}_spool`)) === 0 ? true : null,
    );
  });

  it('the database restarted mid-job: reading the spool and saving checkpoints are retried, the job goes on and ends once, nothing embedded twice', async () => {
    const name = `jobs_${++table}`;
    // A lease longer than the outage: the job stays here.
    const a = runtime('instance-a', name, 20, 20_000, 1_000);
    const backend = new MemoryBackend({ dataDir: null, volatileKey: `shared-jobs-${table}`, indexingRate: 1e9, indexingDelay: 0 });
    closers.push(() => backend.close());
    const embedder = new CountingEmbedder();
    // At the third batch the database goes away for two seconds.
    let restarted!: Promise<void>;
    embedder.gate = async (call) => {
      if (call !== 3) return;
      await server.halt();
      restarted = new Promise((resolve) => setTimeout(resolve, 2_000)).then(() => server.resume());
    };
    const finals: JobSuccessPayload[] = [];
    const details: string[] = [];
    a.triggerer.attach('ingest-1', {
      backend,
      embedder,
      storeKey: 'store-1',
      onEvent(_record, event) {
        const e = event as JobEvent;
        if (e.type === 'final') finals.push(e.payload as JobSuccessPayload);
        else if (e.payload.detail) details.push(e.payload.detail);
      },
    });
    await a.triggerer.start();
    const { spec, batches } = await spoolIngestJob({ backend, embedder: new HashEmbedder(16) }, texts(60), a.spools, {
      jobId: newWaitId(),
      collection: 'docs',
      batchSize: 10,
      createCollection: true,
      buildIndex: true,
    });
    await a.triggerer.defer({ ownerId: 'ingest-1', spec, message: { topic: 't' } } satisfies JobRecord, { batches });
    await until('the job to end', async () => (finals.length > 0 ? true : null), 45_000);
    await restarted;
    should(finals).have.length(1);
    should(finals[0]).containEql({ status: 'success', ingested: 60, totalCount: 60 });
    should(details.some((d) => /^retrying in/.test(d))).be.true();
    should([...embedder.embedded.values()].every((n) => n === 1)).be.true();
    should(embedder.embedded.size).equal(60);
  });
});
