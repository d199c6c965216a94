/**
 * The `chroma` backend: a Chroma server (local `chroma run`, a container, or
 * Chroma Cloud) through its HTTP API v2, with the global `fetch` and no client
 * package.
 *
 * - Collections are created with `get_or_create`, the metric as `hnsw:space`,
 *   the dimension in the collection metadata (`vp:dimensions`, checked before
 *   every write and query), and no embedding function: this package always sends
 *   its own embeddings, so Chroma never downloads a model.
 * - Writes are upserts in batches no larger than the server's `max_batch_size`
 *   (from /api/v2/pre-flight-checks), vectors in Chroma's base64 format when the
 *   server supports it. Every document is validated before the first batch.
 * - Status: documentCount is Chroma's count. Where the server has the
 *   `indexing_status` route (newer servers, Chroma Cloud), its unindexed
 *   operations give indexedCount and progress; otherwise (the local server of
 *   chromadb 1.0, which indexes as it writes) everything counted is indexed.
 * - Metadata: see ./chroma/records.ts (any JSON round-trips; filters work on
 *   top-level string, number and boolean fields).
 * - The API key is sent as `x-chroma-token` and as `Authorization: Bearer`.
 * - A collection another client made is named by an ExistingCollection ({ name })
 *   under Chroma's own name rule, and read like the package's own: metric from
 *   `hnsw:space` or its configuration, dimension from its records.
 */
import { collectionLabel, refuseFields } from '../collection-ref';
import { VectorStoreError } from '../errors';
import { secretProblem } from '../redact';
import type {
  Backend,
  CollectionRef,
  CollectionSpec,
  CollectionStats,
  CollectionStatus,
  DeleteResult,
  DeleteSelector,
  Metric,
  QueryHit,
  QueryRequest,
  UpsertOptions,
  UpsertResult,
  VectorDocument,
} from '../types';
import { ChromaHttp, chromaErrorName } from './chroma/http';
import {
  DIMENSIONS_KEY,
  base64Vector,
  chromaCollection,
  hitsOf,
  prepareRecords,
  replacingMetadata,
  whereOf,
  type ChromaRecord,
} from './chroma/records';
import { checkCollectionSpec, checkSameSpec } from './collection-spec';
import { checkDeleteSelector, selectorMatcher, type CheckedSelector } from './delete-selector';
import { refuseSimulatedFailure, toFloat32Vector } from './documents';
import { BackendLifecycle } from './lifecycle';
import { checkFilter, checkQuery } from './queries';
import { describeValue, isPlainObject, wholeNumberOption } from './values';

export interface ChromaBackendOptions {
  /** Server URL, e.g. http://localhost:8000 (the default when empty). */
  url: string;
  tenant?: string;
  database?: string;
  /** Token for servers with token auth (Chroma Cloud: the API key). */
  apiKey?: string;
  /** Milliseconds one request may take before it fails as TIMEOUT (default 10000: the runtime setting storeTimeout). */
  timeoutMs?: number;
  /** Most records per write request (default 1000); the server's own maximum lowers it further. */
  maxBatchSize?: number;
}

const BACKEND_NAME = 'chroma';
const DEFAULT_URL = 'http://localhost:8000';
const DEFAULT_TENANT = 'default_tenant';
const DEFAULT_DATABASE = 'default_database';
const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_BATCH = 1000;
/** Chroma's own name rule is stricter than the shared one at both ends. */
const CHROMA_NAME_MIN_LENGTH = 3;
const METRIC_TO_SPACE: Record<Metric, string> = { cosine: 'cosine', l2: 'l2', dot: 'ip' };
const SPACE_TO_METRIC: Record<string, Metric> = { cosine: 'cosine', l2: 'l2', ip: 'dot' };
const LIST_PAGE = 100;
/**
 * Chroma's own rule for a collection made by another client: 3-512 characters of
 * [a-zA-Z0-9._-], starting and ending with a letter or a digit, no "..", and not
 * an IP address (the server's validate_name).
 */
const CHROMA_NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$/;
const IPV4_PATTERN = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** What this backend knows about a collection on the server. */
interface CollectionInfo {
  id: string;
  name: string;
  /** Null while an empty collection created elsewhere has no dimension yet. */
  dimensions: number | null;
  metric: Metric;
  indexType: string;
}

interface ServerLimits {
  maxBatchSize: number;
  base64: boolean;
}

export class ChromaBackend implements Backend {
  readonly name = BACKEND_NAME;
  private readonly http: ChromaHttp;
  private readonly tenant: string;
  private readonly database: string;
  private readonly maxBatchSize: number;
  private readonly collections = new Map<string, CollectionInfo>();
  private limits: Promise<ServerLimits> | null = null;
  /** False once the server showed it has no indexing_status route. */
  private indexingStatusRoute = true;
  private readonly lifecycle = new BackendLifecycle(BACKEND_NAME);

  constructor(options: ChromaBackendOptions) {
    const baseUrl = checkUrl(options.url);
    this.tenant = checkName(options.tenant, DEFAULT_TENANT, 'tenant');
    this.database = checkName(options.database, DEFAULT_DATABASE, 'database');
    const timeoutMs = wholeNumberOption(options.timeoutMs, DEFAULT_TIMEOUT_MS, "The chroma backend's request timeout (ms)");
    this.maxBatchSize = wholeNumberOption(options.maxBatchSize, DEFAULT_MAX_BATCH, "The chroma backend's maximum batch size");
    const apiKey = options.apiKey ? options.apiKey : undefined;
    // A line break would make fetch throw with the whole header value (the token) in its message.
    const problem = secretProblem('API key', apiKey);
    if (problem) throw new VectorStoreError('INVALID_INPUT', problem, { transient: false });
    this.http = new ChromaHttp({ baseUrl, apiKey, timeoutMs });
  }

  async ensureCollection(collection: string, spec: CollectionSpec): Promise<void> {
    const name = this.open(collection);
    const { dimensions, metric } = checkCollectionSpec(spec, chromaCollection(name));
    const answer = await this.http.call(
      'POST',
      this.collectionsPath(),
      // No embedding function: this package always sends embeddings.
      { name, get_or_create: true, metadata: { 'hnsw:space': METRIC_TO_SPACE[metric], [DIMENSIONS_KEY]: dimensions } },
      `create collection "${name}" in ${this.describeDatabase()}`,
    );
    const found = this.remember(this.parseCollection(answer, name));
    checkSameSpec(found, spec, chromaCollection(name));
  }

  async collectionExists(collection: CollectionRef): Promise<boolean> {
    const { name } = this.openRef(collection);
    return (await this.lookup(name)) !== null;
  }

  async upsert(collection: string, docs: VectorDocument[], options: UpsertOptions = {}): Promise<UpsertResult> {
    const name = this.open(collection);
    refuseSimulatedFailure(options, chromaCollection(name));
    let info = await this.require(name);
    // Everything is checked before anything is written: a bad document writes nothing.
    const records = prepareRecords(docs, info.dimensions, name);
    if (records.length === 0) return { written: 0, totalCount: await this.count(info) };

    const limits = await this.serverLimits();
    const batchSize = Math.max(1, Math.min(this.maxBatchSize, limits.maxBatchSize));
    for (let start = 0; start < records.length; start += batchSize) {
      const batch = records.slice(start, start + batchSize);
      info = await this.withCollection(info, async (current) => {
        await this.writeBatch(current, batch, limits);
        return current;
      });
    }
    if (info.dimensions === null) info.dimensions = records[0].vector.length;
    return { written: records.length, totalCount: await this.count(info) };
  }

  /**
   * Chroma deletes by ids (or by metadata), and has no prefix filter on ids: the
   * ids to delete are found first (exact ids asked for; for sources, every id is
   * paged through without vectors or documents and matched here, so memory holds
   * one page plus the matches), then deleted by id, one request per batch. One
   * batch (up to the server's batch size) is all or nothing; a failure between
   * batches leaves the earlier ones deleted, and sending the same delete again
   * finishes it.
   */
  async delete(collection: string, selector: DeleteSelector): Promise<DeleteResult> {
    const name = this.open(collection);
    const checked = checkDeleteSelector(selector, chromaCollection(name));
    const info = await this.require(name);
    const limits = await this.serverLimits();
    const batchSize = Math.max(1, Math.min(this.maxBatchSize, limits.maxBatchSize));
    return this.withCollection(info, async (current) => {
      const ids = await this.idsSelected(current, checked, batchSize);
      for (let start = 0; start < ids.length; start += batchSize) {
        await this.http.call(
          'POST',
          `${this.collectionPath(current)}/delete`,
          { ids: ids.slice(start, start + batchSize) },
          `delete ${ids.length} document(s) from collection "${name}"`,
        );
      }
      return { deleted: ids.length, totalCount: await this.count(current) };
    });
  }

  /** The ids in the collection that the selector removes. */
  private async idsSelected(info: CollectionInfo, selector: CheckedSelector, pageSize: number): Promise<string[]> {
    const what = `find the documents to delete in collection "${info.name}"`;
    const idsOf = (answer: unknown): string[] => {
      if (!isPlainObject(answer) || !Array.isArray(answer.ids)) throw this.notChroma(what);
      return answer.ids.map(String);
    };
    if (selector.prefixes.length === 0) {
      const found: string[] = [];
      for (let start = 0; start < selector.ids.length; start += pageSize) {
        const ids = selector.ids.slice(start, start + pageSize);
        found.push(...idsOf(await this.http.call('POST', `${this.collectionPath(info)}/get`, { ids, include: [] }, what)));
      }
      return found;
    }
    const selected = selectorMatcher(selector);
    const found: string[] = [];
    for (let offset = 0; ; offset += pageSize) {
      const page = idsOf(await this.http.call('POST', `${this.collectionPath(info)}/get`, { include: [], limit: pageSize, offset }, what));
      for (const id of page) if (selected(id)) found.push(id);
      if (page.length < pageSize) return found;
    }
  }

  async status(collection: CollectionRef): Promise<CollectionStatus> {
    const info = await this.require(this.openRef(collection));
    return this.statusOf(info);
  }

  async stats(collection: CollectionRef): Promise<CollectionStats> {
    const info = await this.require(this.openRef(collection));
    const { documentCount, indexedCount } = await this.statusOf(info);
    return {
      documentCount,
      indexedCount,
      dimensions: info.dimensions ?? 0,
      metric: info.metric,
      indexType: info.indexType,
    };
  }

  async query(collection: CollectionRef, request: QueryRequest): Promise<QueryHit[]> {
    const opened = this.openRef(collection);
    const { name } = opened;
    const named = chromaCollection(name);
    checkQuery(request, named);
    const { topK } = request;
    const filter = checkFilter(request.filter, named);
    const where = filter ? whereOf(filter, name) : undefined;
    const info = await this.require(opened);
    const vector = toFloat32Vector(request.vector, info.dimensions, 'The query vector', named);
    const body: Record<string, unknown> = {
      query_embeddings: [Array.from(vector)],
      n_results: topK,
      include: ['documents', 'metadatas', 'distances'],
    };
    if (where) body.where = where;
    return this.withCollection(info, async (current) => {
      const answer = await this.http.call('POST', `${this.collectionPath(current)}/query`, body, `query collection "${name}"`);
      const hits = hitsOf(answer, current.metric, filter);
      if (!hits) throw this.notChroma(`query collection "${name}"`);
      return hits;
    });
  }

  /** Abort requests in flight; later calls fail with UNAVAILABLE. Idle keep-alive sockets of `fetch` close by themselves. */
  close(): Promise<void> {
    return this.lifecycle.close(async () => this.http.close());
  }

  // ------------------------------------------------------------------ writes

  /** One upsert request. Old versions of the records are read first, to drop the fields they no longer have. */
  private async writeBatch(info: CollectionInfo, batch: ChromaRecord[], limits: ServerLimits): Promise<void> {
    const what = `write ${batch.length} document(s) to collection "${info.name}"`;
    const previous = await this.http.call(
      'POST',
      `${this.collectionPath(info)}/get`,
      { ids: batch.map((r) => r.id), include: ['metadatas'] },
      `read the documents being replaced in collection "${info.name}"`,
    );
    const old = new Map<string, Record<string, unknown> | null>();
    if (isPlainObject(previous) && Array.isArray(previous.ids)) {
      const metadatas = Array.isArray(previous.metadatas) ? previous.metadatas : [];
      previous.ids.forEach((id, i) => old.set(String(id), isPlainObject(metadatas[i]) ? metadatas[i] : null));
    }
    await this.http.call(
      'POST',
      `${this.collectionPath(info)}/upsert`,
      {
        ids: batch.map((r) => r.id),
        embeddings: batch.map((r) => (limits.base64 ? base64Vector(r.vector) : Array.from(r.vector))),
        documents: batch.map((r) => r.document),
        metadatas: batch.map((r) => replacingMetadata(r, old.get(r.id) ?? null)),
      },
      what,
    );
  }

  /** The server's batch limit and formats, asked once. Servers without pre-flight checks get the defaults. */
  private serverLimits(): Promise<ServerLimits> {
    if (!this.limits) {
      this.limits = this.readLimits();
      this.limits.catch(() => {
        this.limits = null; // ask again next time
      });
    }
    return this.limits;
  }

  private async readLimits(): Promise<ServerLimits> {
    const what = 'read its limits (pre-flight checks)';
    const response = await this.http.send('GET', '/api/v2/pre-flight-checks', undefined, what);
    if (response.status === 404) return { maxBatchSize: this.maxBatchSize, base64: false };
    if (response.status < 200 || response.status >= 300) throw this.http.failure(response, what);
    const json = response.json as { max_batch_size?: unknown; supports_base64_encoding?: unknown } | null;
    const max = json?.max_batch_size;
    return {
      maxBatchSize: typeof max === 'number' && Number.isInteger(max) && max > 0 ? max : this.maxBatchSize,
      base64: json?.supports_base64_encoding === true,
    };
  }

  // ------------------------------------------------------------------ status

  private async statusOf(info: CollectionInfo): Promise<CollectionStatus> {
    return this.withCollection(info, async (current) => {
      const [documentCount, unindexed] = await Promise.all([this.count(current), this.unindexedOps(current)]);
      if (unindexed === null || unindexed.pending === 0) {
        // Ready reads the same for every store: all indexed, nothing left to wait for.
        return { state: 'ready', documentCount, indexedCount: documentCount, progress: 1, etaSeconds: 0 };
      }
      return {
        state: 'indexing',
        documentCount,
        indexedCount: Math.max(0, documentCount - unindexed.pending),
        progress: unindexed.progress,
        etaSeconds: null,
        detail: `${unindexed.pending} write operation(s) not indexed yet`,
      };
    });
  }

  private async count(info: CollectionInfo): Promise<number> {
    const answer = await this.http.call('GET', `${this.collectionPath(info)}/count`, undefined, `count the documents of collection "${info.name}"`);
    if (typeof answer !== 'number' || !Number.isInteger(answer) || answer < 0) throw this.notChroma(`count the documents of collection "${info.name}"`);
    return answer;
  }

  /**
   * Operations written but not yet indexed, from the server's indexing_status
   * route; null when the server has no such route (it then indexes as it writes).
   */
  private async unindexedOps(info: CollectionInfo): Promise<{ pending: number; progress: number | null } | null> {
    if (!this.indexingStatusRoute) return null;
    const what = `read the indexing status of collection "${info.name}"`;
    const response = await this.http.send('GET', `${this.collectionPath(info)}/indexing_status`, undefined, what);
    if (response.status === 404 && chromaErrorName(response) !== 'NotFoundError') {
      this.indexingStatusRoute = false; // a route this server does not have (not a missing collection)
      return null;
    }
    if (response.status === 405 || response.status === 501) {
      this.indexingStatusRoute = false;
      return null;
    }
    if (response.status < 200 || response.status >= 300) throw this.http.failure(response, what);
    const json = response.json as { num_unindexed_ops?: unknown; op_indexing_progress?: unknown; num_indexed_ops?: unknown; total_ops?: unknown } | null;
    const pending = json?.num_unindexed_ops;
    if (typeof pending !== 'number' || !Number.isFinite(pending) || pending < 0) throw this.notChroma(what);
    let progress: number | null = null;
    if (typeof json?.op_indexing_progress === 'number' && Number.isFinite(json.op_indexing_progress)) {
      progress = json.op_indexing_progress;
    } else if (typeof json?.num_indexed_ops === 'number' && typeof json.total_ops === 'number' && json.total_ops > 0) {
      progress = json.num_indexed_ops / json.total_ops;
    }
    return { pending, progress: progress === null ? null : Math.min(1, Math.max(0, progress)) };
  }

  // ------------------------------------------------------------------ collections

  /** Check the backend is open and the name valid for Chroma; returns the name. */
  private open(collection: unknown): string {
    const name = this.lifecycle.openCollection(collection);
    if (name.length < CHROMA_NAME_MIN_LENGTH || !/[A-Za-z0-9]$/.test(name)) {
      throw new VectorStoreError(
        'INVALID_INPUT',
        `The collection name ${JSON.stringify(name)} is not valid for the chroma store: Chroma needs at least ` +
          `${CHROMA_NAME_MIN_LENGTH} characters, ending with a letter or a digit.`,
      );
    }
    return name;
  }

  /**
   * Check what names the collection: a string as `open`; a collection made by
   * another client by its name alone, under Chroma's own rule (`other`: true).
   */
  private openRef(collection: unknown): { name: string; other: boolean } {
    const ref = this.lifecycle.openRef(collection);
    if (typeof ref === 'string') return { name: this.open(ref), other: false };
    refuseFields(ref, 'Chroma', ['schema', 'column', 'index', 'path', 'preset']);
    const { name } = ref;
    if (!CHROMA_NAME_PATTERN.test(name) || name.includes('..') || IPV4_PATTERN.test(name)) {
      throw new VectorStoreError(
        'INVALID_INPUT',
        `${JSON.stringify(collectionLabel(ref))} cannot be a Chroma collection name: Chroma allows 3 to 512 characters of ` +
          'letters, digits, ".", "_" and "-", starting and ending with a letter or a digit, without ".." and not an IP address. ' +
          'Check the name the other client gave the collection.',
      );
    }
    return { name, other: true };
  }

  /**
   * The collection, from the cache or the server; NOT_FOUND when it does not exist.
   * One whose dimension is not known yet (made empty by another client) is asked again:
   * its first records tell it.
   */
  private async require(collection: string | { name: string; other: boolean }): Promise<CollectionInfo> {
    const { name, other } = typeof collection === 'string' ? { name: collection, other: false } : collection;
    const cached = this.collections.get(name);
    const info = cached && cached.dimensions !== null ? cached : await this.lookup(name);
    if (info) return info;
    throw this.notFound(name, other);
  }

  /**
   * Run `action` on the collection; if the server no longer knows its id (it was
   * deleted, perhaps re-created under the same name), look the name up again and
   * run it once more. Returns what `action` returns.
   */
  private async withCollection<T>(info: CollectionInfo, action: (current: CollectionInfo) => Promise<T>): Promise<T> {
    try {
      return await action(info);
    } catch (err) {
      if (!(err instanceof VectorStoreError) || err.code !== 'NOT_FOUND') throw err;
      this.collections.delete(info.name);
      const fresh = await this.lookup(info.name);
      if (!fresh) throw this.notFound(info.name);
      if (fresh.id === info.id) throw err;
      return action(fresh);
    }
  }

  /** Ask the server for a collection by name; null when it does not exist. */
  private async lookup(name: string): Promise<CollectionInfo | null> {
    const what = `look up collection "${name}" in ${this.describeDatabase()}`;
    const response = await this.http.send('GET', `${this.collectionsPath()}/${encodeURIComponent(name)}`, undefined, what);
    if (response.status === 404) {
      this.collections.delete(name);
      return null;
    }
    if (response.status < 200 || response.status >= 300) throw this.http.failure(response, what);
    const info = this.parseCollection(response.json, name);
    // The route also takes ids: a name that is another collection's id needs a search by name.
    if (info.name !== name) return this.findByListing(name);
    return this.remember(info);
  }

  private async findByListing(name: string): Promise<CollectionInfo | null> {
    for (let offset = 0; ; offset += LIST_PAGE) {
      const page = await this.http.call(
        'GET',
        `${this.collectionsPath()}?limit=${LIST_PAGE}&offset=${offset}`,
        undefined,
        `list the collections of ${this.describeDatabase()}`,
      );
      if (!Array.isArray(page)) throw this.notChroma(`list the collections of ${this.describeDatabase()}`);
      const match = page.find((c: unknown) => isPlainObject(c) && c.name === name);
      if (match) return this.remember(this.parseCollection(match, name));
      if (page.length < LIST_PAGE) return null;
    }
  }

  private remember(info: CollectionInfo): CollectionInfo {
    this.collections.set(info.name, info);
    return info;
  }

  private parseCollection(json: unknown, name: string): CollectionInfo {
    if (!isPlainObject(json) || typeof json.id !== 'string' || typeof json.name !== 'string') {
      throw this.notChroma(`read collection "${name}"`);
    }
    const metadata = isPlainObject(json.metadata) ? json.metadata : {};
    const config = isPlainObject(json.configuration_json) ? json.configuration_json : {};
    const hnsw = isPlainObject(config.hnsw) ? config.hnsw : null;
    const spann = isPlainObject(config.spann) ? config.spann : null;
    const space = hnsw?.space ?? spann?.space ?? metadata['hnsw:space'] ?? 'l2';
    const declared = metadata[DIMENSIONS_KEY];
    const learnt = json.dimension;
    const dimensions =
      typeof declared === 'number' && Number.isInteger(declared) && declared > 0
        ? declared
        : typeof learnt === 'number' && Number.isInteger(learnt) && learnt > 0
          ? learnt
          : null;
    return {
      id: json.id,
      name: json.name,
      dimensions,
      metric: SPACE_TO_METRIC[String(space)] ?? 'l2',
      indexType: spann ? 'spann' : 'hnsw',
    };
  }

  // ------------------------------------------------------------------ paths and messages

  private collectionsPath(): string {
    return `/api/v2/tenants/${encodeURIComponent(this.tenant)}/databases/${encodeURIComponent(this.database)}/collections`;
  }

  private collectionPath(info: CollectionInfo): string {
    return `${this.collectionsPath()}/${encodeURIComponent(info.id)}`;
  }

  private describeDatabase(): string {
    return `database "${this.database}" of tenant "${this.tenant}"`;
  }

  /** `other`: named as a collection made by another client (nothing of the package would create it). */
  private notFound(name: string, other = false): VectorStoreError {
    return new VectorStoreError(
      'NOT_FOUND',
      `Collection "${name}" does not exist in Chroma ${this.describeDatabase()} at ${this.http.baseUrl}. ` +
        (other
          ? 'Check the name (Chroma collection names are case-sensitive), the tenant and the database.'
          : 'Ingest documents into it first (vector-ingest creates it), or check the collection name, tenant and database.'),
    );
  }

  private notChroma(what: string): VectorStoreError {
    return new VectorStoreError(
      'INVALID_INPUT',
      `The server at ${this.http.baseUrl} did not answer like a Chroma server (HTTP API v2) while trying to ${what}. ` +
        'Check the URL in the vector-store configuration: it should point at a Chroma server of version 1.0 or newer.',
    );
  }
}

// ---------------------------------------------------------------------------
// Options

function checkUrl(value: unknown): string {
  const raw = typeof value === 'string' && value.trim() !== '' ? value.trim() : DEFAULT_URL;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new VectorStoreError(
      'INVALID_INPUT',
      `The Chroma URL ${JSON.stringify(raw)} is not a URL: set URL in the vector-store configuration to the server, e.g. http://localhost:8000.`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new VectorStoreError('INVALID_INPUT', `The Chroma URL must start with http:// or https://, e.g. http://localhost:8000.`);
  }
  if (url.username !== '' || url.password !== '') {
    throw new VectorStoreError(
      'INVALID_INPUT',
      'The Chroma URL must not contain a user name or password: put the token in the API key credential of the vector-store configuration.',
    );
  }
  // The API paths are added here: accept a URL that already ends with them.
  const path = url.pathname.replace(/\/+$/, '').replace(/\/api\/v[12]$/, '');
  return `${url.origin}${path}`;
}

function checkName(value: unknown, fallback: string, field: 'tenant' | 'database'): string {
  if (value === undefined || value === null || value === '') return fallback;
  if (typeof value !== 'string' || value.trim() === '') {
    throw new VectorStoreError('INVALID_INPUT', `The Chroma ${field} must be a name (or empty for "${fallback}"), but got ${describeValue(value)}.`);
  }
  return value.trim();
}
