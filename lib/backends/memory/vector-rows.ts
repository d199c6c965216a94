/**
 * The vectors of one collection: float32 rows packed in one block of
 * WebAssembly memory, so the SIMD kernel (./scan-kernel.ts) scans them in place.
 *
 * Layout: the query (float64), the scores of one slice (float64), then the rows,
 * `dimensions` float32 each. Capacity doubles as rows are added; the memory then
 * grows in place, and any view taken on it before is no longer valid (so none is
 * handed out: `vector()` returns a copy).
 */
import { VectorStoreError } from '../../errors';
import type { Metric } from '../../types';
import { scanKernel, type ScanKernel } from './scan-kernel';

const PAGE_BYTES = 65536;
/** WebAssembly memory (32-bit addresses) holds at most 4 GiB. */
const MAX_PAGES = 65536;
const INITIAL_CAPACITY_ROWS = 16;
/** Rows scored by one call of `scoreSlice`: at most this many bytes of vectors... */
export const SLICE_BYTES = 16 * 1024 * 1024;
/** ...and at most this many rows (the scores buffer). */
const MAX_SLICE_ROWS = 16384;

const align16 = (bytes: number): number => Math.ceil(bytes / 16) * 16;

export class VectorRows {
  /** Rows scored per slice: as many as fit in SLICE_BYTES (at least one). */
  readonly sliceRows: number;
  private readonly memory: WebAssembly.Memory;
  private readonly kernel: ScanKernel;
  private readonly queryAt = 0;
  private readonly scoresAt: number;
  private readonly rowsAt: number;
  private readonly rowBytes: number;
  private capacity = INITIAL_CAPACITY_ROWS;
  /** Views on the memory's current buffer (replaced when the memory grows). */
  private floats!: Float32Array;
  private query!: Float64Array;
  private scores!: Float64Array;

  constructor(readonly dimensions: number) {
    this.rowBytes = dimensions * 4;
    this.sliceRows = Math.max(1, Math.min(MAX_SLICE_ROWS, Math.floor(SLICE_BYTES / this.rowBytes)));
    this.scoresAt = align16(this.queryAt + dimensions * 8);
    this.rowsAt = align16(this.scoresAt + this.sliceRows * 8);
    this.memory = new WebAssembly.Memory({ initial: Math.ceil(this.bytesFor(this.capacity) / PAGE_BYTES) });
    this.kernel = scanKernel(this.memory);
    this.refreshViews();
  }

  /** Make room for `rows` rows (doubling the capacity, up to the most memory holds); the rows already stored stay. */
  ensureCapacity(rows: number): void {
    if (rows <= this.capacity) return;
    this.checkRoom(rows);
    const maxRows = this.maxRows();
    let capacity = this.capacity;
    while (capacity < rows) capacity *= 2;
    capacity = Math.min(capacity, maxRows);
    const missing = Math.ceil(this.bytesFor(capacity) / PAGE_BYTES) - this.memory.buffer.byteLength / PAGE_BYTES;
    if (missing > 0) {
      this.memory.grow(missing);
      this.refreshViews();
    }
    this.capacity = capacity;
  }

  /** Throws INVALID_INPUT if `rows` rows would not fit (nothing is allocated). */
  checkRoom(rows: number): void {
    const maxRows = this.maxRows();
    if (rows <= maxRows) return;
    throw new VectorStoreError(
      'INVALID_INPUT',
      `The memory store keeps at most 4 GiB of vectors per collection (${maxRows.toLocaleString('en-US')} ` +
        `vectors of ${this.dimensions} dimensions): use a database backend for a collection this size.`,
    );
  }

  set(row: number, vector: Float32Array): void {
    this.floats.set(vector, row * this.dimensions);
  }

  /** Copy row `from` over row `to`. */
  move(from: number, to: number): void {
    const d = this.dimensions;
    this.floats.copyWithin(to * d, from * d, (from + 1) * d);
  }

  /** A copy of one row. */
  vector(row: number): Float32Array {
    const offset = row * this.dimensions;
    return this.floats.slice(offset, offset + this.dimensions);
  }

  /**
   * Scores of rows [start, start + count) against `query`, higher is better:
   * cosine (vectors are unit length) or dot product, or minus the L2 distance.
   * `count` is at most `sliceRows`. The array returned is overwritten by the next call.
   */
  scoreSlice(query: Float32Array, metric: Metric, start: number, count: number): Float64Array {
    if (count > this.sliceRows) throw new RangeError(`at most ${this.sliceRows} rows per slice`);
    // The query is written again for every slice: searches interleave between slices.
    for (let i = 0; i < query.length; i++) this.query[i] = query[i];
    const score = metric === 'l2' ? this.kernel.squaredDistance : this.kernel.dot;
    score(this.queryAt, this.rowsAt + start * this.rowBytes, count, this.dimensions, this.scoresAt);
    const scores = this.scores;
    if (metric === 'l2') {
      for (let i = 0; i < count; i++) scores[i] = -Math.sqrt(scores[i]);
    } else if (metric === 'cosine') {
      // Rounding can push a unit-vector dot product a hair past 1.
      for (let i = 0; i < count; i++) scores[i] = Math.min(1, Math.max(-1, scores[i]));
    }
    return scores;
  }

  private maxRows(): number {
    return Math.floor((MAX_PAGES * PAGE_BYTES - this.rowsAt) / this.rowBytes);
  }

  private bytesFor(rows: number): number {
    return this.rowsAt + rows * this.rowBytes;
  }

  private refreshViews(): void {
    const buffer = this.memory.buffer;
    this.query = new Float64Array(buffer, this.queryAt, this.dimensions);
    this.scores = new Float64Array(buffer, this.scoresAt, this.sliceRows);
    this.floats = new Float32Array(buffer, this.rowsAt, (buffer.byteLength - this.rowsAt) >> 2);
  }
}
