/**
 * The memory store's optional HNSW index, with the real usearch package: its
 * answers against the exact search's, writes and deletes seen, the fallbacks
 * (usearch missing, a filter, below the size, while it builds) and close.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import should from 'should';
import { createBackend } from '../../lib/backends';
import { MemoryBackend, forgetVolatileCollections, type MemoryBackendOptions } from '../../lib/backends/memory';
import { VectorRows } from '../../lib/backends/memory/vector-rows';
import { parseStoreConfig } from '../../lib/schemas';
import type { Metric, VectorDocument } from '../../lib/types';

/** Deterministic pseudo-random numbers in [-1, 1) (mulberry32). */
function randomSource(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  };
}

/**
 * Vectors around `clusters` random centres (spread 0.25 of a centre's scale):
 * real embeddings cluster by topic; on uniform random vectors every approximate
 * index loses most of its recall, which says nothing of real data.
 */
function clusteredVectors(count: number, dimensions: number, clusters: number, seed: number): Float32Array[] {
  const next = randomSource(seed);
  const centres = Array.from({ length: clusters }, () => Float32Array.from({ length: dimensions }, () => next()));
  return Array.from({ length: count }, () => {
    const centre = centres[Math.floor(((next() + 1) / 2) * clusters)];
    return Float32Array.from(centre, (c) => c + 0.25 * next());
  });
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Let the index build (one slice per event-loop turn) until the store says it answers. */
async function untilHnsw(backend: MemoryBackend, collection: string): Promise<void> {
  while ((await backend.stats(collection)).search !== 'hnsw') await nextTurn();
}

async function fill(backend: MemoryBackend, name: string, metric: Metric, docs: VectorDocument[]): Promise<void> {
  await backend.ensureCollection(name, { dimensions: docs[0].vector.length, metric });
  for (let start = 0; start < docs.length; start += 5000) await backend.upsert(name, docs.slice(start, start + 5000));
}

const docsOf = (vectors: Float32Array[]): VectorDocument[] =>
  vectors.map((vector, i) => ({ id: `d${i}`, vector, metadata: { group: i % 4 } }));

/** Share of the exact top 10 the other search also returned, over every query. */
async function recallAt10(exact: MemoryBackend, other: MemoryBackend, name: string, queries: Float32Array[]): Promise<number> {
  let found = 0;
  for (const vector of queries) {
    const truth = new Set((await exact.query(name, { vector, topK: 10 })).map((h) => h.id));
    for (const hit of await other.query(name, { vector, topK: 10 })) if (truth.has(hit.id)) found += 1;
  }
  return found / (queries.length * 10);
}

describe('memory backend: HNSW index (usearch)', function () {
  // Building an index of 20,000 vectors takes seconds on a busy machine; no assertion is on time.
  this.timeout(300_000);

  const opened: MemoryBackend[] = [];
  const warnings: string[] = [];
  function backend(options: Partial<MemoryBackendOptions> = {}): MemoryBackend {
    const b = new MemoryBackend({ dataDir: null, indexingRate: 1e9, indexingDelay: 0, log: { warn: (m) => warnings.push(m) }, ...options });
    opened.push(b);
    return b;
  }
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((b) => b.close()));
    warnings.length = 0;
  });

  it('finds at least 95% of the exact top 10 on 20,000 clustered vectors of 64 dimensions, each metric', async () => {
    const vectors = clusteredVectors(20_000, 64, 50, 1);
    const queries = clusteredVectors(100, 64, 50, 1).map((v, i) => Float32Array.from(v, (x, j) => x + 0.1 * Math.sin(i + j)));
    for (const metric of ['cosine', 'l2', 'dot'] as const) {
      const exact = backend();
      const hnsw = backend({ index: 'hnsw' }); // the default size: 20,000
      await fill(exact, 'c', metric, docsOf(vectors));
      await fill(hnsw, 'c', metric, docsOf(vectors));
      await untilHnsw(hnsw, 'c');
      const recall = await recallAt10(exact, hnsw, 'c', queries);
      should(recall).be.aboveOrEqual(0.95, `${metric}: recall@10 ${recall}`);
      // A hit scores the same whichever search found it.
      const [best] = await hnsw.query('c', { vector: vectors[7], topK: 1 });
      const [exactBest] = await exact.query('c', { vector: vectors[7], topK: 1 });
      should(best).eql(exactBest);
      await Promise.all(opened.splice(0).map((b) => b.close()));
    }
  });

  it('ranks more candidates than one kernel call scores in several calls, each hit with its exact score', async () => {
    // 1024 dimensions: 4096 rows per call; topK 1500 asks the index for 4500 candidates.
    const vectors = clusteredVectors(5000, 1024, 20, 4);
    const hnsw = backend({ index: 'hnsw', hnswMinDocuments: 1000 });
    const exact = backend();
    await fill(hnsw, 'c', 'cosine', docsOf(vectors));
    await fill(exact, 'c', 'cosine', docsOf(vectors));
    await untilHnsw(hnsw, 'c');
    const calls: number[] = [];
    const scoreRows = VectorRows.prototype.scoreRows;
    VectorRows.prototype.scoreRows = function (this: VectorRows, ...args: Parameters<VectorRows['scoreRows']>) {
      calls.push(args[3]);
      return scoreRows.apply(this, args);
    };
    let hits;
    try {
      hits = await hnsw.query('c', { vector: vectors[11], topK: 1500 });
    } finally {
      VectorRows.prototype.scoreRows = scoreRows;
    }
    should(calls.length).be.aboveOrEqual(2);
    should(Math.max(...calls)).be.belowOrEqual(4096);
    should(hits).have.length(1500);
    const exactScores = new Map((await exact.query('c', { vector: vectors[11], topK: 5000 })).map((h) => [h.id, h.score]));
    for (let i = 0; i < hits.length; i++) {
      should(hits[i].score).equal(exactScores.get(hits[i].id));
      if (i > 0) should(hits[i].score).be.belowOrEqual(hits[i - 1].score);
    }
    should(new Set(hits.map((h) => h.id)).size).equal(1500);
  });

  it('searches exactly below the size, with a filter, and while the index catches up with a write', async () => {
    const vectors = clusteredVectors(2000, 32, 20, 2);
    const hnsw = backend({ index: 'hnsw', hnswMinDocuments: 1000 });
    const exact = backend();
    await fill(hnsw, 'c', 'cosine', docsOf(vectors.slice(0, 999)));
    should(await hnsw.stats('c')).containDeep({ search: 'exact', indexType: 'exact (flat)' });

    await hnsw.upsert('c', docsOf(vectors).slice(999));
    await fill(exact, 'c', 'cosine', docsOf(vectors));
    // At the size: the collection has its index (indexType), the exact search answers until it is built.
    should(await hnsw.stats('c')).containDeep({ search: 'exact', indexType: 'hnsw (usearch)' });
    await untilHnsw(hnsw, 'c');
    should((await hnsw.stats('c')).indexType).equal('hnsw (usearch)');

    // A filter is answered by the exact scan: the same hits as the exact store's.
    const query = { vector: vectors[3], topK: 10, filter: { group: 1 } };
    should(await hnsw.query('c', query)).eql(await exact.query('c', query));

    // A new document is found at once: the exact search answers until the index has it.
    const fresh = Float32Array.from(vectors[0], (x) => -x);
    await hnsw.upsert('c', [{ id: 'fresh', vector: fresh }]);
    should((await hnsw.stats('c')).search).equal('exact');
    should((await hnsw.query('c', { vector: fresh, topK: 1 }))[0].id).equal('fresh');
    await untilHnsw(hnsw, 'c');
    should((await hnsw.query('c', { vector: fresh, topK: 1 }))[0].id).equal('fresh');
  });

  it('reflects upserts and deletes once caught up (rows moved by a delete included)', async () => {
    const vectors = clusteredVectors(3000, 32, 30, 3);
    const hnsw = backend({ index: 'hnsw', hnswMinDocuments: 1000 });
    const exact = backend();
    await fill(hnsw, 'c', 'l2', docsOf(vectors));
    await fill(exact, 'c', 'l2', docsOf(vectors));
    await untilHnsw(hnsw, 'c');

    const query = vectors[42];
    const top = (await hnsw.query('c', { vector: query, topK: 10 })).map((h) => h.id);
    should(top[0]).equal('d42');
    // Deleting the best five moves the last rows into their places.
    const gone = top.slice(0, 5);
    for (const b of [hnsw, exact]) await b.delete('c', { ids: gone });
    // A document written over now points the other way, another is the query itself.
    const moved = [
      { id: 'd2999', vector: query },
      { id: top[5], vector: Float32Array.from(query, (x) => -x) },
    ];
    for (const b of [hnsw, exact]) await b.upsert('c', moved);
    await untilHnsw(hnsw, 'c');

    const after = await hnsw.query('c', { vector: query, topK: 10 });
    should(after[0].id).equal('d2999');
    should(after.map((h) => h.id).filter((id) => [...gone, top[5]].includes(id))).eql([]);
    should((await hnsw.stats('c')).documentCount).equal(2995);
    const queries = clusteredVectors(50, 32, 30, 3);
    should(await recallAt10(exact, hnsw, 'c', queries)).be.aboveOrEqual(0.95);
  });

  it('falls back to the exact search, saying once why, when usearch cannot be loaded (a loader that fails like a missing package)', async () => {
    const missing = () => {
      const err = new Error("Cannot find module 'usearch'") as NodeJS.ErrnoException;
      err.code = 'MODULE_NOT_FOUND';
      throw err;
    };
    const vectors = clusteredVectors(1200, 16, 10, 4);
    const hnsw = backend({ index: 'hnsw', hnswMinDocuments: 1000, usearchLoader: missing });
    const exact = backend();
    await fill(hnsw, 'c', 'cosine', docsOf(vectors));
    await fill(exact, 'c', 'cosine', docsOf(vectors));
    for (const vector of vectors.slice(0, 5)) should(await hnsw.query('c', { vector, topK: 10 })).eql(await exact.query('c', { vector, topK: 10 }));
    should(await hnsw.stats('c')).containDeep({ search: 'exact', indexType: 'exact (flat)' });
    should(warnings).have.length(1);
    should(warnings[0]).match(/needs usearch, but the usearch package is not installed: run "npm install usearch@2\.26"/);
  });

  it('takes the vector-store configuration\'s memoryIndex: hnsw from 20,000 documents on, exact by default', async () => {
    const vectors = clusteredVectors(20_000, 16, 20, 7);
    for (const memoryIndex of ['hnsw', undefined]) {
      const store = createBackend(parseStoreConfig({ backend: 'memory', persist: false, indexingRate: 1e9, indexingDelay: 0, memoryIndex }), {
        userDir: null,
        storeKey: `hnsw-config-${memoryIndex}`,
        credentials: {},
      });
      try {
        await store.ensureCollection('c', { dimensions: 16, metric: 'cosine' });
        await store.upsert('c', docsOf(vectors.slice(0, 19_999)));
        should(await store.stats('c')).containDeep({ indexType: 'exact (flat)', search: 'exact' });
        await store.upsert('c', docsOf(vectors).slice(19_999));
        if (memoryIndex === 'hnsw') {
          while ((await store.stats('c')).search !== 'hnsw') await nextTurn();
          should((await store.stats('c')).indexType).equal('hnsw (usearch)');
        } else {
          should(await store.stats('c')).containDeep({ indexType: 'exact (flat)', search: 'exact' });
        }
      } finally {
        await store.close();
        forgetVolatileCollections(`hnsw-config-${memoryIndex}`);
      }
    }
  });

  it('builds the index again for a collection loaded from its file (it is not saved)', async () => {
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'memory-hnsw-'));
    try {
      const vectors = clusteredVectors(1500, 16, 10, 5);
      const first = backend({ dataDir, index: 'hnsw', hnswMinDocuments: 1000 });
      await fill(first, 'c', 'cosine', docsOf(vectors));
      await untilHnsw(first, 'c');
      await first.close();

      const again = backend({ dataDir, index: 'hnsw', hnswMinDocuments: 1000 });
      should(await again.stats('c')).containDeep({ search: 'exact', indexType: 'hnsw (usearch)' });
      await untilHnsw(again, 'c');
      should((await again.query('c', { vector: vectors[9], topK: 1 }))[0].id).equal('d9');
    } finally {
      await Promise.all(opened.splice(0).map((b) => b.close()));
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  });

  it('stops building when its last user closes, and goes on at the next search of the shared collection', async () => {
    const vectors = clusteredVectors(3000, 64, 10, 6);
    const first = backend({ volatileKey: 'hnsw-close', index: 'hnsw', hnswMinDocuments: 1000 });
    await fill(first, 'c', 'cosine', docsOf(vectors));
    should((await first.stats('c')).search).equal('exact'); // starts the build
    await nextTurn();
    await first.close();
    // Nothing is scheduled once closed: no event-loop turn is taken (mocha would otherwise wait for the build).
    await nextTurn();
    should(process.getActiveResourcesInfo().filter((r) => r === 'Immediate')).have.length(0);

    const second = backend({ volatileKey: 'hnsw-close', index: 'hnsw', hnswMinDocuments: 1000 });
    await untilHnsw(second, 'c');
    should((await second.query('c', { vector: vectors[11], topK: 1 }))[0].id).equal('d11');
    await second.close();
    forgetVolatileCollections('hnsw-close');
  });
});
