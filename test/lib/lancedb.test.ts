// The LanceDB backend on the real @lancedb/lancedb package, in temporary directories:
// the vector index past the threshold, unindexed rows drained by optimize(), what a
// missing package says, and data kept across instances. (The store-independent
// contract is in test/conformance.)
import should from 'should';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import {
  DEFAULT_INDEX_THRESHOLD,
  LanceDbBackend,
  NOT_INSTALLED_MESSAGE,
  type LanceDbBackendOptions,
  type LanceDbModules,
} from '../../lib/backends/lancedb';
import { requireLanceDb } from '../../lib/backends/lancedb/modules';
import type { VectorDocument } from '../../lib/types';
import { rejectsWith } from '../support/errors';
import { Gate, optimizeThrough } from '../support/lancedb-optimize-double';
import { lancedbFixture, untilSettled } from '../support/lancedb-fixture';

const DIM = 8;


/** `count` deterministic documents; `from` offsets the ids (and the vectors). */
function docsOf(count: number, from = 0, prefix = 'doc'): VectorDocument[] {
  return Array.from({ length: count }, (_, k) => {
    const i = from + k;
    return {
      id: `${prefix}-${i}`,
      vector: Array.from({ length: DIM }, (_, d) => Math.sin(i * 7 + d + 1)),
      text: `text ${prefix} ${i}`,
      metadata: { n: i, even: i % 2 === 0 },
    };
  });
}


/** What `require` throws for a package that is not installed. */
function moduleNotFound(name: string): Error {
  return Object.assign(new Error(`Cannot find module '${name}'\nRequire stack:\n- ${__filename}`), { code: 'MODULE_NOT_FOUND' });
}

describe('lancedb backend', function () {
  this.timeout(30_000);
  const { tempDir, backend, gates } = lancedbFixture('lancedb-backend');

  describe('without the package (simulated by a loader that throws like a failed require)', () => {
    it('says NOT_INSTALLED, permanently, with the npm install command, when @lancedb/lancedb is missing', async () => {
      const b = backend({
        path: await tempDir(),
        loadModules: () => {
          throw moduleNotFound('@lancedb/lancedb');
        },
      });
      const err = await rejectsWith(b.collectionExists('docs'), 'NOT_INSTALLED');
      should(err.transient).be.false();
      should(err.message).equal(NOT_INSTALLED_MESSAGE);
      should(err.message).match(/npm install @lancedb\/lancedb@0\.31/).and.match(/user directory/);
      // Every call says the same, and the backend still closes cleanly.
      await rejectsWith(b.ensureCollection('docs', { dimensions: DIM }), 'NOT_INSTALLED');
    });

    it('names apache-arrow when only that peer is missing, and the reason when the native part fails to load', async () => {
      const noArrow = backend({
        path: await tempDir(),
        loadModules: () => {
          throw moduleNotFound('apache-arrow');
        },
      });
      should((await rejectsWith(noArrow.collectionExists('docs'), 'NOT_INSTALLED')).message).match(/apache-arrow/);

      const broken = backend({
        path: await tempDir(),
        loadModules: () => {
          throw new Error('Failed to load native binding');
        },
      });
      const err = await rejectsWith(broken.collectionExists('docs'), 'NOT_INSTALLED');
      should(err.message).match(/Failed to load native binding/).and.match(/npm install @lancedb\/lancedb@0\.31/);
    });

    it('constructs without loading the package (a deploy must not fail because of it)', async () => {
      let loads = 0;
      const b = backend({
        path: await tempDir(),
        loadModules: () => {
          loads += 1;
          throw moduleNotFound('@lancedb/lancedb');
        },
      });
      should(loads).equal(0);
      await b.collectionExists('docs').catch(() => undefined);
      should(loads).equal(1);
    });
  });

  it('searches flat below the threshold, and creates an IVF_FLAT index in the background once past it', async () => {
    const b = backend({ path: await tempDir() });
    await b.ensureCollection('docs', { dimensions: DIM });
    await b.upsert('docs', docsOf(DEFAULT_INDEX_THRESHOLD - 6), { buildIndex: true });
    should(await b.status('docs')).match({ state: 'ready', documentCount: 250, indexedCount: 250, progress: 1 });
    should((await b.stats('docs')).indexType).equal('none (flat)');

    await b.upsert('docs', docsOf(50, 250), { buildIndex: true });
    const seen = await untilSettled(b, 'docs');
    for (const status of seen.filter((s) => s.state === 'indexing')) {
      // Only while the index is being created: nothing counts as indexed yet.
      should(status).match({ documentCount: 300, indexedCount: 0, progress: 0, detail: 'creating the vector index' });
    }
    should(seen[seen.length - 1]).match({ state: 'ready', documentCount: 300, indexedCount: 300, progress: 1, etaSeconds: 0 });
    should(await b.stats('docs')).match({ documentCount: 300, indexedCount: 300, dimensions: DIM, metric: 'cosine', indexType: 'ivf_flat' });

    // The index answers with exact cosine scores.
    const probe = docsOf(1, 123)[0];
    const [hit] = await b.query('docs', { vector: probe.vector, topK: 1 });
    should(hit).match({ id: 'doc-123', text: 'text doc 123', metadata: { n: 123, even: false } });
    should(hit.score).be.approximately(1, 1e-5);
  });

  it('creates no index without buildIndex, however large the collection', async () => {
    const b = backend({ path: await tempDir(), indexThreshold: 10 });
    await b.ensureCollection('docs', { dimensions: DIM });
    await b.upsert('docs', docsOf(40), { buildIndex: false });
    should(await b.status('docs')).match({ state: 'ready', documentCount: 40, indexedCount: 40 });
    should((await b.stats('docs')).indexType).equal('none (flat)');
  });

  it('reports rows written after the index as unindexed, with progress between 0 and 1, until optimize() drains them', async () => {
    const b = backend({ path: await tempDir(), indexThreshold: 100 });
    await b.ensureCollection('docs', { dimensions: DIM });
    await b.upsert('docs', docsOf(200), { buildIndex: true });
    should(await untilSettled(b, 'docs')).matchAny({ state: 'ready', indexedCount: 200 });

    // 20 re-ingested ids and 40 new ones, without buildIndex: nothing catches up yet,
    // so the first status sees LanceDB's unindexed rows (and starts optimize()).
    await b.upsert('docs', docsOf(60, 180), { buildIndex: false });
    const first = await b.status('docs');
    should(first).match({ state: 'indexing', documentCount: 240, indexedCount: 180 });
    should(first.progress).be.above(0).and.below(1);
    should(first.progress).be.approximately(180 / 240, 1e-9);
    should(first).match({ phase: 'optimizing', detail: '60 rows not yet indexed' });

    const seen = await untilSettled(b, 'docs');
    for (const status of seen.slice(0, -1)) {
      should(status.progress).be.within(0, 1);
      should(status.indexedCount).be.within(180, 240);
    }
    should(seen[seen.length - 1]).match({ state: 'ready', documentCount: 240, indexedCount: 240, progress: 1 });
    should((await b.query('docs', { vector: docsOf(1, 239)[0].vector, topK: 1 }))[0]).match({ id: 'doc-239' });
  });

  it('drains unindexed rows by itself after a write with buildIndex (no status call needed)', async () => {
    const dir = await tempDir();
    const b = backend({ path: dir, indexThreshold: 100 });
    await b.ensureCollection('docs', { dimensions: DIM });
    await b.upsert('docs', docsOf(150), { buildIndex: true });
    await untilSettled(b, 'docs');
    await b.upsert('docs', docsOf(30, 150), { buildIndex: true });

    // Watch the table through a connection of our own, so that no status call starts optimize().
    const { lancedb } = requireLanceDb();
    const connection = await lancedb.connect(dir);
    try {
      const deadline = Date.now() + 20_000;
      for (;;) {
        const table = await connection.openTable('docs');
        const [index] = await table.listIndices();
        table.close();
        if (index?.numUnindexedRows === 0 && index.numIndexedRows === 180) break;
        if (Date.now() > deadline) throw new Error(`not drained: ${JSON.stringify(index)}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    } finally {
      connection.close();
    }
    // A second instance on the same directory shares the table (and says the same).
    const other = backend({ path: dir });
    should(await other.status('docs')).match({ state: 'ready', documentCount: 180, indexedCount: 180 });
  });

  it('estimates the time left from the smoothed rate of optimize() runs, counting down, never 0 while indexing (runs timed by a test double, injected clock)', async () => {
    let clock = Date.UTC(2024, 0, 1);
    let runSeconds = 1;
    const gate = new Gate();
    gates.push(gate);
    // Each optimize() "takes" runSeconds on the injected clock (and may be held at the gate).
    const modules = optimizeThrough(async (optimize) => {
      clock += runSeconds * 1000;
      await gate.pass();
      return optimize();
    });
    const b = backend({ path: await tempDir(), indexThreshold: 100, now: () => clock, loadModules: () => modules });
    await b.ensureCollection('docs', { dimensions: DIM });
    await b.upsert('docs', docsOf(100), { buildIndex: true });
    await untilSettled(b, 'docs');
    await b.upsert('docs', docsOf(20, 100), { buildIndex: false });
    should(await b.status('docs')).match({ state: 'indexing', etaSeconds: null }); // no optimize() measured yet
    await untilSettled(b, 'docs'); // that one drained 20 rows in "1 s": 20 rows/s
    await b.upsert('docs', docsOf(40, 120), { buildIndex: false });
    should(await b.status('docs')).match({ state: 'indexing', etaSeconds: 2 }); // 40 rows at 20 rows/s
    await untilSettled(b, 'docs'); // 40 rows in 1 s: smoothed to 30 rows/s

    runSeconds = 3;
    gate.closed = true;
    await b.upsert('docs', docsOf(60, 160), { buildIndex: false });
    const entered = gate.entered();
    should(await b.status('docs')).match({ state: 'indexing', etaSeconds: 2, phase: 'optimizing', detail: '60 rows not yet indexed' });
    await entered; // the run is going, and has "taken" 3 s already: longer than the rate says
    should(await b.status('docs')).match({ state: 'indexing', etaSeconds: 1 });
    gate.open();
    should(await untilSettled(b, 'docs')).matchAny({ state: 'ready', documentCount: 220, etaSeconds: 0 });
  });

  it('reports a failed background index build as failed, with the reason, until a write retries it', async () => {
    const real = requireLanceDb();
    let failBuild = true;
    // The real package, except that building the index fails while failBuild is set.
    const modules: LanceDbModules = {
      arrow: real.arrow,
      lancedb: {
        ...real.lancedb,
        Index: {
          ...real.lancedb.Index,
          ivfFlat: (options?: Parameters<typeof real.lancedb.Index.ivfFlat>[0]) => {
            if (failBuild) throw new Error('disk on fire (simulated)');
            return real.lancedb.Index.ivfFlat(options);
          },
        } as typeof real.lancedb.Index,
      },
    };
    const b = backend({ path: await tempDir(), indexThreshold: 50, loadModules: () => modules });
    await b.ensureCollection('docs', { dimensions: DIM });
    await b.upsert('docs', docsOf(60), { buildIndex: true });
    const seen = await untilSettled(b, 'docs');
    const last = seen[seen.length - 1];
    should(last).match({ state: 'failed', documentCount: 60, indexedCount: 0 });
    should(last.detail).match(/creation of the vector index/).and.match(/disk on fire \(simulated\)/).and.match(/"docs"/);
    // Queries still work (flat), and the failure stays until a write retries.
    should(await b.query('docs', { vector: docsOf(1, 5)[0].vector, topK: 1 })).match([{ id: 'doc-5' }]);
    should(await b.status('docs')).match({ state: 'failed' });

    failBuild = false;
    await b.upsert('docs', docsOf(1, 60), { buildIndex: true });
    should(await untilSettled(b, 'docs')).matchAny({ state: 'ready', documentCount: 61, indexedCount: 61 });
    should((await b.stats('docs')).indexType).equal('ivf_flat');
  });

  it('keeps the data when the directory is reopened by a new instance', async () => {
    const dir = await tempDir();
    const first = backend({ path: dir, indexThreshold: 20 });
    await first.ensureCollection('kept', { dimensions: DIM });
    await first.upsert('kept', docsOf(30), { buildIndex: true });
    await untilSettled(first, 'kept');
    await first.close();
    await rejectsWith(first.status('kept'), 'UNAVAILABLE');
    await first.close(); // idempotent

    const second = backend({ path: dir });
    should(await second.collectionExists('kept')).be.true();
    should(await second.stats('kept')).match({ documentCount: 30, indexedCount: 30, dimensions: DIM, indexType: 'ivf_flat' });
    const [hit] = await second.query('kept', { vector: docsOf(1, 7)[0].vector, topK: 1 });
    should(hit).match({ id: 'doc-7', text: 'text doc 7', metadata: { n: 7, even: false } });
    await rejectsWith(second.ensureCollection('kept', { dimensions: DIM + 1 }), 'DIMENSION_MISMATCH');
    should(await second.collectionExists('never-made')).be.false();
  });

  it('filters on metadata exactly, fetching more candidates until enough match', async () => {
    const b = backend({ path: await tempDir(), indexThreshold: 100 });
    await b.ensureCollection('docs', { dimensions: DIM });
    const docs = docsOf(400).map((doc, i) => ({ ...doc, metadata: { n: i, group: i === 17 || i === 311 ? 'rare' : 'common' } }));
    await b.upsert('docs', docs, { buildIndex: true });
    await untilSettled(b, 'docs');
    const query = { vector: docs[5].vector, topK: 5 };
    const rare = await b.query('docs', { ...query, filter: { group: 'rare' } });
    should(rare.map((h) => h.id).sort()).eql(['doc-17', 'doc-311']);
    should(rare[0].score).be.aboveOrEqual(rare[1].score);
    const common = await b.query('docs', { ...query, filter: { group: 'common' } });
    should(common).have.length(5);
    should(common[0]).match({ id: 'doc-5', metadata: { group: 'common' } });
    should(await b.query('docs', { ...query, filter: { group: 'none' } })).eql([]);
    should(await b.query('docs', { ...query, filter: { n: 311, group: 'rare' } })).match([{ id: 'doc-311' }]);
  });

  it('validates everything before writing: a bad document writes nothing', async () => {
    const b = backend({ path: await tempDir() });
    await b.ensureCollection('docs', { dimensions: DIM });
    await b.upsert('docs', docsOf(2));
    const bad = [...docsOf(2, 10), { id: 'nan', vector: new Array(DIM).fill(Number.NaN) }];
    should((await rejectsWith(b.upsert('docs', bad), 'INVALID_INPUT')).message).match(/"nan"/);
    await rejectsWith(b.upsert('docs', [{ id: '', vector: docsOf(1)[0].vector }]), 'INVALID_INPUT');
    await rejectsWith(b.upsert('docs', docsOf(1), { simulateFailure: 'x' }), 'INVALID_INPUT');
    should((await b.stats('docs')).documentCount).equal(2);
    // The same id twice in one call: the last one wins.
    const twice = [docsOf(1, 0)[0], { ...docsOf(1, 0)[0], text: 'second' }];
    should(await b.upsert('docs', twice)).match({ written: 1, totalCount: 2 });
    should((await b.query('docs', { vector: docsOf(1, 0)[0].vector, topK: 1 }))[0]).match({ id: 'doc-0', text: 'second' });
  });

  it('keeps l2 and dot collections with their metric and scores higher-is-better', async () => {
    const b = backend({ path: await tempDir() });
    await b.ensureCollection('l2', { dimensions: 2, metric: 'l2' });
    await b.ensureCollection('dot', { dimensions: 2, metric: 'dot' });
    const docs = [
      { id: 'near', vector: [1, 1] },
      { id: 'far', vector: [4, 5] },
    ];
    await b.upsert('l2', docs);
    await b.upsert('dot', docs);
    const l2 = await b.query('l2', { vector: [1, 2], topK: 2 });
    should(l2.map((h) => h.id)).eql(['near', 'far']);
    should(l2[0].score).be.approximately(-1, 1e-6); // minus the euclidean distance
    const dot = await b.query('dot', { vector: [1, 2], topK: 2 });
    should(dot.map((h) => h.id)).eql(['far', 'near']);
    should(dot[0].score).be.approximately(14, 1e-5); // the dot product
    should((await b.stats('dot')).metric).equal('dot');
    await rejectsWith(b.ensureCollection('dot', { dimensions: 2, metric: 'cosine' }), 'INVALID_INPUT');
  });

  it('refuses a table it did not create, naming what is missing', async () => {
    const dir = await tempDir();
    const { lancedb, arrow } = requireLanceDb();
    const connection = await lancedb.connect(dir);
    const foreign = await connection.createEmptyTable('foreign', new arrow.Schema([new arrow.Field('id', new arrow.Utf8(), false)]));
    foreign.close();
    connection.close();
    const b = backend({ path: dir });
    should((await rejectsWith(b.status('foreign'), 'INVALID_INPUT')).message).match(/not created by this package/);
  });

  it('says the Path cannot be used, permanently, when it is a file', async () => {
    const file = path.join(await tempDir(), 'not-a-directory');
    await fs.writeFile(file, 'x');
    const b = backend({ path: file });
    const err = await rejectsWith(b.ensureCollection('docs', { dimensions: DIM }), 'INVALID_INPUT');
    should(err.transient).be.false();
    should(err.message).match(/cannot use .*not-a-directory as its directory/).and.match(/choose another Path/);
  });

  it('rejects a missing path at construction', () => {
    should(() => new LanceDbBackend({ path: '' })).throw(/needs a directory/);
  });
});
