/**
 * Ingest jobs run by the triggerer: spooled, run batch by batch with a durable
 * checkpoint after each, resumed after a stop or a new process at the first
 * unfinished batch, ended with one final. Real memory backend, real hash
 * embedder (wrapped to count the texts it embeds), real wait store on disk.
 */
import should from 'should';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MemoryBackend } from '../../lib/backends/memory';
import { HashEmbedder } from '../../lib/embedders/hash';
import { VectorStoreError } from '../../lib/errors';
import { newWaitId } from '../../lib/ids';
import { spoolIngestJob } from '../../lib/ingest-job/prepare';
import type { JobFailurePayload, JobProgressPayload, JobSuccessPayload } from '../../lib/ingest-job/spec';
import type { JobEvent } from '../../lib/ingest-job/run';
import { Triggerer, type JobRecord, type WaitOwner } from '../../lib/triggerer';
import type { Backend, Embedder } from '../../lib/types';
import { WaitStore } from '../../lib/wait-store';
import { until as untilProbe } from '../support/until';

/** Poll a condition (sync or async) until true. */
const until = (probe: () => boolean | Promise<boolean>, timeoutMs = 10_000) => untilProbe('the condition', async () => (await probe()) || null, timeoutMs);

/** Counts every text embedded; `beforeEmbed` may stop the world mid-job. */
class CountingEmbedder implements Embedder {
  readonly name = 'hash';
  readonly inner = new HashEmbedder(16);
  embedded = new Map<string, number>();
  calls = 0;
  beforeEmbed: (call: number) => Promise<void> | void = () => undefined;
  get dimensions(): number {
    return 16;
  }
  async embed(texts: string[], signal?: AbortSignal): Promise<Float32Array[]> {
    this.calls += 1;
    await this.beforeEmbed(this.calls);
    if (signal?.aborted) throw new VectorStoreError('UNAVAILABLE', 'cancelled');
    for (const t of texts) this.embedded.set(t, (this.embedded.get(t) ?? 0) + 1);
    return this.inner.embed(texts);
  }
}

interface Seen {
  progress: JobProgressPayload[];
  finals: Array<{ payload: JobSuccessPayload | JobFailurePayload; redelivered?: boolean }>;
}

function ownerOf(backend: Backend, embedder: Embedder, seen: Seen): WaitOwner {
  return {
    backend,
    embedder,
    storeKey: 'store-1',
    onEvent(_record, event) {
      const e = event as JobEvent;
      if (e.type === 'progress') seen.progress.push(e.payload);
      else if (e.type === 'final') seen.finals.push({ payload: e.payload, redelivered: e.redelivered });
    },
  };
}

const texts = (n: number, tag = 'doc') => Array.from({ length: n }, (_, i) => ({ id: `${tag}-${i}`, text: `${tag} number ${i} about vectors` }));

describe('ingest jobs in the triggerer (lib/ingest-job)', function () {
  this.timeout(20_000);
  let dir: string;
  let jobsDir: string;
  let backend: MemoryBackend;
  let embedder: CountingEmbedder;
  const triggerers: Triggerer[] = [];

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vp-jobs-'));
    jobsDir = path.join(dir, 'jobs');
    backend = new MemoryBackend({ dataDir: null, indexingRate: 1e9, indexingDelay: 0 });
    embedder = new CountingEmbedder();
  });

  afterEach(async () => {
    for (const t of triggerers.splice(0)) await t.close();
    await backend.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  function triggerer(removalGraceMs = 10): Triggerer {
    const t = new Triggerer({ waitStore: new WaitStore(path.join(dir, 'waits.jsonl')), jobsDir, removalGraceMs });
    triggerers.push(t);
    return t;
  }

  /** Spool and defer a job; its first run takes its batches from memory, as vector-ingest's does. */
  async function newJob(t: Triggerer, n: number, batchSize = 10): Promise<JobRecord> {
    const { spec, batches } = await spoolIngestJob({ backend, embedder }, texts(n), jobsDir, {
      jobId: newWaitId(),
      collection: 'docs',
      batchSize,
      createCollection: true,
      buildIndex: true,
    });
    const record: JobRecord = { ownerId: 'ingest-1', spec, message: { topic: 't' } };
    await t.defer(record, { batches });
    return record;
  }

  it('runs a job batch by batch to one final, with progress, and removes its spool', async () => {
    const t = triggerer();
    const seen: Seen = { progress: [], finals: [] };
    t.attach('ingest-1', ownerOf(backend, embedder, seen));
    const record = await newJob(t, 95, 10);
    await until(() => seen.finals.length === 1);
    const final = seen.finals[0].payload as JobSuccessPayload;
    should(final.status).equal('success');
    should(final).containEql({ collection: 'docs', jobId: record.spec.waitId, ingested: 95, totalCount: 95, batches: 10, documents: 95, chunks: 95, resumed: 0 });
    should(seen.progress.length).be.above(0);
    should(seen.progress[seen.progress.length - 1]).containEql({ written: 95, progress: 1, jobId: record.spec.waitId });
    should(embedder.embedded.size).equal(95);
    should(Math.max(...embedder.embedded.values())).equal(1);
    should((await backend.stats('docs')).documentCount).equal(95);
    await until(async () => (await fs.readdir(jobsDir)).length === 0);
    should(t.pending()).equal(0);
  });

  it('resumes in a new process at the first unfinished batch: at most the batch in flight is embedded again', async () => {
    const first = triggerer();
    const seen: Seen = { progress: [], finals: [] };
    // The 4th embed call never returns in this "process": it dies there.
    let hang: () => void = () => undefined;
    embedder.beforeEmbed = (call) => (call === 4 ? new Promise<void>((resolve) => (hang = resolve)) : undefined);
    first.attach('ingest-1', ownerOf(backend, embedder, seen));
    await newJob(first, 100, 10);
    await until(() => embedder.calls === 4);
    // Kill: close without letting the batch finish (as kill -9 would, nothing more is written).
    await first.close();
    hang();
    should(seen.finals).be.empty();

    embedder.beforeEmbed = () => undefined;
    const second = triggerer();
    await second.start();
    should(second.pending('ingest-1')).equal(1);
    const after: Seen = { progress: [], finals: [] };
    second.attach('ingest-1', ownerOf(backend, embedder, after));
    await until(() => after.finals.length === 1);
    const final = after.finals[0].payload as JobSuccessPayload;
    should(final).containEql({ status: 'success', ingested: 100, totalCount: 100, resumed: 1 });
    should(after.progress[0].written).equal(30); // it started where the checkpoint said
    should(embedder.embedded.size).equal(100);
    const twice = [...embedder.embedded.values()].filter((n) => n > 1).length;
    should(twice).be.belowOrEqual(10); // at most the one batch in flight
  });

  it('a stopped run (redeploy) neither saves nor reports; the next attach resumes it', async () => {
    const t = triggerer();
    const seen: Seen = { progress: [], finals: [] };
    let release: () => void = () => undefined;
    embedder.beforeEmbed = (call) => (call === 3 ? new Promise<void>((resolve) => (release = resolve)) : undefined);
    t.attach('ingest-1', ownerOf(backend, embedder, seen));
    await newJob(t, 50, 10);
    await until(() => embedder.calls === 3);
    t.detach('ingest-1');
    release();
    embedder.beforeEmbed = () => undefined;
    const again: Seen = { progress: [], finals: [] };
    t.attach('ingest-1', ownerOf(backend, embedder, again));
    await until(() => again.finals.length === 1);
    should(seen.finals).be.empty();
    should((again.finals[0].payload as JobSuccessPayload).ingested).equal(50);
    should((await backend.stats('docs')).documentCount).equal(50);
  });

  it('retries a store that fails for a while, counting each retry in the progress', async () => {
    const t = triggerer();
    const seen: Seen = { progress: [], finals: [] };
    let failures = 2;
    const flaky = Object.create(backend) as Backend;
    flaky.upsert = (collection, docs, options) => {
      if (failures-- > 0) return Promise.reject(new VectorStoreError('UNAVAILABLE', 'the store is restarting'));
      return backend.upsert(collection, docs, options);
    };
    t.attach('ingest-1', ownerOf(flaky, embedder, seen));
    await newJob(t, 20, 10);
    await until(() => seen.finals.length === 1, 15_000);
    const final = seen.finals[0].payload as JobSuccessPayload;
    should(final).containEql({ status: 'success', ingested: 20, retries: 2 });
    should(seen.progress.some((p) => p.retries === 1 && /the store is restarting/.test(p.detail ?? ''))).be.true();
  });

  it('fails at once on an error that retrying cannot fix, saying how far it got', async () => {
    const t = triggerer();
    const seen: Seen = { progress: [], finals: [] };
    embedder.beforeEmbed = (call) => {
      if (call === 3) throw new VectorStoreError('AUTH', 'the embedding service rejected the API key', { transient: false });
    };
    t.attach('ingest-1', ownerOf(backend, embedder, seen));
    await newJob(t, 50, 10);
    await until(() => seen.finals.length === 1);
    const final = seen.finals[0].payload as JobFailurePayload;
    should(final).containEql({ status: 'failed', code: 'AUTH', written: 20, batchesDone: 2, batches: 5 });
    should(final.message).match(/rejected the API key; 20 of 50 documents were written \(2 of 5 batches\)\. Send the message again/);
  });

  it('a cancelled job stops, sends nothing more and leaves no spool', async () => {
    const t = triggerer();
    const seen: Seen = { progress: [], finals: [] };
    let release: () => void = () => undefined;
    embedder.beforeEmbed = (call) => (call === 2 ? new Promise<void>((resolve) => (release = resolve)) : undefined);
    t.attach('ingest-1', ownerOf(backend, embedder, seen));
    await newJob(t, 50, 10);
    await until(() => embedder.calls === 2);
    should(t.cancel((r) => r.ownerId === 'ingest-1')).have.length(1);
    release();
    await until(async () => (await fs.readdir(jobsDir)).length === 0);
    await new Promise((r) => setTimeout(r, 50));
    should(seen.finals).be.empty();
    should(t.pending()).equal(0);
  });

  it('a final recorded before a crash is delivered again, flagged, without running the job again', async () => {
    const first = triggerer(10_000);
    const seen: Seen = { progress: [], finals: [] };
    // The owner "dies" as the final arrives: the record says it was being delivered.
    first.attach('ingest-1', ownerOf(backend, embedder, seen));
    await newJob(first, 10, 10);
    await until(() => seen.finals.length === 1);
    // Crash before the removal grace: the file still says the final was being delivered
    // (a graceful close would write the removal).
    first.detach('ingest-1');
    const calls = embedder.calls;
    const second = triggerer();
    await second.start();
    const after: Seen = { progress: [], finals: [] };
    second.attach('ingest-1', ownerOf(backend, embedder, after));
    await until(() => after.finals.length === 1);
    should(after.finals[0].redelivered).be.true();
    should(after.finals[0].payload.status).equal('success');
    should(embedder.calls).equal(calls);
    await until(async () => (await fs.readdir(jobsDir)).length === 0); // and then its spool goes
  });

  it('rejects bad input before spooling anything', async () => {
    await should(
      spoolIngestJob({ backend, embedder }, [{ id: 'a', text: 'x' }, { id: 'b', vector: [1, 2] }], jobsDir, {
        jobId: newWaitId(),
        collection: 'docs',
        batchSize: 10,
        createCollection: true,
        buildIndex: true,
      }),
    ).be.rejectedWith(/2 dimensions.*embedder makes vectors of 16.*Nothing was written/);
    should(await fs.readdir(jobsDir).catch(() => [])).be.empty();
  });

  it('the waits file keeps jobs beside waits: read back by kind, a newer format kept untouched, damage reported', async () => {
    const t = triggerer(10_000);
    const record = await newJob(t, 5, 10); // no owner attached: it stays pending
    await t.close();
    const file = path.join(dir, 'waits.jsonl');
    const newer = { op: 'put', w: { ownerId: 'ingest-2', spec: { ...record.spec, v: 3, waitId: 'from-a-newer-version' }, message: {} } };
    const damaged = { op: 'put', w: { ownerId: 'ingest-3', spec: { v: 2, kind: 'ingest-job', waitId: 'broken' }, message: {} } };
    await fs.appendFile(file, JSON.stringify(newer) + '\n' + JSON.stringify(damaged) + '\n');
    const warnings: string[] = [];
    const store = new WaitStore(file, { log: { warn: (m) => warnings.push(m) } });
    const loaded = await store.load();
    should(loaded.map((r) => r.spec.waitId)).eql([record.spec.waitId]);
    should(loaded[0].spec).containEql({ kind: 'ingest-job', v: 2, documents: 5, batches: 1 });
    should(warnings.join(' ')).match(/from-a-newer-version: This ingest job was saved in format version 3/);
    should(warnings.join(' ')).match(/1 unreadable line/);
    await store.close();
    // The newer record is still in the file for the version that reads it.
    should(await fs.readFile(file, 'utf8')).match(/from-a-newer-version/);
  });

  it('the Vector waits sidebar never sees jobs: not listed, not inspected, not cancelled from it', async () => {
    const t = triggerer();
    const record = await newJob(t, 5, 10);
    should([...t.allRecords()]).be.empty();
    should(t.inspect(record.spec.waitId)).be.null();
    should(t.cancelAndNotify(() => true, { statusText: () => '', by: null })).be.empty();
    should(t.pending('ingest-1')).equal(1);
  });
});
