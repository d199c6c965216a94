// How the LanceDB backend writes (issue 12): a batch of ids the table does not hold is a
// plain add (no lookup of every id, which scanned each fragment written since the last
// catch-up), anything else a merge; upsert semantics stay exact either way: re-ingesting
// an id replaces it, never duplicates it, also after a restart, with two writers in one
// process, after a delete, and when another connection (another process) wrote the ids.
// Real @lancedb/lancedb; the table's add and mergeInsert are counted by a thin wrapper.
import should from 'should';
import type { LanceDbModules } from '../../lib/backends/lancedb';
import { requireLanceDb } from '../../lib/backends/lancedb/modules';
import type { VectorDocument } from '../../lib/types';
import { lancedbFixture, untilSettled } from '../support/lancedb-fixture';
import { Gate, optimizeThrough } from '../support/lancedb-optimize-double';

const DIM = 8;

function docsOf(count: number, from = 0, label = 'v1'): VectorDocument[] {
  return Array.from({ length: count }, (_, k) => {
    const i = from + k;
    return { id: `doc-${i}`, vector: Array.from({ length: DIM }, (_, d) => Math.sin(i * 7 + d + 1)), text: `${label} ${i}`, metadata: { n: i } };
  });
}

/** The real package, counting each table's add and mergeInsert calls. */
function countingWrites(): { modules: LanceDbModules; counts: { add: number; merge: number } } {
  const real = requireLanceDb();
  const counts = { add: 0, merge: 0 };
  type Connection = InstanceType<typeof real.lancedb.Connection>;
  type Table = Awaited<ReturnType<Connection['openTable']>>;
  const patched = (table: Table): Table => {
    const add = table.add.bind(table);
    const mergeInsert = table.mergeInsert.bind(table);
    table.add = ((...args: Parameters<Table['add']>) => {
      counts.add += 1;
      return add(...args);
    }) as Table['add'];
    table.mergeInsert = ((on: string | string[]) => {
      counts.merge += 1;
      return mergeInsert(on);
    }) as Table['mergeInsert'];
    return table;
  };
  const connect = (async (...args: unknown[]) => {
    const connection = await (real.lancedb.connect as (...a: unknown[]) => Promise<Connection>)(...args);
    const openTable = connection.openTable.bind(connection);
    const createEmptyTable = connection.createEmptyTable.bind(connection);
    connection.openTable = (async (...a: Parameters<typeof openTable>) => patched(await openTable(...a))) as typeof openTable;
    connection.createEmptyTable = (async (...a: Parameters<typeof createEmptyTable>) => patched(await createEmptyTable(...a))) as typeof createEmptyTable;
    return connection;
  }) as typeof real.lancedb.connect;
  return { modules: { arrow: real.arrow, lancedb: { ...real.lancedb, connect } }, counts };
}

/** A connection of the test's own to the directory: another process, as far as LanceDB can tell. */
async function withTable<T>(dir: string, use: (table: Awaited<ReturnType<InstanceType<ReturnType<typeof requireLanceDb>['lancedb']['Connection']>['openTable']>>) => Promise<T>): Promise<T> {
  const { lancedb } = requireLanceDb();
  const connection = await lancedb.connect(dir);
  try {
    const table = await connection.openTable('docs');
    try {
      return await use(table);
    } finally {
      table.close();
    }
  } finally {
    connection.close();
  }
}

/** Every row's id and text, read by the test's own connection. */
async function rowsOf(dir: string): Promise<{ id: string; text: string }[]> {
  return withTable(dir, async (table) => (await table.query().select(['id', 'text']).toArray()).map((r) => ({ id: String(r.id), text: String(r.text) })));
}

/** Fails on any id stored twice; returns the text of each id. */
async function textsById(dir: string): Promise<Map<string, string>> {
  const rows = await rowsOf(dir);
  const byId = new Map(rows.map((r) => [r.id, r.text]));
  const repeated = rows.map((r) => r.id).filter((id, i, all) => all.indexOf(id) !== i);
  should(repeated).eql([], 'ids stored twice');
  return byId;
}

describe('lancedb backend: writes (add for new ids, merge for the rest)', function () {
  this.timeout(30_000);
  const { tempDir, backend, gates } = lancedbFixture('lancedb-writes');

  it('writes a batch of ids the table does not hold with one add, and merges a batch that repeats a stored id', async () => {
    const dir = await tempDir();
    const { modules, counts } = countingWrites();
    const b = backend({ path: dir, loadModules: () => modules });
    await b.ensureCollection('docs', { dimensions: DIM });
    await b.upsert('docs', docsOf(50, 0)); // the first write merges (the ids are not read yet)
    should((await b.upsert('docs', docsOf(50, 50))).totalCount).equal(100);
    should((await b.upsert('docs', docsOf(50, 100))).totalCount).equal(150);
    should(counts).eql({ add: 2, merge: 1 });
    // One stored id among new ones: the whole batch merges, in one commit.
    should((await b.upsert('docs', docsOf(10, 145, 'v2'))).totalCount).equal(155);
    should(counts).eql({ add: 2, merge: 2 });
    const texts = await textsById(dir);
    should(texts.size).equal(155);
    should(texts.get('doc-145')).equal('v2 145');
    should(texts.get('doc-144')).equal('v1 144');
  });

  it('replaces, never duplicates, ids written by add when they are ingested again', async () => {
    const dir = await tempDir();
    const b = backend({ path: dir });
    await b.ensureCollection('docs', { dimensions: DIM });
    for (let from = 0; from < 300; from += 100) await b.upsert('docs', docsOf(100, from));
    should((await b.upsert('docs', docsOf(300, 0, 'v2'))).totalCount).equal(300);
    should((await b.upsert('docs', docsOf(100, 100, 'v3'))).totalCount).equal(300);
    const texts = await textsById(dir);
    should(texts.size).equal(300);
    should([texts.get('doc-0'), texts.get('doc-150'), texts.get('doc-299')]).eql(['v2 0', 'v3 150', 'v2 299']);
  });

  it('knows the stored ids after a restart (read from the table): no duplicates, and new ids are added again', async () => {
    const dir = await tempDir();
    const first = backend({ path: dir });
    await first.ensureCollection('docs', { dimensions: DIM });
    await first.upsert('docs', docsOf(100, 0));
    await first.upsert('docs', docsOf(100, 100));
    await first.close();

    const { modules, counts } = countingWrites();
    const second = backend({ path: dir, loadModules: () => modules });
    await second.ensureCollection('docs', { dimensions: DIM });
    should((await second.upsert('docs', docsOf(100, 50, 'v2'))).totalCount).equal(200);
    should((await second.upsert('docs', docsOf(100, 150, 'v3'))).totalCount).equal(250);
    should((await second.upsert('docs', docsOf(50, 250, 'v3'))).totalCount).equal(300);
    should(counts.add).equal(1); // only the last batch is all new
    const texts = await textsById(dir);
    should(texts.size).equal(300);
    should([texts.get('doc-49'), texts.get('doc-50'), texts.get('doc-199'), texts.get('doc-260')]).eql(['v1 49', 'v2 50', 'v3 199', 'v3 260']);
  });

  it('stores each id once when two writers in one process ingest overlapping ids at the same time', async () => {
    const dir = await tempDir();
    const a = backend({ path: dir });
    const b = backend({ path: dir });
    await a.ensureCollection('docs', { dimensions: DIM });
    await b.ensureCollection('docs', { dimensions: DIM });
    await a.upsert('docs', docsOf(10, 0));
    const writes: Promise<unknown>[] = [];
    for (let from = 0; from < 400; from += 50) {
      writes.push(a.upsert('docs', docsOf(50, from, 'a')), b.upsert('docs', docsOf(50, from + 25, 'b')));
    }
    await Promise.all(writes);
    const texts = await textsById(dir);
    should(texts.size).equal(425);
    should((await a.stats('docs')).documentCount).equal(425);
  });

  it('merges ids another process wrote since (it sees their commit): no duplicates', async () => {
    const dir = await tempDir();
    const { modules, counts } = countingWrites();
    const b = backend({ path: dir, loadModules: () => modules });
    await b.ensureCollection('docs', { dimensions: DIM });
    await b.upsert('docs', docsOf(50, 0));
    await b.upsert('docs', docsOf(50, 50)); // ids known from here on: added
    should(counts.add).equal(1);
    // "Another process" adds ids 100..149, the ones our next batch brings.
    await withTable(dir, async (table) => {
      await table.add(docsOf(50, 100, 'other').map((d) => ({ id: d.id, vector: d.vector, text: d.text, metadata: '{}' })));
    });
    should((await b.upsert('docs', docsOf(50, 100, 'ours'))).totalCount).equal(150);
    should((await b.upsert('docs', docsOf(50, 120, 'ours2'))).totalCount).equal(170);
    const texts = await textsById(dir);
    should(texts.size).equal(170);
    should([texts.get('doc-100'), texts.get('doc-125')]).eql(['ours 100', 'ours2 125']);
  });

  it('adds deleted ids back once each after a delete', async () => {
    const dir = await tempDir();
    const b = backend({ path: dir });
    await b.ensureCollection('docs', { dimensions: DIM });
    await b.upsert('docs', docsOf(100, 0));
    await b.upsert('docs', docsOf(100, 100));
    const ids = ['doc-5', 'doc-150', ...docsOf(10, 190).map((d) => d.id)];
    should((await b.delete('docs', { ids })).deleted).equal(12);
    should((await b.upsert('docs', docsOf(200, 0, 'v2'))).totalCount).equal(200);
    should((await b.upsert('docs', docsOf(10, 200, 'v2'))).totalCount).equal(210);
    const texts = await textsById(dir);
    should(texts.size).equal(210);
    should([texts.get('doc-5'), texts.get('doc-195')]).eql(['v2 5', 'v2 195']);
  });

  it('writes new ids while a catch-up run holds the table; a write that replaces stored ids waits for the run', async () => {
    const dir = await tempDir();
    const gate = new Gate();
    gates.push(gate);
    const modules = optimizeThrough(async (optimize) => {
      await gate.pass();
      return optimize();
    });
    const b = backend({ path: dir, indexThreshold: 100, loadModules: () => modules, catchUp: { quietMs: 10, maxWaitMs: 10 } });
    await b.ensureCollection('docs', { dimensions: DIM });
    await b.upsert('docs', docsOf(100, 0), { buildIndex: true });
    await b.upsert('docs', docsOf(100, 100), { buildIndex: true });
    await untilSettled(b, 'docs'); // the vector index exists, every row in it
    gate.closed = true;
    const entered = gate.entered();
    await b.upsert('docs', docsOf(50, 200), { buildIndex: true });
    await entered; // an optimize() is due and holds the table

    // (The bound only turns a write stuck behind the held run into a failure instead of a hang.)
    const held = (write: Promise<unknown>) =>
      Promise.race([write.then(() => 'written'), new Promise((resolve) => setTimeout(resolve, 10_000, 'held'))]);
    should(await held(b.upsert('docs', docsOf(50, 250)))).equal('written');
    let replaced = false;
    const replacing = b.upsert('docs', docsOf(10, 0, 'v2')).then(() => (replaced = true));
    await b.stats('docs');
    should(replaced).be.false(); // (a merge could race the optimize() to a commit conflict)
    gate.open();
    await replacing;
    should((await b.upsert('docs', docsOf(50, 300))).totalCount).equal(350);
    should(await untilSettled(b, 'docs')).matchAny({ state: 'ready', documentCount: 350 });
    const texts = await textsById(dir);
    should(texts.size).equal(350);
    should([texts.get('doc-0'), texts.get('doc-10'), texts.get('doc-260')]).eql(['v2 0', 'v1 10', 'v1 260']);
  });

  it('during a catch-up run, merges ids another process added meanwhile (its rows do not match the known ids): no duplicates', async () => {
    const dir = await tempDir();
    const gate = new Gate();
    gates.push(gate);
    const modules = optimizeThrough(async (optimize) => {
      await gate.pass();
      return optimize();
    });
    const b = backend({ path: dir, indexThreshold: 100, loadModules: () => modules, catchUp: { quietMs: 10, maxWaitMs: 10 } });
    await b.ensureCollection('docs', { dimensions: DIM });
    await b.upsert('docs', docsOf(100, 0), { buildIndex: true });
    await b.upsert('docs', docsOf(100, 100), { buildIndex: true });
    await untilSettled(b, 'docs');
    gate.closed = true;
    const entered = gate.entered();
    await b.upsert('docs', docsOf(50, 200), { buildIndex: true });
    await entered;
    await withTable(dir, async (table) => {
      await table.add(docsOf(30, 250, 'other').map((d) => ({ id: d.id, vector: d.vector, text: d.text, metadata: '{}' })));
    });
    const ours = b.upsert('docs', docsOf(30, 250, 'ours'));
    gate.open();
    should((await ours).totalCount).equal(280);
    should((await b.upsert('docs', docsOf(20, 280))).totalCount).equal(300);
    const texts = await textsById(dir);
    should(texts.size).equal(300);
    should(texts.get('doc-260')).equal('ours 260');
  });
});
