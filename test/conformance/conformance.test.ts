/**
 * One set of tests, run against every backend through the `Backend` interface
 * alone. A backend is done when it passes all of it. Each backend's fixture
 * (test/conformance/fixtures/) starts the real store and stops it.
 */
import should from 'should';
import type { Backend, CollectionRef, CollectionStatus } from '../../lib/types';
import { collectionLabel } from '../../lib/collection-ref';
import { VectorStoreError } from '../../lib/errors';
import type { BackendFixture } from './fixture';
import { fixtures } from './fixtures';
import { rejectsWith } from '../support/errors';

const DIM = 8;

/** A unit vector along axis `i`, optionally mixed with axis `j`. */
function axis(i: number, j?: number): number[] {
  const v = new Array(DIM).fill(0);
  if (j === undefined) {
    v[i] = 1;
  } else {
    v[i] = Math.SQRT1_2;
    v[j] = Math.SQRT1_2;
  }
  return v;
}

/** `n` distinct deterministic vectors. */
function vectors(n: number, seed = 1): number[][] {
  let x = seed;
  const next = () => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
  return Array.from({ length: n }, () => Array.from({ length: DIM }, next));
}

/** A VectorStoreError of this code, whose message is a real sentence. */
async function expectError(promise: Promise<unknown>, code: string, transient?: boolean): Promise<VectorStoreError> {
  const e = await rejectsWith(promise, code, transient);
  should(e.message.length).be.above(20);
  return e;
}

let counter = 0;
/** A fresh, valid collection name per test. */
function freshName(prefix = 'conf'): string {
  counter += 1;
  return `${prefix}_${Date.now().toString(36)}_${counter}`;
}

async function waitUntilReady(backend: Backend, collection: CollectionRef, budgetSeconds: number): Promise<CollectionStatus[]> {
  const seen: CollectionStatus[] = [];
  const deadline = Date.now() + budgetSeconds * 1000;
  while (Date.now() < deadline) {
    const status = await backend.status(collection);
    seen.push(status);
    if (status.state !== 'indexing') return seen;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`collection ${collectionLabel(collection)} not ready within ${budgetSeconds} s; last status ${JSON.stringify(seen[seen.length - 1])}`);
}

function conformance(fixture: BackendFixture): void {
  describe(`backend conformance: ${fixture.name}${fixture.variant ? ` (${fixture.variant})` : ''}`, function () {
    this.timeout(Math.max(30_000, fixture.indexingBudgetSeconds * 2000));
    let backend: Backend;

    before(async function () {
      this.timeout(120_000);
      await fixture.start();
      backend = fixture.create();
    });

    after(async function () {
      this.timeout(60_000);
      await backend?.close();
      await fixture.stop();
    });

    it('names itself', () => {
      should(backend.name).equal(fixture.name);
    });

    it('creates a collection once, and tells whether it exists', async () => {
      const name = freshName();
      should(await backend.collectionExists(name)).be.false();
      await backend.ensureCollection(name, { dimensions: DIM });
      should(await backend.collectionExists(name)).be.true();
      await backend.ensureCollection(name, { dimensions: DIM }); // idempotent
      should(await backend.collectionExists(name)).be.true();
    });

    it('refuses to re-create a collection with another dimension', async () => {
      const name = freshName();
      await backend.ensureCollection(name, { dimensions: DIM });
      await expectError(backend.ensureCollection(name, { dimensions: DIM + 1 }), 'DIMENSION_MISMATCH', false);
    });

    it('upserts new ids, and replaces re-ingested ids without duplicating them', async () => {
      const name = freshName();
      await backend.ensureCollection(name, { dimensions: DIM });
      const first = await backend.upsert(name, [
        { id: 'a', vector: axis(0), text: 'alpha', metadata: { n: 1 } },
        { id: 'b', vector: axis(1), text: 'beta', metadata: { n: 2 } },
      ]);
      should(first).match({ written: 2, totalCount: 2 });
      const second = await backend.upsert(name, [
        { id: 'b', vector: axis(2), text: 'beta v2', metadata: { n: 3 } },
        { id: 'c', vector: axis(3), text: 'gamma' },
      ]);
      should(second).match({ written: 2, totalCount: 3 });
      await waitUntilReady(backend, name, fixture.indexingBudgetSeconds);
      const hits = await backend.query(name, { vector: axis(2), topK: 1 });
      should(hits[0]).match({ id: 'b', text: 'beta v2', metadata: { n: 3 } });
      should((await backend.stats(name)).documentCount).equal(3);
    });

    it('goes through a whole indexing cycle: indexing with sane counts, then ready with everything indexed', async () => {
      const name = freshName();
      await backend.ensureCollection(name, { dimensions: DIM });
      const docs = vectors(300).map((vector, i) => ({ id: `d${i}`, vector, text: `doc ${i}` }));
      for (let i = 0; i < docs.length; i += 100) {
        await backend.upsert(name, docs.slice(i, i + 100), { buildIndex: true });
      }
      const seen = await waitUntilReady(backend, name, fixture.indexingBudgetSeconds);
      for (const status of seen) {
        should(['indexing', 'ready']).containEql(status.state);
        should(status.documentCount).equal(300);
        should(status.indexedCount).be.within(0, 300);
        if (status.progress !== null) should(status.progress).be.within(0, 1);
        if (status.etaSeconds !== null) should(status.etaSeconds).be.aboveOrEqual(0);
      }
      const last = seen[seen.length - 1];
      should(last).match({ state: 'ready', documentCount: 300, indexedCount: 300 });
    });

    it('reports statistics', async () => {
      const name = freshName();
      await backend.ensureCollection(name, { dimensions: DIM });
      await backend.upsert(name, vectors(20).map((vector, i) => ({ id: `s${i}`, vector })));
      await waitUntilReady(backend, name, fixture.indexingBudgetSeconds);
      const stats = await backend.stats(name);
      should(stats).match({ documentCount: 20, indexedCount: 20, dimensions: DIM, metric: 'cosine' });
      should(stats.indexType).be.a.String().and.not.be.empty();
    });

    it('answers top-k best first, with cosine scores', async () => {
      const name = freshName();
      await backend.ensureCollection(name, { dimensions: DIM });
      await backend.upsert(name, [
        { id: 'x', vector: axis(0), text: 'x' },
        { id: 'xy', vector: axis(0, 1), text: 'xy' },
        { id: 'y', vector: axis(1), text: 'y' },
        { id: 'z', vector: axis(2).map((v) => v * 5), text: 'z (not unit length)' },
      ]);
      await waitUntilReady(backend, name, fixture.indexingBudgetSeconds);
      const hits = await backend.query(name, { vector: axis(0), topK: 3 });
      should(hits.map((h) => h.id)).eql(['x', 'xy', hits[2].id]);
      should(hits[0].score).be.approximately(1, 1e-3);
      should(hits[1].score).be.approximately(Math.SQRT1_2, 1e-3);
      should(hits[2].score).be.approximately(0, 1e-3);
      const scaled = await backend.query(name, { vector: axis(2).map((v) => v * 0.1), topK: 1 });
      should(scaled[0]).match({ id: 'z' });
      should(scaled[0].score).be.approximately(1, 1e-3);
      should(await backend.query(name, { vector: axis(0), topK: 10 })).have.length(4);
    });

    it('round-trips text and metadata, and filters on metadata', async () => {
      const name = freshName();
      await backend.ensureCollection(name, { dimensions: DIM });
      const metadata = { source: 'manual', page: 7, draft: false, tags: ['a', 'b'], nested: { k: 'v' } };
      await backend.upsert(name, [
        { id: 'm1', vector: axis(0), text: 'with metadata: ünïcödé ✓', metadata },
        { id: 'm2', vector: axis(0, 1), text: 'other', metadata: { source: 'web', page: 1 } },
        { id: 'm3', vector: axis(1) },
      ]);
      await waitUntilReady(backend, name, fixture.indexingBudgetSeconds);
      const [hit] = await backend.query(name, { vector: axis(0), topK: 1 });
      should(hit).match({ id: 'm1', text: 'with metadata: ünïcödé ✓' });
      should(hit.metadata).eql(metadata);
      const bare = (await backend.query(name, { vector: axis(1), topK: 1 }))[0];
      should(bare).match({ id: 'm3', text: null });
      should(bare.metadata).eql({});
      const filtered = await backend.query(name, { vector: axis(0), topK: 3, filter: { source: 'web' } });
      should(filtered.map((h) => h.id)).eql(['m2']);
    });

    describe('delete', () => {
      /** A collection holding a source "a" with chunks a#0..a#2, and neighbours that must stay. */
      async function withChunks(): Promise<string> {
        const name = freshName('del');
        await backend.ensureCollection(name, { dimensions: DIM });
        await backend.upsert(name, [
          { id: 'a', vector: axis(0), text: 'source a' },
          { id: 'a#0', vector: axis(0, 1), text: 'a chunk 0', metadata: { source: 'a', chunk: 0, of: 3 } },
          { id: 'a#1', vector: axis(0, 2), text: 'a chunk 1', metadata: { source: 'a', chunk: 1, of: 3 } },
          { id: 'a#2', vector: axis(0, 3), text: 'a chunk 2', metadata: { source: 'a', chunk: 2, of: 3 } },
          { id: 'a2', vector: axis(0, 4), text: 'another document' },
          { id: 'ab#0', vector: axis(0, 5), text: 'chunk of source ab' },
          { id: 'a_%#0', vector: axis(0, 6), text: 'chunk of a source with LIKE wildcards' },
          { id: 'b', vector: axis(1), text: 'b' },
        ]);
        return name;
      }

      const idsOf = async (name: string) => (await backend.query(name, { vector: axis(0), topK: 20 })).map((h) => h.id).sort();

      it('removes documents by id, and says how many and how many are left', async () => {
        const name = await withChunks();
        should(await backend.delete(name, { ids: ['b', 'a2', 'not-there'] })).eql({ deleted: 2, totalCount: 6 });
        await waitUntilReady(backend, name, fixture.indexingBudgetSeconds);
        should(await idsOf(name)).eql(['a', 'a#0', 'a#1', 'a#2', 'a_%#0', 'ab#0']);
        should((await backend.stats(name)).documentCount).equal(6);
      });

      it('removes a source with its chunks (ids "a#n") and nothing else ("a2", "ab#0" stay)', async () => {
        const name = await withChunks();
        should(await backend.delete(name, { sources: ['a'] })).eql({ deleted: 4, totalCount: 4 });
        const seen = await waitUntilReady(backend, name, fixture.indexingBudgetSeconds);
        should(seen[seen.length - 1]).match({ state: 'ready', documentCount: 4, indexedCount: 4 });
        should(await idsOf(name)).eql(['a2', 'a_%#0', 'ab#0', 'b']);
        // A filter on the chunks' metadata finds none of them either.
        should(await backend.query(name, { vector: axis(0), topK: 5, filter: { source: 'a' } })).eql([]);
      });

      it('matches a source literally: LIKE wildcards in it match nothing else', async () => {
        const name = await withChunks();
        should(await backend.delete(name, { sources: ['_', '%', 'a_'] })).eql({ deleted: 0, totalCount: 8 });
        should(await backend.delete(name, { sources: ['a_%'] })).eql({ deleted: 1, totalCount: 7 });
        should(await idsOf(name)).not.containEql('a_%#0');
      });

      it('ids and sources with quotes, backslashes and spaces are matched as they are', async () => {
        const name = freshName('del');
        await backend.ensureCollection(name, { dimensions: DIM });
        const odd = ["o'brien", 'back\\slash', 'with space', "x' OR '1'='1", 'ünï'];
        await backend.upsert(name, [
          ...odd.map((id, i) => ({ id, vector: axis(i % DIM) })),
          ...odd.map((id, i) => ({ id: `${id}#0`, vector: axis(i % DIM, (i + 1) % DIM) })),
          { id: 'keep', vector: axis(7) },
        ]);
        should(await backend.delete(name, { ids: ["o'brien", "x' OR '1'='1"] })).eql({ deleted: 2, totalCount: 9 });
        should(await backend.delete(name, { sources: ['back\\slash', 'with space', 'ünï', "o'brien"] })).eql({ deleted: 7, totalCount: 2 });
        should((await backend.query(name, { vector: axis(7), topK: 10 })).map((h) => h.id).sort()).eql(["keep", "x' OR '1'='1#0"].sort());
      });

      it('an indexed collection stays truthful after a delete: ready, counts down, same index, queries skip the deleted', async () => {
        const name = freshName('del');
        await backend.ensureCollection(name, { dimensions: DIM });
        const docs = vectors(300, 5).map((vector, i) => ({ id: i < 30 ? `big#${i}` : `d${i}`, vector }));
        for (let i = 0; i < docs.length; i += 100) await backend.upsert(name, docs.slice(i, i + 100), { buildIndex: true });
        await waitUntilReady(backend, name, fixture.indexingBudgetSeconds);
        const before = await backend.stats(name);
        should(await backend.delete(name, { sources: ['big'], ids: ['d30'] })).eql({ deleted: 31, totalCount: 269 });
        const seen = await waitUntilReady(backend, name, fixture.indexingBudgetSeconds);
        should(seen[seen.length - 1]).match({ state: 'ready', documentCount: 269, indexedCount: 269 });
        should(await backend.stats(name)).match({ documentCount: 269, indexedCount: 269, indexType: before.indexType });
        for (const gone of [docs[0], docs[29], docs[30]]) {
          const hits = await backend.query(name, { vector: gone.vector, topK: 5 });
          should(hits.map((h) => h.id)).not.containEql(gone.id);
          should(hits.some((h) => h.id.startsWith('big#'))).be.false();
        }
      });

      it('ids and sources together, counted once each', async () => {
        const name = await withChunks();
        should(await backend.delete(name, { ids: ['a#1', 'b'], sources: ['a', 'a'] })).eql({ deleted: 5, totalCount: 3 });
        should(await idsOf(name)).eql(['a2', 'a_%#0', 'ab#0']);
      });

      it('deleting nothing that exists is not an error: deleted 0', async () => {
        const name = await withChunks();
        should(await backend.delete(name, { ids: ['zz'], sources: ['zz'] })).eql({ deleted: 0, totalCount: 8 });
        should((await backend.stats(name)).documentCount).equal(8);
      });

      it('a document written again after its delete is back', async () => {
        const name = await withChunks();
        await backend.delete(name, { sources: ['a'] });
        should(await backend.upsert(name, [{ id: 'a#0', vector: axis(0), text: 'a again' }])).match({ written: 1, totalCount: 5 });
        await waitUntilReady(backend, name, fixture.indexingBudgetSeconds);
        should((await backend.query(name, { vector: axis(0), topK: 1 }))[0]).match({ id: 'a#0', text: 'a again' });
      });

      it('says NOT_FOUND for a missing collection, INVALID_INPUT for an empty or malformed selector', async () => {
        await expectError(backend.delete(freshName('missing'), { ids: ['a'] }), 'NOT_FOUND', false);
        const name = await withChunks();
        await expectError(backend.delete(name, {}), 'INVALID_INPUT', false);
        await expectError(backend.delete(name, { ids: [], sources: [] }), 'INVALID_INPUT', false);
        await expectError(backend.delete(name, { ids: [''] }), 'INVALID_INPUT', false);
        await expectError(backend.delete(name, { ids: 'a' } as never), 'INVALID_INPUT', false);
        should((await backend.stats(name)).documentCount).equal(8);
      });
    });

    for (const bad of ['', 'has space', '../escape', 'semi;colon', 'x'.repeat(64), 'Robert"); DROP TABLE x;--']) {
      it(`rejects the collection name ${JSON.stringify(bad.length > 20 ? bad.slice(0, 20) + '…' : bad)}`, async () => {
        await expectError(backend.ensureCollection(bad, { dimensions: DIM }), 'INVALID_INPUT', false);
        await expectError(backend.collectionExists(bad), 'INVALID_INPUT', false);
      });
    }

    it('rejects vectors of the wrong dimension, writing nothing', async () => {
      const name = freshName();
      await backend.ensureCollection(name, { dimensions: DIM });
      await backend.upsert(name, [{ id: 'ok', vector: axis(0) }]);
      await expectError(
        backend.upsert(name, [
          { id: 'fine', vector: axis(1) },
          { id: 'short', vector: [1, 2, 3] },
        ]),
        'DIMENSION_MISMATCH',
        false,
      );
      await expectError(backend.query(name, { vector: [1, 2, 3], topK: 1 }), 'DIMENSION_MISMATCH', false);
      await waitUntilReady(backend, name, fixture.indexingBudgetSeconds);
      should((await backend.stats(name)).documentCount).equal(1);
    });

    it('says NOT_FOUND, permanently, for a collection that does not exist', async () => {
      const name = freshName('missing');
      await expectError(backend.status(name), 'NOT_FOUND', false);
      await expectError(backend.stats(name), 'NOT_FOUND', false);
      await expectError(backend.query(name, { vector: axis(0), topK: 1 }), 'NOT_FOUND', false);
      await expectError(backend.upsert(name, [{ id: 'a', vector: axis(0) }]), 'NOT_FOUND', false);
    });

    if (fixture.unreachable) {
      const unreachable = fixture.unreachable;
      it('says UNAVAILABLE, transient, when the store cannot be reached', async () => {
        const lost = unreachable();
        try {
          const err = await expectError(lost.status('anything'), 'UNAVAILABLE', true);
          should(err.message).match(new RegExp(fixture.name, 'i'));
        } finally {
          await lost.close();
        }
      });
    }

    if (fixture.createForeign) {
      const createForeign = fixture.createForeign.bind(fixture);
      it('watches a collection another tool made, where it is: exists, status ready with its count, statistics, nearest neighbours', async () => {
        const given = vectors(12, 7);
        const ref = await createForeign(freshName('foreign'), given);
        should(await backend.collectionExists(ref)).be.true();
        const seen = await waitUntilReady(backend, ref, fixture.indexingBudgetSeconds);
        should(seen[seen.length - 1]).match({ state: 'ready', documentCount: 12, indexedCount: 12 });
        const stats = await backend.stats(ref);
        should(stats).match({ documentCount: 12, dimensions: DIM });
        const hits = await backend.query(ref, { vector: given[5], topK: 3 });
        should(hits.length).equal(3);
        should(hits[0]).match({ id: 'a5', text: 'text 5' });
        should(hits[0].score).be.aboveOrEqual(hits[1].score);
      });

      if (fixture.buildForeignIndex) {
        const buildForeignIndex = fixture.buildForeignIndex.bind(fixture);
        it('a vector index the other tool built itself (under its own name) is seen: ready, every row indexed, its type and metric, queries through it', async () => {
          const given = vectors(40, 11);
          const ref = await createForeign(freshName('foreign'), given);
          const expected = await buildForeignIndex(ref);
          const seen = await waitUntilReady(backend, ref, fixture.indexingBudgetSeconds);
          should(seen[seen.length - 1]).match({ state: 'ready', documentCount: 40, indexedCount: 40 });
          should(await backend.stats(ref)).match({ documentCount: 40, indexedCount: 40, dimensions: DIM, ...expected });
          const hits = await backend.query(ref, { vector: given[17], topK: 1 });
          should(hits[0]).match({ id: 'a17', text: 'text 17' });
        });
      }

      it('another tool\'s collection that is not there: exists false, and NOT_FOUND naming it', async () => {
        const ref = await createForeign(freshName('foreign'), vectors(2, 3));
        const missing = { ...ref, name: `${ref.name}_missing` };
        should(await backend.collectionExists(missing)).be.false();
        const e = await expectError(backend.status(missing), 'NOT_FOUND', false);
        should(e.message).containEql(missing.name);
      });
    }

    if (fixture.badCredentials) {
      const { how, create } = fixture.badCredentials;
      it(`says AUTH, permanent, when the store rejects the credentials (${how})`, async () => {
        const { backend: rejected, close } = await create();
        try {
          await expectError(rejected.collectionExists('anything'), 'AUTH', false);
        } finally {
          await rejected.close();
          await close();
        }
      });
    }
  });
}

for (const fixture of fixtures) conformance(fixture);
