/**
 * An optional HNSW index (usearch) beside a collection's rows, for collections
 * of HNSW_MIN_DOCUMENTS or more when the vector-store asks for it. It only
 * finds candidates: their scores are computed from the rows by the exact
 * kernel, so a hit scores the same whichever search found it.
 *
 * Keys are row numbers. A write marks its row stale; a delete removes the entry
 * of the last row at once (it no longer exists) and marks the row it moved into
 * stale. Stale rows are (re)added in slices of about BUILD_SLICE_MS, one per
 * event-loop turn (adding a 384-dimension vector costs about half a millisecond,
 * more on a busy machine, so a whole collection at once would hold the loop for
 * a minute or more). The index answers
 * only when no row is stale: until then the exact search does, so a search never
 * misses a document just written.
 *
 * The index keeps its own, smaller copy of the vectors: 8-bit for cosine (unit
 * vectors: every component is within [-1, 1], which is what usearch's i8 maps),
 * half floats for l2 and dot (any range). Distances on 8-bit vectors order close
 * candidates roughly, so it is asked for CANDIDATES_PER_HIT times as many
 * candidates, which the exact kernel then ranks. On 100,000 clustered vectors of
 * 384 dimensions (recall@10, ms per search in usearch): f32 0.982 in 1.4 ms,
 * f16 0.984 in 0.87 ms, i8 with 4x the candidates 0.987 in 0.63 ms (search
 * lists of 128; see EXPANSION_SEARCH_RANKED for the list used now).
 *
 * Not persisted: a collection loaded from its file builds its index again, on
 * its first search (or health check) at the size. Memory: the copy (a quarter of
 * the vectors for cosine, half for l2 and dot) plus the graph (about 200 bytes a row).
 */
import type { Metric } from '../../types';
import type { UsearchIndex, UsearchModule } from './usearch-module';

/**
 * Below this many documents the exact scan is fast enough (a few milliseconds
 * at 384 dimensions, see BENCHMARKS.md) that an approximate answer is not worth it.
 */
export const HNSW_MIN_DOCUMENTS = 20_000;

/**
 * Links per node and candidate lists when adding and searching. usearch's usual
 * search list (64) found 0.91 of the exact top 10 on 100,000 clustered vectors of
 * 384 dimensions; 128 finds 0.98 (float32: 1.4 ms a search instead of 0.8).
 */
const CONNECTIVITY = 16;
const EXPANSION_ADD = 128;
/** Half floats (l2, dot): their hits are the answer, so the longer list. */
const EXPANSION_SEARCH = 128;
/**
 * 8-bit vectors (cosine), whose candidates are ranked exactly. On 100,000 x 384
 * (recall@10 with 30 / 40 candidates ranked): clustered, a list of 128: 0.981 / 0.986,
 * 96: 0.964 / 0.969, 80: 0.943 / 0.946; hash-embedded texts 0.99 from 64 on. A search
 * costs about as many cache misses as its list is long: 96 is 15 to 20 % faster than 128.
 */
const EXPANSION_SEARCH_RANKED = 96;
/**
 * Candidates asked for per hit wanted, on 8-bit vectors (cosine). Ranking one costs
 * a cache miss or so per 64 bytes of its vector (about a microsecond at 384
 * dimensions); 2 per hit lost 0.02 to 0.03 of recall on clustered vectors, 4 gained 0.005.
 */
const CANDIDATES_PER_HIT = 3;
/** Time spent adding rows per event-loop turn. */
const BUILD_SLICE_MS = 4;

/** What a memory backend asking for HNSW hands its collections. */
export interface HnswSettings {
  usearch: UsearchModule;
  /** The index is built and used from this many documents on (HNSW_MIN_DOCUMENTS unless a test says otherwise). */
  minDocuments: number;
}

/** What the index reads of the collection's rows. */
export interface IndexedRows {
  /** A copy of one row's vector. */
  vector(row: number): Float32Array;
}

export class HnswIndex {
  private readonly index: UsearchIndex;
  /** Rows whose entry is missing or holds an older vector, in the order they changed. */
  private readonly stale = new Set<number>();
  private building: NodeJS.Immediate | null = null;
  private paused = false;
  private readonly candidatesPerHit: number;

  constructor(usearch: UsearchModule, dimensions: number, metric: Metric, private readonly rows: IndexedRows) {
    // Cosine vectors are stored at unit length, so their inner product is the cosine.
    const unitVectors = metric === 'cosine';
    this.candidatesPerHit = unitVectors ? CANDIDATES_PER_HIT : 1;
    this.index = new usearch.Index({
      dimensions,
      metric: metric === 'l2' ? 'l2sq' : 'ip',
      quantization: unitVectors ? 'i8' : 'f16',
      connectivity: CONNECTIVITY,
      expansion_add: EXPANSION_ADD,
      expansion_search: unitVectors ? EXPANSION_SEARCH_RANKED : EXPANSION_SEARCH,
      multi: false,
    });
  }

  /** True when every row is in the index as it is now: only then may it answer. */
  get current(): boolean {
    return this.stale.size === 0;
  }

  /** Row `row` holds a new vector (a write, or the last row moved into it by a delete). */
  changed(row: number): void {
    this.stale.add(row);
    this.schedule();
  }

  /** Row `row` no longer exists (the rows shrank). */
  removed(row: number): void {
    this.stale.delete(row);
    const key = BigInt(row);
    if (this.index.contains(key)) this.index.remove(key);
  }

  /** Stop adding rows (the collection's store closed, or nobody uses it now); `resume` goes on. */
  pause(): void {
    this.paused = true;
    if (this.building) clearImmediate(this.building);
    this.building = null;
  }

  resume(): void {
    this.paused = false;
    this.schedule();
  }

  /**
   * The rows of the candidates for the `k` nearest (more than k on 8-bit vectors:
   * rank them exactly); fewer than k when the graph does not reach that many.
   */
  candidates(query: Float32Array, k: number): number[] {
    const { keys } = this.index.search(query, k * this.candidatesPerHit, 1);
    return Array.from(keys, Number);
  }

  private schedule(): void {
    if (this.building || this.paused || this.stale.size === 0) return;
    this.building = setImmediate(() => this.addSlice());
  }

  private addSlice(): void {
    this.building = null;
    const until = performance.now() + BUILD_SLICE_MS;
    for (const row of this.stale) {
      this.stale.delete(row);
      const key = BigInt(row);
      if (this.index.contains(key)) this.index.remove(key);
      // One thread: the machine's other cores are Node-RED's (and the exact scan's) too.
      this.index.add(key, this.rows.vector(row), 1);
      if (performance.now() >= until) break;
    }
    this.schedule();
  }
}
