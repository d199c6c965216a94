/** One collection of the memory backend: rows of vectors, texts and metadata, its status and search. */
import type { CollectionStatus, Metric, QueryHit } from '../../types';
import type { AppendLog } from '../../storage/append-log';
import { matchesFilter } from '../queries';
import { exactSearch } from './exact-search';
import { HnswIndex, type HnswSettings } from './hnsw-index';
import { RowsGate } from './rows-gate';
import { TopK } from './search';
import { IndexingTimeline, type IndexingWrite } from './timeline';
import type { LogRecord } from './storage';
import { VectorRows } from './vector-rows';

/** A validated document, ready to store (vector normalised for the cosine metric). */
export interface StoredDocument {
  id: string;
  vector: Float32Array;
  text: string | null;
  metadata: Record<string, unknown> | null;
}

/** Records of the collection's file that could not be read at load (see ./storage.ts). */
export interface CollectionDamage {
  /** Unreadable records (lines). */
  lines: number;
  /** Where they were copied, or null when the copy failed (they are then still in the file). */
  keptIn: string | null;
  /** Epoch ms when the damage was found. */
  at: number;
}

export class MemoryCollection {
  /** The vector of row r; the other arrays hold the rest of the row. */
  private readonly vectors: VectorRows;
  /** Searches in flight keep the rows still: writes and deletes wait for them (see `change`). */
  private readonly gate = new RowsGate();
  private rowCount = 0;
  private readonly ids: string[] = [];
  private readonly texts: Array<string | null> = [];
  private readonly metadata: Array<Record<string, unknown> | null> = [];
  private readonly rowById = new Map<string, number>();
  /** Built on the first search at HNSW size by a backend that asks for it (see ./hnsw-index.ts). */
  private hnsw: HnswIndex | null = null;
  readonly timeline = new IndexingTimeline();
  /** Document versions in the log file, live or superseded: decides compaction. */
  loggedDocuments = 0;
  /**
   * Set when its file held unreadable records at load: the collection then
   * reports "failed" (its documents are incomplete) until the next successful write.
   */
  damage: CollectionDamage | null = null;

  constructor(
    readonly name: string,
    readonly dimensions: number,
    readonly metric: Metric,
    readonly createdAt: number,
    /** The collection's file; null when not persisted. */
    readonly log: AppendLog<LogRecord> | null,
  ) {
    this.vectors = new VectorRows(dimensions);
  }

  get documentCount(): number {
    return this.rowCount;
  }

  /** Apply an acknowledged write: replace or append each document, then schedule its indexing. */
  apply(docs: StoredDocument[], write: IndexingWrite): void {
    for (const doc of docs) this.put(doc);
    this.timeline.add(write);
    // A write after damage is the re-ingest the damage report asks for.
    this.damage = null;
  }

  /**
   * Status at time t. `progress` is indexedCount / documentCount while indexing or
   * failed (null for an empty collection) and 1 when ready. `etaSeconds` is the time
   * until the last pending write is indexed: 0 when ready, null when failed or when a
   * simulated failure is queued (that write never finishes). A damaged file makes
   * it "failed", saying so.
   */
  status(t: number): CollectionStatus {
    const indexing = this.timeline.observe(t);
    const documentCount = this.rowCount;
    // Re-ingested documents count as pending too, so pending may exceed the count.
    const indexedCount = Math.max(0, documentCount - indexing.pendingDocs);
    const fraction = documentCount > 0 ? indexedCount / documentCount : null;
    if (this.damage !== null) {
      return { state: 'failed', documentCount, indexedCount, progress: fraction, etaSeconds: null, detail: this.describeDamage(this.damage) };
    }
    if (indexing.failure !== null) {
      return { state: 'failed', documentCount, indexedCount, progress: fraction, etaSeconds: null, detail: indexing.failure };
    }
    if (!indexing.busy) {
      return { state: 'ready', documentCount, indexedCount, progress: 1, etaSeconds: 0 };
    }
    const etaSeconds = indexing.finishAt === null ? null : Math.max(0, (indexing.finishAt - t) / 1000);
    return { state: 'indexing', documentCount, indexedCount, progress: fraction, etaSeconds };
  }

  private describeDamage({ lines, keptIn }: CollectionDamage): string {
    const one = lines === 1;
    const file = this.log ? ` (${this.log.file})` : '';
    const where = keptIn !== null ? `kept in ${keptIn}` : 'left in the file (they could not be copied aside)';
    return (
      `The file of collection "${this.name}"${file} was damaged: ${lines} unreadable record${one ? ' was' : 's were'} ${where}, ` +
      `and the documents ${one ? 'it' : 'they'} held are lost. Re-ingest the collection's documents: the next successful write clears this state.`
    );
  }

  /** Throws INVALID_INPUT if the documents would not fit: checked before a write is saved, so a saved write always loads. */
  checkRoomFor(docs: StoredDocument[]): void {
    const added = new Set(docs.map((doc) => doc.id).filter((id) => !this.rowById.has(id))).size;
    this.vectors.checkRoom(this.rowCount + added);
  }

  /**
   * Run `apply` (a write or delete: `apply`/`remove`) once no search is in flight.
   * Loading a collection applies its log directly: nothing searches it yet.
   */
  change<T>(apply: () => T): Promise<T> {
    return this.gate.change(apply);
  }

  /**
   * Search every stored document. With `approximate` settings, a collection of
   * their size or more without a metadata filter is searched by its HNSW index
   * once that has caught up with the rows; otherwise (and meanwhile) exactly. The
   * exact scan runs in slices, letting the event loop run between them (see
   * ./exact-search.ts); `checkContinue` may stop it between slices.
   */
  search(
    query: Float32Array,
    topK: number,
    filter: Record<string, unknown> | null,
    checkContinue?: () => void,
    approximate: HnswSettings | null = null,
  ): Promise<QueryHit[]> {
    return this.gate.search(async () => {
      const index = filter === null ? this.indexFor(approximate) : null;
      let best = index?.current ? this.nearest(index, query, topK) : null;
      if (best === null) {
        const accept = filter ? (row: number) => matchesFilter(this.metadata[row], filter) : null;
        best = await exactSearch(this.vectors, { query, metric: this.metric, topK, rowCount: this.rowCount, accept, checkContinue });
      }
      return best.map(({ score, row }) => ({
        id: this.ids[row],
        score,
        text: this.texts[row],
        metadata: this.metadataCopy(row),
      }));
    });
  }

  /** A row's metadata for a hit: a copy (the caller may change it), `{}` for none. */
  private metadataCopy(row: number): Record<string, unknown> {
    const metadata = this.metadata[row];
    return metadata === null || metadata === undefined ? {} : structuredClone(metadata);
  }

  /** Which search a query without filter would use now (index-health reports it); at the size, starts building the index. */
  searchInUse(approximate: HnswSettings | null): 'exact' | 'hnsw' {
    return this.indexFor(approximate)?.current ? 'hnsw' : 'exact';
  }

  /** Stop building the HNSW index (its store closed, or has no user now); the next search at the size goes on. */
  pauseIndexing(): void {
    this.hnsw?.pause();
  }

  /** The HNSW index for these settings when the collection is at their size: created with every row to add, or resumed. */
  private indexFor(approximate: HnswSettings | null): HnswIndex | null {
    if (approximate === null || this.rowCount < approximate.minDocuments) return null;
    if (this.hnsw === null) {
      this.hnsw = new HnswIndex(approximate.usearch, this.dimensions, this.metric, this.vectors);
      for (let row = 0; row < this.rowCount; row++) this.hnsw.changed(row);
    } else {
      this.hnsw.resume();
    }
    return this.hnsw;
  }

  /**
   * The index's candidates, scored by the exact kernel (the same scores as the
   * exact search). Null when the graph returned fewer than asked (rows removed
   * can leave parts of it unreachable): the exact search answers then.
   */
  private nearest(index: HnswIndex, query: Float32Array, topK: number): Array<{ score: number; row: number }> | null {
    const rows = index.candidates(query, topK);
    // Keys past the last row belong to rows removed since (the index drops them, but ask no more of it).
    let count = 0;
    for (const row of rows) if (row < this.rowCount) rows[count++] = row;
    if (count < Math.min(topK, this.rowCount)) return null;
    const best = new TopK(topK);
    // All the candidates with one write of the query (sliceRows at a time: the kernel's score buffer).
    for (let start = 0; start < count; start += this.vectors.sliceRows) {
      const chunk = rows.slice(start, Math.min(count, start + this.vectors.sliceRows));
      const scores = this.vectors.scoreRows(query, this.metric, chunk, chunk.length);
      for (let i = 0; i < chunk.length; i++) best.offer(scores[i], chunk[i]);
    }
    return best.sorted();
  }

  /** The ids of every live document, in row order (to match a delete's selector). */
  *documentIds(): Generator<string> {
    for (let row = 0; row < this.rowCount; row++) yield this.ids[row];
  }

  /**
   * Apply an acknowledged delete: each row found is replaced by the last row, so
   * rows stay packed. Returns how many documents were removed. Pending indexing is
   * left to the timeline: it only lowers indexedCount until it ends (clamped at 0).
   */
  remove(ids: Iterable<string>): number {
    let removed = 0;
    for (const id of ids) {
      const row = this.rowById.get(id);
      if (row === undefined) continue;
      const last = this.rowCount - 1;
      if (row !== last) {
        const lastId = this.ids[last];
        this.vectors.move(last, row);
        this.ids[row] = lastId;
        this.texts[row] = this.texts[last];
        this.metadata[row] = this.metadata[last];
        this.rowById.set(lastId, row);
        this.hnsw?.changed(row);
      }
      this.hnsw?.removed(last);
      this.ids.pop();
      this.texts.pop();
      this.metadata.pop();
      this.rowById.delete(id);
      this.rowCount = last;
      removed += 1;
    }
    return removed;
  }

  /** Every live document, in row order (for log compaction). */
  *documents(): Generator<StoredDocument> {
    for (let row = 0; row < this.rowCount; row++) {
      yield {
        id: this.ids[row],
        vector: this.vectors.vector(row),
        text: this.texts[row],
        metadata: this.metadata[row],
      };
    }
  }

  private put(doc: StoredDocument): void {
    let row = this.rowById.get(doc.id);
    if (row === undefined) {
      this.vectors.ensureCapacity(this.rowCount + 1);
      row = this.rowCount++;
      this.rowById.set(doc.id, row);
      this.ids.push(doc.id);
    }
    this.vectors.set(row, doc.vector);
    this.hnsw?.changed(row);
    this.texts[row] = doc.text;
    this.metadata[row] = doc.metadata;
  }
}
