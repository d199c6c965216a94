// The pgvector backend watching tables it did not make (issue 8, item 4): tables made
// by raw SQL in the layouts of LangChain and LlamaIndex and a table of a script of its
// own (a schema, table and column with capitals, spaces and dots), indexes the user
// builds by hand, and index builds of other kinds.
//
// On PGlite with pgvector (one session: builds are seen after they end, not during):
// layouts, presets, user indexes, an invalid user index. On Debian's PostgreSQL 15
// (several sessions, no pgvector; gin standing in for hnsw through the backend's
// vectorAccessMethods option): a user's long CREATE INDEX CONCURRENTLY seen as
// indexing with its phase, a btree build not mistaken for a vector build, another
// role's build.
import should from 'should';
import pg from 'pg';
import { PgVectorBackend, type PgVectorBackendOptions } from '../../lib/backends/pgvector';
import { parseCreateIndex, VectorBuildReader } from '../../lib/backends/pgvector/vector-builds';
import type { Backend, CollectionStatus, ExistingCollection } from '../../lib/types';
import { VectorStoreError } from '../../lib/errors';
import { startPgliteServer, type PgliteServer } from '../support/pglite-server';
import { fixture } from '../conformance/fixtures/pgvector';
import { sleep, until } from '../support/until';
import { POSTGRES_MISSING, postgresBinaries, startPostgresServer, type PostgresServer } from '../support/postgres-server';


async function rejection(promise: Promise<unknown>): Promise<VectorStoreError> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  should(err).be.instanceOf(VectorStoreError);
  return err as VectorStoreError;
}

function vec(values: number[]): string {
  return `[${values.join(',')}]`;
}

describe('pgvector: CREATE INDEX statements read from pg_stat_activity (pure)', () => {
  it('(pure, no server) tells the access method, name and keys of a statement, and a vector build on the column from the others', () => {
    should(parseCreateIndex('CREATE INDEX CONCURRENTLY IF NOT EXISTS "My Idx" ON "s"."t.x" USING hnsw ("Vec" vector_cosine_ops)')).eql({
      concurrently: true,
      name: 'My Idx',
      accessMethod: 'hnsw',
      keys: '"Vec" vector_cosine_ops',
    });
    should(parseCreateIndex('create index on items (embedding)')).match({ name: null, accessMethod: 'btree' });
    should(parseCreateIndex('SELECT 1')).be.null();
    const reader = new VectorBuildReader();
    const watch = { column: 'embedding', index: null };
    should(reader.kindOf({ pid: 1, indexRelid: 0, query: 'CREATE INDEX ON t USING ivfflat (embedding vector_l2_ops) WITH (lists = 10)' }, watch)).equal('vector');
    should(reader.kindOf({ pid: 1, indexRelid: 0, query: 'CREATE INDEX ON t USING hnsw ((embedding::halfvec(3000)) halfvec_ip_ops)' }, watch)).equal('vector');
    should(reader.kindOf({ pid: 1, indexRelid: 0, query: 'CREATE INDEX ON t USING hnsw (other vector_l2_ops)' }, watch)).equal('other');
    should(reader.kindOf({ pid: 1, indexRelid: 0, query: 'CREATE INDEX ON t (embedding_id)' }, watch)).equal('other');
    should(reader.kindOf({ pid: 1, indexRelid: 0, query: 'CREATE INDEX ON t USING gin (metadata)' }, watch)).equal('other');
    should(reader.kindOf({ pid: 1, indexRelid: 0, query: '<insufficient privilege>' }, watch)).equal('unknown');
    should(reader.kindOf({ pid: 1, indexRelid: 5, indexName: 'x', indexAm: 'brin', onColumn: true }, watch)).equal('other');
    should(reader.kindOf({ pid: 1, indexRelid: 5, indexName: 'x', indexAm: 'hnsw', onColumn: true }, { column: 'embedding', index: 'y' })).equal('other');
  });
});

describe('pgvector backend watching tables made by other tools (PGlite with pgvector)', function () {
  this.timeout(60_000);
  let server: PgliteServer;
  const opened: Backend[] = [];

  function backend(options: Partial<PgVectorBackendOptions> = {}): PgVectorBackend {
    const b = new PgVectorBackend({ connectionString: server.url, ...options });
    opened.push(b);
    return b;
  }

  before(async function () {
    this.timeout(120_000);
    server = await startPgliteServer();
    await server.exec('CREATE EXTENSION IF NOT EXISTS vector');
  });

  after(async () => {
    await Promise.all(opened.map((b) => b.close()));
    await server?.stop();
  });

  it('(PGlite) LangChain layout of langchain-postgres (id column): only the collection\'s rows are counted and queried; "column" is refused', async () => {
    await server.exec(`
      CREATE TABLE langchain_pg_collection (uuid uuid PRIMARY KEY, name varchar NOT NULL UNIQUE, cmetadata json);
      CREATE TABLE langchain_pg_embedding (id varchar PRIMARY KEY, collection_id uuid REFERENCES langchain_pg_collection(uuid) ON DELETE CASCADE,
        embedding vector(3), document varchar, cmetadata jsonb);
      INSERT INTO langchain_pg_collection VALUES ('11111111-1111-1111-1111-111111111111', 'docs', null), ('22222222-2222-2222-2222-222222222222', 'other', null);
      INSERT INTO langchain_pg_embedding VALUES
        ('a', '11111111-1111-1111-1111-111111111111', '${vec([1, 0, 0])}', 'text a', '{"k": 1}'),
        ('b', '11111111-1111-1111-1111-111111111111', '${vec([0, 1, 0])}', 'text b', '{"k": 2}'),
        ('c', '22222222-2222-2222-2222-222222222222', '${vec([1, 0, 0.01])}', 'other c', '{}');`);
    const b = backend();
    const docs: ExistingCollection = { name: 'docs', preset: 'langchain' };
    should(await b.collectionExists(docs)).be.true();
    should(await b.collectionExists({ name: 'nope', preset: 'langchain' })).be.false();
    should(await b.status(docs)).match({ state: 'ready', documentCount: 2, indexedCount: 2 });
    should(await b.stats(docs)).match({ documentCount: 2, dimensions: 3, metric: 'cosine', indexType: 'exact (no index)' });
    const hits = await b.query(docs, { vector: [1, 0, 0.01], topK: 5 });
    should(hits.map((h) => h.id)).eql(['a', 'b']); // not "c", of the other collection
    should(hits[0]).match({ text: 'text a', metadata: { k: 1 } });
    should((await b.query(docs, { vector: [1, 0, 0], topK: 5, filter: { k: 2 } })).map((h) => h.id)).eql(['b']);
    const missing = await rejection(b.status({ name: 'nope', preset: 'langchain' }));
    should(missing.code).equal('NOT_FOUND');
    should(missing.message).match(/LangChain collection "nope" does not exist/);
    const column = await rejection(b.status({ name: 'docs', preset: 'langchain', column: 'vec' }));
    should(column.code).equal('INVALID_INPUT');
    should(column.message).match(/"column" cannot be given with the preset "langchain"/);
    // A user's hnsw index with the l2 operator class: ready, and the metric comes from it.
    await server.exec('CREATE INDEX lc_hnsw ON langchain_pg_embedding USING hnsw (embedding vector_l2_ops)');
    should(await b.stats(docs)).match({ metric: 'l2', indexType: 'hnsw' });
    should((await b.query(docs, { vector: [1, 0, 0], topK: 1 }))[0]).match({ id: 'a', score: -0 });
    await server.exec('DROP TABLE langchain_pg_embedding; DROP TABLE langchain_pg_collection');
  });

  it('(PGlite) LangChain layout of the older langchain_community (uuid, custom_id, json metadata, a vector column without dimensions)', async () => {
    const schema = 'lc_old';
    await server.exec(`
      CREATE SCHEMA ${schema};
      CREATE TABLE ${schema}.langchain_pg_collection (uuid uuid PRIMARY KEY, name varchar, cmetadata json);
      CREATE TABLE ${schema}.langchain_pg_embedding (uuid uuid PRIMARY KEY, collection_id uuid, embedding vector, document varchar,
        cmetadata json, custom_id varchar);
      INSERT INTO ${schema}.langchain_pg_collection VALUES ('11111111-1111-1111-1111-111111111111', 'notes', null);
      INSERT INTO ${schema}.langchain_pg_embedding VALUES
        ('aaaaaaaa-0000-0000-0000-000000000001', '11111111-1111-1111-1111-111111111111', '${vec([0, 0, 1, 0])}', 'first', '{"a": true}', 'n1'),
        ('aaaaaaaa-0000-0000-0000-000000000002', '11111111-1111-1111-1111-111111111111', '${vec([0, 1, 0, 0])}', 'second', null, null);`);
    const b = backend();
    const notes: ExistingCollection = { name: 'notes', preset: 'langchain', schema };
    should(await b.stats(notes)).match({ documentCount: 2, dimensions: 4, metric: 'cosine' }); // dimensions read from a stored vector
    const hits = await b.query(notes, { vector: [0, 0.1, 1, 0], topK: 2 });
    should(hits.map((h) => [h.id, h.text])).eql([
      ['n1', 'first'],
      ['aaaaaaaa-0000-0000-0000-000000000002', 'second'], // no custom_id: the row's uuid
    ]);
    should(hits[0].metadata).eql({ a: true });
  });

  it('(PGlite) LlamaIndex layout: preset "llamaindex" reads data_<name in lower case>, node_id, text and metadata_', async () => {
    await server.exec(`
      CREATE TABLE data_paul_graham (id bigserial PRIMARY KEY, text varchar NOT NULL, metadata_ json, node_id varchar, embedding vector(3));
      INSERT INTO data_paul_graham (text, metadata_, node_id, embedding) VALUES
        ('essay one', '{"doc": 1}', 'node-1', '${vec([1, 1, 0])}'), ('essay two', '{"doc": 2}', 'node-2', '${vec([0, 0, 1])}');`);
    const b = backend();
    const ref: ExistingCollection = { name: 'Paul_Graham', preset: 'llamaindex' };
    should(await b.collectionExists(ref)).be.true();
    should(await b.status(ref)).match({ state: 'ready', documentCount: 2 });
    should((await b.query(ref, { vector: [0, 0, 1], topK: 1 }))[0]).match({ id: 'node-2', text: 'essay two', metadata: { doc: 2 } });
    const missing = await rejection(b.stats({ name: 'nothing', preset: 'llamaindex' }));
    should(missing).match({ code: 'NOT_FOUND' });
    should(missing.message).match(/data_nothing/);
  });

  it('(PGlite) a custom schema, table and column with capitals, spaces and a dot; a user\'s CREATE INDEX (halfvec expression, inner product) makes it ready with metric dot', async () => {
    await server.exec(`
      CREATE SCHEMA "Other Tools";
      CREATE TABLE "Other Tools"."Docs.v2" (id text PRIMARY KEY, text text, metadata jsonb, "Vec Col" vector(3), plain int);
      INSERT INTO "Other Tools"."Docs.v2" VALUES ('x1', 'one', '{"n": 1}', '${vec([1, 0, 0])}', 1), ('x2', 'two', null, '${vec([0, 1, 0])}', 2);`);
    const b = backend();
    const ref: ExistingCollection = { schema: 'Other Tools', name: 'Docs.v2', column: 'Vec Col' };
    should(await b.status(ref)).match({ state: 'ready', documentCount: 2, detail: 'no vector index on "Vec Col": queries scan every row exactly' });
    should(await b.stats(ref)).match({ dimensions: 3, metric: 'cosine', indexType: 'exact (no index)' });
    // A btree and a gin index are not vector indexes: still no vector index.
    await server.exec(`CREATE INDEX docs_plain ON "Other Tools"."Docs.v2" (plain); CREATE INDEX docs_meta ON "Other Tools"."Docs.v2" USING gin (metadata)`);
    should(await b.stats(ref)).match({ indexType: 'exact (no index)' });
    const btree = await rejection(b.status({ ...ref, index: 'docs_plain' }));
    should(btree.code).equal('INVALID_INPUT');
    should(btree.message).match(/The index "docs_plain" of the table Other Tools\.Docs\.v2 .* is a btree index .*, not a vector index \(hnsw, ivfflat\)/);
    should((await rejection(b.status({ ...ref, index: 'docs_meta' }))).message).match(/is a gin index/);
    // A named index that does not exist yet: indexing, saying so (a wait ends at its deadline with this sentence).
    const named = { ...ref, index: 'Docs HNSW' };
    should(await b.status(named)).match({
      state: 'indexing',
      detail: /the index "Docs HNSW" does not exist yet on Other Tools\.Docs\.v2 and no build of it is running/,
    });
    await server.exec(`CREATE INDEX "Docs HNSW" ON "Other Tools"."Docs.v2" USING hnsw (("Vec Col"::halfvec(3)) halfvec_ip_ops)`);
    should(await b.status(named)).match({ state: 'ready', documentCount: 2, indexedCount: 2 });
    should(await b.stats(ref)).match({ metric: 'dot', indexType: 'hnsw (halfvec)' });
    const hits = await b.query(ref, { vector: [0, 2, 0], topK: 1 });
    should(hits[0]).match({ id: 'x2', text: 'two', metadata: {}, score: 2 });
  });

  it('(PGlite) a package collection with a vector index a user built under their own name: stats name that index, not "exact (no index)"', async () => {
    const b = backend({ autoIndexThreshold: 1_000_000 });
    await b.ensureCollection('users_indexed', { dimensions: 3 });
    await b.upsert('users_indexed', [
      { id: 'a', vector: [1, 0, 0] },
      { id: 'b', vector: [0, 1, 0] },
    ]);
    should((await b.stats('users_indexed')).indexType).equal('exact (no index)');
    await server.exec(`CREATE INDEX their_own ON vector_pipeline.users_indexed USING hnsw (embedding vector_cosine_ops)`);
    should(await b.stats('users_indexed')).match({ documentCount: 2, indexType: 'hnsw' });
    should(await b.status('users_indexed')).match({ state: 'ready', indexedCount: 2 });
  });

  it('(PGlite) names with quotes are quoted, never read as SQL: a table Q"uo\'te; DROP and a column e"mb', async () => {
    await server.exec(`CREATE TABLE public."Q""uo'te; DROP" (id text, "e""mb" vector(2)); INSERT INTO public."Q""uo'te; DROP" VALUES ('q1', '[1,2]')`);
    const b = backend();
    const ref: ExistingCollection = { name: `Q"uo'te; DROP`, column: 'e"mb' };
    should(await b.status(ref)).match({ state: 'ready', documentCount: 1 });
    should((await b.query(ref, { vector: [1, 2], topK: 1 }))[0]).match({ id: 'q1', text: null, metadata: {} });
    should(await b.collectionExists({ name: `Q"uo'te; DROP`, schema: `pg_catalog'--` })).be.false();
  });

  it('(PGlite) a user\'s CREATE INDEX CONCURRENTLY (ivfflat) that completes is ready; a missing table is not found; a table without the vector column is refused', async () => {
    await server.exec(`CREATE TABLE public.items (id text, embedding vector(2), body text)`);
    await server.exec(`INSERT INTO public.items SELECT 'i' || g, ('[' || g || ',1]')::vector, 'b' FROM generate_series(1, 50) g`);
    const b = backend();
    await server.exec(`CREATE INDEX CONCURRENTLY items_ivf ON public.items USING ivfflat (embedding vector_l2_ops) WITH (lists = 2)`);
    should(await b.status({ name: 'items' })).match({ state: 'ready', documentCount: 50, indexedCount: 50 });
    should(await b.stats({ name: 'items', index: 'items_ivf' })).match({ metric: 'l2', indexType: 'ivfflat', dimensions: 2 });
    should(await b.collectionExists({ name: 'no_such_table' })).be.false();
    should((await rejection(b.status({ name: 'no_such_table' }))).message).match(/The table public\.no_such_table .* does not exist/);
    const wrong = await rejection(b.status({ name: 'items', column: 'body' }));
    should(wrong.code).equal('INVALID_INPUT');
    should(wrong.message).match(/The column "body" of the table public\.items .* is not a pgvector vector column: it is of type text/);
    should((await rejection(b.status({ name: 'items', column: 'vec' }))).message).match(/the table has the columns "id" text, "embedding" vector\(2\), "body" text/);
  });

  it('(PGlite) an invalid user vector index (a CREATE INDEX CONCURRENTLY the server failed half-way: halfvec above 4000 dimensions) is failed, not ready; queries still answer', async () => {
    // PGlite ignores statement_timeout, so the server's own refusal cuts this build.
    await server.exec(`CREATE TABLE public.wide (id text, embedding vector(4001))`);
    await server.exec(`INSERT INTO public.wide SELECT 'w' || g, array_fill(g::real, ARRAY[4001])::vector FROM generate_series(1, 3) g`);
    const c = new pg.Client({ connectionString: server.url });
    await c.connect();
    try {
      await c.query(`CREATE INDEX CONCURRENTLY wide_hnsw ON public.wide USING hnsw ((embedding::halfvec(4001)) halfvec_cosine_ops)`).then(
        () => should.fail(null, null, 'the build should fail'),
        (err: Error) => should(err.message).match(/4000/),
      );
    } finally {
      await c.end();
    }
    const b = backend();
    for (const ref of [{ name: 'wide' }, { name: 'wide', index: 'wide_hnsw' }]) {
      const status = await b.status(ref);
      should(status.state).equal('failed');
      should(status.detail).match(/the hnsw index "wide_hnsw" on public\.wide \("embedding"\) is invalid and no build of it is running/);
    }
    should((await b.stats({ name: 'wide' })).indexType).equal('hnsw (invalid)');
    should((await b.query({ name: 'wide' }, { vector: Array(4001).fill(1), topK: 1 })).length).equal(1);
  });
});

describe('pgvector backend watching index builds of other sessions (PostgreSQL 15; no pgvector: gin standing in for hnsw)', function () {
  this.timeout(90_000);
  let server: PostgresServer | null = null;
  let admin: pg.Client;
  const opened: Backend[] = [];
  let counter = 0;

  before(async function () {
    if (!postgresBinaries()) {
      console.log(`      (skipped: ${POSTGRES_MISSING})`);
      this.skip();
    }
    this.timeout(60_000);
    server = await startPostgresServer();
    admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    // A stand-in for the vector type: int[] with gin (array_ops). Slow to index: an IMMUTABLE function that sleeps.
    await admin.query(
      `CREATE FUNCTION public.slow(x int[]) RETURNS int[] IMMUTABLE LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.002); RETURN x; END $$`,
    );
    await admin.query(`CREATE FUNCTION public.slowi(x int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.002); RETURN x; END $$`);
    await admin.query('CREATE SCHEMA vector_pipeline');
  });

  after(async () => {
    await Promise.all(opened.map((b) => b.close()));
    await admin?.end();
    await server?.stop();
  });

  /** A backend on PG15 that takes gin for a vector index method (the stand-in), or pgvector's own methods. */
  function backend(options: Partial<PgVectorBackendOptions> = {}, user = 'postgres'): PgVectorBackend {
    const b = new PgVectorBackend({ connectionString: server!.url.replace('postgres@', `${user}@`), ...options });
    opened.push(b);
    return b;
  }

  /** A table whose "embedding" column is an int[] (1500 rows: a slow build takes a few seconds). */
  async function table(schema = 'public', rows = 1500): Promise<string> {
    counter += 1;
    const name = `t${counter}`;
    await admin.query(`CREATE TABLE ${schema}.${name} AS SELECT i AS id, ARRAY[i, i + 1] AS embedding, i AS plain FROM generate_series(1, ${rows}) i`);
    return name;
  }

  async function buildingPid(name: string): Promise<number> {
    const rows = await until('the build to show in pg_stat_progress_create_index', async () => {
      const r = await admin.query('SELECT pid FROM pg_stat_progress_create_index WHERE relid = $1::regclass', [name]);
      return r.rows.length > 0 && r.rows;
    });
    return rows[0].pid as number;
  }

  /** Stand-ins: gin for hnsw, int[] (typname _int4) for the vector type. */
  const STAND_IN: Partial<PgVectorBackendOptions> = { vectorAccessMethods: ['gin'], vectorColumnTypes: ['_int4'] };

  it('(PostgreSQL 15, gin standing in for hnsw) a user\'s table: a plain btree build is not mistaken; a plain CREATE INDEX (read from its statement) and a long CREATE INDEX CONCURRENTLY read indexing with their phase, then ready', async () => {
    const name = await table();
    const b = backend(STAND_IN);
    const ref: ExistingCollection = { name };
    should(await b.status(ref)).match({ state: 'ready', documentCount: 1500, detail: /no vector index on "embedding"/ });
    const user = new pg.Client({ connectionString: server!.url });
    await user.connect();
    try {
      // A plain btree CREATE INDEX on the same table, even on the vector column: not a vector build.
      const btree = user.query(`CREATE INDEX ${name}_plain ON public.${name} (public.slowi(plain), embedding)`);
      await buildingPid(name);
      for (let i = 0; i < 3; i++) should(await b.status(ref)).match({ state: 'ready', phase: null });
      await btree;

      // A plain CREATE INDEX of the stand-in vector kind: seen from its statement (index_relid 0).
      const plainGin = user.query(`CREATE INDEX ${name}_gin1 ON public.${name} USING gin (public.slow(embedding))`);
      const pid1 = await buildingPid(name);
      const first = await until('the plain build read as indexing', async () => {
        const s = await b.status(ref);
        return s.state === 'indexing' && Boolean(s.phase) ? s : null;
      });
      should(first.detail).match(new RegExp(`building the gin index "${name}_gin1" \\(session pid ${pid1}\\)`));
      await plainGin;
      should(await b.status(ref)).match({ state: 'ready', documentCount: 1500, indexedCount: 1500 });
      await admin.query(`DROP INDEX public.${name}_gin1`);

      // CREATE INDEX CONCURRENTLY: the invalid index in pg_index belongs to the build, which is not "failed" meanwhile.
      const build = user.query(`CREATE INDEX CONCURRENTLY ${name}_gin2 ON public.${name} USING gin (public.slow(embedding))`);
      const pid2 = await buildingPid(name);
      const seen: CollectionStatus[] = [];
      await until('the concurrent build to end', async () => {
        const s = await b.status({ name, index: `${name}_gin2` });
        seen.push(s);
        return s.state !== 'indexing' && s;
      }, 60_000);
      await build;
      const indexing = seen.filter((s) => s.state === 'indexing');
      should(indexing.length).be.above(0);
      should(indexing.some((s) => (s.phase ?? '').startsWith('building index'))).be.true();
      should(indexing.find((s) => s.phase)!.detail).match(new RegExp(`building the gin index "${name}_gin2" \\(session pid ${pid2}\\)`));
      should(seen.map((s) => s.state)).not.containEql('failed');
      should(seen[seen.length - 1].state).equal('ready');
      should(await b.stats(ref)).match({ indexType: 'gin', dimensions: 0 });
    } finally {
      await user.end();
    }
  });

  it('(PostgreSQL 15, gin standing in for hnsw) on a package table: a user\'s CREATE INDEX CONCURRENTLY under another name reads indexing with its phase; a plain btree CREATE INDEX is not a vector build', async () => {
    const name = await table('vector_pipeline');
    const b = backend({ vectorAccessMethods: ['gin'] });
    should(await b.status(name)).match({ state: 'ready', documentCount: 1500 }); // no index, no build: exact scans

    // A user's gin ("vector") build under a name of their own, CONCURRENTLY.
    const user = new pg.Client({ connectionString: server!.url });
    await user.connect();
    try {
      const build = user.query(`CREATE INDEX CONCURRENTLY users_own ON vector_pipeline.${name} USING gin (public.slow(embedding))`);
      const pid = await buildingPid(`vector_pipeline.${name}`);
      const seen = await until('a phase of the user\'s build', async () => {
        const s = await b.status(name);
        return s.state === 'indexing' && Boolean(s.phase) ? s : null;
      });
      should(seen.phase).startWith('building index');
      should(seen.detail).match(new RegExp(`building the gin index "users_own" \\(session pid ${pid}\\)`));
      await build;
      should((await b.status(name)).state).equal('ready');

      // A plain btree CREATE INDEX (its progress row has index_relid 0): not a vector build.
      const btree = user.query(`CREATE INDEX users_plain ON vector_pipeline.${name} (public.slowi(plain))`);
      await buildingPid(`vector_pipeline.${name}`);
      for (let i = 0; i < 3; i++) should(await b.status(name)).match({ state: 'ready', phase: null });
      await btree;
    } finally {
      await user.end();
    }
  });

  it('(PostgreSQL 15, pgvector\'s own methods) a plain btree CREATE INDEX on a package table by another session is not read as an HNSW build', async () => {
    const name = await table('vector_pipeline');
    const b = backend();
    const user = new pg.Client({ connectionString: server!.url });
    await user.connect();
    try {
      const btree = user.query(`CREATE INDEX ON vector_pipeline.${name} (public.slowi(plain))`);
      await buildingPid(`vector_pipeline.${name}`);
      const status = await b.status(name);
      should(status).match({ state: 'ready', documentCount: 1500 });
      should(status.detail ?? '').not.match(/HNSW/);
      await btree;
    } finally {
      await user.end();
    }
  });

  it('(PostgreSQL 15, gin standing in for hnsw) another role\'s build, its statement hidden without pg_read_all_stats: indexing, saying its kind cannot be told', async () => {
    const name = await table();
    await admin.query(`CREATE ROLE watcher2 LOGIN`);
    await admin.query(`GRANT SELECT ON public.${name} TO watcher2`);
    const b = backend(STAND_IN, 'watcher2');
    const user = new pg.Client({ connectionString: server!.url });
    await user.connect();
    try {
      const build = user.query(`CREATE INDEX CONCURRENTLY ON public.${name} USING btree (public.slowi(plain))`);
      await buildingPid(name);
      const status = await b.status({ name });
      should(status.state).equal('indexing');
      should(status.detail).match(/its progress is not visible to this database user \(grant it pg_read_all_stats to see it\), nor whether it is a vector index/);
      await build;
      should((await b.status({ name })).state).equal('ready');
    } finally {
      await user.end();
    }
  });
});

describe('pgvector conformance fixture: createForeign (PGlite with pgvector)', function () {
  this.timeout(60_000);

  it('(PGlite) makes "Other Tools"."<name>.Items" with a "vec" column by raw SQL; the backend watches, counts and queries it', async () => {
    await fixture.start();
    const b = fixture.create();
    try {
      const vectors = [
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 1],
      ];
      const ref = await fixture.createForeign!('Foreign_1', vectors);
      should(ref).eql({ schema: 'Other Tools', name: 'Foreign_1.Items', column: 'vec' });
      should(await b.collectionExists(ref)).be.true();
      should(await b.collectionExists({ ...ref, name: 'Foreign_2.Items' })).be.false();
      should(await b.status(ref)).match({ state: 'ready', documentCount: 3 });
      should(await b.stats(ref)).match({ documentCount: 3, dimensions: 3 });
      should((await b.query(ref, { vector: [0, 0.1, 1], topK: 1 }))[0]).match({ id: 'a2', text: 'text 2' });
    } finally {
      await b.close();
      await fixture.stop();
    }
  });
});
