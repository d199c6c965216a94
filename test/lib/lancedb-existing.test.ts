// The LanceDB backend watching tables another tool made in the same directory
// (named by an ExistingCollection): tables written with the real @lancedb/lancedb
// client directly, the way LangChain JS, LlamaIndex or a script lay them out, in
// temporary directories.
import should from 'should';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as lancedb from '@lancedb/lancedb';
import * as arrow from 'apache-arrow';
import { ForeignBacklog } from '../../lib/backends/lancedb/foreign';
import type { ExistingCollection } from '../../lib/types';
import { rejectsWith } from '../support/errors';
import { lancedbFixture } from '../support/lancedb-fixture';

const DIM = 8;
const vectorOf = (i: number) => Array.from({ length: DIM }, (_, d) => Math.sin(i * 7 + d + 1));

/** Rows as LangChain JS writes them: vector, text, and the metadata as columns of their own. */
function langchainRows(count: number, from = 0) {
  return Array.from({ length: count }, (_, k) => {
    const i = from + k;
    return { vector: vectorOf(i), text: `text ${i}`, id: `a${i}`, source: i % 2 === 0 ? 'even.txt' : 'odd.txt', page: i };
  });
}

describe('lancedb backend: tables made by other tools', function () {
  this.timeout(60_000);
  const { tempDir, backend } = lancedbFixture('lancedb-existing');
  const connections: lancedb.Connection[] = [];
  const tables: lancedb.Table[] = [];

  afterEach(() => {
    for (const t of tables.splice(0)) t.close();
    for (const c of connections.splice(0)) c.close();
  });

  /** The other tool: its own connection to the directory, and a table it creates there. */
  async function otherTool(dir: string, name: string, rows: Record<string, unknown>[]): Promise<lancedb.Table> {
    const connection = await lancedb.connect(dir);
    connections.push(connection);
    const table = await connection.createTable(name, rows);
    tables.push(table);
    return table;
  }

  it('reads a table under a dotted, capitalised name with extra columns: exists, ready (no index: exact scan), stats, nearest rows with id, text and the other columns as metadata', async () => {
    const dir = await tempDir();
    await otherTool(dir, 'Team.Docs-v2', langchainRows(40));
    const store = backend({ path: dir });
    const ref: ExistingCollection = { name: 'Team.Docs-v2' };

    should(await store.collectionExists(ref)).be.true();
    should(await store.status(ref)).eql({ state: 'ready', documentCount: 40, indexedCount: 40, progress: 1, etaSeconds: 0, phase: null });
    // No vector index: LanceDB's default distance (l2).
    should(await store.stats(ref)).eql({ documentCount: 40, indexedCount: 40, dimensions: DIM, metric: 'l2', indexType: 'none (flat)' });

    const hits = await store.query(ref, { vector: vectorOf(7), topK: 2 });
    should(hits[0]).eql({ id: 'a7', score: -0, text: 'text 7', metadata: { source: 'odd.txt', page: 7 } });
    should(hits).have.length(2);
    const filtered = await store.query(ref, { vector: vectorOf(7), topK: 3, filter: { source: 'even.txt' } });
    should(filtered.map((h) => h.metadata.source)).eql(['even.txt', 'even.txt', 'even.txt']);
  });

  it('reads a table of another database directory named by "path" (relative paths as the store\'s Path), given as "table"; a directory that is not there is NOT_FOUND and is not created', async () => {
    const ownDir = await tempDir();
    const otherDir = await tempDir();
    await otherTool(otherDir, 'Their.Docs', langchainRows(15));
    const store = backend({ path: ownDir });
    const ref: ExistingCollection = { name: 'Their.Docs', path: path.relative(process.cwd(), otherDir) };
    should(await store.collectionExists(ref)).be.true();
    should(await store.status({ table: 'Their.Docs', path: otherDir } as never)).match({ state: 'ready', documentCount: 15 });
    should((await store.query(ref, { vector: vectorOf(3), topK: 1 }))[0]).match({ id: 'a3', text: 'text 3' });
    // Not in the store's own directory.
    should(await store.collectionExists({ name: 'Their.Docs' })).be.false();

    const missingDir = path.join(otherDir, 'no-such-db');
    should(await store.collectionExists({ name: 'Their.Docs', path: missingDir })).be.false();
    const e = await rejectsWith(store.status({ name: 'Their.Docs', path: missingDir }), 'NOT_FOUND');
    should(e.message).containEql(missingDir).and.containEql('no such directory').and.containEql('"path"');
    await should(fs.stat(missingDir)).be.rejected();
  });

  it('with a vector index the other tool built: indexing while its rows are unindexed (the package does not optimize that table), ready once the tool optimizes', async () => {
    const dir = await tempDir();
    const table = await otherTool(dir, 'Shop.Products', langchainRows(300));
    await table.createIndex('vector', { config: lancedb.Index.ivfFlat({ distanceType: 'cosine', numPartitions: 2 }) });
    const store = backend({ path: dir });
    const ref: ExistingCollection = { name: 'Shop.Products' };
    should(await store.status(ref)).eql({ state: 'ready', documentCount: 300, indexedCount: 300, progress: 1, etaSeconds: 0, phase: null });

    await table.add(langchainRows(20, 300)); // the other tool writes more: unindexed until it optimizes
    const versionBefore = await table.version();
    const indexing = await store.status(ref);
    should(indexing).containEql({ state: 'indexing', documentCount: 320, indexedCount: 300, progress: 300 / 320, phase: 'waiting for optimize' });
    should(indexing.detail).match(/^20 rows not yet in the vector index "vector_idx" on column "vector"/);
    should(indexing.etaSeconds).be.null(); // no rate seen yet: unknown, never 0
    should(await store.stats(ref)).containEql({ metric: 'cosine', indexType: 'ivf_flat', indexedCount: 300 });
    // Still the other tool's table: polling changed nothing in it.
    await new Promise((resolve) => setTimeout(resolve, 300));
    should((await store.status(ref)).state).equal('indexing');
    should(await table.version()).equal(versionBefore);

    await table.optimize();
    should(await store.status(ref)).eql({ state: 'ready', documentCount: 320, indexedCount: 320, progress: 1, etaSeconds: 0, phase: null });
    const [hit] = await store.query(ref, { vector: vectorOf(310), topK: 1 });
    should(hit).containEql({ id: 'a310', text: 'text 310' });
    should(hit.score).be.approximately(1, 1e-5);
  });

  it('sees the rows another process adds to the table at once (a second writer process with the lancedb client)', async () => {
    const dir = await tempDir();
    const table = await otherTool(dir, 'Shared.Table', langchainRows(300));
    await table.createIndex('vector', { config: lancedb.Index.ivfFlat({ numPartitions: 2 }) });
    const store = backend({ path: dir });
    const ref: ExistingCollection = { name: 'Shared.Table' };
    should((await store.status(ref)).state).equal('ready');
    const script = `
      const lancedb = require('@lancedb/lancedb');
      (async () => {
        const db = await lancedb.connect(process.argv[1]);
        const t = await db.openTable('Shared.Table');
        const rows = Array.from({ length: 50 }, (_, k) => ({ vector: Array.from({ length: ${DIM} }, (_, d) => Math.cos(k + d)), text: 'w ' + k, id: 'w' + k, source: 'p.md', page: k }));
        await t.add(rows);
        t.close(); db.close();
      })().catch((e) => { console.error(e); process.exit(1); });`;
    await promisify(execFile)(process.execPath, ['-e', script, dir], { cwd: path.resolve(__dirname, '..', '..') });
    should(await store.status(ref)).containEql({ state: 'indexing', documentCount: 350, indexedCount: 300 });
    should((await store.query(ref, { vector: Array.from({ length: DIM }, (_, d) => Math.cos(3 + d)), topK: 1 }))[0].id).equal('w3');
  });

  it('finds the vector column by "column" when a table has several, and says which it found when "column" is missing or names no vector column', async () => {
    const dir = await tempDir();
    const rows = Array.from({ length: 5 }, (_, i) => ({ id: `r${i}`, text: `t ${i}`, title_vec: vectorOf(i), body_vec: vectorOf(i + 100).slice(0, 4) }));
    const floats = (n: number) => new arrow.FixedSizeList(n, new arrow.Field('item', new arrow.Float32(), true));
    const schema = new arrow.Schema([
      new arrow.Field('id', new arrow.Utf8()),
      new arrow.Field('text', new arrow.Utf8()),
      new arrow.Field('title_vec', floats(DIM)),
      new arrow.Field('body_vec', floats(4)),
    ]);
    const connection = await lancedb.connect(dir);
    connections.push(connection);
    const table = await connection.createEmptyTable('Two.Vectors', schema);
    tables.push(table);
    await table.add(rows);
    const store = backend({ path: dir });

    const several = await rejectsWith(store.status({ name: 'Two.Vectors' }), 'INVALID_INPUT');
    should(several.message).match(/several vector columns/).and.match(/"title_vec" \(FixedSizeList\[8\]<Float32>\)/).and.match(/"body_vec"/).and.match(/"column"/);
    const notVector = await rejectsWith(store.status({ name: 'Two.Vectors', column: 'text' }), 'INVALID_INPUT');
    should(notVector.message).match(/column "text" of type Utf8, which is not a vector column/).and.match(/Vector columns found: "title_vec"/);
    const missing = await rejectsWith(store.stats({ name: 'Two.Vectors', column: 'embedding' }), 'INVALID_INPUT');
    should(missing.message).match(/has no column "embedding"/);

    should(await store.stats({ name: 'Two.Vectors', column: 'body_vec' })).containEql({ dimensions: 4, documentCount: 5 });
    const [hit] = await store.query({ name: 'Two.Vectors', column: 'title_vec' }, { vector: vectorOf(3), topK: 1 });
    should(hit).containEql({ id: 'r3', text: 't 3' });
  });

  it('says what columns a table without a vector column has', async () => {
    const dir = await tempDir();
    await otherTool(dir, 'plain.rows', [{ id: 'x', text: 'no vectors here' }]);
    const err = await rejectsWith(backend({ path: dir }).status({ name: 'plain.rows' }), 'INVALID_INPUT');
    should(err.message).match(/has no vector column/).and.match(/"id" \(Utf8\), "text" \(Utf8\)/);
  });

  it('reads a LlamaIndex-like layout (a metadata struct column, doc_id) and a table without an id column (ids are row positions)', async () => {
    const dir = await tempDir();
    await otherTool(
      dir,
      'llama.Nodes',
      Array.from({ length: 3 }, (_, i) => ({ id: `n${i}`, doc_id: `d${i}`, vector: vectorOf(i), text: `node ${i}`, metadata: { file_name: `f${i}.md`, n: i } })),
    );
    await otherTool(dir, 'No.Ids', Array.from({ length: 3 }, (_, i) => ({ vector: vectorOf(i), label: `l${i}`, weight: BigInt(i) })));
    const store = backend({ path: dir });

    const [llama] = await store.query({ name: 'llama.Nodes' }, { vector: vectorOf(1), topK: 1 });
    should(llama).containEql({ id: 'n1', text: 'node 1', metadata: { file_name: 'f1.md', n: 1 } });
    const hits = await store.query({ name: 'No.Ids' }, { vector: vectorOf(2), topK: 3 });
    should(hits[0]).containEql({ id: '2', text: null, metadata: { label: 'l2', weight: 2 } });
    should(hits.map((h) => h.id).sort()).eql(['0', '1', '2']);
  });

  it('refuses the pgvector-only fields by name, names outside LanceDB\'s rule (without LanceDB panicking), and says NOT_FOUND for a table that is not there', async () => {
    const dir = await tempDir();
    await otherTool(dir, 'Team.Docs', langchainRows(3));
    const store = backend({ path: dir });
    for (const field of ['schema', 'index', 'preset'] as const) {
      const ref = { name: 'Team.Docs', [field]: field === 'preset' ? 'langchain' : 'x' } as ExistingCollection;
      const err = await rejectsWith(store.status(ref), 'INVALID_INPUT');
      should(err.message).startWith(`"${field}" only applies to a pgvector table`);
    }
    for (const name of ['a b', 'café', 'docs/../x', 'x;y']) {
      const err = await rejectsWith(store.collectionExists({ name }), 'INVALID_INPUT');
      should(err.message).match(/cannot be a LanceDB table name/).and.match(/letters A-Z and a-z, digits, "_", "-" and "\."/);
    }
    should(await store.collectionExists({ name: 'team.docs' })).be.false(); // names are case-sensitive
    const missing = await rejectsWith(store.status({ name: 'Other.Table' }), 'NOT_FOUND');
    should(missing.message).match(/no table "Other\.Table" in the LanceDB database in /);
    await rejectsWith(store.query({ name: 'Other.Table' }, { vector: vectorOf(0), topK: 1 }), 'NOT_FOUND');
    // A string keeps the package's own rule.
    await rejectsWith(store.status('Team.Docs'), 'INVALID_INPUT');
  });

  it('says NOT_FOUND once the other tool dropped the table it watched, and reads it again when the tool re-creates it', async () => {
    const dir = await tempDir();
    const table = await otherTool(dir, 'Temp.Table', langchainRows(5));
    const store = backend({ path: dir });
    should((await store.status({ name: 'Temp.Table' })).documentCount).equal(5);
    table.close();
    tables.splice(tables.indexOf(table), 1);
    await connections[0].dropTable('Temp.Table');
    await rejectsWith(store.status({ name: 'Temp.Table' }), 'NOT_FOUND');
    should(await store.collectionExists({ name: 'Temp.Table' })).be.false();
    tables.push(await connections[0].createTable('Temp.Table', langchainRows(2)));
    should((await store.status({ name: 'Temp.Table' })).documentCount).equal(2);
  });

  it("reads a package collection named as {name} like any table (its metadata JSON column, its recorded metric)", async () => {
    const dir = await tempDir();
    const store = backend({ path: dir });
    await store.ensureCollection('docs', { dimensions: DIM, metric: 'dot' });
    await store.upsert('docs', [{ id: 'd1', vector: vectorOf(1), text: 'one', metadata: { tag: 'a', nested: { k: 1 } } }]);
    should(await store.stats({ name: 'docs' })).containEql({ metric: 'dot', dimensions: DIM, documentCount: 1 });
    const [hit] = await store.query({ name: 'docs' }, { vector: vectorOf(1), topK: 1 });
    should(hit).containEql({ id: 'd1', text: 'one', metadata: { tag: 'a', nested: { k: 1 } } });
  });

  it('estimates the time left from the rate at which the other tool drains its backlog: unknown before any drop, never 0 while rows wait', () => {
    const backlog = new ForeignBacklog();
    backlog.observe(1000, 0);
    should(backlog.etaSeconds(1000, 0)).be.null();
    backlog.observe(600, 2000); // 400 rows in 2 s: 200 rows/s
    should(backlog.etaSeconds(600, 2000)).equal(3);
    should(backlog.etaSeconds(600, 4000)).equal(1); // 2 s later, same backlog: 1 s left
    should(backlog.etaSeconds(600, 60_000)).equal(1); // overdue: still not 0
    backlog.observe(0, 5000);
    backlog.observe(50, 6000); // a new backlog after ready: the rate seen so far still applies
    should(backlog.etaSeconds(50, 6000)).equal(1); // 50 rows at 200 rows/s: 0.25 s, shown as at least 1
  });
});
