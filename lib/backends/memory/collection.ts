/** One collection of the memory backend: rows of vectors, texts and metadata, its status and search. */
import type { CollectionStatus, Metric, QueryHit } from '../../types';
import type { AppendLog } from '../../storage/append-log';
import { matchesFilter } from '../queries';
import { TopK } from './search';
import { IndexingTimeline, type IndexingWrite } from './timeline';
import type { LogRecord } from './storage';

const INITIAL_CAPACITY_ROWS = 16;

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
    this.vectors = new Float32Array(dimensions * INITIAL_CAPACITY_ROWS);
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
        this.vectors.copyWithin(row * this.dimensions, last * this.dimensions, (last + 1) * this.dimensions);
        this.ids[row] = lastId;
        this.texts[row] = this.texts[last];
        this.metadata[row] = this.metadata[last];
        this.rowById.set(lastId, row);
      }
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
