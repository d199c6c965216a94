/**
 * One index build, from getting a connection to recording how it ended. Kept apart
 * from the vector type: the CREATE INDEX statement is a parameter, so the same
 * logic runs (and is tested) with an ordinary btree index on a PostgreSQL without
 * pgvector.
 *
 * The rules it keeps:
 * - A build needs a connection of its own. When the server has no free one (role or
 *   database CONNECTION LIMIT, max_connections, a server that accepts a single
 *   connection), it says so ("waiting for a free connection...") and tries again,
 *   or borrows an idle connection of the backend's own pool, for at most `connectWaitMs`
 *   (2 minutes by default); then the build is failed with that reason.
 * - It never drops or starts an index that another session is building (a
 *   `pg_stat_progress_create_index` row for the table, or a build's lock on it in
 *   `pg_locks`): it waits for that build to end, then looks again.
 * - A build the server ends with an error (any SQLSTATE: 57014 cancelled by
 *   statement_timeout or pg_cancel_backend, 57P01 pg_terminate_backend, out of
 *   memory, ...) is failed, not retried: the reason is recorded in the package's
 *   state table `"<schema>"."$index_builds"` so that it outlives a restart, and only
 *   a new explicit request (an ingest with buildIndex) builds again.
 */
import type * as Pg from 'pg';
import { VectorStoreError, isTransient } from '../../errors';
import { OTHER_BUILDERS } from './build-sessions';
import { quoteIdent } from './sql';
import { reasonOf, sqlState } from './errors';

/** Anything that runs a query: the pool, one client, a build's connection. */
export interface Queryable {
  query<R extends Pg.QueryResultRow = Pg.QueryResultRow>(text: string, values?: unknown[]): Promise<Pg.QueryResult<R>>;
}

/** The index to build and where its failures are recorded. */
export interface BuildTarget {
  /** Key of the state table's row (the collection name). */
  collection: string;
  /** "schema"."table", quoted. */
  table: string;
  /** "schema"."index", quoted. */
  index: string;
  /** Index name without schema, for messages. */
  indexName: string;
  /** "schema"."$index_builds", quoted (see stateTableName). */
  stateTable: string;
  create(concurrently: boolean): string;
  drop(concurrently: boolean): string;
}

export interface BuildRequest {
  /** An explicit request (ingest with buildIndex): drop an invalid index and build again. Else leave a failure alone. */
  replaceInvalid: boolean;
}

/** A build that ended for good: the server's reason. */
export interface BuildFailure {
  /** SQLSTATE when the server gave one. */
  code: string | null;
  /** A sentence: what failed and why. */
  reason: string;
}

/** What the build is doing right now, for `status`. */
export type BuildActivity =
  | { kind: 'connecting'; since: number; problem: string | null }
  | { kind: 'waiting-for-other-build'; since: number; pid: number | null }
  /** pid: the server process of the build's connection (for the locks it waits on). */
  | { kind: 'building'; since: number; pid?: number | null };

/** The connection a build runs on: a client of its own, or one borrowed from the pool. */
export interface BuildConnection extends Queryable {
  end(): Promise<void>;
}

export interface BuildRunnerDeps {
  /** Open the build's own connection (connected; statement_timeout and lock_timeout 0). */
  connect(): Promise<BuildConnection>;
  /** Records failures (a pooled connection: the build's own may be the one that died). */
  pool: Queryable;
  /** Give up getting a connection after this long (ms). */
  connectWaitMs: number;
  /** Pause between connection attempts, and between looks at another session's build (ms). */
  retryDelayMs: number;
  /**
   * On a server with no connection free: an idle pooled connection, taken out of the
   * pool for the build (timeouts set to 0, closed afterwards); null if there is none.
   */
  borrowIdleConnection?(): Promise<BuildConnection | null>;
  /** The password, kept out of every message. */
  password?: string;
  /** Told whenever the activity changes. */
  onActivity(activity: BuildActivity | null): void;
  /** true once the backend is closing: stop quietly. */
  stopped(): boolean;
}

export const STATE_TABLE = '$index_builds';
/** Longest wait for a build's connection (ms), by default. */
export const DEFAULT_CONNECT_WAIT_MS = 120_000;
export const DEFAULT_RETRY_DELAY_MS = 2_000;

export function stateTableName(schema: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(STATE_TABLE)}`;
}

export const stateSql = {
  create: (stateTable: string) =>
    `CREATE TABLE IF NOT EXISTS ${stateTable} (collection text PRIMARY KEY, index_name text NOT NULL, ` +
    `code text, reason text NOT NULL, failed_at timestamptz NOT NULL DEFAULT now())`,
  record: (stateTable: string) =>
    `INSERT INTO ${stateTable} (collection, index_name, code, reason) VALUES ($1, $2, $3, $4) ` +
    `ON CONFLICT (collection) DO UPDATE SET index_name = EXCLUDED.index_name, code = EXCLUDED.code, ` +
    `reason = EXCLUDED.reason, failed_at = now()`,
  clear: (stateTable: string) => `DELETE FROM ${stateTable} WHERE collection = $1`,
  read: (stateTable: string) => `SELECT code, reason FROM ${stateTable} WHERE collection = $1`,
  otherBuilders: OTHER_BUILDERS,
  indexValid: 'SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = to_regclass($1)',
};

/** Create the state table when missing; a concurrent creation is not an error. */
export async function ensureStateTable(target: Queryable, stateTable: string): Promise<void> {
  try {
    await target.query(stateSql.create(stateTable));
  } catch (err) {
    // 23505/42P07: another session created it at the same moment.
    if (sqlState(err) !== '23505' && sqlState(err) !== '42P07') throw err;
  }
}

export async function readFailure(target: Queryable, stateTable: string, collection: string): Promise<BuildFailure | null> {
  const { rows } = await target.query<{ code: string | null; reason: string }>(stateSql.read(stateTable), [collection]);
  return rows[0] ? { code: rows[0].code, reason: rows[0].reason } : null;
}

/** SQLSTATEs and messages of a server that has no connection free for us. */
function noFreeConnection(err: unknown): boolean {
  const state = sqlState(err);
  if (state === '53300' || state === '53000') return true; // too_many_connections, insufficient_resources
  return /too many connections|connection limit|terminated unexpectedly|remaining connection slots/i.test(String((err as Error)?.message));
}

/**
 * A login the server refuses for a reason that waiting will not change (bad password,
 * no such database, no permission). Connection, shutdown and "too many" errors
 * (08, 57, 53 classes) and errors without a SQLSTATE (network) are worth waiting out.
 */
function refusedForGood(err: unknown): boolean {
  const state = sqlState(err);
  return state !== null && !noFreeConnection(err) && !['08', '53', '57'].includes(state.slice(0, 2));
}

/** Thrown inside the runner for a build that ended for good. */
export class BuildFailed extends Error {
  constructor(readonly failure: BuildFailure) {
    super(failure.reason);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref?.());
}

/**
 * Run one build to its end. Resolves when the index is valid (or, for an automatic
 * request, when there is nothing it may do); rejects with BuildFailed (recorded in
 * the state table) or, when the backend is closing, with whatever happened.
 */
export async function runIndexBuild(target: BuildTarget, request: BuildRequest, deps: BuildRunnerDeps): Promise<void> {
  let client: BuildConnection | null = null;
  try {
    client = await connectWithin(target, deps);
    // From here on the build holds a connection of its own (all of the build's work).
    const since = Date.now();
    deps.onActivity({ kind: 'building', since });
    const { rows: me } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    deps.onActivity({ kind: 'building', since, pid: me[0]?.pid ?? null });
    if (!request.replaceInvalid && (await readFailure(client, target.stateTable, target.collection).catch(() => null))) {
      return; // an automatic build does not retry a recorded failure: only an explicit request does
    }
    await waitForOtherBuilders(client, target, deps);
    const valid = await indexValidity(client, target);
    if (valid === true) {
      await clearFailure(deps.pool, target);
      return;
    }
    if (valid === false) {
      if (!request.replaceInvalid) return; // an automatic build leaves a failed index to the user
      await runConcurrently(client, (concurrently) => target.drop(concurrently));
    }
    await runConcurrently(client, (concurrently) => target.create(concurrently));
    await clearFailure(deps.pool, target);
  } catch (err) {
    if (deps.stopped()) throw err; // a build cut short by close() is nobody's failure
    const failure = err instanceof BuildFailed ? err.failure : failureOf(err, target, deps.password);
    await deps.pool.query(stateSql.record(target.stateTable), [target.collection, target.indexName, failure.code, failure.reason]).catch(
      () => undefined, // kept in memory by the caller all the same
    );
    throw new BuildFailed(failure);
  } finally {
    deps.onActivity(null);
    if (client) await client.end().catch(() => undefined);
  }
}

function failureOf(err: unknown, target: BuildTarget, password: string | undefined): BuildFailure {
  const code = sqlState(err);
  const reason = reasonOf(err, password);
  let why: string;
  if (code === '57014') why = `the index build was cancelled by the server (SQLSTATE 57014: ${reason})`;
  else if (code === '57P01') why = `the index build's connection was terminated by the server (SQLSTATE 57P01: ${reason})`;
  else if (code !== null) why = `building the index "${target.indexName}" failed: ${reason} (SQLSTATE ${code})`;
  else why = `building the index "${target.indexName}" failed: ${reason}`;
  return { code, reason: why };
}

async function connectWithin(target: BuildTarget, deps: BuildRunnerDeps): Promise<BuildConnection> {
  const since = Date.now();
  let problem: string | null = null;
  deps.onActivity({ kind: 'connecting', since, problem });
  for (;;) {
    try {
      return await deps.connect();
    } catch (err) {
      if (deps.stopped()) throw err;
      const permanent = err instanceof VectorStoreError ? !isTransient(err) : refusedForGood(err);
      const reason = reasonOf(err, deps.password);
      if (permanent) {
        throw new BuildFailed({ code: sqlState(err), reason: `the index build could not connect: ${reason}` });
      }
      problem = noFreeConnection(err)
        ? `waiting for a free connection to start the index build (the server said: ${reason})`
        : `waiting for the server to accept the index build's connection (${reason})`;
      deps.onActivity({ kind: 'connecting', since, problem });
      if (Date.now() - since >= deps.connectWaitMs) {
        throw new BuildFailed({
          code: sqlState(err),
          reason: `no connection could be opened for the index build of "${target.indexName}" within ${Math.round(deps.connectWaitMs / 1000)} s (${reason})`,
        });
      }
      // On a server with few connections, our own idle pooled ones may be what is in the way: borrow one.
      if (noFreeConnection(err)) {
        const borrowed = await deps.borrowIdleConnection?.().catch(() => null);
        if (borrowed) return borrowed;
      }
      await sleep(Math.min(deps.retryDelayMs, Math.max(0, deps.connectWaitMs - (Date.now() - since))));
    }
  }
}

async function waitForOtherBuilders(client: BuildConnection, target: BuildTarget, deps: BuildRunnerDeps): Promise<void> {
  let since: number | null = null;
  for (;;) {
    const { rows } = await client.query<{ pid: number }>(stateSql.otherBuilders, [target.table]);
    if (rows.length === 0) return;
    since ??= Date.now();
    deps.onActivity({ kind: 'waiting-for-other-build', since, pid: rows[0].pid ?? null });
    if (deps.stopped()) throw new Error('closing');
    await sleep(deps.retryDelayMs);
  }
}

async function indexValidity(client: Queryable, target: BuildTarget): Promise<boolean | null> {
  const { rows } = await client.query<{ valid: boolean }>(stateSql.indexValid, [target.index]);
  return rows[0] ? rows[0].valid : null;
}

async function clearFailure(pool: Queryable, target: BuildTarget): Promise<void> {
  await pool.query(stateSql.clear(target.stateTable), [target.collection]).catch(() => undefined);
}

async function runConcurrently(client: BuildConnection, statement: (concurrently: boolean) => string): Promise<void> {
  try {
    await client.query(statement(true));
  } catch (err) {
    if (sqlState(err) !== '25001') throw err; // 25001: "cannot run inside a transaction block"
    await client.query(statement(false));
  }
}
