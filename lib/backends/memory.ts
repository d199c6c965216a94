/**
 * The embedded `memory` backend: an exact (flat) vector store that lives in the
 * Node-RED process, optionally persisted to one JSON-lines file per collection.
 *
 * It also *simulates* a store that indexes asynchronously, so the deferrable
 * sensor has something real to wait for without a database server. The simulation
 * is an exact function of time and of the acknowledged writes (see
 * ./memory/timeline.ts), so after a restart a collection is exactly as far along as
 * it would have been without the restart. Only `status`/`stats` see the simulation:
 * queries always search every stored document, as an exact flat index would.
 *
 * Parts: ./memory/collection.ts (rows, status, search), ./memory/exact-search.ts
 * (the scan, in slices that let the event loop run), ./memory/vector-rows.ts and
 * ./memory/scan-kernel.ts (the vectors in WebAssembly memory, scored with SIMD),
 * ./memory/rows-gate.ts (writes wait for searches in flight), ./memory/search.ts
 * (top-k), ./memory/timeline.ts (simulated indexing), ./memory/storage.ts (the
 * files, their damage), ./memory/store.ts (collections shared per directory or
 * volatile key). A write is applied in memory only once its record is durable.
 *
 * With `index: 'hnsw'` (and usearch installed), collections of HNSW_MIN_DOCUMENTS
 * or more are searched by an HNSW index (./memory/hnsw-index.ts) once it is
 * built; exact search stays for smaller collections, filtered queries, while
 * the index builds, and when usearch is missing (said once in the log).
 */
import { VectorStoreError, messageOf } from '../errors';
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
  UpsertOptions,
  UpsertResult,
  VectorDocument,
} from '../types';
import { validateCollectionName } from './collection-name';
import { checkCollectionSpec, checkSameSpec } from './collection-spec';
import { checkDeleteSelector, selectorMatcher } from './delete-selector';
import { checkDocuments, toFloat32Vector } from './documents';
import { BackendLifecycle } from './lifecycle';
import { checkFilter, checkQuery, jsonFilter } from './queries';
import { describeValue, namedCollection } from './values';
import type { MemoryCollection, StoredDocument } from './memory/collection';
import { HNSW_MIN_DOCUMENTS, type HnswSettings } from './memory/hnsw-index';
import { normalise } from './memory/search';
import { deleteRecord, encodeDocument, storageError, upsertRecord } from './memory/storage';
import { acquireStore, releaseStore, storeKey, type CollectionStore } from './memory/store';
import type { IndexingWrite } from './memory/timeline';
import { loadUsearch, requireUsearch, type UsearchLoader } from './memory/usearch-module';

export { forgetVolatileCollections } from './memory/store';

export interface MemoryBackendOptions {
  /** Directory for persisted collections (one file per collection); null = in-process only. */
  dataDir: string | null;
  /**
   * Key under which in-process (non-persisted) collections are shared, e.g. the config
   * node id, so that a redeploy (new instance, same key) still sees them. Ignored when
   * dataDir is set. Without it, an in-process backend keeps its collections to itself.
   */
  volatileKey?: string;
  /** Documents indexed per second (> 0). */
  indexingRate: number;
  /** Seconds before indexing of a write starts (>= 0). */
  indexingDelay: number;
  /** Epoch ms, injectable for tests (default Date.now). Assumed never to go backwards. */
  now?: () => number;
  /** Where damaged collection files are reported (Node-RED's log). */
  log?: { warn(message: string): void };
  /**
   * 'exact' (default) scans every vector; 'hnsw' searches collections of
   * `hnswMinDocuments` or more with an HNSW index (usearch), approximate but
   * much faster on large collections. See ./memory/hnsw-index.ts.
   */
  index?: MemoryIndex;
  /** Size from which the HNSW index is built and used (default HNSW_MIN_DOCUMENTS). */
  hnswMinDocuments?: number;
  /** Loads usearch (default: require it); tests pass one that fails like a missing package. */
  usearchLoader?: UsearchLoader;
}

export type MemoryIndex = 'exact' | 'hnsw';

const BACKEND_NAME = 'memory';
const EXACT_INDEX_TYPE = 'exact (flat)';
const HNSW_INDEX_TYPE = 'hnsw (usearch)';

/** Check every document (a bad one writes nothing); vectors are normalised for the cosine metric. */
function prepareDocuments(docs: unknown, collection: MemoryCollection): StoredDocument[] {
  const named = namedCollection(collection.name);
  const checked = checkDocuments(docs, named, {
    vector: (value, what) => {
      const vector = toFloat32Vector(value, collection.dimensions, what, named);
      if (collection.metric === 'cosine') normalise(vector);
      return vector;
    },
  });
  // A JSON copy of the metadata, so it cannot change behind our back and persists as it reads.
  return checked.map(({ id, vector, text, metadataJson }) => ({
    id,
    vector,
    text,
    metadata: metadataJson === null ? null : (JSON.parse(metadataJson) as Record<string, unknown>),
  }));
}

function checkPositiveNumber(value: unknown, field: string, allowZero: boolean): number {
  const ok = typeof value === 'number' && Number.isFinite(value) && (allowZero ? value >= 0 : value > 0);
  if (!ok) {
    throw new VectorStoreError(
      'INVALID_INPUT',
      `The memory backend's ${field} must be a number ${allowZero ? 'of 0 or more' : 'greater than 0'}, ` +
        `but got ${describeValue(value)}. Fix it in the vector-store configuration node.`,
    );
  }
  return value as number;
}

export class MemoryBackend implements Backend {
  readonly name = BACKEND_NAME;
  private readonly store: CollectionStore;
  private readonly key: string | null;
  private readonly indexingRate: number;
  private readonly indexingDelay: number;
  private readonly now: () => number;
  private readonly log: { warn(message: string): void } | undefined;
  /** Loads usearch at the first search at HNSW size; null when the exact search is asked for. */
  private readonly usearchLoader: UsearchLoader | null;
  private readonly hnswMinDocuments: number;
  /** undefined until usearch is first needed; null when it could not be loaded (logged once). */
  private hnsw: HnswSettings | null | undefined = undefined;
  /** Tracks the writes in progress: close lets them finish (and become durable) first. */
  private readonly lifecycle = new BackendLifecycle(BACKEND_NAME);

  constructor(options: MemoryBackendOptions) {
    this.indexingRate = checkPositiveNumber(options.indexingRate, 'indexing rate (documents per second)', false);
    this.indexingDelay = checkPositiveNumber(options.indexingDelay, 'indexing delay (seconds)', true);
    if (options.dataDir !== null && (typeof options.dataDir !== 'string' || options.dataDir.length === 0)) {
      throw new VectorStoreError('INVALID_INPUT', 'The memory backend needs a data directory path, or null to keep collections in memory only.');
    }
    if (options.index !== undefined && options.index !== 'exact' && options.index !== 'hnsw') {
      throw new VectorStoreError('INVALID_INPUT', `The memory backend's index must be "exact" or "hnsw", but got ${describeValue(options.index)}.`);
    }
    this.usearchLoader = options.index === 'hnsw' ? (options.usearchLoader ?? requireUsearch) : null;
    this.hnswMinDocuments = options.hnswMinDocuments ?? HNSW_MIN_DOCUMENTS;
    this.log = options.log;
    this.now = options.now ?? Date.now;
    const { key, dataDir } = storeKey(options);
    this.key = key;
    this.store = acquireStore(key, dataDir);
    if (options.log) this.store.warn = options.log.warn.bind(options.log);
  }

  ensureCollection(collection: string, spec: CollectionSpec): Promise<void> {
    return this.lifecycle.track(() => this.create(collection, spec));
  }

  private async create(collection: string, spec: CollectionSpec): Promise<void> {
    const name = this.lifecycle.openCollection(collection);
    const { dimensions, metric } = checkCollectionSpec(spec, namedCollection(name));
    checkSameSpec(await this.store.create(name, dimensions, metric, this.now), spec, namedCollection(name));
  }

  async collectionExists(collection: CollectionRef): Promise<boolean> {
    const name = this.openRef(collection);
    return (await this.store.get(name, this.now)) !== null;
  }

  upsert(collection: string, docs: VectorDocument[], options: UpsertOptions = {}): Promise<UpsertResult> {
    return this.lifecycle.track(() => this.write(collection, docs, options));
  }

  private async write(collection: string, docs: VectorDocument[], options: UpsertOptions): Promise<UpsertResult> {
    const name = this.lifecycle.openCollection(collection);
    const target = await this.require(name);
    // Everything is checked before anything is written: a bad document writes nothing.
    const prepared = prepareDocuments(docs, target);
    target.checkRoomFor(prepared);
    const fail = options?.simulateFailure;
    if (fail !== undefined && (typeof fail !== 'string' || fail.length === 0)) {
      throw new VectorStoreError('INVALID_INPUT', 'The simulated failure reason (msg.simulate.fail) must be a non-empty string.');
    }
    if (prepared.length === 0 && fail === undefined) return { written: 0, totalCount: target.documentCount };

    const write: IndexingWrite = { at: this.now(), count: prepared.length, rate: this.indexingRate, delay: this.indexingDelay };
    if (fail !== undefined) write.fail = fail;
    if (target.log) {
      try {
        await target.log.append(upsertRecord(write, prepared.map(encodeDocument)));
      } catch (err) {
        throw storageError(err, `save ${prepared.length} document(s) to collection "${name}" in ${target.log.file} (the write was not acknowledged: retry it)`);
      }
    }
    // Applied only once durable; appends resolve in order and changes wait in order, so memory follows the file.
    await target.change(() => target.apply(prepared, write));
    target.loggedDocuments += prepared.length;
    return { written: prepared.length, totalCount: target.documentCount };
  }

  delete(collection: string, selector: DeleteSelector): Promise<DeleteResult> {
    return this.lifecycle.track(() => this.remove(collection, selector));
  }

  /** One durable `delete` record with the ids found, then applied in memory (like a write). */
  private async remove(collection: string, selector: DeleteSelector): Promise<DeleteResult> {
    const name = this.lifecycle.openCollection(collection);
    const target = await this.require(name);
    const selected = selectorMatcher(checkDeleteSelector(selector, namedCollection(name)));
    const ids: string[] = [];
    for (const id of target.documentIds()) if (selected(id)) ids.push(id);
    if (ids.length === 0) return { deleted: 0, totalCount: target.documentCount };
    if (target.log) {
      try {
        await target.log.append(deleteRecord(this.now(), ids));
      } catch (err) {
        throw storageError(err, `delete ${ids.length} document(s) from collection "${name}" in ${target.log.file} (nothing was deleted: retry it)`);
      }
    }
    // Appends resolve in order, so memory follows the file; an id written again meanwhile is removed, as in the file.
    const deleted = await target.change(() => target.remove(ids));
    return { deleted, totalCount: target.documentCount };
  }

  async status(collection: CollectionRef): Promise<CollectionStatus> {
    const target = await this.require(this.openRef(collection));
    return target.status(this.now());
  }

  async stats(collection: CollectionRef): Promise<CollectionStats> {
    const target = await this.require(this.openRef(collection));
    const { documentCount, indexedCount } = target.status(this.now());
    // indexType names the index the collection has (it stays the same while the index catches up); search, which answers now.
    const hnsw = this.hnswFor(target);
    const search = target.searchInUse(hnsw);
    const indexType = hnsw === null ? EXACT_INDEX_TYPE : HNSW_INDEX_TYPE;
    return { documentCount, indexedCount, dimensions: target.dimensions, metric: target.metric, indexType, search };
  }

  async query(collection: CollectionRef, request: QueryRequest): Promise<QueryHit[]> {
    const name = this.openRef(collection);
    const target = await this.require(name);
    const named = namedCollection(name);
    checkQuery(request, named);
    const filter = checkFilter(request.filter, named);
    const vector = toFloat32Vector(request.vector, target.dimensions, 'The query vector', named);
    if (target.metric === 'cosine') normalise(vector);
    // A search of a large collection yields between slices: it stops there if this backend was closed meanwhile.
    return target.search(vector, request.topK, jsonFilter(filter, named), () => this.lifecycle.checkOpen(), this.hnswFor(target));
  }

  /**
   * The HNSW settings for a collection at their size, loading usearch the first
   * time; null for the exact search (asked for, too small, or usearch missing).
   */
  private hnswFor(target: MemoryCollection): HnswSettings | null {
    if (this.usearchLoader === null || target.documentCount < this.hnswMinDocuments) return null;
    if (this.hnsw === undefined) {
      try {
        this.hnsw = { usearch: loadUsearch(this.usearchLoader), minDocuments: this.hnswMinDocuments };
      } catch (err) {
        this.hnsw = null;
        this.log?.warn(messageOf(err));
      }
    }
    return this.hnsw;
  }

  /**
   * Release this instance's use of the shared collections, once its writes in
   * progress are done; the last user closes the files. Idempotent.
   */
  close(): Promise<void> {
    return this.lifecycle.close(() => releaseStore(this.key, this.store));
  }

  /**
   * The name of the package collection meant: a string, or `{ name }` (held to the
   * same rule). The memory store holds nothing another tool made, so any other
   * field of a collection object is refused.
   */
  private openRef(collection: unknown): string {
    const ref = this.lifecycle.openRef(collection);
    if (typeof ref === 'string') return ref;
    const extra = (['schema', 'column', 'index', 'path', 'preset'] as const).find((field) => ref[field] !== undefined);
    if (extra) {
      throw new VectorStoreError(
        'INVALID_INPUT',
        `"${extra}" cannot be used with the memory store: it holds only collections this package made, so name one by ` +
          `its name alone (got ${JSON.stringify(ref)}).`,
      );
    }
    return validateCollectionName(ref.name, BACKEND_NAME);
  }

  private async require(name: string): Promise<MemoryCollection> {
    const found = await this.store.get(name, this.now);
    if (found) return found;
    throw new VectorStoreError(
      'NOT_FOUND',
      `Collection "${name}" does not exist in the ${this.store.describe()}. Ingest documents into it first ` +
        '(vector-ingest creates it), or check the collection name.',
    );
  }
}
