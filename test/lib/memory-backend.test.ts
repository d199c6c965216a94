import should from 'should';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MemoryBackend, forgetVolatileCollections, type MemoryBackendOptions } from '../../lib/backends/memory';
import { validateCollectionName } from '../../lib/backends/collection-name';
import type { CollectionStatus, VectorDocument } from '../../lib/types';
import { rejectsWith } from '../support/errors';

const T0 = Date.UTC(2024, 0, 1);


function docsOf(count: number, prefix = 'doc', dims = 3): VectorDocument[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `${prefix}-${i}`,
    vector: Array.from({ length: dims }, (_, d) => Math.sin(i * 7 + d + 1)),
    text: `text ${prefix} ${i}`,
  }));
}

describe('memory backend', () => {
  let clock: number;
  const now = () => clock;
  const opened: MemoryBackend[] = [];
  const tempDirs: string[] = [];
  let keyCounter = 0;

  function backend(options: Partial<MemoryBackendOptions> = {}): MemoryBackend {
    const b = new MemoryBackend({ dataDir: null, indexingRate: 10, indexingDelay: 1, now, ...options });
    opened.push(b);
    return b;
  }

  async function tempDir(): Promise<string> {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'memory-backend-'));
    tempDirs.push(dir);
    return dir;
  }

  /** A volatile key no other test uses (volatile stores live as long as the process). */
  function uniqueKey(): string {
    keyCounter += 1;
    return `test-${process.pid}-${keyCounter}`;
  }

  beforeEach(() => {
    clock = T0;
  });

  afterEach(async () => {
    await Promise.all(opened.splice(0).map((b) => b.close()));
    await Promise.all(tempDirs.splice(0).map((d) => fs.rm(d, { recursive: true, force: true })));
  });

  describe('collections and writes', () => {
    it('creates a collection, upserts and reports existence and stats', async () => {
      const b = backend();
      should(b.name).equal('memory');
      should(await b.collectionExists('docs')).be.false();
      await b.ensureCollection('docs', { dimensions: 3 });
      await b.ensureCollection('docs', { dimensions: 3 }); // idempotent
      should(await b.collectionExists('docs')).be.true();
      should(await b.collectionExists('other')).be.false();

      const result = await b.upsert('docs', docsOf(4));
      should(result).eql({ written: 4, totalCount: 4 });
      const stats = await b.stats('docs');
      should(stats).eql({ documentCount: 4, indexedCount: 0, dimensions: 3, metric: 'cosine', indexType: 'exact (flat)', search: 'exact' });
    });

    it('treats re-ingesting the same ids as an upsert', async () => {
      const b = backend();
      await b.ensureCollection('docs', { dimensions: 3 });
      await b.upsert('docs', docsOf(5));
      const again = docsOf(5).map((d) => ({ ...d, text: `new ${d.id}` }));
      should(await b.upsert('docs', again)).eql({ written: 5, totalCount: 5 });
      const hits = await b.query('docs', { vector: again[2].vector, topK: 1 });
      should(hits[0].id).equal('doc-2');
      should(hits[0].text).equal('new doc-2');
      // A batch holding the same id twice keeps the last version.
      await b.upsert('docs', [
        { id: 'dup', vector: [1, 0, 0], text: 'first' },
        { id: 'dup', vector: [1, 0, 0], text: 'second' },
      ]);
      should((await b.stats('docs')).documentCount).equal(6);
      should((await b.query('docs', { vector: [1, 0, 0], topK: 1, filter: {} }))[0].text).equal('second');
    });

    it('an empty upsert writes nothing', async () => {
      const b = backend();
      await b.ensureCollection('docs', { dimensions: 3 });
      should(await b.upsert('docs', [])).eql({ written: 0, totalCount: 0 });
      should(await b.status('docs')).eql({ state: 'ready', documentCount: 0, indexedCount: 0, progress: 1, etaSeconds: 0 });
    });

    it('grows storage past its initial capacity without losing rows', async () => {
      const b = backend({ indexingRate: 1e6 });
      await b.ensureCollection('big', { dimensions: 8 });
      const docs = docsOf(1000, 'big', 8);
      for (let i = 0; i < docs.length; i += 100) await b.upsert('big', docs.slice(i, i + 100));
      should((await b.stats('big')).documentCount).equal(1000);
      for (const i of [0, 17, 500, 999]) {
        const [hit] = await b.query('big', { vector: docs[i].vector, topK: 1 });
        should(hit.id).equal(`big-${i}`);
        should(hit.score).be.approximately(1, 1e-6);
      }
    });
  });

  describe('simulated indexing', () => {
    it('follows delay then rate exactly, with eta, and queues writes one after another', async () => {
      const b = backend({ indexingRate: 10, indexingDelay: 2 });
      await b.ensureCollection('docs', { dimensions: 3 });
      await b.upsert('docs', docsOf(50)); // indexes from T0+2s to T0+7s

      clock = T0 + 1000;
      should(await b.status('docs')).eql({ state: 'indexing', documentCount: 50, indexedCount: 0, progress: 0, etaSeconds: 6 });
      clock = T0 + 2000;
      should(await b.status('docs')).eql({ state: 'indexing', documentCount: 50, indexedCount: 0, progress: 0, etaSeconds: 5 });
      clock = T0 + 3000;
      should(await b.status('docs')).eql({ state: 'indexing', documentCount: 50, indexedCount: 10, progress: 0.2, etaSeconds: 4 });
      clock = T0 + 3050; // partial documents are not counted
      should((await b.status('docs')).indexedCount).equal(10);

      // A second write waits for the first: start max(T0+3s+2s, T0+7s) = T0+7s, done at T0+9s.
      await b.upsert('docs', docsOf(20, 'more'));
      clock = T0 + 4000;
      should(await b.status('docs')).eql({ state: 'indexing', documentCount: 70, indexedCount: 20, progress: 20 / 70, etaSeconds: 5 });
      clock = T0 + 8000;
      should(await b.status('docs')).eql({ state: 'indexing', documentCount: 70, indexedCount: 60, progress: 60 / 70, etaSeconds: 1 });
      clock = T0 + 9000;
      should(await b.status('docs')).eql({ state: 'ready', documentCount: 70, indexedCount: 70, progress: 1, etaSeconds: 0 });
      should(await b.stats('docs')).containEql({ documentCount: 70, indexedCount: 70 });

      // Re-ingesting 50 existing documents: count unchanged, 50 to re-index from T0+12s.
      clock = T0 + 10_000;
      should(await b.upsert('docs', docsOf(50))).eql({ written: 50, totalCount: 70 });
      clock = T0 + 12_000;
      should(await b.status('docs')).eql({ state: 'indexing', documentCount: 70, indexedCount: 20, progress: 20 / 70, etaSeconds: 5 });
      clock = T0 + 17_000;
      should((await b.status('docs')).state).equal('ready');
    });

    it('is ready at the very instant the last document counts as indexed (a float boundary: 21 docs at 0.7/s end at 31000.000000000004 ms)', async () => {
      clock = 1000;
      const b = backend({ indexingRate: 0.7, indexingDelay: 0 });
      await b.ensureCollection('docs', { dimensions: 3 });
      await b.upsert('docs', docsOf(21)); // 21 / 0.7 = 30.000000000000004 s of indexing
      clock = 30_999;
      should(await b.status('docs')).containEql({ state: 'indexing', indexedCount: 20 });
      clock = 31_000; // all 21 count as indexed now: ready, not "indexing 21/21"
      should(await b.status('docs')).eql({ state: 'ready', documentCount: 21, indexedCount: 21, progress: 1, etaSeconds: 0 });
      // The next write is queued behind nothing: it starts at once.
      await b.upsert('docs', docsOf(7, 'next'));
      clock = 41_000;
      should(await b.status('docs')).eql({ state: 'ready', documentCount: 28, indexedCount: 28, progress: 1, etaSeconds: 0 });
    });

    it('a write that starts after an idle gap is not held back by earlier writes', async () => {
      const b = backend({ indexingRate: 10, indexingDelay: 1 });
      await b.ensureCollection('docs', { dimensions: 3 });
      await b.upsert('docs', docsOf(10)); // T0+1s .. T0+2s
      clock = T0 + 60_000;
      await b.upsert('docs', docsOf(10, 'late')); // T0+61s .. T0+62s
      clock = T0 + 61_500;
      should(await b.status('docs')).containEql({ state: 'indexing', indexedCount: 15, etaSeconds: 0.5 });
    });

    it('simulateFailure makes the collection fail with the reason when that write would start', async () => {
      const b = backend({ indexingRate: 10, indexingDelay: 1 });
      await b.ensureCollection('docs', { dimensions: 3 });
      await b.upsert('docs', docsOf(10)); // T0+1s .. T0+2s
      clock = T0 + 500;
      await b.upsert('docs', docsOf(5, 'bad'), { simulateFailure: 'disk on fire' }); // would start at T0+2s

      clock = T0 + 1500;
      should(await b.status('docs')).eql({ state: 'indexing', documentCount: 15, indexedCount: 5, progress: 5 / 15, etaSeconds: null });
      clock = T0 + 1999;
      should((await b.status('docs')).state).equal('indexing');
      clock = T0 + 2000;
      should(await b.status('docs')).eql({
        state: 'failed',
        documentCount: 15,
        indexedCount: 10,
        progress: 10 / 15,
        etaSeconds: null,
        detail: 'disk on fire',
      });
      // Failed stays failed, later writes included.
      clock = T0 + 3000;
      await b.upsert('docs', docsOf(1, 'after'));
      clock = T0 + 60_000;
      should(await b.status('docs')).containEql({ state: 'failed', documentCount: 16, indexedCount: 10, detail: 'disk on fire' });
    });

    it('rejects an empty or non-string failure reason', async () => {
      const b = backend();
      await b.ensureCollection('docs', { dimensions: 3 });
      await rejectsWith(b.upsert('docs', docsOf(1), { simulateFailure: '' }), 'INVALID_INPUT');
      should((await b.stats('docs')).documentCount).equal(0);
    });
  });

  describe('query', () => {
    it('orders by cosine similarity, honours topK and returns text and metadata', async () => {
      const b = backend();
      await b.ensureCollection('docs', { dimensions: 3 });
      await b.upsert('docs', [
        { id: 'x', vector: [1, 0, 0], text: 'along x', metadata: { lang: 'en', n: 1 } },
        { id: 'y', vector: [0, 5, 0], metadata: { lang: 'fr' } },
        { id: 'xy', vector: [1, 1, 0], text: 'diagonal', metadata: { lang: 'en', tags: ['a', 'b'] } },
        { id: 'minus-x', vector: new Float32Array([-2, 0, 0]) },
      ]);

      const hits = await b.query('docs', { vector: [3, 0, 0], topK: 10 });
      should(hits.map((h) => h.id)).eql(['x', 'xy', 'y', 'minus-x']);
      should(hits[0].score).be.approximately(1, 1e-6);
      should(hits[1].score).be.approximately(Math.SQRT1_2, 1e-6);
      should(hits[2].score).be.approximately(0, 1e-6);
      should(hits[3].score).be.approximately(-1, 1e-6);
      should(hits[0]).containEql({ text: 'along x', metadata: { lang: 'en', n: 1 } });
      should(hits[2]).containEql({ text: null, metadata: { lang: 'fr' } });
      should(hits[3]).containEql({ text: null, metadata: {} });

      should((await b.query('docs', { vector: [3, 0, 0], topK: 2 })).map((h) => h.id)).eql(['x', 'xy']);
      const english = await b.query('docs', { vector: [0, 1, 0], topK: 5, filter: { lang: 'en' } });
      should(english.map((h) => h.id)).eql(['xy', 'x']);
      const tagged = await b.query('docs', { vector: [0, 1, 0], topK: 5, filter: { tags: ['a', 'b'] } });
      should(tagged.map((h) => h.id)).eql(['xy']);
      should(await b.query('docs', { vector: [0, 1, 0], topK: 5, filter: { lang: 'de' } })).eql([]);

      // Results are copies: changing them does not change the store.
      hits[0].metadata.lang = 'changed';
      should((await b.query('docs', { vector: [1, 0, 0], topK: 1 }))[0].metadata).eql({ lang: 'en', n: 1 });
    });

    it('matches a full sort of all scores (top-k selection is exact)', async () => {
      const b = backend();
      await b.ensureCollection('rand', { dimensions: 16 });
      let seed = 42;
      const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
      const docs = Array.from({ length: 500 }, (_, i) => ({ id: `r${i}`, vector: Array.from({ length: 16 }, random) }));
      await b.upsert('rand', docs);
      const query = Array.from({ length: 16 }, random);
      const norm = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
      const cosine = (v: number[]) => v.reduce((s, x, i) => s + x * query[i], 0) / (norm(v) * norm(query));
      const expected = docs
        .map((d) => ({ id: d.id, score: cosine(d.vector) }))
        .sort((a, c) => c.score - a.score)
        .slice(0, 25);
      const hits = await b.query('rand', { vector: query, topK: 25 });
      should(hits.map((h) => h.id)).eql(expected.map((e) => e.id));
      hits.forEach((h, i) => should(h.score).be.approximately(expected[i].score, 1e-5));
    });

    it('rejects a bad topK, a query vector of the wrong size and a non-object filter', async () => {
      const b = backend();
      await b.ensureCollection('docs', { dimensions: 3 });
      await rejectsWith(b.query('docs', { vector: [1, 0, 0], topK: 0 }), 'INVALID_INPUT');
      await rejectsWith(b.query('docs', { vector: [1, 0, 0], topK: 1.5 }), 'INVALID_INPUT');
      const err = await rejectsWith(b.query('docs', { vector: [1, 0], topK: 1 }), 'DIMENSION_MISMATCH');
      should(err.message).containEql('2').and.containEql('3').and.containEql('"docs"');
      await rejectsWith(b.query('docs', { vector: [1, NaN, 0], topK: 1 }), 'INVALID_INPUT');
      await rejectsWith(b.query('docs', { vector: [1, 0, 0], topK: 1, filter: 'en' as never }), 'INVALID_INPUT');
    });
  });

  describe('validation', () => {
    it('rejects a different dimension for an existing collection, naming both sizes', async () => {
      const b = backend();
      await b.ensureCollection('docs', { dimensions: 3 });
      const err = await rejectsWith(b.ensureCollection('docs', { dimensions: 384 }), 'DIMENSION_MISMATCH');
      should(err.transient).be.false();
      should(err.message).containEql('"docs"').and.containEql('3').and.containEql('384');
      await rejectsWith(b.ensureCollection('docs', { dimensions: 0 }), 'INVALID_INPUT');
      await rejectsWith(b.ensureCollection('docs', { dimensions: 3, metric: 'l2' }), 'INVALID_INPUT');
    });

    it('writes nothing when any document has a wrong-size or non-finite vector', async () => {
      const b = backend();
      await b.ensureCollection('docs', { dimensions: 3 });
      await b.upsert('docs', docsOf(2));
      clock = T0 + 100_000;
      const good = docsOf(3, 'new');

      const wrongSize = await rejectsWith(b.upsert('docs', [...good, { id: 'short', vector: [1, 2] }]), 'DIMENSION_MISMATCH');
      should(wrongSize.message).containEql('"short"').and.containEql('2 dimensions').and.containEql('3 dimensions');
      const nan = await rejectsWith(b.upsert('docs', [...good, { id: 'nan', vector: [1, NaN, 0] }]), 'INVALID_INPUT');
      should(nan.message).containEql('"nan"').and.containEql('position 1');
      await rejectsWith(b.upsert('docs', [...good, { id: 'inf', vector: [Infinity, 0, 0] }]), 'INVALID_INPUT');
      await rejectsWith(b.upsert('docs', [...good, { id: 'huge', vector: [1e39, 0, 0] }]), 'INVALID_INPUT');
      await rejectsWith(b.upsert('docs', [...good, { id: 'str', vector: ['1', 0, 0] as never }]), 'INVALID_INPUT');
      await rejectsWith(b.upsert('docs', [...good, { id: '', vector: [1, 0, 0] }]), 'INVALID_INPUT');
      await rejectsWith(b.upsert('docs', [...good, { id: 'novec' } as never]), 'INVALID_INPUT');
      await rejectsWith(b.upsert('docs', [...good, { id: 'meta', vector: [1, 0, 0], metadata: [] as never }]), 'INVALID_INPUT');
      await rejectsWith(b.upsert('docs', [...good, { id: 'txt', vector: [1, 0, 0], text: 5 as never }]), 'INVALID_INPUT');

      should(await b.status('docs')).eql({ state: 'ready', documentCount: 2, indexedCount: 2, progress: 1, etaSeconds: 0 });
      should(await b.collectionExists('docs')).be.true();
    });

    it('rejects bad collection names with the rule', async () => {
      const b = backend();
      for (const bad of ['', 'a b', '../x', '-x', '_x', 'x.y', 'é', 'a'.repeat(64), 42, null]) {
        const err = await rejectsWith(b.ensureCollection(bad as string, { dimensions: 3 }), 'INVALID_INPUT');
        should(err.message).match(/letters, digits/);
        await rejectsWith(b.status(bad as string), 'INVALID_INPUT');
      }
      should(validateCollectionName('a'.repeat(63), 'memory')).equal('a'.repeat(63));
      should(validateCollectionName('My_docs-2', 'pgvector')).equal('My_docs-2');
      should(() => validateCollectionName('a/b', 'lancedb')).throw(/"a\/b".*lancedb/);
    });

    it('takes {name} as the package collection of that name (same rule), and refuses any other field: it holds only what this package made', async () => {
      const b = backend();
      await b.ensureCollection('docs', { dimensions: 3 });
      await b.upsert('docs', docsOf(2));
      clock += 10_000;
      should(await b.collectionExists({ name: 'docs' })).be.true();
      should(await b.collectionExists({ name: 'ghost' })).be.false();
      should(await b.status({ name: 'docs' })).eql(await b.status('docs'));
      should(await b.stats({ name: 'docs' })).eql(await b.stats('docs'));
      should((await b.query({ name: 'docs' }, { vector: docsOf(1)[0].vector, topK: 1 }))[0].id).equal('doc-0');
      for (const field of ['schema', 'column', 'index', 'preset'] as const) {
        const err = await rejectsWith(b.status({ name: 'docs', [field]: field === 'preset' ? 'langchain' : 'x' }), 'INVALID_INPUT');
        should(err.message).startWith(`"${field}" cannot be used with the memory store: it holds only collections this package made`);
      }
      const err = await rejectsWith(b.status({ name: 'Team.Docs' }), 'INVALID_INPUT');
      should(err.message).match(/"Team\.Docs" is not valid for the memory store: use 1 to 63 characters/);
      await rejectsWith(b.status({ name: 'ghost' }), 'NOT_FOUND');
    });

    it('answers NOT_FOUND for a missing collection, saying what to do', async () => {
      const b = backend();
      for (const call of [
        () => b.status('ghost'),
        () => b.stats('ghost'),
        () => b.query('ghost', { vector: [1, 0, 0], topK: 1 }),
        () => b.upsert('ghost', docsOf(1)),
      ]) {
        const err = await rejectsWith(call(), 'NOT_FOUND');
        should(err.transient).be.false();
        should(err.message).containEql('"ghost"').and.containEql('Ingest');
      }
    });

    it('rejects bad options and calls after close', async () => {
      should(() => new MemoryBackend({ dataDir: null, indexingRate: 0, indexingDelay: 1 })).throw(/indexing rate/);
      should(() => new MemoryBackend({ dataDir: null, indexingRate: 1, indexingDelay: -1 })).throw(/indexing delay/);
      const b = backend();
      await b.ensureCollection('docs', { dimensions: 3 });
      await b.close();
      await b.close(); // idempotent
      await rejectsWith(b.status('docs'), 'UNAVAILABLE');
    });
  });

  describe('persistence', () => {
    it('a new instance on the same directory sees the same documents and indexing timeline', async () => {
      const dir = await tempDir();
      const first = backend({ dataDir: dir, indexingRate: 10, indexingDelay: 1 });
      await first.ensureCollection('docs', { dimensions: 3 });
      await first.upsert('docs', docsOf(30)); // T0+1s .. T0+4s
      const lines = (await fs.readFile(path.join(dir, 'docs.jsonl'), 'utf8')).trim().split('\n');
      should(lines).have.length(2); // durable once upsert resolved
      should(JSON.parse(lines[0])).containEql({ type: 'create', dimensions: 3, metric: 'cosine' });
      await first.close();

      // Another rate now: written documents keep the rate they were written with.
      clock = T0 + 2000;
      const second = backend({ dataDir: dir, indexingRate: 1000, indexingDelay: 0 });
      should(await second.collectionExists('docs')).be.true();
      should(await second.status('docs')).eql({ state: 'indexing', documentCount: 30, indexedCount: 10, progress: 1 / 3, etaSeconds: 2 });
      const [hit] = await second.query('docs', { vector: docsOf(30)[7].vector, topK: 1 });
      should(hit).containEql({ id: 'doc-7', text: 'text doc 7' });
      should(hit.score).be.approximately(1, 1e-6);
      clock = T0 + 4000;
      should((await second.status('docs')).state).equal('ready');
    });

    it('ignores a torn last line and keeps writing after it', async () => {
      const dir = await tempDir();
      const first = backend({ dataDir: dir });
      await first.ensureCollection('docs', { dimensions: 3 });
      await first.upsert('docs', docsOf(3));
      await first.close();
      await fs.appendFile(path.join(dir, 'docs.jsonl'), '{"type":"upsert","at":12,"docs":[{"id":"tor');

      const second = backend({ dataDir: dir });
      should((await second.stats('docs')).documentCount).equal(3);
      await second.upsert('docs', [{ id: 'after-crash', vector: [0, 0, 1], metadata: { ok: true } }]);
      await second.close();

      const third = backend({ dataDir: dir });
      should((await third.stats('docs')).documentCount).equal(4);
      const [hit] = await third.query('docs', { vector: [0, 0, 1], topK: 1, filter: { ok: true } });
      should(hit.id).equal('after-crash');
    });

    it('close lets writes in progress finish, and a reopen sees them', async () => {
      const dir = await tempDir();
      const first = backend({ dataDir: dir });
      await first.ensureCollection('docs', { dimensions: 3 });
      const writing = first.upsert('docs', docsOf(5));
      const closing = first.close();
      await rejectsWith(first.upsert('docs', docsOf(1, 'late')), 'UNAVAILABLE');
      const second = backend({ dataDir: dir });
      should(await writing).eql({ written: 5, totalCount: 5 });
      await closing;
      should((await second.stats('docs')).documentCount).equal(5);
      await second.close();
      const third = backend({ dataDir: dir });
      should((await third.stats('docs')).documentCount).equal(5);
    });

    it('shares one state between two instances on the same directory', async () => {
      const dir = await tempDir();
      const a = backend({ dataDir: dir });
      const b = backend({ dataDir: `${dir}${path.sep}.` }); // same directory, spelt differently
      await a.ensureCollection('docs', { dimensions: 3 });
      await a.upsert('docs', docsOf(2));
      should(await b.collectionExists('docs')).be.true();
      should((await b.stats('docs')).documentCount).equal(2);
      await b.upsert('docs', docsOf(1, 'from-b'));
      should((await a.stats('docs')).documentCount).equal(3);

      await a.close(); // b still uses the store: its file stays open
      await b.upsert('docs', docsOf(1, 'after-a-closed'));
      await b.close();

      const c = backend({ dataDir: dir });
      should((await c.stats('docs')).documentCount).equal(4);
    });

    it('creates a collection once when first uses race, and discovers collections by listing', async () => {
      const dir = await tempDir();
      const a = backend({ dataDir: dir });
      const b = backend({ dataDir: dir });
      await Promise.all([
        a.ensureCollection('docs', { dimensions: 3 }),
        b.ensureCollection('docs', { dimensions: 3 }),
        a.ensureCollection('docs', { dimensions: 3 }),
        a.ensureCollection('other', { dimensions: 2 }),
      ]);
      const text = await fs.readFile(path.join(dir, 'docs.jsonl'), 'utf8');
      should(text.trim().split('\n')).have.length(1);
      await Promise.all([a.close(), b.close()]);
      await fs.writeFile(path.join(dir, 'notes.txt'), 'not a collection');

      const c = backend({ dataDir: dir });
      const d = backend({ dataDir: dir });
      const [s1, s2, exists] = await Promise.all([c.stats('docs'), d.stats('other'), c.collectionExists('notes')]);
      should(s1.dimensions).equal(3);
      should(s2.dimensions).equal(2);
      should(exists).be.false();
    });

    it('a delete is one durable record: a reopen does not see the deleted documents, and compaction drops them', async () => {
      const dir = await tempDir();
      const file = path.join(dir, 'docs.jsonl');
      const writer = backend({ dataDir: dir, indexingRate: 1000, indexingDelay: 0 });
      await writer.ensureCollection('docs', { dimensions: 3 });
      await writer.upsert('docs', [...docsOf(1100, 'big'), ...docsOf(5, 'keep')].map((d, i) => (i < 1100 ? { ...d, id: `big#${i}` } : d)));
      should(await writer.delete('docs', { sources: ['big'], ids: ['keep-0'] })).eql({ deleted: 1101, totalCount: 4 });
      const lines = (await fs.readFile(file, 'utf8')).trim().split('\n');
      should(lines).have.length(3); // create, upsert, delete: durable once delete resolved
      should(JSON.parse(lines[2])).containEql({ type: 'delete' });
      should(JSON.parse(lines[2]).ids).have.length(1101);
      await writer.close();

      clock = T0 + 10_000;
      const reloaded = backend({ dataDir: dir });
      should(await reloaded.status('docs')).eql({ state: 'ready', documentCount: 4, indexedCount: 4, progress: 1, etaSeconds: 0 });
      should((await reloaded.query('docs', { vector: [1, 0, 0], topK: 50 })).map((h) => h.id).sort()).eql(['keep-1', 'keep-2', 'keep-3', 'keep-4']);
      // 1101 removed versions outweigh 4 live ones: the load compacted the file to the live documents.
      const compacted = (await fs.readFile(file, 'utf8')).trim().split('\n');
      should(compacted).have.length(2);
      should(JSON.parse(compacted[1]).docs.map((d: { id: string }) => d.id).sort()).eql(['keep-1', 'keep-2', 'keep-3', 'keep-4']);
      should(await reloaded.delete('docs', { ids: ['big#3'] })).eql({ deleted: 0, totalCount: 4 });
      should((await fs.readFile(file, 'utf8')).trim().split('\n')).have.length(2); // nothing deleted: nothing written
    });

    it('compacts a log dominated by superseded documents, keeping the timeline exact', async () => {
      const dir = await tempDir();
      const file = path.join(dir, 'docs.jsonl');
      const writer = backend({ dataDir: dir, indexingRate: 10, indexingDelay: 0 });
      await writer.ensureCollection('docs', { dimensions: 3 });
      // 120 writes of the same 10 documents: 1200 versions, 10 live; 120 s of indexing.
      for (let i = 0; i < 120; i++) {
        clock = T0 + i * 10;
        await writer.upsert('docs', docsOf(10).map((d) => ({ ...d, text: `v${i} ${d.id}` })));
      }
      clock = T0 + 1300;
      await writer.upsert('docs', docsOf(2, 'doomed'), { simulateFailure: 'simulated' });
      const before = await fs.readFile(file, 'utf8');
      should(before.trim().split('\n')).have.length(122);

      // The reference timeline: what the writer itself sees, at times after the reload.
      const sample = [T0 + 60_000, T0 + 90_500, T0 + 119_999, T0 + 120_000, T0 + 200_000];
      const expected: CollectionStatus[] = [];
      for (const t of sample) {
        clock = t;
        expected.push(await writer.status('docs'));
      }
      should(expected[0]).eql({ state: 'indexing', documentCount: 12, indexedCount: 0, progress: 0, etaSeconds: null });
      should(expected[2]).containEql({ state: 'indexing', indexedCount: 9 }); // 9 of the last write's 10, not the 2 doomed
      should(expected[3]).containEql({ state: 'failed', indexedCount: 10, detail: 'simulated' });
      await writer.close();

      clock = T0 + 5000; // compaction happens on this load (the new instance's clock may be earlier)
      const reloaded = backend({ dataDir: dir });
      should((await reloaded.stats('docs')).documentCount).equal(12);
      // Writes 0-4 are indexed at T0+5s: the create record, one record with the 12 live
      // documents, then the 115 pending writes (without documents) and the failing one.
      const after = await fs.readFile(file, 'utf8');
      should(after.trim().split('\n')).have.length(2 + 115 + 1);
      should(after.length).be.below(before.length / 5);
      for (const [i, t] of sample.entries()) {
        clock = t;
        should(await reloaded.status('docs')).eql(expected[i]);
      }
      const [hit] = await reloaded.query('docs', { vector: docsOf(10)[4].vector, topK: 1 });
      should(hit.text).equal('v119 doc-4');
      await reloaded.close();

      // The compacted log replays to the same state, even after the failure started.
      clock = T0 + 150_000;
      const again = backend({ dataDir: dir });
      should(await again.status('docs')).eql(expected[4]);
      should((await again.query('docs', { vector: [0, 1, 0], topK: 20 })).length).equal(12);
    });
  });

  describe('damaged files', () => {
    const warnings: string[] = [];
    const log = { warn: (m: string) => warnings.push(m) };

    beforeEach(() => {
      warnings.length = 0;
    });

    /** A persisted collection of 40 documents written 10 per upsert: a create line and 4 upsert lines. */
    async function collectionOf40(): Promise<{ dir: string; file: string; lines: string[] }> {
      const dir = await tempDir();
      const writer = backend({ dataDir: dir, log });
      await writer.ensureCollection('docs', { dimensions: 3 });
      // Long texts: each upsert line is larger than a 4 KB block.
      const docs = docsOf(40).map((d) => ({ ...d, text: `${d.text} ${'lorem ipsum '.repeat(40)}` }));
      for (let i = 0; i < 40; i += 10) await writer.upsert('docs', docs.slice(i, i + 10));
      await writer.close();
      const file = path.join(dir, 'docs.jsonl');
      const lines = (await fs.readFile(file, 'utf8')).trim().split('\n');
      should(lines).have.length(5);
      return { dir, file, lines };
    }

    async function expectDamaged(dir: string, file: string, documents: number, unreadable: number): Promise<MemoryBackend> {
      clock = T0 + 600_000; // long after indexing finished: only the damage can make it fail
      const reader = backend({ dataDir: dir, log });
      const status = await reader.status('docs');
      should(status).containEql({ state: 'failed', documentCount: documents });
      should(status.detail).equal(
        `The file of collection "docs" (${file}) was damaged: ${unreadable} unreadable record${unreadable === 1 ? ' was' : 's were'} kept in ${file}.corrupt, and the documents ${unreadable === 1 ? 'it' : 'they'} held are lost. ` +
          'Re-ingest the collection\'s documents: the next successful write clears this state.',
      );
      should(warnings).have.length(1);
      should(warnings[0]).startWith(`${unreadable} unreadable line${unreadable === 1 ? '' : 's'} in the memory store file ${file} (collection "docs") ${unreadable === 1 ? 'was' : 'were'} copied to ${file}.corrupt`);
      return reader;
    }

    it('a garbled middle line: the other documents load, the line is kept aside, the collection reports failed', async () => {
      const { dir, file, lines } = await collectionOf40();
      lines[2] = lines[2].slice(0, 100) + '@@garbage@@' + lines[2].slice(120);
      await fs.writeFile(file, lines.join('\n') + '\n');
      const reader = await expectDamaged(dir, file, 30, 1);
      const copy = (await fs.readFile(`${file}.corrupt`, 'utf8')).split('\n');
      should(copy[1]).equal(lines[2]);
      should((await reader.query('docs', { vector: docsOf(40)[35].vector, topK: 1 }))[0].id).equal('doc-35');
    });

    it('a 4 KB block of zeros costs only the records it overwrote', async () => {
      const { dir, file, lines } = await collectionOf40();
      const bytes = Buffer.from(lines.join('\n') + '\n');
      const start = Buffer.byteLength(lines.slice(0, 3).join('\n')) + 50; // inside the 3rd upsert line
      bytes.fill(0, start, start + 4096);
      await fs.writeFile(file, bytes);
      should(Buffer.byteLength(lines[3])).be.above(4096 + 50); // the block lies within one line
      await expectDamaged(dir, file, 30, 1);
    });

    it('a record cut short in the middle of the file', async () => {
      const { dir, file, lines } = await collectionOf40();
      lines[1] = lines[1].slice(0, lines[1].length / 2);
      await fs.writeFile(file, lines.join('\n') + '\n');
      await expectDamaged(dir, file, 30, 1);
    });

    it('a record that parses but is invalid (a vector of the wrong size) is damage too', async () => {
      const { dir, file, lines } = await collectionOf40();
      const record = JSON.parse(lines[4]);
      record.docs[0].vector = 'AAAA';
      lines[4] = JSON.stringify(record);
      await fs.writeFile(file, lines.join('\n') + '\n');
      await expectDamaged(dir, file, 30, 1);
    });

    it('a vector with a character that is not base64 is damage', async () => {
      const { dir, file, lines } = await collectionOf40();
      const record = JSON.parse(lines[1]);
      record.docs[3].vector = '#' + record.docs[3].vector.slice(1);
      lines[1] = JSON.stringify(record);
      await fs.writeFile(file, lines.join('\n') + '\n');
      await expectDamaged(dir, file, 30, 1);
    });

    it('the failed state survives a restart, is reported once, and the next write clears it', async () => {
      const { dir, file, lines } = await collectionOf40();
      lines[3] = '#' + lines[3];
      await fs.writeFile(file, lines.join('\n') + '\n');
      const reader = await expectDamaged(dir, file, 30, 1);
      await reader.close();

      warnings.length = 0;
      const again = backend({ dataDir: dir, log });
      should((await again.status('docs')).state).equal('failed');
      should(warnings).eql([]); // already reported and kept aside: the file holds only readable records now
      await again.upsert('docs', docsOf(40).slice(20, 30)); // re-ingest the lost ones
      clock += 600_000;
      should(await again.status('docs')).containEql({ state: 'ready', documentCount: 40 });
      await again.close();
      should((await backend({ dataDir: dir }).status('docs')).state).equal('ready');
    });

    it('a lost create record: every use says so, and the damage is copied aside once', async () => {
      const { dir, file, lines } = await collectionOf40();
      lines[0] = lines[0].replace('"create"', '"cr\u0000ate"');
      await fs.writeFile(file, lines.join('\n') + '\n');
      const reader = backend({ dataDir: dir, log });
      const expected = `The memory store file ${file} of collection "docs" is damaged: its first record (the collection's settings) is unreadable. 1 unreadable line was kept in ${file}.corrupt. Move the file aside, restart Node-RED and re-ingest the collection.`;
      should((await rejectsWith(reader.status('docs'), 'INTERNAL')).message).equal(expected);
      should((await rejectsWith(reader.status('docs'), 'INTERNAL')).message).equal(expected);
      const copy = (await fs.readFile(`${file}.corrupt`, 'utf8')).trim().split('\n');
      should(copy).have.length(2); // one header, one line
    });

    it('a directory in place of a collection file: a clear error, no crash', async () => {
      const dir = await tempDir();
      await fs.mkdir(path.join(dir, 'docs.jsonl'));
      const reader = backend({ dataDir: dir, log });
      const err = await rejectsWith(reader.status('docs'), 'INTERNAL');
      should(err.message).match(/docs\.jsonl.*A directory is in the place of the collection file: move it aside and restart Node-RED\./);
    });

    it('a torn last line stays quiet: no warning, no copy, not failed', async () => {
      const { dir, file } = await collectionOf40();
      await fs.appendFile(file, '{"type":"upsert","at":12,"docs":[{"id":"tor');
      clock = T0 + 600_000;
      const reader = backend({ dataDir: dir, log });
      should(await reader.status('docs')).containEql({ state: 'ready', documentCount: 40 });
      should(warnings).eql([]);
      await should(fs.stat(`${file}.corrupt`)).be.rejected();
    });

    it('removes temp files left by a compaction that was killed', async () => {
      const { dir } = await collectionOf40();
      await fs.writeFile(path.join(dir, 'docs.jsonl.77.lz1x2y.k3j4h5.tmp'), '{"type":"create"');
      await fs.writeFile(path.join(dir, 'unused.jsonl.77.lz1x2y.k3j4h5.tmp'), '{"type":"create"');
      await fs.writeFile(path.join(dir, 'notes.tmp'), 'not ours');
      const reader = backend({ dataDir: dir, log });
      should((await reader.stats('docs')).documentCount).equal(40);
      should((await fs.readdir(dir)).sort()).eql(['docs.jsonl', 'notes.tmp']);
    });
  });

  describe('in-process sharing', () => {
    it('shares non-persisted collections by volatileKey across instances, even after the last close', async () => {
      const key = uniqueKey();
      const first = backend({ volatileKey: key });
      await first.ensureCollection('docs', { dimensions: 3 });
      await first.upsert('docs', docsOf(3));
      await first.close(); // a redeploy: the old instance closes before the new one starts

      const second = backend({ volatileKey: key });
      should((await second.stats('docs')).documentCount).equal(3);
      should(await backend({ volatileKey: uniqueKey() }).collectionExists('docs')).be.false();
      should(await backend().collectionExists('docs')).be.false();
      await second.close();

      forgetVolatileCollections(key); // the config node was deleted
      should(await backend({ volatileKey: key }).collectionExists('docs')).be.false();
    });

    it('ignores volatileKey when a data directory is set', async () => {
      const dir = await tempDir();
      const key = uniqueKey();
      const persisted = backend({ dataDir: dir, volatileKey: key });
      await persisted.ensureCollection('docs', { dimensions: 3 });
      should(await backend({ volatileKey: key }).collectionExists('docs')).be.false();
    });
  });
});
