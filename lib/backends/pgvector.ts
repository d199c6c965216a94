/**
 * The `pgvector` backend: Postgres with the pgvector extension, through the `pg`
 * client.
 *
 * - One table per collection in the schema `vector_pipeline` (see ./pgvector/sql.ts),
 *   with a `vector(d)` column; identifiers are validated, then quoted; values are
 *   always parameters. `CREATE EXTENSION IF NOT EXISTS vector` and the schema are
 *   created on the first collection creation.
 * - Writes are batched, parameterised `INSERT ... ON CONFLICT DO UPDATE`s (all or
 *   nothing per call: one statement, or one transaction for large calls).
 * - Index: HNSW with the metric's operator class, built in the background on a
 *   dedicated connection with `CREATE INDEX CONCURRENTLY` when an ingest asks for it
 *   (`buildIndex`) or once a collection reaches `autoIndexThreshold` rows. Once the
 *   index exists, Postgres indexes every later write as part of the write.
 *   How a build gets its connection, leaves other sessions' builds alone and records
 *   a failure (in the package's table `"<schema>"."$index_builds"`, so that a restart
 *   still reports it): ./pgvector/build-runner.ts.
 * - Status: see ./pgvector/status.ts (progress view, `indisvalid`, builds in flight,
 *   recorded failures, ETA); one catalog query per poll, no row scan above
 *   EXACT_COUNT_BELOW rows.
 * - One connection pool per instance (one per vector-store config node), created on
 *   first use and closed by `close()`.
 * - Tables made by other tools (an ExistingCollection: any table, or the LangChain and
 *   LlamaIndex layouts): read only, never written nor indexed, through
 *   ./pgvector/existing.ts. Which index builds on a table are vector index builds (and
 *   which are btree, gin, ... builds to ignore), for those tables and for the package's
 *   own: ./pgvector/vector-builds.ts.
 */
import type { ConnectionOptions } from 'node:tls';
import type * as Pg from 'pg';
import { VectorStoreError, isTransient, messageOf } from '../errors';
import { redactError, secretProblem } from '../redact';
import { MAX_TIMER_MS } from '../scheduler';
import { isExisting } from '../collection-ref';
import type {
  Backend,
  CollectionRef,
  ExistingCollection,
  CollectionSpec,
  CollectionStats,
  CollectionStatus,
  DeleteResult,
  DeleteSelector,
  Metric,
  QueryHit,
  QueryRequest,
  StatusHint,
  UpsertOptions,
  UpsertResult,
  VectorDocument,
} from '../types';
import { checkCollectionSpec, checkSameSpec } from './collection-spec';
import { checkDeleteSelector, likePrefixPattern } from './delete-selector';
import { refuseSimulatedFailure } from './documents';
import { BackendLifecycle } from './lifecycle';
import { connectionConfig, parseConnectionString, type ConnectionSettings } from './pgvector/connection';
import { prepareDocuments, prepareFilter, toVectorLiteral, type PreparedDocument } from './pgvector/documents';
import { reasonOf, sqlState, toStoreError, type ErrorContext } from './pgvector/errors';
import {
  DEFAULT_CONNECT_WAIT_MS,
  DEFAULT_RETRY_DELAY_MS,
  ensureStateTable,
  runIndexBuild,
  stateSql,
  stateTableName,
  type BuildActivity,
  type BuildConnection,
  type BuildFailure,
  type BuildRequest,
} from './pgvector/build-runner';
import { IndexBuilds } from './pgvector/index-builds';
import { MAX_DIMENSIONS, indexTypeOf, metricFromComment, namesOf, quoteIdent, scoreOf, sql, type CollectionNames } from './pgvector/sql';
import { EtaClock, decideStatus, type BuildProgressRow } from './pgvector/status';
import { VectorBuildReader, type BuildSession } from './pgvector/vector-builds';
import {
  READ_EXISTING,
  checkTable,
  decideExistingStatus,
  layoutOf,
  metricOfOpclass,
  servingIndex,
  type ExistingLayout,
  type ExistingRow,
  type ExistingTable,
} from './pgvector/existing';
import { checkQuery } from './queries';
import { namedCollection, wholeNumberOption } from './values';

export interface PgVectorBackendOptions {
  /** `postgres://user@host:port/database`, without a password. */
  connectionString: string;
  /** The `password` credential of the vector-store configuration. */
  password?: string;
  /** true: TLS, verifying the server certificate against the trusted CAs. Or Node.js TLS options. */
  ssl?: boolean | ConnectionOptions;
  /** Connections in the pool (default 4); index builds use one more each. */
  maxConnections?: number;
  /**
   * Longest time one call may take, in milliseconds (default 10 000: the runtime
   * setting storeTimeout). Sent to the server as statement_timeout and lock_timeout
   * of the pooled connections (so a locked table or a slow statement is cancelled
   * by the server), and used by the client as its query timeout (so a server that
   * accepted the connection but never answers is given up on).
   */
  callTimeoutMs?: number;
  /** Milliseconds to wait for a connection before calling the store unavailable (default: callTimeoutMs). */
  connectionTimeoutMs?: number;
  /** Schema holding the collection tables (default `vector_pipeline`). */
  schema?: string;
  /** Build the HNSW index without being asked once a collection holds this many rows (default 1000; 0: never). */
  autoIndexThreshold?: number;
  /** How long an index build waits for a free connection before it is failed, in ms (default 120 000). */
  buildConnectWaitMs?: number;
  /** Pause between a build's connection attempts, and between looks at another session's build, in ms (default 2000). */
  buildRetryDelayMs?: number;
  /**
   * Index access methods whose builds count as vector index builds (default: pgvector's "hnsw" and "ivfflat").
   * For tests on a PostgreSQL without pgvector, where another index type stands in for them.
   */
  vectorAccessMethods?: string[];
  /** Column types (pg_type.typname) taken for vector columns of other tools' tables (default "vector", "halfvec"). For tests, as above. */
  vectorColumnTypes?: string[];
}

const BACKEND_NAME = 'pgvector';
const DEFAULT_SCHEMA = 'vector_pipeline';
const DEFAULT_MAX_CONNECTIONS = 4;
const DEFAULT_CALL_TIMEOUT_MS = 10_000;
const DEFAULT_AUTO_INDEX_THRESHOLD = 1000;
/** Idle pooled connections are closed after this long. */
const IDLE_TIMEOUT_MS = 10_000;
/** Rows per INSERT statement; a call with more is written in one transaction. */
const ROWS_PER_STATEMENT = 1000;
/**
 * Below this many rows (by the catalog's estimate) a status poll counts the rows
 * exactly: a count(*) of that size takes a millisecond or two. Above it, the count
 * is the largest of the estimates and of the exact count this instance saw after
 * its own last write (rows are never deleted by this package, so none of them is
 * above the truth for long).
 */
const EXACT_COUNT_BELOW = 10_000;
/** hnsw.ef_search must lie in [1, 1000]; pgvector's default is 40. */
const MIN_EF_SEARCH = 40;
const MAX_EF_SEARCH = 1000;

/** What the catalog says about a collection's table. */
interface CollectionInfo {
  names: CollectionNames;
  dimensions: number;
  metric: Metric;
  /** indisvalid of the HNSW index, null without one. */
  indexValid: boolean | null;
  /** pgvector's version, e.g. "0.8.0". */
  vectorVersion: string | null;
}

interface DescribeRow {
  column_type: string | null;
  dimensions: number | null;
  comment: string | null;
  index_valid: boolean | null;
  vector_version: string | null;
}

interface StatusRow {
  reltuples: number | null;
  live_tuples: string | null;
  index_valid: boolean | null;
  builds: BuildProgressRow[];
  failure: BuildFailure | null;
  blocked_by: number[] | null;
  other_builders: number[] | null;
  /** The sessions of other_builders, with their statements (to tell a vector build from another). */
  other_sessions: BuildSession[] | null;
}

/** What `status` may be told by the wait, to decide whether an estimate is enough. */
export type { StatusHint } from '../types';

interface QueryRow {
  id: string;
  text: string | null;
  metadata: Record<string, unknown> | null;
  distance: number;
}

/** Anything that runs a query: the pool or one client. */
type Queryable = Pick<Pg.Pool, 'query'> | Pick<Pg.PoolClient, 'query'>;

let pgModule: typeof Pg | null = null;

/** `pg` is a regular dependency, but still loaded only by users of this backend. */
function loadPg(): typeof Pg {
  if (!pgModule) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      pgModule = require('pg') as typeof Pg;
    } catch (err) {
      throw new VectorStoreError(
        'NOT_INSTALLED',
        'The pgvector backend needs the "pg" package, which is missing: run `npm install pg` in the Node-RED user directory ' +
          '(usually ~/.node-red), then restart Node-RED.',
        { cause: err },
      );
    }
  }
  return pgModule;
}

function versionAtLeast(version: string | null, major: number, minor: number): boolean {
  const [a, b] = (version ?? '0.0').split('.').map((part) => parseInt(part, 10));
  return a > major || (a === major && (b ?? 0) >= minor);
}

export class PgVectorBackend implements Backend {
  readonly name = BACKEND_NAME;
  private readonly settings: ConnectionSettings;
  private readonly password: string | undefined;
  private readonly maxConnections: number;
  private readonly connectionTimeoutMs: number;
  private readonly callTimeoutMs: number;
  private readonly schema: string;
  private readonly autoIndexThreshold: number;
  private pool: Pg.Pool | null = null;
  /** Extension and schema, checked (and created) once per instance. */
  private setupDone: Promise<void> | null = null;
  private readonly builds = new IndexBuilds((collection, request, activity) => this.runBuild(collection, request, activity));
  private readonly buildConnectWaitMs: number;
  private readonly buildRetryDelayMs: number;
  /** Dimensions and metric of each collection a build was asked for. */
  private readonly specs = new Map<string, { dimensions: number; metric: Metric }>();
  /** The exact row count this instance saw after its last write, per collection. */
  private readonly knownCounts = new Map<string, number>();
  /** The last status read from the server, per collection (for answers while no connection is free). */
  private readonly lastStatus = new Map<string, CollectionStatus>();
  /**
   * Collections this instance deleted from whose catalog estimate (reltuples) may
   * still count the deleted rows (until autovacuum or ANALYZE): their status counts
   * exactly until the estimate has come down.
   */
  private readonly deletedSinceEstimate = new Set<string>();
  private readonly etaClock = new EtaClock();
  /** The package's state table, created once per instance; false when it cannot be. */
  private stateTableReady: Promise<boolean> | null = null;
  /** Dedicated connections of the builds in flight: ended by close(). */
  private readonly buildClients = new Set<Pg.Client>();
  private readonly lifecycle = new BackendLifecycle(BACKEND_NAME);
  /** Tells vector index builds from other index builds on a table. */
  private readonly vectorBuilds: VectorBuildReader;

  constructor(options: PgVectorBackendOptions) {
    this.settings = parseConnectionString(options?.connectionString, options?.ssl);
    this.password = typeof options.password === 'string' && options.password !== '' ? options.password : undefined;
    const problem = secretProblem('Password', this.password);
    if (problem) throw new VectorStoreError('INVALID_INPUT', problem, { transient: false });
    const option = (field: keyof PgVectorBackendOptions) => `The pgvector backend's ${field}`;
    this.maxConnections = wholeNumberOption(options.maxConnections, DEFAULT_MAX_CONNECTIONS, option('maxConnections'));
    this.callTimeoutMs = wholeNumberOption(options.callTimeoutMs, DEFAULT_CALL_TIMEOUT_MS, option('callTimeoutMs'));
    this.connectionTimeoutMs = wholeNumberOption(options.connectionTimeoutMs, this.callTimeoutMs, option('connectionTimeoutMs'));
    this.autoIndexThreshold = wholeNumberOption(options.autoIndexThreshold, DEFAULT_AUTO_INDEX_THRESHOLD, option('autoIndexThreshold'), 0);
    this.buildConnectWaitMs = wholeNumberOption(options.buildConnectWaitMs, DEFAULT_CONNECT_WAIT_MS, option('buildConnectWaitMs'), 0);
    this.buildRetryDelayMs = wholeNumberOption(options.buildRetryDelayMs, DEFAULT_RETRY_DELAY_MS, option('buildRetryDelayMs'), 1);
    this.vectorBuilds = new VectorBuildReader({ accessMethods: options.vectorAccessMethods, columnTypes: options.vectorColumnTypes });
    this.schema = options.schema ?? DEFAULT_SCHEMA;
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(this.schema)) {
      throw new VectorStoreError(
        'INVALID_INPUT',
        'The pgvector schema name must be 1 to 63 letters, digits or "_", not starting with a digit.',
      );
    }
  }

  // ------------------------------------------------------------ collections

  async ensureCollection(collection: string, spec: CollectionSpec): Promise<void> {
    const names = this.open(collection);
    const limit = { maxDimensions: MAX_DIMENSIONS, why: "pgvector's limit" };
    const { dimensions, metric } = checkCollectionSpec(spec, namedCollection(collection), limit);
    const doing = `creating collection "${collection}"`;
    let found = await this.describe(names, doing);
    if (!found) {
      await this.setup(doing);
      await this.createTable(names, dimensions, metric, doing);
      found = await this.describe(names, doing);
      if (!found) throw new VectorStoreError('INTERNAL', `Collection "${collection}" was created in ${this.where()} but cannot be found.`);
    }
    checkSameSpec(found, spec, `${namedCollection(collection)} in ${this.where()}`);
  }

  async collectionExists(collection: CollectionRef): Promise<boolean> {
    if (isExisting(collection)) return (await this.readExisting(collection, 'checking whether it exists')) !== null;
    const names = this.open(collection);
    return (await this.describe(names, `checking whether collection "${collection}" exists`)) !== null;
  }

  // ------------------------------------------------------------ writes

  async upsert(collection: string, docs: VectorDocument[], options: UpsertOptions = {}): Promise<UpsertResult> {
    const names = this.open(collection);
    refuseSimulatedFailure(options, namedCollection(collection, 'pgvector'));
    const info = await this.require(names, `writing to collection "${collection}"`);
    // Everything is checked before anything is written: a bad document writes nothing.
    const prepared = prepareDocuments(docs, info.dimensions, collection);
    const doing = `writing ${prepared.length} document(s) to collection "${collection}"`;
    const totalCount = await this.write(names, prepared, doing);
    this.afterWrite(info, totalCount, options?.buildIndex);
    return { written: prepared.length, totalCount };
  }

  /** Write the documents (one statement, or one transaction when there are many); returns the row count after. */
  private async write(names: CollectionNames, docs: PreparedDocument[], doing: string): Promise<number> {
    const client = await this.connect(doing, names);
    const inTransaction = docs.length > ROWS_PER_STATEMENT;
    let broken = false;
    try {
      if (inTransaction) await client.query('BEGIN');
      for (let start = 0; start < docs.length; start += ROWS_PER_STATEMENT) {
        const chunk = docs.slice(start, start + ROWS_PER_STATEMENT);
        await client.query(sql.upsert(names), [
          chunk.map((d) => d.id),
          chunk.map((d) => d.vector),
          chunk.map((d) => d.text),
          chunk.map((d) => d.metadata),
        ]);
      }
      const counted = await client.query<{ count: string }>(sql.count(names));
      if (inTransaction) await client.query('COMMIT');
      return Number(counted.rows[0].count);
    } catch (err) {
      if (inTransaction) await rollback(client, err);
      broken = true;
      throw this.error(err, doing, names);
    } finally {
      client.release(broken); // a connection that saw an error is not reused
    }
  }

  /**
   * Start the index build the write asked for, or the automatic one past the row
   * threshold. Once a valid HNSW index exists there is nothing to build: Postgres
   * indexed the rows as it wrote them.
   */
  private afterWrite(info: CollectionInfo, totalCount: number, buildIndex: boolean | undefined): void {
    const { collection } = info.names;
    this.knownCounts.set(collection, totalCount);
    if (info.indexValid === true) {
      this.builds.forgetFailure(collection);
      return;
    }
    this.specs.set(collection, { dimensions: info.dimensions, metric: info.metric });
    if (buildIndex === true) {
      this.builds.request(collection, { replaceInvalid: true });
    } else if (
      info.indexValid === null &&
      this.autoIndexThreshold > 0 &&
      totalCount >= this.autoIndexThreshold &&
      this.builds.lastFailure(collection) === null
    ) {
      // An automatic build also skips a failure recorded by an earlier run (the runner checks).
      this.builds.request(collection, { replaceInvalid: false });
    }
  }

  /**
   * One statement (all or nothing). Rows leave the HNSW index as they leave the
   * table: nothing to rebuild; the index stays valid.
   */
  async delete(collection: string, selector: DeleteSelector): Promise<DeleteResult> {
    const names = this.open(collection);
    const doing = `deleting from collection "${collection}"`;
    const { ids, prefixes } = checkDeleteSelector(selector, namedCollection(collection));
    await this.require(names, doing);
    const [row] = await this.run<{ deleted: string; total: string }>(
      this.getPool(),
      sql.deleteDocuments(names),
      [ids, prefixes.map(likePrefixPattern)],
      doing,
      names,
    );
    const totalCount = Number(row.total);
    // The count this instance knows is a floor for estimates: it must come down too,
    // and the catalog's estimate is not believed until it has come down as well.
    this.knownCounts.set(collection, totalCount);
    if (Number(row.deleted) > 0) this.deletedSinceEstimate.add(collection);
    this.lastStatus.delete(collection);
    return { deleted: Number(row.deleted), totalCount };
  }

  // ------------------------------------------------------------ index builds

  /**
   * One build, on a connection of its own (a build can take hours on a big table;
   * it must not hold a pooled connection): see ./pgvector/build-runner.ts for how
   * it gets its connection, leaves another session's build alone and records a
   * failure. CONCURRENTLY lets writes go on during the build; where it cannot run
   * (inside a transaction, e.g. behind a transaction-mode pooler) a plain CREATE
   * INDEX is used instead.
   */
  private async runBuild(collection: string, request: BuildRequest, activity: (a: BuildActivity | null) => void): Promise<void> {
    const names = namesOf(this.schema, collection);
    const spec = this.specs.get(collection);
    if (!spec) return;
    const pool = this.getPool();
    await this.stateTable().catch(() => false);
    await runIndexBuild(
      {
        collection,
        table: names.table,
        index: names.index,
        indexName: names.indexName,
        stateTable: stateTableName(this.schema),
        create: (concurrently) => sql.createIndex(names, spec.dimensions, spec.metric, concurrently),
        drop: (concurrently) => sql.dropIndex(names, concurrently),
      },
      request,
      {
        connect: () => this.openBuildConnection(),
        pool,
        connectWaitMs: this.buildConnectWaitMs,
        retryDelayMs: this.buildRetryDelayMs,
        borrowIdleConnection: () => this.borrowIdleConnection(),
        password: this.password,
        onActivity: activity,
        stopped: () => this.builds.isStopped(),
      },
    );
  }

  private async openBuildConnection(): Promise<Pg.Client> {
    const pg = loadPg();
    const client = new pg.Client(this.clientConfig('index build'));
    client.on('error', () => undefined); // reported through the query in progress
    this.buildClients.add(client);
    client.once('end', () => this.buildClients.delete(client));
    try {
      await client.connect();
      return client;
    } catch (err) {
      this.buildClients.delete(client);
      await client.end().catch(() => undefined);
      throw err;
    }
  }

  /**
   * An idle pooled connection, taken for a build on a server that gives no other
   * (a connection limit, a server that accepts one connection): its timeouts are set
   * to 0 for the build and it is closed afterwards, never returned to the pool.
   */
  private async borrowIdleConnection(): Promise<BuildConnection | null> {
    const pool = this.pool;
    if (!pool || pool.idleCount === 0) return null;
    const client = await pool.connect(); // an idle one, since there is one
    try {
      await client.query('SET statement_timeout = 0; SET lock_timeout = 0');
    } catch (err) {
      client.release(true);
      throw err;
    }
    const asClient = client as unknown as Pg.Client;
    this.buildClients.add(asClient); // close() ends it
    let released = false;
    return {
      // The pool's client-side query timeout would cut the build short: a timer of 24 days instead.
      query: (text, values) => client.query({ text, values, query_timeout: MAX_TIMER_MS } as Pg.QueryConfig),
      end: async () => {
        this.buildClients.delete(asClient);
        if (!released) client.release(true);
        released = true;
      },
    };
  }

  /** The package's state table (build failures), created if missing, once per instance; false when it cannot be. */
  private stateTable(): Promise<boolean> {
    if (!this.stateTableReady) {
      const ready: Promise<boolean> = ensureStateTable(this.getPool(), stateTableName(this.schema)).then(
        () => true,
        (err: unknown) => {
          // No schema yet (no collection), or no right to create tables: failures stay in memory; tried again later.
          if (this.stateTableReady === ready) this.stateTableReady = null;
          if (sqlState(err) === '3F000' || sqlState(err) === '42501') return false;
          throw err;
        },
      );
      this.stateTableReady = ready;
    }
    return this.stateTableReady;
  }

  // ------------------------------------------------------------ status and statistics

  /** `hint.expectedCount`: see StatusHint (optional; without it the rule of EXACT_COUNT_BELOW applies). */
  async status(collection: CollectionRef, hint?: StatusHint): Promise<CollectionStatus> {
    if (isExisting(collection)) return (await this.existingStatus(collection, 'reading the status', hint, false)).status;
    const names = this.open(collection);
    return (await this.readStatus(names, `reading the status of collection "${collection}"`, hint)).status;
  }

  private async readStatus(
    names: CollectionNames,
    doing: string,
    hint?: StatusHint,
    exactCount = false,
  ): Promise<{ status: CollectionStatus; indexValid: boolean | null }> {
    const { collection } = names;
    let row: StatusRow;
    try {
      const hasStateTable = await this.stateTable().catch((err: unknown) => {
        throw this.error(err, doing, names);
      });
      const stateTable = hasStateTable ? stateTableName(this.schema) : null;
      const text = sql.status(names, stateTable ?? '(SELECT NULL::text AS code, NULL::text AS reason, NULL::text AS collection)');
      const activity = this.builds.activity(collection);
      const buildPid = activity?.kind === 'building' ? (activity.pid ?? null) : null;
      row = (await this.run<StatusRow>(this.getPool(), text, [names.table, names.index, collection, buildPid], doing, names))[0];
    } catch (err) {
      const fromBuild = this.statusFromBuild(collection, names.indexName, err);
      if (fromBuild) return { status: fromBuild, indexValid: false };
      throw err;
    }
    if (row.reltuples === null) throw this.notFound(names);
    const indexValid = row.index_valid;
    if (indexValid === true) {
      this.builds.forgetFailure(collection);
      // Built since (by a later request, or by hand): the old reason must not come back if the index is ever dropped.
      if (row.failure) await this.pool?.query(stateSql.clear(stateTableName(this.schema)), [collection]).catch(() => undefined);
    }

    const catalogEstimate = Math.max(0, Number(row.reltuples), Number(row.live_tuples ?? 0));
    const estimate = Math.max(catalogEstimate, this.knownCounts.get(collection) ?? 0);
    let documentCount = estimate;
    const expected = hint?.expectedCount ?? 0;
    const afterDelete = this.deletedSinceEstimate.has(collection);
    // Exact whenever the count could decide the wait: below the expected count, or
    // with a valid index (the wait ends on this answer: an estimate may be high);
    // and after our own delete, while the estimate may still count the deleted rows.
    if (exactCount || afterDelete || estimate < EXACT_COUNT_BELOW || expected > estimate || (expected > 0 && indexValid === true)) {
      const counted = await this.run<{ count: string }>(this.getPool(), sql.count(names), [], doing, names);
      documentCount = Number(counted[0].count);
      if (afterDelete && catalogEstimate <= documentCount) this.deletedSinceEstimate.delete(collection);
    }
    const activity = this.builds.activity(collection);
    const ourPid = activity?.kind === 'building' ? (activity.pid ?? null) : null;
    const watch = { column: 'embedding', index: null };
    // Only vector index builds on the embedding column: ours (by pid or by our index's name), or a user's;
    // a btree, gin, ... build on the table is not this collection's indexing.
    const ours = (b: BuildProgressRow) => (b as { ownIndex?: boolean }).ownIndex === true || (ourPid !== null && Number(b.pid) === ourPid);
    const builds = (row.builds ?? [])
      .filter((b) => ours(b) || this.vectorBuilds.kindOf(b as unknown as BuildSession, watch) !== 'other')
      .sort((a, b) => Number(ours(b)) - Number(ours(a))); // the collection's own index first: its progress is the one shown
    const otherNotVector = new Set(
      (row.other_sessions ?? []).filter((o) => this.vectorBuilds.kindOf({ pid: o.pid, query: o.query }, watch) === 'other').map((o) => Number(o.pid)),
    );
    const status = decideStatus({
      documentCount,
      indexValid,
      builds: builds.map((b) => {
        return { ...progressRowOf(b), label: ours(b) ? null : this.vectorBuilds.labelOf(b as unknown as BuildSession) };
      }),
      activity,
      failure: this.builds.lastFailure(collection) ?? row.failure ?? null,
      blockedBy: (row.blocked_by ?? []).map(Number),
      otherBuilders: (row.other_builders ?? []).map(Number).filter((pid) => !otherNotVector.has(pid)),
      indexName: names.indexName,
    });
    const last = this.lastStatus.get(collection);
    if (status.state === 'indexing' && status.progress === null && last?.state === 'indexing' && last.progress !== null && this.builds.inFlight(collection)) {
      // Between two phases of our own build the progress view may show no row for a moment: keep the last figure.
      status.progress = last.progress;
      status.indexedCount = Math.min(status.documentCount, last.indexedCount);
    }
    status.etaSeconds = this.etaClock.eta(collection, status);
    this.lastStatus.set(collection, status);
    return { status, indexValid };
  }

  /**
   * The status while this instance's own build holds the only connection the server
   * gives it (a CONNECTION LIMIT of 1, a server that accepts one connection): the
   * pool cannot ask the server, but the build is known to be running, since its
   * statement has not returned. Answered from the build and the last status read,
   * saying so, rather than failing poll after poll. Likewise once that build failed
   * for want of a connection while the server still has none for the poll: the
   * failure is the answer, not an outage. Null in every other case.
   */
  private statusFromBuild(collection: string, indexName: string, err: unknown): CollectionStatus | null {
    if (!isTransient(err)) return null;
    const activity = this.builds.activity(collection);
    const last = this.lastStatus.get(collection);
    const documentCount = Math.max(last?.documentCount ?? 0, this.knownCounts.get(collection) ?? 0);
    if (activity === null) {
      const failure = this.builds.lastFailure(collection);
      if (failure === null || unreachable(err)) return null;
      return decideStatus({ documentCount, indexValid: null, builds: [], activity: null, failure, indexName });
    }
    const running = Math.max(0, Math.round((Date.now() - activity.since) / 1000));
    const reason = messageOf(err);
    if (activity.kind === 'connecting') {
      // A server that is not there at all is the triggerer's business (retries, deadline), not a busy one.
      if (unreachable(err)) return null;
      // The server has no connection free for the poll either: that is the build's own wait.
      return {
        state: 'indexing',
        documentCount,
        indexedCount: 0,
        progress: null,
        etaSeconds: null,
        phase: 'waiting for a connection',
        detail: `${activity.problem ?? 'waiting for a free connection to start the index build'}; the server has no connection free for this status poll either (${reason})`,
      };
    }
    return {
      state: 'indexing',
      documentCount,
      indexedCount: last?.state === 'indexing' ? last.indexedCount : 0,
      progress: last?.state === 'indexing' ? last.progress : null,
      etaSeconds: null,
      phase: last?.state === 'indexing' ? (last.phase ?? null) : null,
      detail:
        `the index build has been running for ${running} s and holds the connection the server has free, so this status ` +
        `comes from the build itself; the server is asked again once a connection is free (${reason})`,
    };
  }

  async stats(collection: CollectionRef): Promise<CollectionStats> {
    if (isExisting(collection)) return this.existingStats(collection);
    const names = this.open(collection);
    const doing = `reading the statistics of collection "${collection}"`;
    const info = await this.require(names, doing);
    const { status, indexValid } = await this.readStatus(names, doing, undefined, true); // exact count
    let indexType = 'exact (no index)';
    if (indexValid === true) indexType = indexTypeOf(info.dimensions);
    else if (status.state === 'indexing') indexType = `${indexTypeOf(info.dimensions)} (building)`;
    else if (indexValid === false) indexType = `${indexTypeOf(info.dimensions)} (invalid)`;
    if (indexValid !== true && status.state === 'ready') {
      // No valid index of ours: a user's own vector index on the column may be the one queries use.
      const { table } = await this.existingStatus({ schema: names.schema, name: names.collection, column: 'embedding' }, doing, undefined, false);
      const serving = servingIndex(table);
      if (serving) indexType = /::halfvec\(/.test(serving.definition) ? `${serving.am} (halfvec)` : serving.am;
    }
    return {
      documentCount: status.documentCount,
      indexedCount: status.indexedCount,
      dimensions: info.dimensions,
      metric: info.metric,
      indexType,
    };
  }

  // ------------------------------------------------------------ queries

  async query(collection: CollectionRef, request: QueryRequest): Promise<QueryHit[]> {
    if (isExisting(collection)) return this.existingQuery(collection, request);
    const names = this.open(collection);
    checkQuery(request, namedCollection(collection));
    const { topK } = request;
    const doing = `querying collection "${collection}"`;
    const info = await this.require(names, doing);
    const vector = toVectorLiteral(request.vector, info.dimensions, 'The query vector', collection);
    const filter = prepareFilter(request.filter, collection);
    const text = sql.query(names, info.dimensions, info.metric, filter.length);
    const params: unknown[] = [vector, topK, ...filter.flat()];

    let rows: QueryRow[];
    if (info.indexValid !== true) {
      rows = await this.run<QueryRow>(this.getPool(), text, params, doing, names); // exact scan
    } else {
      rows = await this.queryThroughIndex(names, info, text, params, topK, filter.length > 0, doing);
    }
    return rows.map((row) => ({
      id: row.id,
      score: scoreOf(info.metric, Number(row.distance)),
      text: row.text ?? null,
      metadata: row.metadata ?? {},
    }));
  }

  /**
   * HNSW returns at most hnsw.ef_search rows, and fewer when a filter drops some:
   * raise ef_search to topK, and let pgvector >= 0.8 keep scanning until the
   * filter has let enough rows through (iterative scan), for this query only.
   */
  private async queryThroughIndex(
    names: CollectionNames,
    info: CollectionInfo,
    text: string,
    params: unknown[],
    topK: number,
    filtered: boolean,
    doing: string,
  ): Promise<QueryRow[]> {
    const efSearch = Math.min(MAX_EF_SEARCH, Math.max(MIN_EF_SEARCH, topK));
    const iterative = filtered && versionAtLeast(info.vectorVersion, 0, 8);
    const client = await this.connect(doing, names);
    let broken = false;
    try {
      await client.query(sql.querySettings(efSearch, iterative));
      const result = await client.query<QueryRow>(text, params);
      await client.query('COMMIT');
      return result.rows;
    } catch (err) {
      await rollback(client, err);
      broken = true;
      throw this.error(err, doing, names);
    } finally {
      client.release(broken);
    }
  }

  // ------------------------------------------------------------ tables made by other tools

  /**
   * The table of an ExistingCollection as the catalog describes it, checked (vector
   * column, named index); null when the table (or the LangChain collection) does not exist.
   */
  private async readExisting(ref: ExistingCollection, doing: string): Promise<ExistingTable | null> {
    this.lifecycle.checkOpen();
    const layout = layoutOf(ref);
    const what = `${doing} of the table ${layout.schema}.${layout.tableName} (${layout.label})`;
    const rows = await this.run<ExistingRow>(this.getPool(), READ_EXISTING, [layout.schema, layout.tableName, layout.column], what);
    if (rows.length === 0) return null;
    const table = checkTable(layout, rows[0], this.vectorBuilds);
    if (layout.preset === 'langchain') {
      const found = await this.getPool()
        .query(`SELECT 1 FROM ${layout.langchainCollectionTable} WHERE "name" = $1 LIMIT 1`, [layout.langchainCollection])
        .catch((err: unknown) => {
          if (sqlState(err) === '42P01') return { rows: [] }; // no langchain_pg_collection table
          throw this.error(err, what);
        });
      if (found.rows.length === 0) return null;
    }
    return table;
  }

  private async requireExisting(ref: ExistingCollection, doing: string): Promise<ExistingTable> {
    const table = await this.readExisting(ref, doing);
    if (table) return table;
    const layout = layoutOf(ref);
    if (layout.preset === 'langchain') {
      throw new VectorStoreError(
        'NOT_FOUND',
        `The LangChain collection "${layout.langchainCollection}" does not exist in ${this.where()} (no row of that name in ` +
          `${layout.schema}.langchain_pg_collection, or no table ${layout.schema}.langchain_pg_embedding): check the name and the schema.`,
      );
    }
    throw new VectorStoreError(
      'NOT_FOUND',
      `The table ${layout.schema}.${layout.tableName} (${layout.label}) does not exist in ${this.where()}: check its name` +
        (layout.preset === 'llamaindex' ? ' (LlamaIndex names it data_<table_name>, in lower case)' : '') +
        ' and its schema (default "public").',
    );
  }

  /** The rows a LangChain preset reads: its collection's only (the table holds every collection). */
  private rowFilter(layout: ExistingLayout, param: number): string | null {
    if (layout.preset !== 'langchain') return null;
    return `"collection_id" = (SELECT "uuid" FROM ${layout.langchainCollectionTable} WHERE "name" = $${param} LIMIT 1)`;
  }

  private async existingStatus(
    ref: ExistingCollection,
    doing: string,
    hint: StatusHint | undefined,
    exactCount: boolean,
  ): Promise<{ status: CollectionStatus; table: ExistingTable }> {
    const table = await this.requireExisting(ref, doing);
    const { layout, row } = table;
    const estimate = Math.max(0, Number(row.reltuples ?? 0), Number(row.live_tuples ?? 0));
    let status = decideExistingStatus(table, estimate, this.vectorBuilds);
    const expected = hint?.expectedCount ?? 0;
    // The LangChain table holds the rows of every collection, so the catalog's estimate is not this
    // collection's: it is always counted (by collection_id, which LangChain indexes in newer versions).
    // Other tables: exactly when the answer could end the wait, as for the package's own tables.
    const filter = this.rowFilter(layout, 1);
    if (filter || exactCount || estimate < EXACT_COUNT_BELOW || expected > estimate || (expected > 0 && status.state === 'ready')) {
      const counted = await this.run<{ count: string }>(
        this.getPool(),
        `SELECT count(*) AS count FROM ${layout.table}${filter ? ` WHERE ${filter}` : ''}`,
        filter ? [layout.langchainCollection] : [],
        `${doing} of the table ${layout.schema}.${layout.tableName} (${layout.label})`,
      );
      status = decideExistingStatus(table, Number(counted[0].count), this.vectorBuilds);
    }
    status.etaSeconds = this.etaClock.eta(layout.key, status);
    return { status, table };
  }

  private async existingStats(ref: ExistingCollection): Promise<CollectionStats> {
    const { status, table } = await this.existingStatus(ref, 'reading the statistics', undefined, true);
    const serving = servingIndex(table);
    const anyIndex = serving ?? table.vectorIndexes[0] ?? null;
    let indexType = 'exact (no index)';
    if (serving) indexType = /::halfvec\(/.test(serving.definition) ? `${serving.am} (halfvec)` : serving.am;
    else if (status.state === 'indexing') indexType = `${anyIndex?.am ?? 'vector index'} (building)`;
    else if (anyIndex) indexType = `${anyIndex.am} (invalid)`;
    return {
      documentCount: status.documentCount,
      indexedCount: status.indexedCount,
      dimensions: table.dimensions || (await this.dimensionsFromRows(table)),
      // Without a vector index nothing says which metric the tool meant: cosine, the most common (README).
      metric: metricOfOpclass(anyIndex?.opclass ?? null) ?? 'cosine',
      indexType,
    };
  }

  /** A vector column declared without dimensions (LangChain's Vector(None)): the dimensions of a stored vector, 0 when empty. */
  private async dimensionsFromRows(table: ExistingTable): Promise<number> {
    const { layout } = table;
    if (table.vectorType !== 'vector' && table.vectorType !== 'halfvec') return 0; // a stand-in type of the tests
    const filter = this.rowFilter(layout, 1);
    const rows = await this.run<{ dims: number | null }>(
      this.getPool(),
      `SELECT vector_dims(${quoteIdent(layout.column)}) AS dims FROM ${layout.table} ` +
        `WHERE ${quoteIdent(layout.column)} IS NOT NULL${filter ? ` AND ${filter}` : ''} LIMIT 1`,
      filter ? [layout.langchainCollection] : [],
      `reading the dimensions of the table ${layout.schema}.${layout.tableName} (${layout.label})`,
    );
    return Number(rows[0]?.dims ?? 0);
  }

  private async existingQuery(ref: ExistingCollection, request: QueryRequest): Promise<QueryHit[]> {
    const label = layoutOf(ref).label;
    checkQuery(request, namedCollection(label));
    const doing = 'querying';
    const table = await this.requireExisting(ref, doing);
    const { layout } = table;
    const serving = servingIndex(table);
    const indexed = serving ?? table.vectorIndexes[0] ?? null;
    const metric = indexed ? metricOfOpclass(indexed.opclass) : 'cosine';
    if (metric === null) {
      throw new VectorStoreError(
        'INVALID_INPUT',
        `The index "${indexed!.name}" of ${layout.schema}.${layout.tableName} (${layout.label}) uses the operator class ` +
          `${indexed!.opclass}, whose distance this package does not query by (it supports cosine, l2 and inner product).`,
      );
    }
    const dimensions = table.dimensions || (await this.dimensionsFromRows(table));
    if (dimensions === 0) return []; // no vector stored
    const vector = toVectorLiteral(request.vector, dimensions, 'The query vector', label);
    const filter = prepareFilter(request.filter, label);
    const op = { cosine: '<=>', l2: '<->', dot: '<#>' }[metric];
    const column = quoteIdent(layout.column);
    const type = table.vectorType;
    // Ordered by the index's own expression, so that Postgres can use it (e.g. (embedding::halfvec(3000))).
    const halfvec = serving ? /::halfvec\((\d+)\)/.exec(serving.definition) : null;
    const order = halfvec ? `(${column}::halfvec(${halfvec[1]})) ${op} $1::halfvec(${halfvec[1]})` : `${column} ${op} $1::${type}`;
    const where = filter.map((_, i) => `${table.metadataSql} -> $${3 + 2 * i} = $${4 + 2 * i}::jsonb`);
    const rowFilter = this.rowFilter(layout, 3 + 2 * filter.length);
    if (rowFilter) where.push(rowFilter);
    const text =
      `SELECT ${table.idSql} AS id, ${table.textSql} AS text, ${table.metadataSql} AS metadata, ${column} ${op} $1::${type} AS distance ` +
      `FROM ${layout.table}${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY ${order} LIMIT $2`;
    const params: unknown[] = [vector, request.topK, ...filter.flat(), ...(rowFilter ? [layout.langchainCollection] : [])];
    const what = `${doing} the table ${layout.schema}.${layout.tableName} (${layout.label})`;
    let rows: QueryRow[];
    if (serving?.am === 'hnsw') {
      const efSearch = Math.min(MAX_EF_SEARCH, Math.max(MIN_EF_SEARCH, request.topK));
      const iterative = filter.length > 0 && versionAtLeast(table.vectorVersion, 0, 8);
      const client = await this.connect(what);
      let broken = false;
      try {
        await client.query(sql.querySettings(efSearch, iterative));
        rows = (await client.query<QueryRow>(text, params)).rows;
        await client.query('COMMIT');
      } catch (err) {
        await rollback(client, err);
        broken = true;
        throw this.error(err, what);
      } finally {
        client.release(broken);
      }
    } else {
      rows = await this.run<QueryRow>(this.getPool(), text, params, what);
    }
    return rows.map((row) => ({
      id: row.id,
      score: scoreOf(metric, Number(row.distance)),
      text: row.text ?? null,
      metadata: row.metadata ?? {},
    }));
  }

  // ------------------------------------------------------------ closing

  /** End the index builds' connections and the pool. Idempotent. */
  close(): Promise<void> {
    return this.lifecycle.close(() => this.shutdown());
  }

  private async shutdown(): Promise<void> {
    const buildsStopped = this.builds.stop();
    // A build whose connection ends here usually goes on to its end on a Postgres server
    // (which notices a closed connection only when it next writes to it); one cut short
    // leaves an invalid index, which status reports as failed until a rebuild.
    await Promise.allSettled([...this.buildClients].map((client) => client.end()));
    await buildsStopped;
    const pool = this.pool;
    this.pool = null;
    if (pool) await pool.end().catch(() => undefined);
  }

  // ------------------------------------------------------------ connections and catalog

  /** The `pg` settings of the pool's connections ('pool') or of an index build's own connection. */
  clientConfig(purpose: 'pool' | 'index build'): Pg.ClientConfig {
    return connectionConfig(this.settings, {
      password: this.password,
      purpose,
      callTimeoutMs: this.callTimeoutMs,
      connectionTimeoutMs: this.connectionTimeoutMs,
    });
  }

  private getPool(): Pg.Pool {
    this.lifecycle.checkOpen();
    if (!this.pool) {
      const pg = loadPg();
      const pool = new pg.Pool({ ...this.clientConfig('pool'), max: this.maxConnections, idleTimeoutMillis: IDLE_TIMEOUT_MS });
      // An idle connection that breaks (server restart) is dropped by the pool; the next query reconnects.
      pool.on('error', () => undefined);
      this.pool = pool;
    }
    return this.pool;
  }

  private async connect(doing: string, names?: CollectionNames): Promise<Pg.PoolClient> {
    try {
      return await this.getPool().connect();
    } catch (err) {
      throw this.error(err, doing, names);
    }
  }

  private async run<R extends object>(
    target: Queryable,
    text: string,
    values: unknown[],
    doing: string,
    names?: CollectionNames,
  ): Promise<R[]> {
    try {
      return ((await target.query(text, values)) as Pg.QueryResult<R>).rows;
    } catch (err) {
      throw this.error(err, doing, names);
    }
  }

  /** The collection's table as the catalog describes it; null when there is none. */
  private async describe(names: CollectionNames, doing: string, target?: Queryable): Promise<CollectionInfo | null> {
    const rows = await this.run<DescribeRow>(
      target ?? this.getPool(),
      sql.describe,
      [names.schema, names.collection, names.index],
      doing,
      names,
    );
    if (rows.length === 0) return null;
    const row = rows[0];
    if (!row.column_type || !row.column_type.startsWith('vector(') || !(Number(row.dimensions) > 0)) {
      throw new VectorStoreError(
        'INVALID_INPUT',
        `The table ${names.table} in ${this.where()} is not a collection of this package (it has no "embedding" vector column): ` +
          'use another collection name, or move that table out of the schema.',
      );
    }
    return {
      names,
      dimensions: Number(row.dimensions),
      metric: metricFromComment(row.comment),
      indexValid: row.index_valid,
      vectorVersion: row.vector_version,
    };
  }

  private async require(names: CollectionNames, doing: string): Promise<CollectionInfo> {
    const info = await this.describe(names, doing);
    if (!info) throw this.notFound(names);
    return info;
  }

  /** The vector extension and the schema, created if missing (once per instance; retried after a failure). */
  private setup(doing: string): Promise<void> {
    if (!this.setupDone) {
      this.setupDone = this.createExtensionAndSchema(doing);
      this.setupDone.catch(() => {
        this.setupDone = null;
      });
    }
    return this.setupDone;
  }

  private async createExtensionAndSchema(doing: string): Promise<void> {
    const pool = this.getPool();
    const installed = await this.run<{ extversion: string }>(pool, sql.vectorExtension, [], doing);
    if (installed.length === 0) {
      try {
        await pool.query(sql.createExtension);
      } catch (err) {
        if (sqlState(err) === '42501') {
          throw new VectorStoreError(
            'AUTH',
            `The database user may not install the vector extension in ${this.where()}: ask an administrator to run ` +
              '"CREATE EXTENSION vector;" in that database once, then retry.',
            { cause: redactError(err, [this.password]) },
          );
        }
        // 23505/42710: another session installed it at the same moment.
        if (sqlState(err) !== '23505' && sqlState(err) !== '42710') throw this.error(err, doing);
      }
    }
    try {
      await pool.query(sql.createSchema(this.schema));
    } catch (err) {
      // 23505/42P06: another session created it at the same moment.
      if (sqlState(err) !== '23505' && sqlState(err) !== '42P06') throw this.error(err, doing);
    }
  }

  /** Create the table and record its metric, together; a concurrent creation of the same table is not an error. */
  private async createTable(names: CollectionNames, dimensions: number, metric: Metric, doing: string): Promise<void> {
    const client = await this.connect(doing, names);
    let broken = false;
    try {
      await client.query('BEGIN');
      await client.query(sql.createTable(names, dimensions));
      await client.query(sql.commentTable(names, metric));
      await client.query('COMMIT');
    } catch (err) {
      await rollback(client, err);
      broken = true;
      // 42P07 duplicate_table, 23505 unique_violation (in the catalog): created by someone else meanwhile.
      if (sqlState(err) !== '42P07' && sqlState(err) !== '23505') throw this.error(err, doing, names);
    } finally {
      client.release(broken);
    }
  }

  // ------------------------------------------------------------ helpers

  /** Check the instance is open and the name valid; the collection's identifiers. */
  private open(collection: unknown): CollectionNames {
    return namesOf(this.schema, this.lifecycle.openCollection(collection));
  }

  private where(): string {
    return `the pgvector store at ${this.settings.where}`;
  }

  private context(doing: string, names?: CollectionNames): ErrorContext {
    return {
      where: this.settings.where,
      doing,
      collection: names?.collection,
      table: names?.table,
      password: this.password,
      timeoutMs: this.callTimeoutMs,
    };
  }

  private error(err: unknown, doing: string, names?: CollectionNames): VectorStoreError {
    return toStoreError(err, this.context(doing, names));
  }

  private notFound(names: CollectionNames): VectorStoreError {
    return new VectorStoreError(
      'NOT_FOUND',
      `Collection "${names.collection}" does not exist in ${this.where()} (no table ${names.table}). ` +
        'Ingest documents into it first (vector-ingest creates it), or check the collection name.',
    );
  }
}

/**
 * Roll back after a server error. After a client-side error (timeout, broken
 * connection) there is nothing to say to the server: a ROLLBACK would only wait
 * behind the statement that did not answer; the connection is destroyed on
 * release, which ends the transaction on the server.
 */
async function rollback(client: Pg.PoolClient, err: unknown): Promise<void> {
  if (sqlState(err) === null) return;
  await client.query('ROLLBACK').catch(() => undefined);
}

/** The server is not listening, or its name does not resolve (rather than having no connection free). */
function unreachable(err: unknown): boolean {
  const cause = (err as { cause?: { code?: unknown } } | null)?.cause;
  const code = cause?.code ?? (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && ['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN'].includes(code);
}

/** A progress row as the status decision takes it (the JSON of the status statement). */
export function progressRowOf(b: BuildProgressRow): BuildProgressRow {
  return {
    phase: String(b.phase ?? ''),
    blocksDone: numberOrNull(b.blocksDone),
    blocksTotal: numberOrNull(b.blocksTotal),
    tuplesDone: numberOrNull(b.tuplesDone),
    tuplesTotal: numberOrNull(b.tuplesTotal),
    pid: numberOrNull(b.pid),
  };
}

function numberOrNull(value: unknown): number | null {
  if (value === null || value === undefined) return null;
  const n = Number(value);
  return Number.isFinite(n) ? n : null;
}
