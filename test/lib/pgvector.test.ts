// The pgvector backend beyond the conformance suite: connection settings, the
// error and status mappings (pure), and on a real Postgres + pgvector (PGlite over
// its socket server): index builds in flight, failed and invalid indexes, the
// half-precision index above 2000 dimensions, identifiers that SQL cannot
// subvert, passwords kept out of messages, and the pool closed on close.
import should from 'should';
import pg from 'pg';
import { PgVectorBackend, type PgVectorBackendOptions } from '../../lib/backends/pgvector';
import { parseConnectionString } from '../../lib/backends/pgvector/connection';
import { toStoreError } from '../../lib/backends/pgvector/errors';
import { namesOf } from '../../lib/backends/pgvector/sql';
import { decideStatus, type StatusReading } from '../../lib/backends/pgvector/status';
import type { Backend, CollectionStatus } from '../../lib/types';
import { startPasswordRejectingServer, startPgliteServer, unusedPort, type PgliteServer } from '../support/pglite-server';
import { rejectsWith, throwsWith } from '../support/errors';

const SECRET = 'pw-Do-Not-Show-4711';



/** Deterministic vectors of `dims` values in [-1, 1]. */
function vectors(n: number, dims: number, seed = 7): number[][] {
  let x = seed;
  const next = () => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
  return Array.from({ length: n }, () => Array.from({ length: dims }, next));
}

/** Documents `<prefix><i>`; each prefix gets vectors of its own. */
function docs(n: number, dims: number, prefix = 'd') {
  const seed = [...prefix].reduce((sum, c) => sum * 31 + c.charCodeAt(0), 7) % 100_000;
  return vectors(n, dims, seed).map((vector, i) => ({ id: `${prefix}${i}`, vector, text: `text ${i}`, metadata: { i } }));
}

async function untilSettled(backend: Backend, collection: string, timeoutMs = 20_000): Promise<CollectionStatus[]> {
  const seen: CollectionStatus[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await backend.status(collection);
    seen.push(status);
    if (status.state !== 'indexing') return seen;
    if (Date.now() > deadline) throw new Error(`still indexing after ${timeoutMs} ms: ${JSON.stringify(status)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// ---------------------------------------------------------------------------

describe('pgvector backend: connection settings', () => {
  it('splits a connection string into host, port, user and database', () => {
    should(parseConnectionString('postgres://alice@db.example:6543/vectors', false)).match({
      host: 'db.example',
      port: 6543,
      user: 'alice',
      database: 'vectors',
      ssl: false,
      where: 'db.example:6543/vectors',
    });
    should(parseConnectionString('postgresql://[::1]/x', true)).match({ host: '::1', port: 5432, ssl: { rejectUnauthorized: true } });
  });

  it('refuses a password in the URL, pointing to the credential, without repeating it', () => {
    for (const url of [`postgres://alice:${SECRET}@host/db`, `postgres://alice@host/db?password=${SECRET}`]) {
      const err = throwsWith(() => new PgVectorBackend({ connectionString: url }), 'INVALID_INPUT');
      should(err.message).match(/Password credential/);
      should(err.message).not.containEql(SECRET);
    }
  });

  it('refuses a Password with a line break, naming the field and not the value (a configuration error, not retried)', () => {
    for (const password of [`${SECRET}\n`, `${SECRET}\r\nX`, ` ${SECRET}`]) {
      const err = throwsWith(() => new PgVectorBackend({ connectionString: 'postgres://alice@host/db', password }), 'INVALID_INPUT');
      should(err.transient).be.false();
      should(err.message).match(/Password credential/);
      should(err.message).not.containEql(SECRET.slice(0, 6));
    }
  });

  it('names the field to fix for a missing, malformed or non-postgres URL, or query parameters', () => {
    should(throwsWith(() => new PgVectorBackend({ connectionString: '' }), 'INVALID_INPUT').message).match(/set URL/);
    should(throwsWith(() => new PgVectorBackend({ connectionString: 'not a url' }), 'INVALID_INPUT').message).match(/postgres:\/\/user@host/);
    should(throwsWith(() => new PgVectorBackend({ connectionString: 'http://host/db' }), 'INVALID_INPUT').message).match(/postgres:\/\//);
    should(throwsWith(() => new PgVectorBackend({ connectionString: 'postgres://u@h/db?sslmode=require' }), 'INVALID_INPUT').message).match(
      /sslmode.*TLS option/,
    );
  });
});

describe('pgvector backend: error mapping', () => {
  const ctx = { where: 'h:5432/db', doing: 'reading the status of collection "docs"', collection: 'docs', password: SECRET };
  const pgError = (code: string, message: string) => Object.assign(new Error(message), { code });

  it('bad credentials are AUTH and permanent', () => {
    for (const code of ['28P01', '28000']) {
      const err = toStoreError(pgError(code, 'password authentication failed for user "u"'), ctx);
      should(err).match({ code: 'AUTH', transient: false });
      should(err.message).match(/Password credential/);
    }
  });

  it('connection refused, a cancelled statement and server overload are UNAVAILABLE and transient', () => {
    const cases = [
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }),
      Object.assign(new AggregateError([new Error('connect ECONNREFUSED ::1:1')], ''), { code: 'ECONNREFUSED' }),
      pgError('57014', 'canceling statement due to user request'),
      pgError('57P03', 'the database system is starting up'),
      pgError('53300', 'sorry, too many clients already'),
      pgError('57P01', 'terminating connection due to administrator command'),
    ];
    for (const cause of cases) {
      const err = toStoreError(cause, ctx);
      should(err).match({ code: 'UNAVAILABLE', transient: true });
      should(err.message).match(/pgvector store at h:5432\/db/);
      should(err.message).match(/reading the status of collection "docs"/);
    }
  });

  it('a missing table or schema is NOT_FOUND, a missing extension NOT_INSTALLED, both permanent', () => {
    should(toStoreError(pgError('42P01', 'relation does not exist'), ctx)).match({ code: 'NOT_FOUND', transient: false });
    should(toStoreError(pgError('3F000', 'schema does not exist'), ctx)).match({ code: 'NOT_FOUND', transient: false });
    const missing = toStoreError(pgError('0A000', 'extension "vector" is not available'), ctx);
    should(missing).match({ code: 'NOT_INSTALLED', transient: false });
    should(missing.message).match(/Install pgvector on the database server/);
  });

  it('timeouts (statement_timeout, lock_timeout, no answer, no connection) are TIMEOUT, transient, saying what timed out and the setting', () => {
    const timed = { ...ctx, timeoutMs: 10_000 };
    const cases: Array<[Error, RegExp]> = [
      [pgError('57014', 'canceling statement due to statement timeout'), /statement_timeout/],
      [pgError('55P03', 'canceling statement due to lock timeout'), /another session holds a lock/],
      [new Error('Query read timeout'), /no answer to the statement/],
      [new Error('Connection terminated due to connection timeout'), /no connection could be opened/],
      [new Error('timeout exceeded when trying to connect'), /no connection could be opened or became free/],
    ];
    for (const [cause, what] of cases) {
      const err = toStoreError(cause, timed);
      should(err).match({ code: 'TIMEOUT', transient: true });
      should(err.message).startWith('The pgvector store at h:5432/db did not answer within 10 s while reading the status of collection "docs" (');
      should(err.message).match(what).and.match(/vectorPipeline\.storeTimeout/);
    }
    // Another session's lock that is not a lock_timeout (NOWAIT) stays UNAVAILABLE.
    should(toStoreError(pgError('55P03', 'could not obtain lock on relation "t"'), timed).code).equal('UNAVAILABLE');
  });

  it('never repeats the password, in any form an error message may hold it (and not in the cause either)', () => {
    const forms = [SECRET, encodeURIComponent(SECRET), SECRET.toUpperCase(), Buffer.from(`postgres:${SECRET}`).toString('base64'), SECRET.slice(0, 10)];
    for (const form of forms) {
      const err = toStoreError(pgError('XX000', `something echoed ${form} back`), ctx);
      should(err.message).not.containEql(form);
      should(err.message).containEql('***');
      should(String((err.cause as Error).message)).not.containEql(form);
    }
  });
});

describe('pgvector backend: status mapping', () => {
  const base: StatusReading = {
    documentCount: 1000,
    indexValid: null,
    builds: [],
    activity: null,
    failure: null,
    indexName: 'docs$hnsw',
  };

  it('a build the progress view shows is indexing, with progress from blocks done/total (as on a full Postgres)', () => {
    const status = decideStatus({
      ...base,
      indexValid: false, // CREATE INDEX CONCURRENTLY: the index exists, not yet valid
      builds: [{ phase: 'building index: loading tuples', blocksDone: 50, blocksTotal: 100, tuplesDone: 0, tuplesTotal: 0 }],
    });
    // Loading tuples is 0 to 75 % (measured phase durations: see status.ts).
    should(status).match({ state: 'indexing', documentCount: 1000, indexedCount: 375, progress: 0.375, phase: 'building index: loading tuples' });
    should(status.detail).match(/loading tuples \(50 of 100 blocks\)/);
    const validating = decideStatus({
      ...base,
      builds: [{ phase: 'index validation: scanning table', blocksDone: 10, blocksTotal: 10, tuplesDone: null, tuplesTotal: null }],
    });
    should(validating.progress).be.approximately(0.98, 1e-9);
  });

  it('a build in flight with no progress row (as on PGlite) is indexing, progress unknown', () => {
    should(decideStatus({ ...base, activity: { kind: 'building', since: Date.now() } })).match({ state: 'indexing', indexedCount: 0, progress: null });
  });

  it('a valid index is ready with every row indexed, even while a request is still settling', () => {
    should(decideStatus({ ...base, indexValid: true, activity: { kind: 'building', since: Date.now() } })).match({
      state: 'ready',
      indexedCount: 1000,
      progress: 1,
      etaSeconds: 0,
    });
  });

  it('an invalid index with no build running is failed, with the recorded reason or a general one', () => {
    const known = decideStatus({
      ...base,
      indexValid: false,
      failure: { code: '53200', reason: 'building the HNSW index "docs$hnsw" failed: out of memory' },
    });
    should(known).match({ state: 'failed', indexedCount: 0, code: '53200' });
    should(known.detail).match(/out of memory/).and.match(/drop and rebuild/);
    const unknown = decideStatus({ ...base, indexValid: false });
    should(unknown.state).equal('failed');
    should(unknown.detail).match(/"docs\$hnsw" is invalid and no build is running/);
  });

  it('no index and no build is ready by count; a failed build that left no index is failed', () => {
    should(decideStatus(base)).match({ state: 'ready', documentCount: 1000, indexedCount: 1000 });
    should(decideStatus({ ...base, failure: { code: null, reason: 'building failed: disk full' } })).match({ state: 'failed' });
    const waiting = decideStatus({ ...base, activity: { kind: 'connecting', since: Date.now(), problem: 'waiting for a free connection to start the index build' } });
    should(waiting).match({ state: 'indexing', phase: 'waiting for a connection', detail: 'waiting for a free connection to start the index build' });
  });
});

// ---------------------------------------------------------------------------

describe('pgvector backend on Postgres + pgvector (PGlite)', function () {
  this.timeout(60_000);
  let server: PgliteServer;
  const opened: Backend[] = [];
  let counter = 0;

  function backend(options: Partial<PgVectorBackendOptions> = {}): PgVectorBackend {
    const b = new PgVectorBackend({ connectionString: server.url, ...options });
    opened.push(b);
    return b;
  }

  function fresh(prefix = 'pgt'): string {
    counter += 1;
    return `${prefix}_${counter}`;
  }

  /** Run SQL on a connection of the test's own. */
  async function sqlQuery<R extends object>(text: string, values: unknown[] = []): Promise<R[]> {
    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    try {
      return (await client.query(text, values)).rows as R[];
    } finally {
      await client.end();
    }
  }

  async function indexOf(collection: string): Promise<{ valid: boolean } | null> {
    const rows = await sqlQuery<{ valid: boolean }>('SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = to_regclass($1)', [
      namesOf('vector_pipeline', collection).index,
    ]);
    return rows[0] ?? null;
  }

  before(async function () {
    this.timeout(120_000);
    server = await startPgliteServer();
  });

  after(async () => {
    await Promise.all(opened.map((b) => b.close()));
    await server?.stop();
  });

  it('says indexing while its index build is in flight (no progress rows on PGlite), then ready with a valid HNSW index', async () => {
    const b = backend();
    const name = fresh();
    await b.ensureCollection(name, { dimensions: 8 });
    await b.upsert(name, docs(200, 8), { buildIndex: true });
    // The upsert returns before the build starts on its own connection, whose handshake
    // comes after this status query: the build is in flight and Postgres shows no index yet.
    const first = await b.status(name);
    should(first).match({ state: 'indexing', documentCount: 200, indexedCount: 0, progress: null });
    should(first.detail).match(/index build|building the HNSW index/);
    const seen = await untilSettled(b, name);
    should(seen[seen.length - 1]).match({ state: 'ready', documentCount: 200, indexedCount: 200, progress: 1 });
    should(await indexOf(name)).eql({ valid: true });
    should((await b.stats(name)).indexType).equal('hnsw');

    // Later writes are indexed as they are written: nothing to build, ready at once.
    await b.upsert(name, docs(50, 8, 'later'), { buildIndex: true });
    should(await b.status(name)).match({ state: 'ready', documentCount: 250, indexedCount: 250 });
    const hits = await b.query(name, { vector: docs(1, 8, 'later')[0].vector, topK: 1 });
    should(hits[0]).match({ id: 'later0' });
    should(hits[0].score).be.approximately(1, 1e-3);
  });

  it('after a delete, a status counts exactly while the catalog estimate still counts the deleted rows', async () => {
    const b = backend();
    const name = fresh();
    await b.ensureCollection(name, { dimensions: 8 });
    await b.upsert(name, docs(50, 8));
    // The catalog as it is before autovacuum catches up with a large delete: 20,000 rows.
    await sqlQuery(`UPDATE pg_class SET reltuples = 20000 WHERE oid = '${namesOf('vector_pipeline', name).table}'::regclass`);
    should(await b.delete(name, { ids: docs(10, 8).map((d) => d.id) })).eql({ deleted: 10, totalCount: 40 });
    should(await b.status(name)).match({ state: 'ready', documentCount: 40, indexedCount: 40 });
    should((await b.stats(name)).documentCount).equal(40);
  });

  it('queries through the index keep topK above ef_search and filters exact', async () => {
    const b = backend();
    const name = fresh();
    await b.ensureCollection(name, { dimensions: 8 });
    const all = vectors(300, 8).map((vector, i) => ({ id: `q${i}`, vector, metadata: { group: i % 3 === 0 ? 'a' : 'b' } }));
    await b.upsert(name, all, { buildIndex: true });
    await untilSettled(b, name);
    should(await indexOf(name)).eql({ valid: true });
    const many = await b.query(name, { vector: all[0].vector, topK: 120 });
    should(many).have.length(120);
    should(many[0]).match({ id: 'q0' });
    const filtered = await b.query(name, { vector: all[1].vector, topK: 60, filter: { group: 'a' } });
    should(filtered).have.length(60);
    for (const hit of filtered) should(hit.metadata).eql({ group: 'a' });
    for (let i = 1; i < filtered.length; i++) should(filtered[i].score).be.belowOrEqual(filtered[i - 1].score);
  });

  it('a build the server refuses is failed with its reason; the index is left invalid; queries still answer', async () => {
    // HNSW indexes at most 4000 dimensions: the server fails the build half-way and
    // CREATE INDEX CONCURRENTLY leaves an invalid index behind.
    const b = backend();
    const name = fresh();
    await b.ensureCollection(name, { dimensions: 4001 });
    await b.upsert(name, docs(5, 4001), { buildIndex: true });
    const seen = await untilSettled(b, name);
    const last = seen[seen.length - 1];
    should(last).match({ state: 'failed', documentCount: 5, indexedCount: 0 });
    should(last.detail).match(/4000 dimensions/).and.match(/"pgt_\d+\$hnsw"/);
    should(await indexOf(name)).eql({ valid: false });
    should((await b.stats(name)).indexType).equal('hnsw (halfvec) (invalid)');
    should(await b.query(name, { vector: docs(5, 4001)[2].vector, topK: 1 })).match([{ id: 'd2' }]);

    should(last.code).equal('54000');
    // Another instance (a restart) reads the reason the build recorded in the state table.
    const restarted = backend();
    const status = await restarted.status(name);
    should(status).match({ state: 'failed', code: '54000' });
    should(status.detail).match(/4000 dimensions/);
  });

  it('an index marked invalid is failed; a later build request drops and rebuilds it', async () => {
    const b = backend();
    const name = fresh();
    await b.ensureCollection(name, { dimensions: 8 });
    await b.upsert(name, docs(100, 8), { buildIndex: true });
    await untilSettled(b, name);
    await server.exec(`UPDATE pg_index SET indisvalid = false WHERE indexrelid = to_regclass('${namesOf('vector_pipeline', name).index}')`);
    const failed = await b.status(name);
    should(failed.state).equal('failed');
    should(failed.detail).match(/invalid/);
    // A write without buildIndex leaves it as it is...
    await b.upsert(name, docs(1, 8, 'x'));
    should((await b.status(name)).state).equal('failed');
    // ...one with buildIndex replaces it.
    await b.upsert(name, docs(1, 8, 'y'), { buildIndex: true });
    const seen = await untilSettled(b, name);
    should(seen[seen.length - 1]).match({ state: 'ready', documentCount: 102, indexedCount: 102 });
    should(await indexOf(name)).eql({ valid: true });
  });

  it('indexes 2001 to 4000 dimensions in half precision, and still scores in full precision', async () => {
    const b = backend();
    const name = fresh();
    await b.ensureCollection(name, { dimensions: 2048 });
    const set = docs(20, 2048);
    await b.upsert(name, set, { buildIndex: true });
    const seen = await untilSettled(b, name);
    should(seen[seen.length - 1].state).equal('ready');
    should(await indexOf(name)).eql({ valid: true });
    should((await b.stats(name)).indexType).equal('hnsw (halfvec)');
    const [hit] = await b.query(name, { vector: set[7].vector, topK: 1 });
    should(hit).match({ id: 'd7' });
    should(hit.score).be.approximately(1, 1e-6);
    // A value a half-precision index cannot hold is refused before anything is written.
    const big = set[0].vector.slice();
    big[3] = 70000;
    await rejectsWith(b.upsert(name, [{ id: 'big', vector: big }]), 'INVALID_INPUT');
  });

  it('builds the index on its own once a collection passes the row threshold', async () => {
    const b = backend({ autoIndexThreshold: 150 });
    const name = fresh();
    await b.ensureCollection(name, { dimensions: 8 });
    await b.upsert(name, docs(100, 8));
    should((await b.status(name)).state).equal('ready');
    should(await indexOf(name)).be.null();
    await b.upsert(name, docs(100, 8, 'more'));
    await untilSettled(b, name);
    should(await indexOf(name)).eql({ valid: true });
  });

  it('writes a call of several statements in one transaction, and validates it all first', async () => {
    const b = backend({ autoIndexThreshold: 0 });
    const name = fresh();
    await b.ensureCollection(name, { dimensions: 4 });
    const many = docs(2500, 4);
    should(await b.upsert(name, many)).eql({ written: 2500, totalCount: 2500 });
    const bad = [...docs(1500, 4, 'new'), { id: 'broken', vector: [1, 2, Number.NaN, 4] }];
    await rejectsWith(b.upsert(name, bad), 'INVALID_INPUT');
    should((await b.stats(name)).documentCount).equal(2500);
    // A row the server refuses in the second statement rolls back the first one too.
    await sqlQuery(`ALTER TABLE ${namesOf('vector_pipeline', name).table} ADD CONSTRAINT no_poison CHECK (id <> 'poison')`);
    const poisoned = docs(1500, 4, 'new');
    poisoned[1200].id = 'poison';
    const err = await rejectsWith(b.upsert(name, poisoned), 'INTERNAL', false);
    should(err.message).match(/no_poison/);
    should((await b.stats(name)).documentCount).equal(2500);
  });

  it('keeps identifiers and values out of the SQL text', async () => {
    const b = backend();
    await sqlQuery('CREATE TABLE IF NOT EXISTS sentinel (x int)');
    // A "-" needs quoting; a name as long as Postgres allows gets a shortened index name.
    const names = ['with-dash', `L${'x'.repeat(62)}`];
    for (const name of names) {
      await b.ensureCollection(name, { dimensions: 2 });
      const id = `'); DROP TABLE sentinel; --`;
      const text = `"; DROP TABLE sentinel; --`;
      const metadata = { "k'); DROP TABLE sentinel; --": "v'" };
      await b.upsert(name, [{ id, vector: [1, 0], text, metadata }], { buildIndex: true });
      await untilSettled(b, name);
      should(await indexOf(name)).eql({ valid: true });
      const hits = await b.query(name, { vector: [1, 0], topK: 1, filter: metadata });
      should(hits[0]).match({ id, text, metadata });
    }
    // A collection named like another's derived names does not collide with them.
    await b.ensureCollection('with-dash_hnsw', { dimensions: 2 });
    await b.ensureCollection('with-dash_pkey', { dimensions: 2 });
    should(await sqlQuery('SELECT count(*)::int AS n FROM sentinel')).eql([{ n: 0 }]);
    for (const bad of ['a"b', 'x; DROP TABLE sentinel', 'a$hnsw']) {
      await rejectsWith(b.collectionExists(bad), 'INVALID_INPUT', false);
    }
  });

  it('refuses NUL characters, which Postgres cannot store, before writing', async () => {
    const b = backend();
    const name = fresh();
    await b.ensureCollection(name, { dimensions: 2 });
    await rejectsWith(b.upsert(name, [{ id: 'a', vector: [1, 0], text: 'nul \u0000 here' }]), 'INVALID_INPUT');
    await rejectsWith(b.upsert(name, [{ id: 'a', vector: [1, 0], metadata: { k: 'nul \u0000' } }]), 'INVALID_INPUT');
    should((await b.stats(name)).documentCount).equal(0);
  });

  it('keeps the metric of a collection: l2 and dot scores, higher is better', async () => {
    const b = backend();
    const l2 = fresh();
    await b.ensureCollection(l2, { dimensions: 2, metric: 'l2' });
    await b.upsert(l2, [
      { id: 'near', vector: [1, 1] },
      { id: 'far', vector: [5, 5] },
    ]);
    const hits = await b.query(l2, { vector: [1, 2], topK: 2 });
    should(hits.map((h) => h.id)).eql(['near', 'far']);
    should(hits[0].score).be.approximately(-1, 1e-6);
    should((await b.stats(l2)).metric).equal('l2');
    await rejectsWith(b.ensureCollection(l2, { dimensions: 2, metric: 'cosine' }), 'INVALID_INPUT');
    const dot = fresh();
    await b.ensureCollection(dot, { dimensions: 2, metric: 'dot' });
    await b.upsert(dot, [{ id: 'a', vector: [2, 0] }], { buildIndex: true });
    await untilSettled(b, dot);
    should((await b.query(dot, { vector: [3, 0], topK: 1 }))[0].score).be.approximately(6, 1e-6);
  });

  it('refuses msg.simulate and a table of the schema that is not a collection', async () => {
    const b = backend();
    const name = fresh();
    await b.ensureCollection(name, { dimensions: 2 });
    await rejectsWith(b.upsert(name, [{ id: 'a', vector: [1, 0] }], { simulateFailure: 'boom' }), 'INVALID_INPUT');
    await sqlQuery('CREATE TABLE vector_pipeline.not_ours (x int)');
    const err = await rejectsWith(b.collectionExists('not_ours'), 'INVALID_INPUT');
    should(err.message).match(/not a collection of this package/);
  });

  it('with TLS on, says clearly that the server does not accept TLS', async () => {
    const b = backend({ ssl: true });
    const err = await rejectsWith(b.collectionExists('anything'), 'INVALID_INPUT', false);
    should(err.message).match(/does not accept TLS/);
  });

  it('never shows the password: not for a rejected login, nor for an unreachable server', async () => {
    const rejecting = await startPasswordRejectingServer();
    try {
      const b = backend({ connectionString: rejecting.url, password: SECRET });
      const err = await rejectsWith(b.status('docs'), 'AUTH', false);
      should(rejecting.passwordsSeen).eql([SECRET]); // it was sent to the server...
      should(err.message).not.containEql(SECRET); // ...and appears nowhere else
      should(err.message).match(/rejected the login/).and.match(/Password credential/);
    } finally {
      await rejecting.stop();
    }
    const lost = backend({ connectionString: `postgres://postgres@127.0.0.1:${await unusedPort()}/postgres`, password: SECRET });
    const err = await rejectsWith(lost.status('docs'), 'UNAVAILABLE', true);
    should(err.message).not.containEql(SECRET);
    should(err.message).match(/could not be reached/);
    // Only a sensor's polls are retried by the package: the sentence must not promise it for an ingest.
    should(err.message).not.match(/will be retried/).and.match(/an ingest or a query can be sent again/);
  });

  it('closes its pool on close, once, and refuses work afterwards', async () => {
    const before = server.activeConnections();
    const b = new PgVectorBackend({ connectionString: server.url });
    const name = fresh();
    await b.ensureCollection(name, { dimensions: 2 });
    await Promise.all([b.status(name), b.status(name), b.stats(name), b.collectionExists(name)]);
    should(server.activeConnections()).be.above(before);
    await Promise.all([b.close(), b.close()]);
    await b.close();
    const deadline = Date.now() + 5000;
    while (server.activeConnections() > before && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    // At most as many as before: an earlier test's connection may close meanwhile (CI saw 17 of 18).
    should(server.activeConnections()).be.belowOrEqual(before);
    await rejectsWith(b.status(name), 'UNAVAILABLE');
  });

  it('a close during a build ends the build connection and leaves no failure behind', async () => {
    const b = new PgVectorBackend({ connectionString: server.url });
    const name = fresh();
    await b.ensureCollection(name, { dimensions: 8 });
    await b.upsert(name, docs(300, 8), { buildIndex: true });
    await b.close();
    const other = backend();
    const seen = await untilSettled(other, name);
    should(['ready', 'failed']).containEql(seen[seen.length - 1].state);
  });
});
