import should from 'should';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { MemoryBackend } from '../../lib/backends/memory';
import { scanKernel, scoresInJavaScript } from '../../lib/backends/memory/scan-kernel';
import { normalise } from '../../lib/backends/memory/search';
import { SLICE_BYTES, VectorRows, WASM_FROM_BYTES } from '../../lib/backends/memory/vector-rows';
import type { VectorStoreError } from '../../lib/errors';
import { MemoryCollection } from '../../lib/backends/memory/collection';
import type { Metric, QueryHit } from '../../lib/types';
import { rejectsWith } from '../support/errors';

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

function randomVectors(count: number, dimensions: number, seed: number): Float32Array[] {
  const next = randomSource(seed);
  const vectors: Float32Array[] = [];
  for (let v = 0; v < count; v++) {
    const vector = new Float32Array(dimensions);
    for (let i = 0; i < dimensions; i++) vector[i] = next();
    vectors.push(vector);
  }
  return vectors;
}

const execFileAsync = promisify(execFile);

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The scores the memory backend must give, in float64, one element after the other. */
function referenceScore(metric: Metric, stored: Float32Array, query: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < query.length; i++) {
    if (metric === 'l2') sum += (stored[i] - query[i]) ** 2;
    else sum += stored[i] * query[i];
  }
  if (metric === 'l2') return -Math.sqrt(sum);
  return metric === 'cosine' ? Math.min(1, Math.max(-1, sum)) : sum;
}

const unitVectors = new WeakMap<Float32Array, Float32Array>();

/**
 * Brute force over every document: a full sort, ties in insertion order. Vectors
 * are normalised (in float32, as stored) for the cosine metric.
 */
function bruteForce(
  metric: Metric,
  docs: Array<{ id: string; vector: Float32Array; metadata?: Record<string, unknown> }>,
  rawQuery: Float32Array,
  topK: number,
  accept: (doc: { metadata?: Record<string, unknown> }) => boolean = () => true,
): Array<{ id: string; score: number }> {
  const prepare = (v: Float32Array) => {
    if (metric !== 'cosine') return v;
    let unit = unitVectors.get(v);
    if (!unit) {
      unit = Float32Array.from(v);
      normalise(unit);
      unitVectors.set(v, unit);
    }
    return unit;
  };
  const query = prepare(rawQuery);
  return docs
    .map((doc, row) => ({ id: doc.id, row, score: referenceScore(metric, prepare(doc.vector), query), doc }))
    .filter(({ doc }) => accept(doc))
    .sort((a, b) => b.score - a.score || a.row - b.row)
    .slice(0, topK)
    .map(({ id, score }) => ({ id, score }));
}

function expectSameHits(hits: QueryHit[], expected: Array<{ id: string; score: number }>): void {
  should(hits.map((h) => h.id)).eql(expected.map((e) => e.id));
  // Partial sums in another order: equal to the last bits.
  hits.forEach((hit, i) => should(hit.score).be.approximately(expected[i].score, 1e-9 * Math.max(1, Math.abs(expected[i].score))));
}

describe('memory backend search', () => {
  const opened: MemoryBackend[] = [];
  function backend(): MemoryBackend {
    const b = new MemoryBackend({ dataDir: null, indexingRate: 1e9, indexingDelay: 0 });
    opened.push(b);
    return b;
  }
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((b) => b.close()));
  });

  /** Enough 384-dimension rows for `slices` slices of the scan (the last one partly filled). */
  const rowsForSlices = (slices: number, dimensions = 384) => Math.floor(((slices - 0.5) * SLICE_BYTES) / (dimensions * 4));

  async function collectionOf(b: MemoryBackend, name: string, metric: Metric, docs: Array<{ id: string; vector: Float32Array }>): Promise<void> {
    await b.ensureCollection(name, { dimensions: docs[0].vector.length, metric });
    for (let start = 0; start < docs.length; start += 5000) await b.upsert(name, docs.slice(start, start + 5000));
  }

  describe('the SIMD kernel', () => {
    it('gives the float64 dot product and squared distance for any number of dimensions, as its JavaScript twin does to the bit', () => {
      for (const dimensions of [1, 2, 3, 7, 8, 9, 15, 16, 17, 384, 385]) {
        const rows = randomVectors(5, dimensions, dimensions);
        const [query] = randomVectors(1, dimensions, 1000 + dimensions);
        const queryBytes = dimensions * 8;
        const rowsAt = Math.ceil((queryBytes + rows.length * 8) / 16) * 16;
        const memory = new WebAssembly.Memory({ initial: 1 });
        const kernel = scanKernel(memory);
        new Float64Array(memory.buffer, 0, dimensions).set(query);
        rows.forEach((row, r) => new Float32Array(memory.buffer, rowsAt, rows.length * dimensions).set(row, r * dimensions));
        const out = new Float64Array(memory.buffer, queryBytes, rows.length);

        const packed = new Float32Array(rows.length * dimensions);
        rows.forEach((row, r) => packed.set(row, r * dimensions));
        const inJavaScript = new Float64Array(rows.length);
        const query64 = Float64Array.from(query);

        kernel.dot(0, rowsAt, rows.length, dimensions, queryBytes);
        rows.forEach((row, r) => should(out[r]).be.approximately(referenceScore('dot', row, query), 1e-12));
        scoresInJavaScript('dot', query64, packed, 0, rows.length, inJavaScript);
        should(Array.from(inJavaScript)).eql(Array.from(out)); // to the bit
        kernel.squaredDistance(0, rowsAt, rows.length, dimensions, queryBytes);
        rows.forEach((row, r) => should(out[r]).be.approximately(referenceScore('l2', row, query) ** 2, 1e-12));
        scoresInJavaScript('squaredDistance', query64, packed, 0, rows.length, inJavaScript);
        should(Array.from(inJavaScript)).eql(Array.from(out));
      }
    });

    it('the JavaScript twin scores a row range of a packed array', () => {
      const rows = randomVectors(10, 9, 5);
      const packed = new Float32Array(90);
      rows.forEach((row, r) => packed.set(row, r * 9));
      const [query] = randomVectors(1, 9, 6);
      const out = new Float64Array(3);
      scoresInJavaScript('dot', Float64Array.from(query), packed, 4, 3, out);
      out.forEach((score, i) => should(score).be.approximately(referenceScore('dot', rows[4 + i], query), 1e-12));
    });
  });

  describe('vector rows', () => {
    it('small collections stay in a plain array; past 1 MiB they move to WebAssembly memory, scoring the same to the bit', () => {
      const dimensions = 384;
      const vectors = randomVectors(Math.ceil((2 * WASM_FROM_BYTES) / (dimensions * 4)), dimensions, 51);
      const [query] = randomVectors(1, dimensions, 52);
      const rows = new VectorRows(dimensions);
      let before: { dot: number[]; l2: number[] } | null = null;
      vectors.forEach((vector, row) => {
        rows.ensureCapacity(row + 1);
        rows.set(row, vector);
        if (row === 99) {
          should(rows.inWebAssembly).be.false();
          before = { dot: Array.from(rows.scoreSlice(query, 'dot', 0, 100)), l2: Array.from(rows.scoreSlice(query, 'l2', 0, 100)) };
        }
      });
      should(rows.inWebAssembly).be.true();
      should(Array.from(rows.scoreSlice(query, 'dot', 0, 100))).eql(before!.dot);
      should(Array.from(rows.scoreSlice(query, 'l2', 0, 100))).eql(before!.l2);
      should(Array.from(rows.vector(vectors.length - 1))).eql(Array.from(vectors[vectors.length - 1]));
    });

    it('scores any rows, in any order, as the slice scan scores them (to the bit), in a plain array and in WebAssembly memory', () => {
      const dimensions = 384;
      const vectors = randomVectors(Math.ceil((2 * WASM_FROM_BYTES) / (dimensions * 4)), dimensions, 53);
      const [query] = randomVectors(1, dimensions, 54);
      const picked = [7, 0, 99, 42, 42, 13];
      const check = (rows: VectorRows, upTo: number) => {
        for (const metric of ['cosine', 'dot', 'l2'] as const) {
          const all = Array.from(rows.scoreSlice(query, metric, 0, upTo));
          should(Array.from(rows.scoreRows(query, metric, picked, picked.length).subarray(0, picked.length))).eql(picked.map((row) => all[row]));
        }
      };
      const rows = new VectorRows(dimensions);
      vectors.forEach((vector, row) => {
        rows.ensureCapacity(row + 1);
        rows.set(row, vector);
        if (row === 99) check(rows, 100);
      });
      should(rows.inWebAssembly).be.true();
      check(rows, 100);
      should(() => rows.scoreRows(query, 'dot', new Array(rows.sliceRows + 1).fill(0), rows.sliceRows + 1)).throw(RangeError);
    });

    it('refuses more than 4 GiB of vectors in one collection, saying how many fit, before allocating any', () => {
      const rows = new VectorRows(100_000); // 400 KB per vector: about 10,700 fit
      const err = (() => {
        try {
          rows.ensureCapacity(20_000);
        } catch (e) {
          return e as VectorStoreError;
        }
        throw new Error('expected a refusal');
      })();
      should(err.code).equal('INVALID_INPUT');
      should(err.message).match(/at most 4 GiB of vectors per collection \(10,735 vectors of 100000 dimensions\)/);
      rows.ensureCapacity(100); // still usable
      rows.set(99, new Float32Array(100_000).fill(1));
      should(rows.vector(99)[99_999]).equal(1);
    });
  });

  it('a write that would not fit is refused before it is saved (counting only new ids, once each)', () => {
    const collection = new MemoryCollection('big', 100_000, 'dot', 0, null);
    const vector = new Float32Array(100_000);
    const doc = (id: string) => ({ id, vector, text: null, metadata: null });
    collection.apply([doc('a'), doc('b')], { at: 0, count: 2, rate: 1, delay: 0 });
    const fits = Array.from({ length: 10_733 }, (_, i) => doc(`new-${i}`));
    collection.checkRoomFor([...fits, doc('a'), doc('b'), doc('new-0')]);
    should(() => collection.checkRoomFor([...fits, doc('one-more')])).throw(/at most 4 GiB/);
  });

  it('holds 15,000 small collections in one process (each WebAssembly memory reserves address space: a process ran out at about 13,000)', async () => {
    const b = backend();
    const count = 15_000;
    for (let i = 0; i < count; i++) {
      await b.ensureCollection(`c${i}`, { dimensions: 8, metric: 'dot' });
      await b.upsert(`c${i}`, [{ id: 'only', vector: [i, 0, 0, 0, 0, 0, 0, 1] }]);
    }
    const [hit] = await b.query(`c${count - 1}`, { vector: [1, 0, 0, 0, 0, 0, 0, 0], topK: 1 });
    should(hit).containEql({ id: 'only', score: count - 1 });
  });

  it('works without WebAssembly (node --jitless): the vectors stay in a plain array, with the same results', async () => {
    const script = `
      const { MemoryBackend } = require(${JSON.stringify(require.resolve('../../lib/backends/memory'))});
      (async () => {
        const b = new MemoryBackend({ dataDir: null, indexingRate: 1e9, indexingDelay: 0 });
        await b.ensureCollection('s', { dimensions: 384, metric: 'l2' });
        const docs = Array.from({ length: 3000 }, (_, i) => ({ id: 'v' + i, vector: Array.from({ length: 384 }, (_, j) => Math.sin(i * 7 + j)) }));
        await b.upsert('s', docs);
        const hits = await b.query('s', { vector: docs[1234].vector, topK: 3 });
        console.log(JSON.stringify({ webAssembly: typeof WebAssembly, hits: hits.map((h) => [h.id, h.score]) }));
        await b.close();
      })();`;
    const run = async (flags: string[]) => {
      const { stdout } = await execFileAsync(process.execPath, [...flags, '--import', 'tsx', '-e', script], { timeout: 60_000 });
      return JSON.parse(stdout.trim().split('\n').pop() as string) as { webAssembly: string; hits: Array<[string, number]> };
    };
    const [without, withIt] = await Promise.all([run(['--jitless']), run([])]);
    should(without.webAssembly).equal('undefined');
    should(withIt.webAssembly).equal('object');
    should(without.hits).eql(withIt.hits); // 3,000 x 384 is past 1 MiB: WebAssembly with it, JavaScript without, the same scores
    should(without.hits[0]).eql(['v1234', 0]);
  });

  describe('results', () => {
    for (const metric of ['cosine', 'l2', 'dot'] as const) {
      it(`${metric}: identical to brute force over a collection of several slices, ties in insertion order, with and without a filter`, async () => {
        const b = backend();
        const vectors = randomVectors(rowsForSlices(3), 384, 7);
        // Exact duplicates score exactly the same: their order is the order they were written in.
        for (const [copy, of] of [[100, 5], [20_000, 5], [25_000, 10_000]]) vectors[copy] = Float32Array.from(vectors[of]);
        const docs = vectors.map((vector, i) => ({ id: `d${i}`, vector, metadata: { group: i % 3 } }));
        await collectionOf(b, 'rand', metric, docs);

        for (const query of [...randomVectors(3, 384, 99), vectors[5], vectors[10_000]]) {
          expectSameHits(await b.query('rand', { vector: query, topK: 25 }), bruteForce(metric, docs, query, 25));
          const filtered = await b.query('rand', { vector: query, topK: 10, filter: { group: 2 } });
          expectSameHits(filtered, bruteForce(metric, docs, query, 10, (d) => d.metadata?.group === 2));
        }
        // A tie at the last place kept: the earlier row keeps it.
        for (const topK of [1, 2]) expectSameHits(await b.query('rand', { vector: vectors[5], topK }), bruteForce(metric, docs, vectors[5], topK));
        if (metric !== 'dot') should((await b.query('rand', { vector: vectors[5], topK: 2 })).map((h) => h.id)).eql(['d5', 'd100']);
      });
    }

    it('returns every document when topK exceeds the collection, across slices', async () => {
      const b = backend();
      const docs = randomVectors(rowsForSlices(2), 384, 3).map((vector, i) => ({ id: `d${i}`, vector }));
      await collectionOf(b, 'all', 'dot', docs);
      const [query] = randomVectors(1, 384, 4);
      const hits = await b.query('all', { vector: query, topK: docs.length + 10 });
      should(hits.length).equal(docs.length);
      expectSameHits(hits.slice(0, 50), bruteForce('dot', docs, query, 50));
    });
  });

  describe('while a search is in flight', () => {
    it('a delete waits for it: the search sees the rows as they were, then the delete applies', async () => {
      const b = backend();
      const docs = randomVectors(rowsForSlices(3), 384, 11).map((vector, i) => ({ id: `d${i}`, vector }));
      await collectionOf(b, 'docs', 'cosine', docs);
      const last = docs[docs.length - 1];
      const settled: string[] = [];

      // The best match is the last row: deleting row 0 moves it into a slice already scanned.
      const searching = b.query('docs', { vector: last.vector, topK: 3 }).then((hits) => {
        settled.push('search');
        return hits;
      });
      await nextTurn();
      await nextTurn(); // the search has scanned its first slice (in its turn) and yielded
      should(settled).eql([]);
      const deleting = b.delete('docs', { ids: ['d0'] }).then((result) => {
        settled.push('delete');
        return result;
      });
      const [hits, deleted] = await Promise.all([searching, deleting]);

      should(settled).eql(['search', 'delete']);
      expectSameHits(hits, bruteForce('cosine', docs, last.vector, 3));
      should(deleted).eql({ deleted: 1, totalCount: docs.length - 1 });
      expectSameHits(await b.query('docs', { vector: last.vector, topK: 3 }), bruteForce('cosine', docs.slice(1), last.vector, 3));
    });

    it('a write waits for it, and a search that arrives after the write sees the write (writes are not starved)', async () => {
      const b = backend();
      const docs = randomVectors(rowsForSlices(3), 384, 12).map((vector, i) => ({ id: `d${i}`, vector }));
      await collectionOf(b, 'docs', 'dot', docs);
      const [query] = randomVectors(1, 384, 13);
      const best = { id: 'best', vector: Float32Array.from(query, (x) => x * 10) };
      const settled: string[] = [];

      const first = b.query('docs', { vector: query, topK: 2 }).then((hits) => (settled.push('first search'), hits));
      await nextTurn();
      const writing = b.upsert('docs', [best]).then((result) => (settled.push('write'), result));
      await nextTurn(); // the write is waiting behind the first search
      should(settled).eql([]);
      const second = b.query('docs', { vector: query, topK: 2 }).then((hits) => (settled.push('second search'), hits));
      const [before, written, after] = await Promise.all([first, writing, second]);

      should(settled).eql(['first search', 'write', 'second search']);
      expectSameHits(before, bruteForce('dot', docs, query, 2));
      should(written.totalCount).equal(docs.length + 1);
      should(after[0].id).equal('best');
      expectSameHits(after, bruteForce('dot', [...docs, best], query, 2));
    });

    it('close stops it at the next slice (UNAVAILABLE), and nothing is left running', async () => {
      const b = backend();
      const docs = randomVectors(rowsForSlices(3), 384, 14).map((vector, i) => ({ id: `d${i}`, vector }));
      await collectionOf(b, 'docs', 'cosine', docs);
      const searching = b.query('docs', { vector: docs[0].vector, topK: 3 });
      await nextTurn();
      await b.close();
      await rejectsWith(searching, 'UNAVAILABLE');
    });
  });

  describe('the event loop', () => {
    it('runs other callbacks while a search of 100,000 vectors of 384 dimensions is in flight (counted, not timed)', async () => {
      const b = backend();
      const count = 100_000;
      const vectors = randomVectors(count, 384, 21);
      await collectionOf(b, 'big', 'cosine', vectors.map((vector, i) => ({ id: `v${i}`, vector })));

      let turns = 0;
      let searching = true;
      const countTurns = () => {
        turns += 1;
        if (searching) setImmediate(countTurns);
      };
      setImmediate(countTurns);
      const hits = await b.query('big', { vector: vectors[42], topK: 5 });
      searching = false;

      should(hits[0].id).equal('v42');
      // A turn for each slice.
      const slices = Math.ceil((count * 384 * 4) / SLICE_BYTES);
      should(turns).be.aboveOrEqual(slices);
    });

    it('concurrent searches take turns: one slice per event-loop turn in all', async () => {
      const b = backend();
      const docs = randomVectors(rowsForSlices(3), 384, 41).map((vector, i) => ({ id: `d${i}`, vector }));
      await collectionOf(b, 'docs', 'dot', docs);
      const slicesEach = 3;

      let turns = 0;
      let searching = true;
      const countTurns = () => {
        turns += 1;
        if (searching) setImmediate(countTurns);
      };
      setImmediate(countTurns);
      const searches = [0, 1, 2].map((i) => b.query('docs', { vector: docs[i].vector, topK: 1 }));
      const results = await Promise.all(searches);
      searching = false;

      should(results.map((hits) => hits[0].id)).eql(['d0', 'd1', 'd2']);
      // Every slice takes a turn of its own.
      should(turns).be.aboveOrEqual(searches.length * slicesEach - 1);
    });

    it('searches a collection that fits in one slice at once, without yielding', async () => {
      const b = backend();
      const docs = randomVectors(rowsForSlices(1), 384, 31).map((vector, i) => ({ id: `d${i}`, vector }));
      await collectionOf(b, 'small', 'l2', docs);
      let otherCallbackRan = false;
      setImmediate(() => (otherCallbackRan = true));
      const hits = await b.query('small', { vector: docs[7].vector, topK: 1 });
      should(otherCallbackRan).be.false();
      should(hits[0].id).equal('d7');
    });
  });
});
