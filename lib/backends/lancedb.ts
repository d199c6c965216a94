/**
 * The `lancedb` backend: an embedded LanceDB database in a directory, one table
 * per collection (see lancedb/database.ts for the layout and the sharing).
 *
 * Indexing: a table is searched exactly (flat) until it holds `indexThreshold`
 * rows (256); a write with `buildIndex` after that has an IVF_FLAT vector index
 * created in the background. Rows written later are "unindexed" (LanceDB still
 * finds them, by scanning them beside the index) until `optimize()` folds them
 * in. Both are background catch-up runs, debounced per table (never one per
 * write: see lancedb/maintenance.ts), asked for by writes with `buildIndex` and
 * by a `status` that finds unindexed rows with nothing scheduled (after a
 * restart, say).
 * IVF_FLAT keeps whole vectors, so scores are exact cosine similarities; it
 * builds and catches up quickly, where quantized indexes (IVF_PQ, HNSW_SQ)
 * trade recall and exact scores for memory.
 *
 * `status` maps LanceDB's own counters (numIndexedRows / numUnindexedRows of the
 * vector index) onto indexing / ready / failed; see `LanceDbBackend.status`.
 *
 * A table another tool made (LangChain JS, LlamaIndex, a script) is named by an
 * ExistingCollection and only read: see lancedb/foreign.ts.
 *
 * `@lancedb/lancedb` is an optional peer dependency, loaded at first use.
 */
import { promises as fs } from 'node:fs';
import * as nodePath from 'node:path';
import { collectionLabel } from '../collection-ref';
import { VectorStoreError } from '../errors';
import type {
  Backend,
  CollectionRef,
  CollectionSpec,
  CollectionStats,
  CollectionStatus,
  DeleteResult,
  DeleteSelector,
  QueryHit,
  QueryRequest,
  ExistingCollection,
  Metric,
  UpsertOptions,
  UpsertResult,
  VectorDocument,
} from '../types';
import { checkCollectionSpec, checkSameSpec } from './collection-spec';
import { checkDeleteSelector, type CheckedSelector } from './delete-selector';
import { refuseSimulatedFailure, toFloat32Vector } from './documents';
import {
  type CollectionTable,
  type DatabaseSettings,
  type OtherTable,
  type SharedDatabase,
  acquireDatabase,
  releaseDatabase,
} from './lancedb/database';
import { BACKEND_NAME, type FoundRow, lanceCollection, parseMetadata, toHit, toRows } from './lancedb/documents';
import { storeError } from './lancedb/errors';
import {
  type ForeignIndex,
  type ForeignLayout,
  checkForeignRef,
  foreignHit,
  foreignIndex,
  foreignLayout,
  metricOf,
  selectedColumns,
} from './lancedb/foreign';
import { type CatchUpSchedule, type VectorIndexInfo, DEFAULT_CATCH_UP, findVectorIndex } from './lancedb/maintenance';
import { type LanceDbLoader, requireLanceDb } from './lancedb/modules';
import { BackendLifecycle } from './lifecycle';
import { checkQuery, jsonFilter, matchesFilter } from './queries';
import { wholeNumberOption } from './values';

export { NOT_INSTALLED_MESSAGE } from './lancedb/modules';
export type { LanceDbLoader, LanceDbModules } from './lancedb/modules';

export interface LanceDbBackendOptions {
  /** Directory of the database (created if missing). */
  path: string;
  /**
   * Rows a collection needs before its vector index is created (default 256). Backends
   * on the same directory share the setting of the first one opened.
   */
  indexThreshold?: number;
  /** Epoch ms, injectable for tests (default Date.now): times index work for `etaSeconds`. */
  now?: () => number;
  /** Loads @lancedb/lancedb and apache-arrow (default: require); injectable to test a missing package. */
  loadModules?: LanceDbLoader;
  /**
   * When background index work runs (default DEFAULT_CATCH_UP; see lancedb/maintenance.ts),
   * for tests. Like indexThreshold, the first backend opened on a directory sets it.
   */
  catchUp?: Partial<CatchUpSchedule>;
}

/** Below this many rows a flat scan is fast and exact, and IVF training has too little data. */
export const DEFAULT_INDEX_THRESHOLD = 256;
const NO_INDEX = 'none (flat)';
/** Columns a search returns (not the vector; `_distance` named so LanceDB does not warn). */
const RESULT_COLUMNS = ['id', 'text', 'metadata', '_distance'];
/** A filtered search first fetches this many times topK (at least FILTER_MIN_FETCH), then 8 times more each round. */
const FILTER_OVERFETCH = 10;
const FILTER_MIN_FETCH = 100;
const FILTER_GROWTH = 8;

/** Phase and detail while runs lose commit races with another process on the same directory. */
const CONFLICT_PHASE = 'retrying after a commit conflict';
const CONFLICT_DETAIL = 'another process is optimizing this table; retrying';

/** 20000 -> "20,000 rows", 1 -> "1 row". */
function rowsText(count: number): string {
  return `${count.toLocaleString('en-US')} row${count === 1 ? '' : 's'}`;
}

/** "IvfFlat" -> "ivf_flat". */
function snakeCase(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

/** A string literal of LanceDB's SQL filters (DataFusion): quotes doubled, nothing else is special. */
function sqlString(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** The rows a delete removes: exact ids, and ids starting with a prefix (starts_with: no LIKE wildcards to escape). */
function deletePredicate({ ids, prefixes }: CheckedSelector): string {
  const parts: string[] = [];
  if (ids.length > 0) parts.push(`id IN (${ids.map(sqlString).join(', ')})`);
  for (const prefix of prefixes) parts.push(`starts_with(id, ${sqlString(prefix)})`);
  return parts.join(' OR ');
}

export class LanceDbBackend implements Backend {
  readonly name = BACKEND_NAME;
  private readonly database: SharedDatabase;
  private readonly settings: DatabaseSettings;
  /** Databases of other directories (an ExistingCollection's `path`), by directory, opened on first use. */
  private readonly otherDatabases = new Map<string, SharedDatabase>();
  /** Tracks every call in progress: close lets them finish first. */
  private readonly lifecycle = new BackendLifecycle(BACKEND_NAME, 'LanceDB');

  constructor(options: LanceDbBackendOptions) {
    if (typeof options?.path !== 'string' || options.path.trim() === '') {
      throw new VectorStoreError('INVALID_INPUT', 'The LanceDB backend needs a directory: set Path in the vector-store configuration.');
    }
    // null as well as undefined means "the default" here.
    const threshold = wholeNumberOption(options.indexThreshold ?? undefined, DEFAULT_INDEX_THRESHOLD, 'The LanceDB index threshold');
    this.settings = {
      loader: options.loadModules ?? requireLanceDb,
      indexThreshold: threshold,
      now: options.now ?? Date.now,
      catchUp: { ...DEFAULT_CATCH_UP, ...options.catchUp },
    };
    this.database = acquireDatabase(options.path, this.settings);
  }

  ensureCollection(collection: string, spec: CollectionSpec): Promise<void> {
    return this.lifecycle.track(async () => {
      const name = this.lifecycle.openCollection(collection);
      const named = lanceCollection(name);
      const { dimensions, metric } = checkCollectionSpec(spec, named);
      checkSameSpec(await this.database.create(name, dimensions, metric), spec, named);
    });
  }

  collectionExists(collection: CollectionRef): Promise<boolean> {
    return this.lifecycle.track(async () => {
      const ref = this.lifecycle.openRef(collection);
      if (typeof ref !== 'string') {
        const database = await this.databaseOf(ref);
        return database !== null && (await database.getOther(checkForeignRef(ref, database.dir))) !== null;
      }
      return (await this.database.get(ref)) !== null;
    });
  }

  /** Merge by id (insert new ids, replace known ones) in one commit: all or nothing (a plain add when every id is new). */
  upsert(collection: string, docs: VectorDocument[], options: UpsertOptions = {}): Promise<UpsertResult> {
    return this.lifecycle.track(async () => {
      const name = this.lifecycle.openCollection(collection);
      refuseSimulatedFailure(options, lanceCollection(name));
      const target = await this.require(name);
      const rows = toRows(docs, target.dimensions, name);
      const totalCount = await target.writes.run(async () => {
        try {
          if (rows.length === 0) return await target.table.countRows();
          const ids = rows.map((row) => row.id);
          // One commit either way. Ids all new: a plain add, which looks nothing up (see lancedb/known-ids.ts)
          // and need not wait for a catch-up run in progress; else a merge, which does.
          const { version } = (await target.knownIds.noneExist(ids))
            ? await target.table.add(rows)
            : await target.queue.run(() => target.table.mergeInsert('id').whenMatchedUpdateAll().whenNotMatchedInsertAll().execute(rows));
          const count = await target.table.countRows();
          target.knownIds.wrote(ids, version, count);
          return count;
        } catch (err) {
          throw storeError(err, `write ${rows.length} document(s) to collection "${name}" (retry the write)`, this.database.dir);
        }
      });
      if (options?.buildIndex && rows.length > 0) target.maintenance.request(true);
      return { written: rows.length, totalCount };
    });
  }

  /**
   * One `table.delete(predicate)`: one commit, all or nothing. Nothing matched:
   * no commit at all. Deleted rows leave the vector index consistent (they are
   * masked out of it; counts come from the table).
   */
  delete(collection: string, selector: DeleteSelector): Promise<DeleteResult> {
    return this.lifecycle.track(async () => {
      const name = this.lifecycle.openCollection(collection);
      const predicate = deletePredicate(checkDeleteSelector(selector, lanceCollection(name)));
      const target = await this.require(name);
      return target.writes.run(() => target.queue.run(async () => {
        try {
          let deleted = 0;
          if ((await target.table.countRows(predicate)) > 0) deleted = (await target.table.delete(predicate)).numDeletedRows;
          return { deleted, totalCount: await target.table.countRows() };
        } catch (err) {
          throw storeError(err, `delete documents from collection "${name}" (nothing was deleted: retry it)`, this.database.dir);
        }
      }));
    });
  }

  /**
   * Read from the table as it is now, including other processes' commits:
   * - an index with no unindexed rows: ready (even after a failed run: the work got done).
   * - failed: the last background index creation or optimize() failed (detail says
   *   why); a later write with buildIndex retries it. A lost commit race with
   *   another process is not a failure: it is retried, and reads "indexing".
   * - no vector index yet: ready, everything counts as indexed (searches are exact
   *   flat scans) - unless the index is being created: indexing at 0.
   * - an index with unindexed rows: indexing, progress = indexed / all rows, phase
   *   "optimizing", detail "N rows not yet indexed", ETA from the smoothed rate at
   *   which unindexed rows go (null until one was seen, never 0).
   */
  status(collection: CollectionRef): Promise<CollectionStatus> {
    return this.lifecycle.track(async () => {
      const ref = this.lifecycle.openRef(collection);
      if (typeof ref !== 'string') return (await this.readOther(ref, (other, layout) => this.observeOther(other, layout))).status;
      const target = await this.require(ref);
      return (await this.observe(target)).status;
    });
  }

  stats(collection: CollectionRef): Promise<CollectionStats> {
    return this.lifecycle.track(async () => {
      const ref = this.lifecycle.openRef(collection);
      if (typeof ref !== 'string') {
        return this.readOther(ref, async (other, layout) => {
          const { status, index, metric } = await this.observeOther(other, layout);
          const { documentCount, indexedCount } = status;
          return { documentCount, indexedCount, dimensions: layout.dimensions, metric, indexType: index ? snakeCase(index.indexType) : NO_INDEX };
        });
      }
      const target = await this.require(ref);
      const { status, index } = await this.observe(target);
      return {
        documentCount: status.documentCount,
        indexedCount: status.indexedCount,
        dimensions: target.dimensions,
        metric: target.metric,
        indexType: index ? snakeCase(index.indexType) : NO_INDEX,
      };
    });
  }

  /**
   * Nearest documents, best first. A filter is matched in JavaScript on the
   * metadata JSON: the search then scans exactly (bypassing the index) and
   * fetches more candidates until topK match or the collection is exhausted.
   */
  query(collection: CollectionRef, request: QueryRequest): Promise<QueryHit[]> {
    return this.lifecycle.track(async () => {
      const ref = this.lifecycle.openRef(collection);
      if (typeof ref !== 'string') return this.readOther(ref, (other, layout) => this.queryOther(other, layout, request));
      const name = ref;
      const target = await this.require(name);
      const named = lanceCollection(name);
      checkQuery(request, named);
      const { topK } = request;
      const filter = jsonFilter(request.filter, named);
      const vector = toFloat32Vector(request.vector, target.dimensions, 'The query vector', named);
      try {
        if (!filter) return (await this.search(target, vector, topK, false)).map((row) => toHit(row, target.metric));
        for (let fetch = Math.max(topK * FILTER_OVERFETCH, FILTER_MIN_FETCH); ; fetch *= FILTER_GROWTH) {
          const rows = await this.search(target, vector, fetch, true);
          const matching = rows.filter((row) => matchesFilter(parseMetadata(row.metadata), filter));
          if (matching.length >= topK || rows.length < fetch) {
            return matching.slice(0, topK).map((row) => toHit(row, target.metric));
          }
        }
      } catch (err) {
        throw storeError(err, `search collection "${name}"`, this.database.dir);
      }
    });
  }

  /**
   * Release this instance's use of the shared database once its calls in progress
   * are done; the last user waits for background index work, then closes the
   * tables and the connection. Idempotent.
   */
  close(): Promise<void> {
    return this.lifecycle.close(async () => {
      await Promise.all([this.database, ...this.otherDatabases.values()].map((database) => releaseDatabase(database)));
      this.otherDatabases.clear();
    });
  }

  private async search(target: CollectionTable, vector: Float32Array, limit: number, exact: boolean): Promise<FoundRow[]> {
    let search = target.table.vectorSearch(vector).distanceType(target.metric).select(RESULT_COLUMNS).limit(limit);
    if (exact) search = search.bypassVectorIndex();
    return (await search.toArray()) as FoundRow[];
  }

  /** The collection's status (see `status`) and its vector index, if any. */
  private async observe(target: CollectionTable): Promise<{ status: CollectionStatus; index: VectorIndexInfo | null }> {
    let documentCount: number;
    let index: VectorIndexInfo | null;
    try {
      [documentCount, index] = await Promise.all([target.table.countRows(), findVectorIndex(target.table)]);
    } catch (err) {
      throw storeError(err, `read the index status of collection "${target.name}"`, this.database.dir);
    }
    const { maintenance } = target;
    const unindexed = index ? Math.min(index.numUnindexedRows, documentCount) : 0;
    const indexedCount = index ? documentCount - unindexed : documentCount;
    const fraction = documentCount > 0 ? indexedCount / documentCount : null;

    const ready = (): CollectionStatus => ({ state: 'ready', documentCount, indexedCount, progress: 1, etaSeconds: 0, phase: null });

    const t = this.database.now();
    if (index) maintenance.observeBacklog(unindexed, t);
    // Fully indexed, whoever did it (a later run of ours, another process): an earlier failure no longer applies.
    if (index && unindexed === 0) {
      maintenance.settled();
      return { status: ready(), index };
    }

    if (maintenance.failure) {
      const { kind, reason } = maintenance.failure;
      const work = kind === 'create' ? 'creation of the vector index' : 'index catch-up (optimize)';
      const status: CollectionStatus = {
        state: 'failed',
        documentCount,
        indexedCount: index ? indexedCount : 0,
        progress: index ? fraction : 0,
        etaSeconds: null,
        phase: null,
        detail:
          `The background ${work} of LanceDB collection "${target.name}" failed: ${reason}. ` +
          'Ingest again with "build index" on to retry.',
      };
      return { status, index };
    }
    if (!index) {
      if (!maintenance.busy || documentCount < this.database.indexThreshold) return { status: ready(), index };
      const status: CollectionStatus = {
        state: 'indexing',
        documentCount,
        indexedCount: 0,
        progress: 0,
        etaSeconds: maintenance.createEtaSeconds(documentCount, t),
        phase: maintenance.conflict ? CONFLICT_PHASE : 'creating the vector index',
        detail: maintenance.conflict ? `creating the vector index; ${CONFLICT_DETAIL}` : 'creating the vector index',
      };
      return { status, index };
    }
    // Rows are waiting and nothing of ours folds them in (a write without buildIndex, another
    // process's rows, a restart, or conflict retries that gave up): do it now.
    if (!maintenance.busy) maintenance.request(false);
    const waiting = `${rowsText(unindexed)} not yet indexed`;
    const status: CollectionStatus = {
      state: 'indexing',
      documentCount,
      indexedCount,
      progress: fraction,
      etaSeconds: maintenance.optimizeEtaSeconds(unindexed, t),
      phase: maintenance.conflict ? CONFLICT_PHASE : 'optimizing',
      detail: maintenance.conflict ? `${waiting}; ${CONFLICT_DETAIL}` : waiting,
    };
    return { status, index };
  }

  // ------------------------------------------------------------------ tables of other tools

  /**
   * Run `read` on another tool's table (see ./lancedb/foreign.ts) with its layout
   * as its schema is now. NOT_FOUND when there is no such table, also when it was
   * dropped since it was opened.
   */
  private async readOther<T>(ref: ExistingCollection, read: (other: OtherTable, layout: ForeignLayout) => Promise<T>): Promise<T> {
    const database = await this.databaseOf(ref);
    if (!database) throw this.otherNotFound(ref, nodePath.resolve(ref.path as string), 'no such directory');
    const name = checkForeignRef(ref, database.dir);
    const other = await database.getOther(name);
    if (!other) throw this.otherNotFound(ref, database.dir);
    try {
      const schema = await other.table.schema();
      return await read(other, foreignLayout(ref, schema.fields, schema.metadata, database.dir));
    } catch (err) {
      if (err instanceof VectorStoreError) throw err;
      // Dropped (or replaced) by the other tool since it was opened: open it afresh next time.
      database.forgetOther(other);
      if (/not found|does not exist/i.test(String(err))) throw this.otherNotFound(ref, database.dir);
      throw storeError(err, `read table "${name}"`, database.dir);
    }
  }

  /**
   * The database holding another tool's table: the store's own, or the directory
   * the ref's `path` names (resolved as the store's Path is), shared process-wide
   * like any other. Null when that directory does not exist: watching never
   * creates one.
   */
  private async databaseOf(ref: ExistingCollection): Promise<SharedDatabase | null> {
    if (ref.path === undefined) return this.database;
    const dir = nodePath.resolve(ref.path);
    if (dir === this.database.dir) return this.database;
    if (!this.otherDatabases.has(dir)) {
      const found = await fs.stat(dir).then((s) => s.isDirectory(), () => false);
      if (!found) return null;
      // (This call is tracked: close() releases the databases only once it settled.)
      if (!this.otherDatabases.has(dir)) this.otherDatabases.set(dir, acquireDatabase(dir, this.settings));
    }
    return this.otherDatabases.get(dir) as SharedDatabase;
  }

  /** Status of another tool's table: LanceDB's own count of unindexed rows on the watched column; nothing is run on it. */
  private async observeOther(
    other: OtherTable,
    layout: ForeignLayout,
  ): Promise<{ status: CollectionStatus; index: ForeignIndex | null; metric: Metric }> {
    const [documentCount, index] = await Promise.all([other.table.countRows(), foreignIndex(other.table, layout.column)]);
    const metric = metricOf(layout, index);
    const unindexed = index ? Math.min(index.numUnindexedRows, documentCount) : 0;
    const t = this.database.now();
    other.backlog.observe(unindexed, t);
    if (unindexed === 0) {
      // No vector index: searches scan every row exactly, so everything is searchable.
      return { status: { state: 'ready', documentCount, indexedCount: documentCount, progress: 1, etaSeconds: 0, phase: null }, index, metric };
    }
    const indexedCount = documentCount - unindexed;
    const status: CollectionStatus = {
      state: 'indexing',
      documentCount,
      indexedCount,
      progress: documentCount > 0 ? indexedCount / documentCount : null,
      etaSeconds: other.backlog.etaSeconds(unindexed, t),
      phase: 'waiting for optimize',
      detail:
        `${rowsText(unindexed)} not yet in the vector index "${index!.name}" on column "${layout.column}" ` +
        "(the tool that writes this table folds them in with optimize(); this package does not write another tool's table)",
    };
    return { status, index, metric };
  }

  /** Nearest rows of another tool's table on the watched column; a filter matches the metadata as read. */
  private async queryOther(other: OtherTable, layout: ForeignLayout, request: QueryRequest): Promise<QueryHit[]> {
    checkQuery(request, layout.label);
    const { topK } = request;
    const filter = jsonFilter(request.filter, layout.label);
    const vector = toFloat32Vector(request.vector, layout.dimensions, 'The query vector', layout.label);
    const metric = metricOf(layout, await foreignIndex(other.table, layout.column));
    const search = async (limit: number, exact: boolean) => {
      let query = other.table.vectorSearch(vector).column(layout.column).distanceType(metric).select(selectedColumns(layout)).withRowId().limit(limit);
      if (exact) query = query.bypassVectorIndex();
      return ((await query.toArray()) as Record<string, unknown>[]).map((row) => foreignHit(row, layout, metric));
    };
    if (!filter) return search(topK, false);
    for (let fetch = Math.max(topK * FILTER_OVERFETCH, FILTER_MIN_FETCH); ; fetch *= FILTER_GROWTH) {
      const hits = await search(fetch, true);
      const matching = hits.filter((hit) => matchesFilter(hit.metadata, filter));
      if (matching.length >= topK || hits.length < fetch) return matching.slice(0, topK);
    }
  }

  private otherNotFound(ref: ExistingCollection, dir: string, why?: string): VectorStoreError {
    const where = ref.path !== undefined ? `the "path" of the collection (${ref.path})` : 'the Path of the vector-store configuration';
    return new VectorStoreError(
      'NOT_FOUND',
      `There is no table "${collectionLabel(ref)}" in the LanceDB database in ${dir}${why ? ` (${why})` : ''}. Check the name ` +
        `(LanceDB table names are case-sensitive) and ${where}.`,
    );
  }

  private async require(name: string): Promise<CollectionTable> {
    const found = await this.database.get(name);
    if (found) return found;
    throw new VectorStoreError(
      'NOT_FOUND',
      `Collection "${name}" does not exist in the LanceDB store in ${this.database.dir}. Ingest documents into it first ` +
        '(vector-ingest creates it), or check the collection name and the Path.',
    );
  }
}
