/**
 * The vectors of one collection: float32 rows, `dimensions` each, packed.
 *
 * A small collection keeps them in a plain Float32Array, scored in JavaScript.
 * Past WASM_FROM_BYTES they move (once) into a WebAssembly memory of their own,
 * scored in place by the SIMD kernel: V8 reserves address space for each such
 * memory, and a process runs out of it after some thousands, so small
 * collections do without. Both compute the same scores, to the bit
 * (./scan-kernel.ts).
 *
 * WebAssembly layout: the query (float64), the scores of one slice (float64),
 * then the rows. Capacity doubles as rows are added; the memory then grows in
 * place, and any view taken on it before is no longer valid (so none is handed
 * out: `vector()` returns a copy).
 */
import { VectorStoreError } from '../../errors';
import type { Metric } from '../../types';
import { scanKernel, scoresInJavaScript, type ScanKernel } from './scan-kernel';

const PAGE_BYTES = 65536;
/** WebAssembly memory (32-bit addresses) holds at most 4 GiB. */
const MAX_PAGES = 65536;
const INITIAL_CAPACITY_ROWS = 16;
/** Rows scored by one call of `scoreSlice`: at most this many bytes of vectors... */
export const SLICE_BYTES = 16 * 1024 * 1024;
/** ...and at most this many rows (the scores buffer). */
const MAX_SLICE_ROWS = 16384;
/** Vectors move to WebAssembly memory once their capacity passes this (JavaScript scans 1 MiB in well under a millisecond). */
export const WASM_FROM_BYTES = 1024 * 1024;

const align16 = (bytes: number): number => Math.ceil(bytes / 16) * 16;

/** Node without WebAssembly (`--jitless`): every collection stays in a plain array, scored in JavaScript. */
const HAS_WEBASSEMBLY = typeof WebAssembly === 'object';

/** The WebAssembly side: the memory, the kernel on it and views on its current buffer. */
interface WasmRows {
  memory: WebAssembly.Memory;
  kernel: ScanKernel;
  query: Float64Array;
  scores: Float64Array;
}

export class VectorRows {
  /** Rows scored per slice: as many as fit in SLICE_BYTES (at least one). */
  readonly sliceRows: number;
  private readonly rowBytes: number;
  // Byte addresses in the WebAssembly memory.
  private readonly queryAt = 0;
  private readonly scoresAt: number;
  private readonly rowsAt: number;
  private capacity = INITIAL_CAPACITY_ROWS;
  /** The rows: a plain array, or a view on the WebAssembly memory (replaced when it grows). */
  private floats: Float32Array;
  private wasm: WasmRows | null = null;
  /** Scratch for the JavaScript side. */
  private query: Float64Array;
  private scores: Float64Array | null = null;
  private oneScore: Float64Array | null = null;

  constructor(readonly dimensions: number) {
    this.rowBytes = dimensions * 4;
    this.sliceRows = Math.max(1, Math.min(MAX_SLICE_ROWS, Math.floor(SLICE_BYTES / this.rowBytes)));
    this.scoresAt = align16(this.queryAt + dimensions * 8);
    this.rowsAt = align16(this.scoresAt + this.sliceRows * 8);
    this.floats = new Float32Array(this.capacity * dimensions);
    this.query = new Float64Array(dimensions);
  }

  /** Whether the rows are in WebAssembly memory (scored with SIMD). */
  get inWebAssembly(): boolean {
    return this.wasm !== null;
  }

  /** Make room for `rows` rows (doubling the capacity, up to the most memory holds); the rows already stored stay. */
  ensureCapacity(rows: number): void {
    if (rows <= this.capacity) return;
    this.checkRoom(rows);
    let capacity = this.capacity;
    while (capacity < rows) capacity *= 2;
    capacity = Math.min(capacity, this.maxRows());
    if (this.wasm) this.growMemory(capacity);
    else if (HAS_WEBASSEMBLY && capacity * this.rowBytes > WASM_FROM_BYTES) this.moveToWebAssembly(capacity);
    else {
      const grown = new Float32Array(capacity * this.dimensions);
      grown.set(this.floats);
      this.floats = grown;
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
    const combine = metric === 'l2' ? 'squaredDistance' : 'dot';
    let scores: Float64Array;
    if (this.wasm) {
      // The query is written again for every slice: searches interleave between slices.
      this.wasm.query.set(query);
      this.wasm.kernel[combine](this.queryAt, this.rowsAt + start * this.rowBytes, count, this.dimensions, this.scoresAt);
      scores = this.wasm.scores;
    } else {
      this.query.set(query);
      scores = this.scores ??= new Float64Array(this.sliceRows);
      scoresInJavaScript(combine, this.query, this.floats, start, count, scores);
    }
    this.finishScores(metric, scores, count);
    return scores;
  }

  /**
   * Scores of the rows `rows[0..count)` (any rows, in any order) against `query`,
   * as `scoreSlice` gives them, to the bit; `count` is at most `sliceRows`. For
   * ranking an index's candidates: the query is written once, not once per row.
   * The array returned is overwritten by the next call (of either method).
   */
  scoreRows(query: Float32Array, metric: Metric, rows: ArrayLike<number>, count: number): Float64Array {
    if (count > this.sliceRows) throw new RangeError(`at most ${this.sliceRows} rows per call`);
    const combine = metric === 'l2' ? 'squaredDistance' : 'dot';
    let scores: Float64Array;
    if (this.wasm) {
      this.wasm.query.set(query);
      const score = this.wasm.kernel[combine];
      for (let i = 0; i < count; i++) score(this.queryAt, this.rowsAt + rows[i] * this.rowBytes, 1, this.dimensions, this.scoresAt + i * 8);
      scores = this.wasm.scores;
    } else {
      this.query.set(query);
      scores = this.scores ??= new Float64Array(this.sliceRows);
      const one = this.oneScore ??= new Float64Array(1);
      for (let i = 0; i < count; i++) {
        scoresInJavaScript(combine, this.query, this.floats, rows[i], 1, one);
        scores[i] = one[0];
      }
    }
    this.finishScores(metric, scores, count);
    return scores;
  }

  /** Raw kernel output to scores, higher is better (see `scoreSlice`). */
  private finishScores(metric: Metric, scores: Float64Array, count: number): void {
    if (metric === 'l2') {
      for (let i = 0; i < count; i++) scores[i] = -Math.sqrt(scores[i]);
    } else if (metric === 'cosine') {
      // Rounding can push a unit-vector dot product a hair past 1.
      for (let i = 0; i < count; i++) scores[i] = Math.min(1, Math.max(-1, scores[i]));
    }
  }

  private moveToWebAssembly(capacity: number): void {
    const memory = new WebAssembly.Memory({ initial: this.pagesFor(capacity) });
    const rows = this.floats;
    this.wasm = this.viewsOn(memory, scanKernel(memory));
    this.floats.set(rows);
    this.scores = null; // the JavaScript side's
  }

  private growMemory(capacity: number): void {
    const wasm = this.wasm as WasmRows;
    const missing = this.pagesFor(capacity) - wasm.memory.buffer.byteLength / PAGE_BYTES;
    if (missing > 0) {
      wasm.memory.grow(missing);
      this.wasm = this.viewsOn(wasm.memory, wasm.kernel);
    }
  }

  private maxRows(): number {
    return Math.floor((MAX_PAGES * PAGE_BYTES - this.rowsAt) / this.rowBytes);
  }

  private pagesFor(rows: number): number {
    return Math.ceil((this.rowsAt + rows * this.rowBytes) / PAGE_BYTES);
  }

  /** Views on the memory's current buffer (a grown memory has a new one); `floats` becomes the rows' view. */
  private viewsOn(memory: WebAssembly.Memory, kernel: ScanKernel): WasmRows {
    const buffer = memory.buffer;
    this.floats = new Float32Array(buffer, this.rowsAt, (buffer.byteLength - this.rowsAt) >> 2);
    return { memory, kernel, query: new Float64Array(buffer, this.queryAt, this.dimensions), scores: new Float64Array(buffer, this.scoresAt, this.sliceRows) };
  }
}
