/**
 * The embedded `memory` backend: an exact (flat) vector store that lives in the
 * Node-RED process, optionally persisted to one JSON-lines file per collection.
 *
 * It also *simulates* a store that indexes asynchronously, so the deferrable
 * sensor has something real to wait for without a database server. The simulation
 * is an exact function of time and of the acknowledged writes (see
 * `IndexingTimeline`), so after a restart a collection is exactly as far along as
 * it would have been without the restart. Only `status`/`stats` see the simulation:
 * queries always search every stored document, as an exact flat index would.
 *
 * Sharing: collections belong to a process-wide `CollectionStore`, keyed by data
 * directory (or by `volatileKey` when not persisted). Several backend instances
 * on the same directory share one in-memory state and one writer per file.
 *
 * Files (`<dataDir>/<collection>.jsonl`, one `AppendLog` each): a `create` record,
 * then one `upsert` record per acknowledged write. Vectors are base64 of the
 * Float32Array bytes (platform byte order: little-endian on every platform Node-RED
 * runs on). Metadata is stored as JSON (a Date becomes a string, as after a reload).
 * A write is applied in memory only once its record is durable.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { VectorStoreError, messageOf } from '../errors';
import { AppendLog, readLog } from '../storage/append-log';
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
import { COLLECTION_NAME_MAX_LENGTH, COLLECTION_NAME_PATTERN } from './collection-name';
import { METRICS, checkCollectionSpec, checkSameSpec } from './collection-spec';
import { checkDocuments, toFloat32Vector } from './documents';
import { BackendLifecycle } from './lifecycle';
import { checkFilter, checkQuery, jsonFilter, matchesFilter } from './queries';
import { describeValue, isPlainObject, namedCollection } from './values';

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
}

const BACKEND_NAME = 'memory';
const INDEX_TYPE = 'exact (flat)';
/** Compact a log on load when it holds more superseded document versions than this (and than live ones). */
const COMPACT_MIN_SUPERSEDED = 1000;
/** Documents per record when a log is compacted, to keep each JSON line a reasonable size. */
const COMPACT_DOCS_PER_RECORD = 1000;
const INITIAL_CAPACITY_ROWS = 16;

// ---------------------------------------------------------------------------
// Simulated indexing
// ---------------------------------------------------------------------------

/** One acknowledged write, as far as indexing is concerned. */
interface IndexingWrite {
  /** Epoch ms of the write. */
  at: number;
  /** Documents to (re)index. */
  count: number;
  /** Documents indexed per second. */
  rate: number;
  /** Seconds before indexing of this write may start. */
  delay: number;
  /** Simulated failure: indexing fails with this reason when this write would start. */
  fail?: string;
}

interface ScheduledWrite extends IndexingWrite {
  start: number;
  /** Infinity for a failing write: it never finishes. */
  finish: number;
}

interface IndexingState {
  /** Documents written but not yet searchable through the (simulated) index. */
  pendingDocs: number;
  /** True while some write is not fully indexed (and indexing has not failed). */
  busy: boolean;
  /** When the last pending write will be indexed (epoch ms), if known. */
  finishAt: number | null;
  failure: string | null;
}

/**
 * Writes are indexed one after another: write i starts at
 * `max(at_i + delay_i, finish_{i-1})` and takes `count_i / rate_i` seconds. A
 * failing write makes the indexer fail for good when it would start; it and every
 * later write then stay unindexed. Fully indexed writes are folded into
 * `settledUntil`, so the list only holds what is still pending.
 */
class IndexingTimeline {
  /** When the writes folded away finished indexing (0: none yet; all times are epoch ms). */
  private settledUntil = 0;
  private pending: ScheduledWrite[] = [];
  private failure: { reason: string; since: number; stuckDocs: number } | null = null;

  add(write: IndexingWrite): void {
    this.settle(write.at);
    if (this.failure) {
      this.failure.stuckDocs += write.count;
      return;
    }
    const last = this.pending[this.pending.length - 1];
    const start = Math.max(write.at + write.delay * 1000, last ? last.finish : this.settledUntil);
    const finish = write.fail !== undefined ? Infinity : start + (write.count / write.rate) * 1000;
    this.pending.push({ ...write, start, finish });
  }

  observe(t: number): IndexingState {
    this.settle(t);
    if (this.failure) {
      return { pendingDocs: this.failure.stuckDocs, busy: false, finishAt: null, failure: this.failure.reason };
    }
    let pendingDocs = 0;
    for (const write of this.pending) pendingDocs += write.count - indexedSoFar(write, t);
    const last = this.pending[this.pending.length - 1];
    const finishAt = last && Number.isFinite(last.finish) ? last.finish : null;
    return { pendingDocs, busy: this.pending.length > 0, finishAt, failure: null };
  }

  /**
   * Writes that rebuild this timeline exactly, as seen from time t on (for log
   * compaction). The first one is an empty write that restores `settledUntil`:
   * the compacted log attaches every live document to it.
   */
  toWrites(t: number): IndexingWrite[] {
    this.settle(t);
    const writes: IndexingWrite[] = [{ at: this.settledUntil, count: 0, rate: 1, delay: 0 }];
    if (this.failure) {
      const { reason, since, stuckDocs } = this.failure;
      writes.push({ at: since, count: stuckDocs, rate: 1, delay: 0, fail: reason });
    } else {
      for (const { at, count, rate, delay, fail } of this.pending) {
        writes.push(fail === undefined ? { at, count, rate, delay } : { at, count, rate, delay, fail });
      }
    }
    return writes;
  }

  /** Fold away writes fully indexed at time t; turn a started failing write into a failure. */
  private settle(t: number): void {
    while (this.pending.length > 0) {
      const first = this.pending[0];
      if (first.fail !== undefined) {
        if (first.start > t) return;
        const stuckDocs = this.pending.reduce((sum, w) => sum + w.count, 0);
        this.failure = { reason: first.fail, since: first.start, stuckDocs };
        this.pending = [];
        return;
      }
      if (first.finish > t) return;
      this.settledUntil = first.finish;
      this.pending.shift();
    }
  }
}

function indexedSoFar(write: ScheduledWrite, t: number): number {
  if (t <= write.start) return 0;
  // The epsilon absorbs floating-point noise such as 0.1 * 30 = 2.9999999999999996.
  return Math.min(write.count, Math.floor(((t - write.start) * write.rate) / 1000 + 1e-9));
}

// ---------------------------------------------------------------------------
// Documents: validation before anything is written
// ---------------------------------------------------------------------------

/** A validated document, ready to store (vector normalised for the cosine metric). */
interface StoredDocument {
  id: string;
  vector: Float32Array;
  text: string | null;
  metadata: Record<string, unknown> | null;
}

/** Scale to unit length so cosine similarity is a dot product. A zero vector stays zero (scores 0). */
function normalise(vector: Float32Array): void {
  let sum = 0;
  for (let i = 0; i < vector.length; i++) sum += vector[i] * vector[i];
  if (sum === 0) return;
  const norm = Math.sqrt(sum);
  for (let i = 0; i < vector.length; i++) vector[i] /= norm;
}

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

// ---------------------------------------------------------------------------
// Exact top-k
// ---------------------------------------------------------------------------

/** Lower score is worse; on equal scores the later row is worse (stable, deterministic order). */
function isWorse(scoreA: number, rowA: number, scoreB: number, rowB: number): boolean {
  return scoreA < scoreB || (scoreA === scoreB && rowA > rowB);
}

/** Keeps the k best (score, row) pairs seen: a min-heap with the worst kept pair at the root. */
class TopK {
  private readonly scores: number[] = [];
  private readonly rows: number[] = [];

  constructor(private readonly k: number) {}

  offer(score: number, row: number): void {
    if (this.rows.length < this.k) {
      this.scores.push(score);
      this.rows.push(row);
      this.siftUp(this.rows.length - 1);
    } else if (isWorse(this.scores[0], this.rows[0], score, row)) {
      this.scores[0] = score;
      this.rows[0] = row;
      this.siftDown(0);
    }
  }

  /** Best first. */
  sorted(): Array<{ score: number; row: number }> {
    const pairs = this.rows.map((row, i) => ({ score: this.scores[i], row }));
    return pairs.sort((a, b) => (isWorse(a.score, a.row, b.score, b.row) ? 1 : -1));
  }

  private worse(i: number, j: number): boolean {
    return isWorse(this.scores[i], this.rows[i], this.scores[j], this.rows[j]);
  }

  private swap(i: number, j: number): void {
    [this.scores[i], this.scores[j]] = [this.scores[j], this.scores[i]];
    [this.rows[i], this.rows[j]] = [this.rows[j], this.rows[i]];
  }

  private siftUp(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.worse(i, parent)) return;
      this.swap(i, parent);
      i = parent;
    }
  }

  private siftDown(i: number): void {
    const n = this.rows.length;
    for (;;) {
      let worst = i;
      const left = 2 * i + 1;
      const right = left + 1;
      if (left < n && this.worse(left, worst)) worst = left;
      if (right < n && this.worse(right, worst)) worst = right;
      if (worst === i) return;
      this.swap(i, worst);
      i = worst;
    }
  }
}

// ---------------------------------------------------------------------------
// A collection: rows of vectors, texts and metadata
// ---------------------------------------------------------------------------

class MemoryCollection {
  /** Row r occupies vectors[r * dimensions, (r + 1) * dimensions). Capacity doubles as needed. */
  private vectors: Float32Array;
  private rowCount = 0;
  private readonly ids: string[] = [];
  private readonly texts: Array<string | null> = [];
  private readonly metadata: Array<Record<string, unknown> | null> = [];
  private readonly rowById = new Map<string, number>();
  readonly timeline = new IndexingTimeline();
  /** Document versions in the log file, live or superseded: decides compaction. */
  loggedDocuments = 0;

  constructor(
    readonly name: string,
    readonly dimensions: number,
    readonly metric: Metric,
    readonly createdAt: number,
    /** The collection's file; null when not persisted. */
    readonly log: AppendLog<LogRecord> | null,
  ) {
    this.vectors = new Float32Array(dimensions * INITIAL_CAPACITY_ROWS);
  }

  get documentCount(): number {
    return this.rowCount;
  }

  /** Apply an acknowledged write: replace or append each document, then schedule its indexing. */
  apply(docs: StoredDocument[], write: IndexingWrite): void {
    for (const doc of docs) this.put(doc);
    this.timeline.add(write);
  }

  /**
   * Status at time t. `progress` is indexedCount / documentCount while indexing or
   * failed (null for an empty collection) and 1 when ready. `etaSeconds` is the time
   * until the last pending write is indexed: 0 when ready, null when failed or when a
   * simulated failure is queued (that write never finishes).
   */
  status(t: number): CollectionStatus {
    const indexing = this.timeline.observe(t);
    const documentCount = this.rowCount;
    // Re-ingested documents count as pending too, so pending may exceed the count.
    const indexedCount = Math.max(0, documentCount - indexing.pendingDocs);
    const fraction = documentCount > 0 ? indexedCount / documentCount : null;
    if (indexing.failure !== null) {
      return { state: 'failed', documentCount, indexedCount, progress: fraction, etaSeconds: null, detail: indexing.failure };
    }
    if (!indexing.busy) {
      return { state: 'ready', documentCount, indexedCount, progress: 1, etaSeconds: 0 };
    }
    const etaSeconds = indexing.finishAt === null ? null : Math.max(0, (indexing.finishAt - t) / 1000);
    return { state: 'indexing', documentCount, indexedCount, progress: fraction, etaSeconds };
  }

  /** Exact search over every stored document (the flat index sees writes at once). */
  search(query: Float32Array, topK: number, filter: Record<string, unknown> | null): QueryHit[] {
    const best = new TopK(topK);
    for (let row = 0; row < this.rowCount; row++) {
      if (filter && !matchesFilter(this.metadata[row], filter)) continue;
      best.offer(this.score(query, row), row);
    }
    return best.sorted().map(({ score, row }) => ({
      id: this.ids[row],
      score,
      text: this.texts[row],
      metadata: structuredClone(this.metadata[row] ?? {}),
    }));
  }

  /** Every live document, in row order (for log compaction). */
  *documents(): Generator<StoredDocument> {
    for (let row = 0; row < this.rowCount; row++) {
      const offset = row * this.dimensions;
      yield {
        id: this.ids[row],
        vector: this.vectors.subarray(offset, offset + this.dimensions),
        text: this.texts[row],
        metadata: this.metadata[row],
      };
    }
  }

  private put(doc: StoredDocument): void {
    let row = this.rowById.get(doc.id);
    if (row === undefined) {
      row = this.rowCount++;
      this.ensureCapacity(this.rowCount);
      this.rowById.set(doc.id, row);
      this.ids.push(doc.id);
    }
    this.vectors.set(doc.vector, row * this.dimensions);
    this.texts[row] = doc.text;
    this.metadata[row] = doc.metadata;
  }

  private ensureCapacity(rows: number): void {
    if (rows * this.dimensions <= this.vectors.length) return;
    let capacity = this.vectors.length / this.dimensions;
    while (capacity < rows) capacity *= 2;
    const grown = new Float32Array(capacity * this.dimensions);
    grown.set(this.vectors);
    this.vectors = grown;
  }

  /** Higher is better: cosine (vectors are unit length) or dot product, or minus the L2 distance. */
  private score(query: Float32Array, row: number): number {
    const v = this.vectors;
    const offset = row * this.dimensions;
    let sum = 0;
    if (this.metric === 'l2') {
      for (let i = 0; i < query.length; i++) {
        const d = query[i] - v[offset + i];
        sum += d * d;
      }
      return -Math.sqrt(sum);
    }
    for (let i = 0; i < query.length; i++) sum += query[i] * v[offset + i];
    // Rounding can push a unit-vector dot product a hair past 1.
    return this.metric === 'cosine' ? Math.min(1, Math.max(-1, sum)) : sum;
  }
}

// ---------------------------------------------------------------------------
// Log records: writing, replay and compaction
// ---------------------------------------------------------------------------

interface CreateRecord {
  type: 'create';
  dimensions: number;
  metric: Metric;
  createdAt: number;
}

interface LoggedDocument {
  id: string;
  /** base64 of the Float32Array bytes (already normalised for cosine). */
  vector: string;
  text?: string;
  metadata?: Record<string, unknown>;
}

interface UpsertRecord {
  type: 'upsert';
  at: number;
  rate: number;
  delay: number;
  fail?: string;
  /** Documents to index when not docs.length (written by compaction only). */
  count?: number;
  docs: LoggedDocument[];
}

type LogRecord = CreateRecord | UpsertRecord;

function encodeDocument(doc: StoredDocument): LoggedDocument {
  const bytes = Buffer.from(doc.vector.buffer, doc.vector.byteOffset, doc.vector.byteLength);
  const logged: LoggedDocument = { id: doc.id, vector: bytes.toString('base64') };
  if (doc.text !== null) logged.text = doc.text;
  if (doc.metadata !== null) logged.metadata = doc.metadata;
  return logged;
}

function upsertRecord(write: IndexingWrite, docs: LoggedDocument[], count?: number): UpsertRecord {
  const record: UpsertRecord = { type: 'upsert', at: write.at, rate: write.rate, delay: write.delay, docs };
  if (write.fail !== undefined) record.fail = write.fail;
  if (count !== undefined) record.count = count;
  return record;
}

function damaged(file: string, what: string): VectorStoreError {
  return new VectorStoreError(
    'INTERNAL',
    `The memory store file ${file} is damaged (${what}). Move it aside to start the collection over, ` +
      'or restore it from a backup.',
  );
}

function decodeDocument(logged: LoggedDocument, dimensions: number, file: string): StoredDocument {
  if (!isPlainObject(logged) || typeof logged.id !== 'string' || typeof logged.vector !== 'string') {
    throw damaged(file, 'a document without id or vector');
  }
  const bytes = Buffer.from(logged.vector, 'base64');
  if (bytes.length !== dimensions * 4) throw damaged(file, `document ${JSON.stringify(logged.id)} has a vector of the wrong size`);
  const vector = new Float32Array(dimensions);
  new Uint8Array(vector.buffer).set(bytes);
  return { id: logged.id, vector, text: logged.text ?? null, metadata: logged.metadata ?? null };
}

/** Rebuild a collection from its log records; null when the log holds no create record. */
function replay(name: string, records: LogRecord[], log: AppendLog<LogRecord>): MemoryCollection | null {
  let collection: MemoryCollection | null = null;
  for (const record of records) {
    if (!isPlainObject(record)) throw damaged(log.file, 'a line that is not a record');
    if (record.type === 'create') {
      // A later create record can follow a torn first one; the first complete one wins.
      if (!collection) {
        if (!Number.isInteger(record.dimensions) || record.dimensions < 1 || !METRICS.includes(record.metric)) {
          throw damaged(log.file, 'an invalid create record');
        }
        collection = new MemoryCollection(name, record.dimensions, record.metric, record.createdAt, log);
      }
    } else if (record.type === 'upsert') {
      if (!collection) continue; // cannot happen with files this module wrote
      if (!Array.isArray(record.docs) || typeof record.at !== 'number' || !(record.rate > 0)) {
        throw damaged(log.file, 'an invalid upsert record');
      }
      const dimensions = collection.dimensions;
      const docs = record.docs.map((d) => decodeDocument(d, dimensions, log.file));
      const write: IndexingWrite = { at: record.at, count: record.count ?? docs.length, rate: record.rate, delay: record.delay ?? 0 };
      if (typeof record.fail === 'string') write.fail = record.fail;
      collection.apply(docs, write);
      collection.loggedDocuments += docs.length;
    } else {
      throw damaged(log.file, `an unknown record type ${JSON.stringify((record as { type?: unknown }).type)}`);
    }
  }
  return collection;
}

/**
 * Rewrite the log with only the live documents when superseded versions dominate.
 * The indexing timeline is kept exactly (see `IndexingTimeline.toWrites`).
 */
async function compactIfWasteful(collection: MemoryCollection, now: number): Promise<void> {
  const log = collection.log;
  const live = collection.documentCount;
  const superseded = collection.loggedDocuments - live;
  if (!log || superseded <= live || superseded <= COMPACT_MIN_SUPERSEDED) return;

  const [settled, ...pending] = collection.timeline.toWrites(now);
  const records: LogRecord[] = [
    { type: 'create', dimensions: collection.dimensions, metric: collection.metric, createdAt: collection.createdAt },
  ];
  let chunk: LoggedDocument[] = [];
  for (const doc of collection.documents()) {
    chunk.push(encodeDocument(doc));
    if (chunk.length === COMPACT_DOCS_PER_RECORD) {
      records.push(upsertRecord(settled, chunk, 0));
      chunk = [];
    }
  }
  if (chunk.length > 0 || records.length === 1) records.push(upsertRecord(settled, chunk, 0));
  for (const write of pending) records.push(upsertRecord(write, [], write.count));

  await log.rewrite(records);
  collection.loggedDocuments = live;
}

const TRANSIENT_FS_CODES = new Set(['EAGAIN', 'EBUSY', 'EMFILE', 'ENFILE', 'EIO', 'ENOSPC', 'ETIMEDOUT']);

/** Wrap a file-system failure in a VectorStoreError that says what was being done. */
function storageError(err: unknown, doing: string): VectorStoreError {
  if (err instanceof VectorStoreError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const transient = code !== undefined && TRANSIENT_FS_CODES.has(code);
  return new VectorStoreError(
    transient ? 'UNAVAILABLE' : 'INTERNAL',
    `The memory store could not ${doing}: ${messageOf(err)}. Check that the directory exists, is writable by ` +
      'Node-RED and that the disk is not full.',
    { transient, cause: err },
  );
}

// ---------------------------------------------------------------------------
// The collections of one directory (or volatile key), shared in the process
// ---------------------------------------------------------------------------

class CollectionStore {
  /** Backend instances using this store. */
  users = 0;
  private readonly collections = new Map<string, MemoryCollection>();
  /** Loads and creations in progress: concurrent first uses share one promise. */
  private readonly opening = new Map<string, Promise<MemoryCollection | null>>();
  private namesOnDisk: Promise<Set<string>> | null = null;

  constructor(
    readonly dataDir: string | null,
    /** The previous store on this directory, still flushing its logs. */
    private readonly previousClose: Promise<void>,
  ) {}

  describe(): string {
    return this.dataDir ? `memory store (saved in ${this.dataDir})` : 'memory store (kept in memory, not persisted)';
  }

  /** The collection, loading it from disk on first use; null if it does not exist. */
  get(name: string, now: () => number): Promise<MemoryCollection | null> {
    const known = this.collections.get(name);
    if (known) return Promise.resolve(known);
    const opening = this.opening.get(name);
    if (opening) return opening;
    if (!this.dataDir) return Promise.resolve(null);
    return this.track(name, this.load(name, now));
  }

  /** The collection, created (and its create record made durable) if it does not exist. */
  async create(name: string, dimensions: number, metric: Metric, now: () => number): Promise<MemoryCollection> {
    for (;;) {
      const existing = await this.get(name, now);
      if (existing) return existing;
      // Another caller may have started creating it while we waited: then share its promise.
      if (this.collections.has(name) || this.opening.has(name)) continue;
      const created = await this.track(name, this.createNew(name, dimensions, metric, now()));
      if (created) return created;
    }
  }

  /** Wait for loads in progress, then flush and release every file. Never rejects. */
  async close(): Promise<void> {
    await this.previousClose; // so a chain of quick reopen/close still ends after the first flush
    await Promise.allSettled([...this.opening.values()]);
    await Promise.allSettled([...this.collections.values()].map((c) => c.log?.close()));
  }

  private track(name: string, promise: Promise<MemoryCollection | null>): Promise<MemoryCollection | null> {
    this.opening.set(name, promise);
    const forget = () => {
      if (this.opening.get(name) === promise) this.opening.delete(name);
    };
    promise.then(forget, forget);
    return promise;
  }

  private fileOf(name: string): string {
    return path.join(this.dataDir as string, `${name}.jsonl`);
  }

  private async load(name: string, now: () => number): Promise<MemoryCollection | null> {
    const names = await this.listNamesOnDisk();
    if (!names.has(name)) return null;
    const file = this.fileOf(name);
    let records: LogRecord[];
    try {
      records = (await readLog<LogRecord>(file)).records;
    } catch (err) {
      throw storageError(err, `read collection "${name}" from ${file}`);
    }
    // A file without a create record (a crash during creation) is no collection yet.
    const collection = replay(name, records, new AppendLog<LogRecord>(file));
    if (!collection) return null;
    // Compaction is an optimisation: if it fails the full log still works.
    await compactIfWasteful(collection, now()).catch(() => undefined);
    this.collections.set(name, collection);
    return collection;
  }

  private async createNew(name: string, dimensions: number, metric: Metric, createdAt: number): Promise<MemoryCollection> {
    const log = this.dataDir ? new AppendLog<LogRecord>(this.fileOf(name)) : null;
    const collection = new MemoryCollection(name, dimensions, metric, createdAt, log);
    if (log) {
      try {
        await log.append({ type: 'create', dimensions, metric, createdAt });
      } catch (err) {
        await log.close().catch(() => undefined);
        throw storageError(err, `create collection "${name}" in ${log.file}`);
      }
    }
    this.collections.set(name, collection);
    return collection;
  }

  /** Collections are discovered once per store by listing the directory. */
  private listNamesOnDisk(): Promise<Set<string>> {
    if (!this.namesOnDisk) {
      this.namesOnDisk = this.readNames();
      this.namesOnDisk.catch(() => {
        this.namesOnDisk = null; // let the next use try again
      });
    }
    return this.namesOnDisk;
  }

  private async readNames(): Promise<Set<string>> {
    await this.previousClose;
    const dir = this.dataDir as string;
    let entries: string[];
    try {
      entries = await fs.readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Set();
      throw storageError(err, `list the collections in ${dir}`);
    }
    const names = new Set<string>();
    for (const entry of entries) {
      if (!entry.endsWith('.jsonl')) continue;
      const name = entry.slice(0, -'.jsonl'.length);
      if (name.length <= COLLECTION_NAME_MAX_LENGTH && COLLECTION_NAME_PATTERN.test(name)) names.add(name);
    }
    return names;
  }
}

/** Stores in use, by "dir:<absolute path>" or "volatile:<key>". */
const stores = new Map<string, CollectionStore>();
/** Persisted stores whose last user closed, still flushing: a reopen waits for them. */
const closingStores = new Map<string, Promise<void>>();

function storeKey(options: MemoryBackendOptions): { key: string | null; dataDir: string | null } {
  if (options.dataDir !== null) {
    const dataDir = path.resolve(options.dataDir);
    return { key: `dir:${dataDir}`, dataDir };
  }
  return { key: options.volatileKey === undefined ? null : `volatile:${options.volatileKey}`, dataDir: null };
}

function acquireStore(key: string | null, dataDir: string | null): CollectionStore {
  let store = key === null ? undefined : stores.get(key);
  if (!store) {
    store = new CollectionStore(dataDir, (key !== null && closingStores.get(key)) || Promise.resolve());
    if (key !== null) stores.set(key, store);
  }
  store.users += 1;
  return store;
}

async function releaseStore(key: string | null, store: CollectionStore): Promise<void> {
  store.users -= 1;
  if (store.users > 0) return;
  // Volatile collections outlive their users: a redeploy must still find them.
  // `forgetVolatileCollections` drops them when the config node is deleted.
  if (store.dataDir === null && key !== null) return;
  if (key !== null && stores.get(key) === store) stores.delete(key);
  const closing = store.close();
  if (key !== null) closingStores.set(key, closing);
  await closing;
  if (key !== null && closingStores.get(key) === closing) closingStores.delete(key);
}

/**
 * Drop the in-process collections kept under `volatileKey` (call it when the config
 * node is deleted, not merely redeployed). Does nothing while a backend still uses them.
 */
export function forgetVolatileCollections(volatileKey: string): void {
  const key = `volatile:${volatileKey}`;
  if ((stores.get(key)?.users ?? 0) === 0) stores.delete(key);
}

// ---------------------------------------------------------------------------
// The backend
// ---------------------------------------------------------------------------

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
  /** Tracks the writes in progress: close lets them finish (and become durable) first. */
  private readonly lifecycle = new BackendLifecycle(BACKEND_NAME);

  constructor(options: MemoryBackendOptions) {
    this.indexingRate = checkPositiveNumber(options.indexingRate, 'indexing rate (documents per second)', false);
    this.indexingDelay = checkPositiveNumber(options.indexingDelay, 'indexing delay (seconds)', true);
    if (options.dataDir !== null && (typeof options.dataDir !== 'string' || options.dataDir.length === 0)) {
      throw new VectorStoreError('INVALID_INPUT', 'The memory backend needs a data directory path, or null to keep collections in memory only.');
    }
    this.now = options.now ?? Date.now;
    const { key, dataDir } = storeKey(options);
    this.key = key;
    this.store = acquireStore(key, dataDir);
  }

  ensureCollection(collection: string, spec: CollectionSpec): Promise<void> {
    return this.lifecycle.track(() => this.create(collection, spec));
  }

  private async create(collection: string, spec: CollectionSpec): Promise<void> {
    const name = this.lifecycle.openCollection(collection);
    const { dimensions, metric } = checkCollectionSpec(spec, namedCollection(name));
    checkSameSpec(await this.store.create(name, dimensions, metric, this.now), spec, namedCollection(name));
  }

  async collectionExists(collection: string): Promise<boolean> {
    const name = this.lifecycle.openCollection(collection);
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
    // Applied only once durable; appends resolve in order, so memory follows the file.
    target.apply(prepared, write);
    target.loggedDocuments += prepared.length;
    return { written: prepared.length, totalCount: target.documentCount };
  }

  async status(collection: string): Promise<CollectionStatus> {
    const target = await this.require(this.lifecycle.openCollection(collection));
    return target.status(this.now());
  }

  async stats(collection: string): Promise<CollectionStats> {
    const target = await this.require(this.lifecycle.openCollection(collection));
    const { documentCount, indexedCount } = target.status(this.now());
    return { documentCount, indexedCount, dimensions: target.dimensions, metric: target.metric, indexType: INDEX_TYPE };
  }

  async query(collection: string, request: QueryRequest): Promise<QueryHit[]> {
    const name = this.lifecycle.openCollection(collection);
    const target = await this.require(name);
    const named = namedCollection(name);
    checkQuery(request, named);
    const filter = checkFilter(request.filter, named);
    const vector = toFloat32Vector(request.vector, target.dimensions, 'The query vector', named);
    if (target.metric === 'cosine') normalise(vector);
    return target.search(vector, request.topK, jsonFilter(filter, named));
  }

  /**
   * Release this instance's use of the shared collections, once its writes in
   * progress are done; the last user closes the files. Idempotent.
   */
  close(): Promise<void> {
    return this.lifecycle.close(() => releaseStore(this.key, this.store));
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
