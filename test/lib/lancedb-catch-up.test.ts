// How the LanceDB backend schedules index catch-up (issue 12): debounced and
// coalesced per table, never one run per batch; the last catch-up always happens
// once writes stop; the status stays truthful meanwhile; old versions are removed.
// Real @lancedb/lancedb in temporary directories; the index work is counted by a
// thin wrapper around the real calls. No timing is asserted: the schedule's
// delays are set so that the counts do not depend on the machine's speed.
import should from 'should';
import { requireLanceDb } from '../../lib/backends/lancedb/modules';
import type { VectorDocument } from '../../lib/types';
import { lancedbFixture, untilSettled } from '../support/lancedb-fixture';
import { Gate, countingIndexWork, optimizeThrough } from '../support/lancedb-optimize-double';

const DIM = 8;

function docsOf(count: number, from = 0): VectorDocument[] {
  return Array.from({ length: count }, (_, k) => {
    const i = from + k;
    return { id: `doc-${i}`, vector: Array.from({ length: DIM }, (_, d) => Math.sin(i * 7 + d + 1)), text: `text ${i}`, metadata: { n: i } };
  });
}

/** LanceDB's own view of the table's vector index, through a connection of the test's (so no status call schedules anything). */
async function vectorIndexOf(dir: string): Promise<{ numIndexedRows?: number; numUnindexedRows?: number } | undefined> {
  const { lancedb } = requireLanceDb();
  const connection = await lancedb.connect(dir);
  try {
    const table = await connection.openTable('docs');
    try {
      return (await table.listIndices()).find((i) => i.columns.includes('vector'));
    } finally {
      table.close();
    }
  } finally {
    connection.close();
  }
}

async function until<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean, budgetMs = 20_000): Promise<T> {
  const deadline = Date.now() + budgetMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The table's fragments (data files), through a connection of the test's. */
async function fragmentsOf(dir: string): Promise<number> {
  const { lancedb } = requireLanceDb();
  const connection = await lancedb.connect(dir);
  try {
    const table = await connection.openTable('docs');
    try {
      return (await table.stats()).fragmentStats.numFragments;
    } finally {
      table.close();
    }
  } finally {
    connection.close();
  }
}

/**
 * The table's versions as LanceDB lists them, through a connection of the test's. A listing
 * that meets a manifest the backend's removal of old versions is deleting is read again.
 */
async function versionsOf(dir: string): Promise<number> {
  const { lancedb } = requireLanceDb();
  for (let attempt = 1; ; attempt++) {
    const connection = await lancedb.connect(dir);
    try {
      const table = await connection.openTable('docs');
      try {
        return (await table.listVersions()).length;
      } finally {
        table.close();
      }
    } catch (err) {
      if (attempt >= 10 || !/not found/i.test(String(err))) throw err;
    } finally {
      connection.close();
    }
  }
}

describe('lancedb backend: index catch-up schedule', function () {
  this.timeout(60_000);
  const { tempDir, backend } = lancedbFixture('lancedb-catch-up');

  it('runs one catch-up for a run of back-to-back writes, not one per batch, and says "indexing" until it is done', async () => {
    const { modules, counts } = countingIndexWork();
    // A quiet period far longer than one small write, and no forced run while writes go on:
    // the whole run of writes must end in exactly one catch-up.
    const b = backend({ path: await tempDir(), indexThreshold: 50, loadModules: () => modules, catchUp: { quietMs: 1_000, maxWaitMs: 600_000 } });
    await b.ensureCollection('docs', { dimensions: DIM });
    await b.upsert('docs', docsOf(100), { buildIndex: true });
    should(await untilSettled(b, 'docs')).matchAny({ state: 'ready', indexedCount: 100 });
    should(counts).match({ optimize: 0, createIndex: { vector: 1 } });

    // (80 rows: the table does not double, so the run is an optimize(), not a rebuild.)
    for (let batch = 0; batch < 20; batch++) await b.upsert('docs', docsOf(4, 100 + batch * 4), { buildIndex: true });
    // Nothing has run yet (writes were never quiet for a second): the status says so.
    should(await b.status('docs')).match({ state: 'indexing', documentCount: 180, indexedCount: 100, phase: 'optimizing', detail: '80 rows not yet indexed' });
    should(await untilSettled(b, 'docs')).matchAny({ state: 'ready', documentCount: 180, indexedCount: 180 });
    should(counts.optimize).equal(1);
    should(counts.createIndex.vector).equal(1);
  });

  it('creates the vector index once, after the writes that crossed the threshold went quiet; "indexing" at 0 meanwhile', async () => {
    const { modules, counts } = countingIndexWork();
    const b = backend({ path: await tempDir(), indexThreshold: 50, loadModules: () => modules, catchUp: { quietMs: 1_000, maxWaitMs: 600_000 } });
    await b.ensureCollection('docs', { dimensions: DIM });
    for (let batch = 0; batch < 20; batch++) await b.upsert('docs', docsOf(10, batch * 10), { buildIndex: true });
    should(await b.status('docs')).match({ state: 'indexing', documentCount: 200, indexedCount: 0, progress: 0, detail: 'creating the vector index' });
    should(await untilSettled(b, 'docs')).matchAny({ state: 'ready', documentCount: 200, indexedCount: 200 });
    should(counts).match({ optimize: 0, createIndex: { vector: 1 } });
    should((await b.stats('docs')).indexType).equal('ivf_flat');
  });

  it('rebuilds the vector index over all rows once a table of 10,000 rows or more has doubled since it was built, instead of folding them in', async () => {
    const { modules, counts } = countingIndexWork();
    const b = backend({ path: await tempDir(), indexThreshold: 50, loadModules: () => modules, catchUp: { quietMs: 200, maxWaitMs: 600_000 } });
    await b.ensureCollection('docs', { dimensions: DIM });
    await b.upsert('docs', docsOf(100), { buildIndex: true });
    await untilSettled(b, 'docs');
    should(counts).match({ optimize: 0, createIndex: { vector: 1, id: 1 } });
    const dir = (b as unknown as { database: { dir: string } }).database.dir;
    // 10,000 rows, 100 times those it was built on, in 10 writes (10 fragments); only the last
    // asks for a catch-up, so that a slow write cannot let one start halfway.
    for (let from = 100; from < 10_000; from += 990) await b.upsert('docs', docsOf(990, from), { buildIndex: from + 990 >= 10_000 });
    should(await untilSettled(b, 'docs')).matchAny({ state: 'ready', documentCount: 10_000, indexedCount: 10_000 });
    // The same run then compacts the fragments the writes left (one per batch) instead of leaving them to a later run.
    await until('the rebuild run compacted', () => fragmentsOf(dir), (fragments) => fragments === 1);
    should(counts).match({ optimize: 1, createIndex: { vector: 2, id: 2 } });
    const probe = docsOf(1, 5_000)[0];
    should((await b.query('docs', { vector: probe.vector, topK: 1 }))[0]).match({ id: 'doc-5000' });

    await b.upsert('docs', docsOf(5_000, 10_000), { buildIndex: true }); // 15,000: less than twice 10,000, folded in
    should(await untilSettled(b, 'docs')).matchAny({ state: 'ready', documentCount: 15_000, indexedCount: 15_000 });
    should(counts).match({ optimize: 2, createIndex: { vector: 2, id: 2 } });
  });

  it('still catches up while writes never pause (a long ingest), far fewer times than there are batches', async () => {
    const { modules, counts } = countingIndexWork();
    const dir = await tempDir();
    // Writes are never quiet for a minute here: only the longest wait forces runs.
    const b = backend({ path: dir, indexThreshold: 50, loadModules: () => modules, catchUp: { quietMs: 60_000, maxWaitMs: 50 } });
    await b.ensureCollection('docs', { dimensions: DIM });
    const runs = () => counts.optimize + (counts.createIndex.vector ?? 0);
    let batches = 0;
    while ((runs() < 3 || batches < 40) && batches < 1_000) {
      await b.upsert('docs', docsOf(10, batches * 10), { buildIndex: true });
      batches += 1;
    }
    should(runs()).be.aboveOrEqual(3);
    should(runs()).be.below(batches / 2);
  });

  it('does the last catch-up by itself once writes stop (no status call needed)', async () => {
    const dir = await tempDir();
    const b = backend({ path: dir, indexThreshold: 50, catchUp: { quietMs: 200, maxWaitMs: 600_000 } });
    await b.ensureCollection('docs', { dimensions: DIM });
    await b.upsert('docs', docsOf(100), { buildIndex: true });
    await until('index created', () => vectorIndexOf(dir), (index) => index?.numIndexedRows === 100);
    for (let batch = 0; batch < 5; batch++) await b.upsert('docs', docsOf(10, 100 + batch * 10), { buildIndex: true });
    await until('caught up', () => vectorIndexOf(dir), (index) => index?.numIndexedRows === 150 && index.numUnindexedRows === 0);
  });

  it('schedules a catch-up when status finds unindexed rows with nothing scheduled (rows written without buildIndex)', async () => {
    const { modules, counts } = countingIndexWork();
    const b = backend({ path: await tempDir(), indexThreshold: 50, loadModules: () => modules, catchUp: { quietMs: 200, maxWaitMs: 600_000 } });
    await b.ensureCollection('docs', { dimensions: DIM });
    await b.upsert('docs', docsOf(100), { buildIndex: true });
    await untilSettled(b, 'docs');
    for (let batch = 0; batch < 5; batch++) await b.upsert('docs', docsOf(10, 100 + batch * 10), { buildIndex: false });
    should(counts.optimize).equal(0);
    const seen = await untilSettled(b, 'docs');
    should(seen[0]).match({ state: 'indexing', indexedCount: 100, detail: '50 rows not yet indexed' });
    should(seen[seen.length - 1]).match({ state: 'ready', documentCount: 150, indexedCount: 150 });
    // Status polled many times meanwhile; one run did it.
    should(counts.optimize).equal(1);
  });

  it('closes without waiting for a scheduled catch-up (no timer left), and the next instance picks the rows up', async () => {
    const dir = await tempDir();
    const first = backend({ path: dir, indexThreshold: 50, catchUp: { quietMs: 600_000, maxWaitMs: 600_000 } });
    await first.ensureCollection('docs', { dimensions: DIM });
    await first.upsert('docs', docsOf(100), { buildIndex: true });
    should(await first.status('docs')).match({ state: 'indexing', indexedCount: 0 });
    await first.close(); // would hold the test for 10 minutes if it waited for the run

    const second = backend({ path: dir, indexThreshold: 50, catchUp: { quietMs: 200, maxWaitMs: 600_000 } });
    await second.upsert('docs', docsOf(10, 100), { buildIndex: true });
    should(await untilSettled(second, 'docs')).matchAny({ state: 'ready', documentCount: 110, indexedCount: 110 });
  });

  it('removes old table versions at each optimize(), so disk use follows the data, not the number of writes', async () => {
    const dir = await tempDir();
    const b = backend({ path: dir, indexThreshold: 50, catchUp: { quietMs: 200, maxWaitMs: 600_000, keepVersionsMs: 0 } });
    await b.ensureCollection('docs', { dimensions: DIM });
    await b.upsert('docs', docsOf(100), { buildIndex: true });
    await untilSettled(b, 'docs');
    // (90 rows: the run is an optimize(), which removes versions; a rebuild leaves that to the next one.)
    for (let batch = 0; batch < 30; batch++) await b.upsert('docs', docsOf(3, 100 + batch * 3), { buildIndex: true });
    should(await untilSettled(b, 'docs')).matchAny({ state: 'ready', documentCount: 190, indexedCount: 190 });

    // 30 writes and the index work made over 30 versions; the catch-up kept only the latest.
    should(await versionsOf(dir)).be.below(3);
  });

  it('removes the versions a rebuild left once they are older than keepVersionsMs, with no further write', async () => {
    const dir = await tempDir();
    const b = backend({ path: dir, indexThreshold: 50, catchUp: { quietMs: 200, maxWaitMs: 600_000, keepVersionsMs: 500 } });
    await b.ensureCollection('docs', { dimensions: DIM });
    await b.upsert('docs', docsOf(100), { buildIndex: true });
    await untilSettled(b, 'docs');
    for (let batch = 0; batch < 10; batch++) await b.upsert('docs', docsOf(990, 100 + batch * 990), { buildIndex: true });
    // 10,000 rows: a rebuild and a compaction (which removes versions older than keepVersionsMs: none yet), then, half a second on, the removal.
    should(await untilSettled(b, 'docs')).matchAny({ state: 'ready', documentCount: 10_000, indexedCount: 10_000 });
    await until('old versions removed', () => versionsOf(dir), (versions) => versions <= 2);
    should(await b.status('docs')).match({ state: 'ready', documentCount: 10_000, indexedCount: 10_000 });
    should((await b.query('docs', { vector: docsOf(1, 7_777)[0].vector, topK: 1 }))[0]).match({ id: 'doc-7777' });
  });

  it('removes old versions keepVersionsMs after a long run, not spaced like index work (4 times the run)', async () => {
    const dir = await tempDir();
    const gate = new Gate();
    const modules = optimizeThrough(async (optimize) => {
      await gate.pass();
      return optimize();
    });
    const b = backend({ path: dir, indexThreshold: 50, loadModules: () => modules, catchUp: { quietMs: 200, maxWaitMs: 600_000, keepVersionsMs: 500 } });
    await b.ensureCollection('docs', { dimensions: DIM });
    await b.upsert('docs', docsOf(100), { buildIndex: true });
    await untilSettled(b, 'docs');
    gate.closed = true;
    const entered = gate.entered();
    for (let batch = 0; batch < 5; batch++) await b.upsert('docs', docsOf(20, 100 + batch * 20), { buildIndex: true });
    await entered;
    // Hold the optimize() 5 s: spaced, the removal would wait 20 s more after it.
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    gate.open();
    should(await untilSettled(b, 'docs')).matchAny({ state: 'ready', documentCount: 200 });
    await until('old versions removed', () => versionsOf(dir), (versions) => versions <= 2, 12_000);
  });
});
