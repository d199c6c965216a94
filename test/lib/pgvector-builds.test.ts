// Index builds of the pgvector backend on their failure paths (issue 8): the cases
// only this store has. A build the server cancels or terminates is failed with its
// SQLSTATE and kept across restarts, never rebuilt by a status poll; a build never
// drops an index another session is building; a build that cannot get a connection
// says so and gives up after a bounded wait; phases and ETA come from the server;
// status polls read no rows.
//
// On Debian's PostgreSQL 15 (several sessions, pg_stat_progress_create_index, locks,
// CONNECTION LIMIT): the build runner with an ordinary btree index, made slow by an
// IMMUTABLE function that sleeps. These cases cannot run through the Backend (as the
// shared failure situations do): PostgreSQL 15 here has no pgvector, so the backend
// cannot create a collection there. On PGlite (pgvector, one session): the backend
// itself, for what is pgvector's own (a failure recorded by an earlier run, borrowing
// the pool's idle connection).
//
// The shared failure situations (a cancelled build, a connection limit held by another
// client, a second writer) run on PGlite through the Backend in
// test/conformance/situations.test.ts, produced by test/conformance/situations/pgvector.ts.
import should from 'should';
import pg from 'pg';
import { PgVectorBackend, type PgVectorBackendOptions } from '../../lib/backends/pgvector';
import {
  BuildFailed,
  ensureStateTable,
  readFailure,
  runIndexBuild,
  stateTableName,
  type BuildActivity,
  type BuildRunnerDeps,
  type BuildTarget,
} from '../../lib/backends/pgvector/build-runner';
import { connectionConfig, parseConnectionString } from '../../lib/backends/pgvector/connection';
import { namesOf, quoteIdent, sql } from '../../lib/backends/pgvector/sql';
import { EtaClock, PHASES, decideStatus, type BuildProgressRow } from '../../lib/backends/pgvector/status';
import type { Backend, CollectionStatus } from '../../lib/types';
import { startPgliteServer, type PgliteServer } from '../support/pglite-server';
import { sleep, until } from '../support/until';
import { POSTGRES_MISSING, postgresBinaries, startPostgresServer, type PostgresServer } from '../support/postgres-server';

const SCHEMA = 'vector_pipeline';
const STATE_TABLE = stateTableName(SCHEMA);


/** A build-runner target: a btree index on the table's slow(x) (no vector type needed). */
function btreeTarget(table: string): BuildTarget {
  const names = namesOf(SCHEMA, table);
  return {
    collection: table,
    table: names.table,
    index: names.index,
    indexName: names.indexName,
    stateTable: STATE_TABLE,
    create: (concurrently) =>
      `CREATE INDEX ${concurrently ? 'CONCURRENTLY ' : ''}IF NOT EXISTS ${quoteIdent(names.indexName)} ON ${names.table} ((${SCHEMA}.slow(x)))`,
    drop: (concurrently) => sql.dropIndex(names, concurrently),
  };
}

describe('pgvector index builds on PostgreSQL 15 (build runner, btree indexes; no pgvector there)', function () {
  this.timeout(60_000);
  let server: PostgresServer | null = null;
  let admin: pg.Client;
  let pool: pg.Pool;
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
    await admin.query(`CREATE SCHEMA ${SCHEMA}`);
    // 2 ms per row: a build of 1500 rows takes a few seconds, whatever the machine.
    await admin.query(
      `CREATE FUNCTION ${SCHEMA}.slow(x int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.002); RETURN x; END $$`,
    );
    pool = new pg.Pool({ connectionString: server.url, max: 3 });
    await ensureStateTable(pool, STATE_TABLE);
  });

  after(async () => {
    await pool?.end();
    await admin?.end();
    await server?.stop();
  });

  async function table(rows: number): Promise<string> {
    counter += 1;
    const name = `t${counter}`;
    await admin.query(`CREATE TABLE ${SCHEMA}.${name} AS SELECT i AS x FROM generate_series(1, ${rows}) i`);
    return name;
  }

  function deps(overrides: Partial<BuildRunnerDeps> = {}, user?: string): BuildRunnerDeps & { activities: BuildActivity[] } {
    const activities: BuildActivity[] = [];
    const settings = parseConnectionString(server!.url.replace('postgres@', `${user ?? 'postgres'}@`), false);
    return {
      // The backend's own settings of a build connection.
      connect: async () => {
        const client = new pg.Client(
          connectionConfig(settings, { password: undefined, purpose: 'index build', callTimeoutMs: 5000, connectionTimeoutMs: 2000 }),
        );
        client.on('error', () => undefined);
        try {
          await client.connect();
        } catch (err) {
          await client.end().catch(() => undefined);
          throw err;
        }
        return client;
      },
      pool,
      connectWaitMs: 30_000,
      retryDelayMs: 100,
      onActivity: (a) => {
        if (a) activities.push(a);
      },
      stopped: () => false,
      ...overrides,
      activities,
    };
  }

  async function progressRows(name: string): Promise<Array<{ pid: number; phase: string }>> {
    const { rows } = await admin.query(`SELECT pid, phase FROM pg_stat_progress_create_index WHERE relid = to_regclass($1)`, [
      namesOf(SCHEMA, name).table,
    ]);
    return rows;
  }

  async function indexValid(name: string): Promise<boolean | null> {
    const { rows } = await admin.query('SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = to_regclass($1)', [namesOf(SCHEMA, name).index]);
    return rows[0] ? rows[0].valid : null;
  }

  /** What the backend's status statement and decision make of the table now. */
  async function statusOf(name: string, activity: BuildActivity | null = null): Promise<CollectionStatus> {
    const names = namesOf(SCHEMA, name);
    const buildPid = activity?.kind === 'building' ? (activity.pid ?? null) : null;
    const { rows } = await pool.query(sql.status(names, STATE_TABLE), [names.table, names.index, name, buildPid]);
    const row = rows[0];
    return decideStatus({
      documentCount: Number(row.live_tuples ?? 0),
      indexValid: row.index_valid,
      builds: (row.builds as BuildProgressRow[]).map((b) => ({ ...b, phase: String(b.phase) })),
      activity,
      failure: row.failure,
      blockedBy: row.blocked_by ?? [],
      otherBuilders: row.other_builders ?? [],
      indexName: names.indexName,
    });
  }

  for (const [how, fn, code, words] of [
    ['pg_cancel_backend', 'pg_cancel_backend', '57014', /cancelled by the server \(SQLSTATE 57014: canceling statement due to user request\)/],
    ['pg_terminate_backend', 'pg_terminate_backend', '57P01', /terminated by the server \(SQLSTATE 57P01: terminating connection due to administrator command\)/],
  ] as const) {
    it(`(PostgreSQL 15) a build ended by ${how} is failed with SQLSTATE ${code} and the server's words, recorded in the state table, not retried`, async () => {
      const name = await table(1500);
      const d = deps();
      const running = runIndexBuild(btreeTarget(name), { replaceInvalid: true }, d);
      running.catch(() => undefined);
      // Past its first transaction (the invalid index is in the catalog from then on): a busy machine
      // could otherwise end it while "initializing", before there is any index to leave behind.
      const [build] = await until('the build to reach "building index" in pg_stat_progress_create_index', () =>
        progressRows(name).then((r) => r.length > 0 && r[0].phase.startsWith('building index') && r),
      );
      await admin.query(`SELECT ${fn}($1)`, [build.pid]);
      const err = (await running.then(
        () => null,
        (e: unknown) => e,
      )) as BuildFailed;
      should(err).be.instanceOf(BuildFailed);
      should(err.failure.code).equal(code);
      should(err.failure.reason).match(words);
      should(await readFailure(pool, STATE_TABLE, name)).eql(err.failure);
      // The status reads the record: failed, with the code; and no build starts again.
      const status = await statusOf(name);
      should(status).match({ state: 'failed', code });
      should(status.detail).match(words).and.match(/ingest again with "build index" on/);
      await sleep(300);
      should(await progressRows(name)).eql([]);
      should(await indexValid(name)).equal(false); // CONCURRENTLY leaves an invalid index behind
    });
  }

  it('(PostgreSQL 15) a database statement_timeout and lock_timeout do not cancel a build: its connection sets both to 0', async () => {
    const name = await table(500); // about 1 s of build, well past the 200 ms below
    await admin.query(`ALTER DATABASE postgres SET statement_timeout = '200ms'`);
    await admin.query(`ALTER DATABASE postgres SET lock_timeout = '200ms'`);
    try {
      await runIndexBuild(btreeTarget(name), { replaceInvalid: true }, deps());
    } finally {
      await admin.query('ALTER DATABASE postgres RESET statement_timeout');
      await admin.query('ALTER DATABASE postgres RESET lock_timeout');
    }
    should(await indexValid(name)).equal(true);
    should(await readFailure(pool, STATE_TABLE, name)).be.null();
  });

  it('(PostgreSQL 15) an index another session is building is never dropped: a rebuild request waits for that build, then finds the index valid', async () => {
    const name = await table(1500);
    const other = new pg.Client({ connectionString: server!.url });
    await other.connect();
    try {
      const otherBuild = other.query(btreeTarget(name).create(true));
      const [row] = await until('the other session\'s build to show', () => progressRows(name).then((r) => r.length > 0 && r));
      const d = deps();
      const running = runIndexBuild(btreeTarget(name), { replaceInvalid: true }, d);
      const waiting = await until('the runner to wait for the other build', async () =>
        d.activities.find((a) => a.kind === 'waiting-for-other-build'),
      );
      should(waiting).match({ kind: 'waiting-for-other-build', pid: row.pid });
      // What status says meanwhile: indexing, the server's phase, and who builds.
      const status = await statusOf(name, waiting);
      should(status.state).equal('indexing');
      should(status.phase).startWith('building index');
      should(status.detail).match(new RegExp(`another session \\(pid ${row.pid}\\) is building an index on this table`));
      await otherBuild; // not killed: it ends on its own
      await running;
      should(d.activities[d.activities.length - 1].kind).equal('waiting-for-other-build'); // then found it valid: nothing dropped or built
      should(await indexValid(name)).equal(true);
    } finally {
      await other.end();
    }
  });

  it('(PostgreSQL 15) a build by another role, hidden from the progress view without pg_read_all_stats, is seen by its lock: indexing, not failed', async () => {
    const name = await table(1500);
    await admin.query(`INSERT INTO ${STATE_TABLE} (collection, index_name, code, reason) VALUES ($1, $2, '57014', 'cancelled earlier')`, [
      name,
      namesOf(SCHEMA, name).indexName,
    ]);
    await admin.query(`CREATE ROLE watcher LOGIN`);
    await admin.query(`GRANT USAGE ON SCHEMA ${SCHEMA} TO watcher`);
    await admin.query(`GRANT SELECT ON ${STATE_TABLE} TO watcher`);
    const watcherPool = new pg.Pool({ connectionString: server!.url.replace('postgres@', 'watcher@'), max: 1 });
    const builder = new pg.Client({ connectionString: server!.url });
    await builder.connect();
    try {
      const build = builder.query(btreeTarget(name).create(true));
      await until('the build to start', () => progressRows(name).then((r) => r.length > 0 && r));
      const names = namesOf(SCHEMA, name);
      const { rows } = await watcherPool.query(sql.status(names, STATE_TABLE), [names.table, names.index, name, null]);
      should(rows[0].builds).eql([]); // hidden from this user
      const status = decideStatus({
        documentCount: 1500,
        indexValid: rows[0].index_valid,
        builds: [],
        activity: null,
        failure: rows[0].failure,
        otherBuilders: rows[0].other_builders,
        indexName: names.indexName,
      });
      should(status.state).equal('indexing');
      should(status.detail).match(/another session \(pid \d+\) is building an index on this table; its progress is not visible/);
      await build;
    } finally {
      await builder.end();
      await watcherPool.end();
    }
  });

  it('(PostgreSQL 15) a build blocked by a lock says which session it waits for, then goes on once the lock is gone (lock_timeout 0: never failed for waiting)', async () => {
    const name = await table(10);
    const locker = new pg.Client({ connectionString: server!.url });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query(`LOCK TABLE ${SCHEMA}.${name} IN ACCESS EXCLUSIVE MODE`);
      const lockerPid = (await locker.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
      const d = deps();
      const running = runIndexBuild(btreeTarget(name), { replaceInvalid: true }, d);
      const activity = await until('the build to report its pid', async () => d.activities.find((a) => a.kind === 'building' && a.pid));
      const blocked = await until('the build to wait for the lock', async () => {
        const status = await statusOf(name, activity);
        return /waits for the session/.test(status.detail ?? '') && status;
      });
      should(blocked.state).equal('indexing');
      should(blocked.detail).match(new RegExp(`waits for the session with pid ${lockerPid} \\(a lock on the table`));
      await sleep(300);
      await locker.query('ROLLBACK');
      await running;
      should(await indexValid(name)).equal(true);
    } finally {
      await locker.end();
    }
  });

  it('(PostgreSQL 15) CONNECTION LIMIT 1 taken: the build says it waits for a free connection, then is failed with that reason after the bounded wait', async () => {
    // Not a superuser: superusers are not held to a role's connection limit.
    await admin.query(`CREATE ROLE limited LOGIN CONNECTION LIMIT 1`);
    await admin.query(`GRANT USAGE, CREATE ON SCHEMA ${SCHEMA} TO limited`);
    const holder = new pg.Client({ connectionString: server!.url.replace('postgres@', 'limited@') });
    await holder.connect();
    try {
      const name = await table(10);
      await admin.query(`ALTER TABLE ${SCHEMA}.${name} OWNER TO limited`);
      const d = deps({ connectWaitMs: 1500, retryDelayMs: 200 }, 'limited');
      const err = (await runIndexBuild(btreeTarget(name), { replaceInvalid: true }, d).then(
        () => null,
        (e: unknown) => e,
      )) as BuildFailed;
      should(err).be.instanceOf(BuildFailed);
      should(err.failure.code).equal('53300');
      should(err.failure.reason).match(/no connection could be opened for the index build of "t\d+\$hnsw" within 2 s \(too many connections for role "limited"\)/);
      const problems = d.activities.filter((a) => a.kind === 'connecting' && a.problem !== null);
      should(problems.length).be.above(1);
      const shown = decideStatus({ documentCount: 10, indexValid: null, builds: [], activity: problems[0], failure: null, indexName: 'x' });
      should(shown).match({ state: 'indexing', phase: 'waiting for a connection' });
      should(shown.detail).match(/^waiting for a free connection to start the index build \(the server said: too many connections for role "limited"\)$/);
      should(await readFailure(pool, STATE_TABLE, name)).match({ code: '53300' });

      // Once the connection is free within the wait, the build goes ahead.
      const later = await table(10);
      await admin.query(`ALTER TABLE ${SCHEMA}.${later} OWNER TO limited`);
      const d2 = deps({ connectWaitMs: 10_000, retryDelayMs: 100 }, 'limited');
      const running = runIndexBuild(btreeTarget(later), { replaceInvalid: true }, d2);
      await until('a failed attempt', async () => d2.activities.some((a) => a.kind === 'connecting' && a.problem !== null));
      await holder.end();
      await running;
      should(await indexValid(later)).equal(true);
    } finally {
      await holder.end().catch(() => undefined);
    }
  });

  it('(PostgreSQL 15) phases as the server names them; progress never goes back; an ETA is never 0 while indexing', async () => {
    counter += 1;
    const name = `big${counter}`;
    await admin.query(`CREATE TABLE ${SCHEMA}.${name} AS SELECT i AS x, md5(i::text) AS v FROM generate_series(1, 1500000) i`);
    const names = namesOf(SCHEMA, name);
    const builder = new pg.Client({ connectionString: server!.url });
    await builder.connect();
    const clock = new EtaClock();
    const seen: CollectionStatus[] = [];
    try {
      let done = false;
      const build = builder.query(`CREATE INDEX CONCURRENTLY ${quoteIdent(names.indexName)} ON ${names.table} (v)`).then(() => (done = true));
      while (!done) {
        const status = await statusOf(name, { kind: 'building', since: Date.now() });
        status.etaSeconds = clock.eta(name, status);
        if (status.state === 'indexing' && status.phase) seen.push(status);
        await sleep(20);
      }
      await build;
    } finally {
      await builder.end();
    }
    should(seen.length).be.above(3);
    const phases = [...new Set(seen.map((s) => s.phase))];
    for (const phase of phases) should(PHASES.some((p) => phase!.startsWith(p.prefix))).be.true(`unknown phase ${phase}`);
    should(phases).containEql('building index: scanning table');
    for (let i = 1; i < seen.length; i++) should(seen[i].progress!).be.aboveOrEqual(seen[i - 1].progress!);
    for (const s of seen) if (s.etaSeconds !== null) should(s.etaSeconds).be.aboveOrEqual(1);
    should(seen.some((s) => s.etaSeconds !== null)).be.true();
  });
  it('(PostgreSQL 15) status polls of a table above 10,000 rows read the catalog, not the rows: they answer while another session locks the table', async () => {
    counter += 1;
    const name = `cnt${counter}`;
    await admin.query(`CREATE TABLE ${SCHEMA}.${name} AS SELECT i AS x FROM generate_series(1, 12000) i`);
    await admin.query(`ANALYZE ${SCHEMA}.${name}`);
    // status() reads no collection metadata, so it runs on a plain table too.
    const backend = new PgVectorBackend({ connectionString: server!.url, callTimeoutMs: 1000 });
    const locker = new pg.Client({ connectionString: server!.url });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query(`LOCK TABLE ${SCHEMA}.${name} IN ACCESS EXCLUSIVE MODE`); // any read of the rows now waits
      for (let i = 0; i < 3; i++) should(await backend.status(name)).match({ state: 'ready', documentCount: 12000, indexedCount: 12000 });
      // Asked to confirm a count the estimate does not reach, status counts the rows: that waits for the lock.
      const err = await backend.status(name, { expectedCount: 12001 }).then(
        () => null,
        (e: unknown) => e as Error,
      );
      should(err?.message).match(/did not answer within 1 s while reading the status/);
    } finally {
      await locker.query('ROLLBACK');
      await locker.end();
      await backend.close();
    }
  });
});

describe('pgvector index builds on Postgres + pgvector (PGlite)', function () {
  this.timeout(60_000);
  let server: PgliteServer;
  const opened: Backend[] = [];
  let counter = 0;

  function backend(options: Partial<PgVectorBackendOptions> = {}, url = server.url): PgVectorBackend {
    const b = new PgVectorBackend({ connectionString: url, ...options });
    opened.push(b);
    return b;
  }

  function fresh(): string {
    counter += 1;
    return `pgb_${counter}`;
  }

  function docs(n: number, dims: number, prefix = 'd') {
    return Array.from({ length: n }, (_, i) => ({
      id: `${prefix}${i}`,
      vector: Array.from({ length: dims }, (_, k) => Math.sin(i * 7 + k * 13 + prefix.length)),
    }));
  }

  async function settle(b: Backend, name: string): Promise<CollectionStatus> {
    return until('a settled status', async () => {
      const s = await b.status(name);
      return s.state !== 'indexing' && s;
    });
  }

  async function sqlRows<R>(url: string, text: string, values: unknown[] = []): Promise<R[]> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      return (await client.query(text, values)).rows as R[];
    } finally {
      await client.end();
    }
  }

  before(async function () {
    this.timeout(120_000);
    server = await startPgliteServer();
  });

  after(async () => {
    await Promise.all(opened.map((b) => b.close()));
    await server?.stop();
  });

  it('(PGlite) cancels no statement: statement_timeout and pg_cancel_backend have no effect there (why its cancelled-build situation uses an event trigger)', async () => {
    // If PGlite ever gains them, test/conformance/situations/pgvector.ts should cancel a real build instead.
    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    try {
      await client.query(`SET statement_timeout = '50ms'`);
      await client.query('SELECT pg_sleep(0.3)'); // runs to its end, past the timeout
      const { rows } = await client.query('SELECT pg_cancel_backend(pg_backend_pid()) AS cancelled');
      should(rows[0]).eql({ cancelled: false });
    } finally {
      await client.query('RESET statement_timeout').catch(() => undefined);
      await client.end();
    }
  });

  it('(PGlite) a status that could end a wait counts exactly: with a valid index and an expected count, a high catalog estimate is not believed', async () => {
    const b = backend({ autoIndexThreshold: 5 });
    const name = fresh();
    await b.ensureCollection(name, { dimensions: 4 });
    await b.upsert(name, docs(12, 4), { buildIndex: true });
    await settle(b, name);
    // The catalog says 20,000 rows (an estimate can be high, e.g. after deletes by another tool).
    await server.exec(`UPDATE pg_class SET reltuples = 20000 WHERE oid = '${namesOf(SCHEMA, name).table}'::regclass`);
    const polled = backend({ autoIndexThreshold: 5 }); // no count of its own writes
    should((await polled.status(name)).documentCount).equal(20000); // a progress poll: the estimate is enough
    const deciding = await polled.status(name, { expectedCount: 15 });
    should(deciding).match({ state: 'ready', documentCount: 12 });
    should(deciding.indexedCount).be.below(15); // so a wait for 15 documents does not end on the estimate
  });

  it('(PGlite) a build failure recorded by an earlier run is failed after a restart, with its code; status polls and plain ingests do not rebuild; an ingest with buildIndex does', async () => {
    const first = backend({ autoIndexThreshold: 5 });
    const name = fresh();
    await first.ensureCollection(name, { dimensions: 4 });
    await first.upsert(name, docs(3, 4));
    should((await first.status(name)).state).equal('ready'); // no index, no build: ready by exact scan
    // As a build cancelled at statement_timeout by an earlier process leaves it:
    await server.exec(
      `INSERT INTO ${STATE_TABLE} (collection, index_name, code, reason) VALUES ('${name}', '${name}$hnsw', '57014', ` +
        `'the index build was cancelled by the server (SQLSTATE 57014: canceling statement due to statement timeout)')`,
    );
    const restarted = backend({ autoIndexThreshold: 5 });
    for (let i = 0; i < 5; i++) {
      const status = await restarted.status(name);
      should(status).match({ state: 'failed', code: '57014' });
      should(status.detail).match(/cancelled by the server \(SQLSTATE 57014: canceling statement due to statement timeout\)/);
    }
    // Past the automatic threshold, without buildIndex: still no build.
    await restarted.upsert(name, docs(10, 4, 'more'));
    await sleep(300);
    should((await restarted.status(name)).state).equal('failed');
    should(await sqlRows(server.url, 'SELECT 1 FROM pg_index WHERE indexrelid = to_regclass($1)', [namesOf(SCHEMA, name).index])).eql([]);
    // An explicit request builds, and clears the record for the next restart too.
    await restarted.upsert(name, docs(1, 4, 'x'), { buildIndex: true });
    should(await settle(restarted, name)).match({ state: 'ready', documentCount: 14, indexedCount: 14 });
    should(await backend().status(name)).match({ state: 'ready', documentCount: 14 });
    // A record left behind while the index is valid (built by hand meanwhile) is cleared by the next status,
    // so that it does not come back should the index be dropped.
    await server.exec(`INSERT INTO ${STATE_TABLE} (collection, index_name, code, reason) VALUES ('${name}', 'x', '57014', 'old')`);
    should((await restarted.status(name)).state).equal('ready');
    await server.exec(`DROP INDEX ${namesOf(SCHEMA, name).index}`);
    should((await restarted.status(name)).state).equal('ready'); // no index, no build, no failure: exact scans
  });

  it('(PGlite) a server that accepts one connection (maxConnections 1): the build borrows the idle pooled connection and runs; no status poll fails meanwhile', async () => {
    const single = await startPgliteServer({ maxConnections: 1 });
    try {
      const b = backend({ buildRetryDelayMs: 50 }, single.url);
      const name = fresh();
      await b.ensureCollection(name, { dimensions: 8 });
      await b.upsert(name, docs(300, 8), { buildIndex: true });
      const seen: CollectionStatus[] = [];
      const last = await until('ready', async () => {
        const status = await b.status(name); // throws if a poll fails
        seen.push(status);
        return status.state === 'ready' && status;
      });
      should(last).match({ state: 'ready', documentCount: 300, indexedCount: 300 });
      const indexing = seen.filter((s) => s.state === 'indexing');
      for (const s of indexing) should(s.detail).be.a.String();
      should(seen.some((s) => s.phase === 'waiting for a connection')).be.true(); // the pool's connection was in the way at first
      await b.close();
      // The socket server frees the slot a moment after the close.
      const rows = await until('the single slot to be free', () =>
        sqlRows(single.url, 'SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = to_regclass($1)', [namesOf(SCHEMA, name).index]).catch(() => null),
      );
      should(rows).eql([{ valid: true }]);
    } finally {
      await single.stop();
    }
  });
});

describe('pgvector ETA from the progress rate (pure)', () => {
  const indexing = (progress: number | null): CollectionStatus => ({ state: 'indexing', documentCount: 100, indexedCount: 0, progress, etaSeconds: null });

  it('is null until progress moves, then from the smoothed rate; never below 1 s while indexing; 0 when ready', () => {
    const clock = new EtaClock();
    should(clock.eta('c', indexing(null), 0)).be.null();
    should(clock.eta('c', indexing(0.1), 1000)).be.null(); // one sample: no rate yet
    should(clock.eta('c', indexing(0.2), 2000)).equal(8); // 0.1 per second, 0.8 left
    should(clock.eta('c', indexing(0.3), 3000)).equal(7);
    should(clock.eta('c', indexing(0.9999), 4000)).equal(1); // never 0 while not ready
    should(clock.eta('c', { ...indexing(1), state: 'ready', progress: 1 }, 5000)).equal(0);
    // A new build (progress back to the start) starts over.
    should(clock.eta('c', indexing(0.05), 6000)).be.null();
  });

  it('grows while a waiting phase holds progress still, instead of freezing', () => {
    const clock = new EtaClock();
    clock.eta('c', indexing(0.5), 0);
    const moving = clock.eta('c', indexing(0.6), 1000)!;
    const stalled = clock.eta('c', indexing(0.6), 61_000)!;
    should(stalled).be.above(moving);
  });
});
