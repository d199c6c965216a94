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
 * - Status: see ./pgvector/status.ts (progress view, `indisvalid`, builds in flight).
 * - One connection pool per instance (one per vector-store config node), created on
 *   first use and closed by `close()`.
 */
import type { ConnectionOptions } from 'node:tls';
import type * as Pg from 'pg';
import { VectorStoreError } from '../errors';
import { redactError, secretProblem } from '../redact';
import type {
  Backend,
  CollectionSpec,
  CollectionStats,
  CollectionStatus,
  Metric,
  QueryHit,
  QueryRequest,
  UpsertOptions,
  UpsertResult,
  VectorDocument,
} from '../types';
import { checkCollectionSpec, checkSameSpec } from './collection-spec';
import { refuseSimulatedFailure } from './documents';
import { BackendLifecycle } from './lifecycle';
import { connectionConfig, parseConnectionString, type ConnectionSettings } from './pgvector/connection';
import { prepareDocuments, prepareFilter, toVectorLiteral, type PreparedDocument } from './pgvector/documents';
import { reasonOf, sqlState, toStoreError, type ErrorContext } from './pgvector/errors';
import { IndexBuilds, type BuildRequest } from './pgvector/index-builds';
import { MAX_DIMENSIONS, indexTypeOf, metricFromComment, namesOf, scoreOf, sql, type CollectionNames } from './pgvector/sql';
import { decideStatus, type BuildProgressRow } from './pgvector/status';
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
  document_count: string;
  index_valid: boolean | null;
  builds: BuildProgressRow[];
}

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
  private readonly builds = new IndexBuilds((collection, request) => this.runBuild(collection, request));
  /** Dedicated connections of the builds in flight: ended by close(). */
  private readonly buildClients = new Set<Pg.Client>();
  private readonly lifecycle = new BackendLifecycle(BACKEND_NAME);

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

  async collectionExists(collection: string): Promise<boolean> {
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
    if (info.indexValid === true) {
      this.builds.forgetFailure(collection);
      return;
    }
    if (buildIndex === true) {
      this.builds.request(collection, { replaceInvalid: true });
    } else if (
      info.indexValid === null &&
      this.autoIndexThreshold > 0 &&
      totalCount >= this.autoIndexThreshold &&
      this.builds.lastError(collection) === null
    ) {
      this.builds.request(collection, { replaceInvalid: false });
    }
  }

  // ------------------------------------------------------------ index builds

  /**
   * One build, on a connection of its own (a build can take hours on a big table;
   * it must not hold a pooled connection). CONCURRENTLY lets writes go on during
   * the build; where it cannot run (inside a transaction, e.g. behind a
   * transaction-mode pooler) a plain CREATE INDEX is used instead.
   */
  private async runBuild(collection: string, request: BuildRequest): Promise<void> {
    const names = namesOf(this.schema, collection);
    const doing = `building the HNSW index of collection "${collection}"`;
    const pg = loadPg();
    const client = new pg.Client(this.clientConfig('index build'));
    client.on('error', () => undefined); // reported through the query in progress
    this.buildClients.add(client);
    try {
      await client.connect();
      const info = await this.describe(names, doing, client);
      if (!info) throw this.notFound(names);
      if (info.indexValid === true) return;
      if (info.indexValid === false) {
        if (!request.replaceInvalid) return; // an automatic build leaves a failed index to the user
        await this.runConcurrently(client, (concurrently) => sql.dropIndex(names, concurrently));
      }
      await this.runConcurrently(client, (concurrently) => sql.createIndex(names, info.dimensions, info.metric, concurrently));
    } catch (err) {
      throw this.buildError(err, names, doing);
    } finally {
      this.buildClients.delete(client);
      await client.end().catch(() => undefined);
    }
  }

  private async runConcurrently(client: Pg.Client, statement: (concurrently: boolean) => string): Promise<void> {
    try {
      await client.query(statement(true));
    } catch (err) {
      if (sqlState(err) !== '25001') throw err; // 25001: "cannot run inside a transaction block"
      await client.query(statement(false));
    }
  }

  /** A failed build: a passing problem is retried; a refusal by the server becomes the reason `status` reports. */
  private buildError(err: unknown, names: CollectionNames, doing: string): VectorStoreError {
    const mapped = this.error(err, doing, names);
    const state = sqlState(err);
    if (mapped.code !== 'INTERNAL' || state === null) return mapped;
    return new VectorStoreError(
      'INDEX_FAILED',
      `building the HNSW index "${names.indexName}" failed: ${reasonOf(err, this.password)} (SQLSTATE ${state})`,
      { cause: redactError(err, [this.password]) },
    );
  }

  // ------------------------------------------------------------ status and statistics

  async status(collection: string): Promise<CollectionStatus> {
    const names = this.open(collection);
    return (await this.readStatus(names, `reading the status of collection "${collection}"`)).status;
  }

  private async readStatus(names: CollectionNames, doing: string): Promise<{ status: CollectionStatus; indexValid: boolean | null }> {
    const { collection } = names;
    this.builds.resumeRetry(collection);
    const row = (await this.run<StatusRow>(this.getPool(), sql.status(names), [names.table, names.index], doing, names))[0];
    const indexValid = row.index_valid;
    if (indexValid === true) this.builds.forgetFailure(collection);
    const status = decideStatus({
      documentCount: Number(row.document_count),
      indexValid,
      builds: (row.builds ?? []).map((b) => ({
        phase: String(b.phase ?? ''),
        blocksDone: numberOrNull(b.blocksDone),
        blocksTotal: numberOrNull(b.blocksTotal),
        tuplesDone: numberOrNull(b.tuplesDone),
        tuplesTotal: numberOrNull(b.tuplesTotal),
      })),
      buildInFlight: this.builds.inFlight(collection),
      retryReason: this.builds.retryReason(collection),
      lastBuildError: this.builds.lastError(collection),
      indexName: names.indexName,
    });
    return { status, indexValid };
  }

  async stats(collection: string): Promise<CollectionStats> {
    const names = this.open(collection);
    const doing = `reading the statistics of collection "${collection}"`;
    const info = await this.require(names, doing);
    const { status, indexValid } = await this.readStatus(names, doing);
    let indexType = 'exact (no index)';
    if (indexValid === true) indexType = indexTypeOf(info.dimensions);
    else if (status.state === 'indexing') indexType = `${indexTypeOf(info.dimensions)} (building)`;
    else if (indexValid === false) indexType = `${indexTypeOf(info.dimensions)} (invalid)`;
    return {
      documentCount: status.documentCount,
      indexedCount: status.indexedCount,
      dimensions: info.dimensions,
      metric: info.metric,
      indexType,
    };
  }

  // ------------------------------------------------------------ queries

  async query(collection: string, request: QueryRequest): Promise<QueryHit[]> {
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

function numberOrNull(value: unknown): number | null {
  if (value === null || value === undefined) return null;
  const n = Number(value);
  return Number.isFinite(n) ? n : null;
}
