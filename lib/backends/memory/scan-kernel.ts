/**
 * The inner loop of the exact search, in WebAssembly with 128-bit SIMD: the
 * score of every row of a block of vectors against one query, written to an
 * array of float64. Plain JavaScript cannot use SIMD and tops out at about a
 * tenth of the memory bandwidth; this loop reaches most of it.
 *
 * Arithmetic: each float32 element is widened to float64 before it is
 * multiplied, and the sums are kept in float64 (8 partial sums per row, added
 * together at the end), so a score differs from a plain sequential float64 sum
 * only in its last bits, and equal vectors always get equal scores.
 *
 * The module is assembled here from a few named instructions (below), so it can
 * be read like its text format; there is no build step and no dependency.
 *
 * Memory layout (the caller's, see ./vector-rows.ts): the query as float64, the
 * scores as float64, then the rows (float32, `dimensions` per row, packed).
 */

// ---- a minimal WebAssembly encoder: just what the kernel uses ----

/** Unsigned LEB128. */
function u32(value: number): number[] {
  const bytes: number[] = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    bytes.push(byte);
  } while (value !== 0);
  return bytes;
}

/** Signed LEB128 (for i32.const). */
function s32(value: number): number[] {
  const bytes: number[] = [];
  for (;;) {
    const byte = value & 0x7f;
    value >>= 7;
    const done = (value === 0 && (byte & 0x40) === 0) || (value === -1 && (byte & 0x40) !== 0);
    bytes.push(done ? byte : byte | 0x80);
    if (done) return bytes;
  }
}

const vec = (items: number[][]): number[] => [...u32(items.length), ...items.flat()];
const section = (id: number, body: number[]): number[] => [id, ...u32(body.length), ...body];
const utf8 = (text: string): number[] => vec([...Buffer.from(text, 'utf8')].map((b) => [b]));

const I32 = 0x7f;
const F64 = 0x7c;
const V128 = 0x7b;
const simd = (op: number, ...rest: number[]): number[] => [0xfd, ...u32(op), ...rest];
/** memarg: alignment (log2 bytes) and a constant offset. */
const mem = (align: number, offset: number): number[] => [...u32(align), ...u32(offset)];

const op = {
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  end: [0x0b],
  br: (depth: number) => [0x0c, ...u32(depth)],
  brIf: (depth: number) => [0x0d, ...u32(depth)],
  get: (local: number) => [0x20, ...u32(local)],
  set: (local: number) => [0x21, ...u32(local)],
  tee: (local: number) => [0x22, ...u32(local)],
  i32Const: (value: number) => [0x41, ...s32(value)],
  i32Add: [0x6a],
  i32Sub: [0x6b],
  i32Shl: [0x74],
  i32And: [0x71],
  i32GeU: [0x4f],
  i32Eqz: [0x45],
  f32Load: (offset: number) => [0x2a, ...mem(2, offset)],
  f64Load: (offset: number) => [0x2b, ...mem(3, offset)],
  f64Store: (offset: number) => [0x39, ...mem(3, offset)],
  f64Add: [0xa0],
  f64Sub: [0xa1],
  f64Mul: [0xa2],
  f64PromoteF32: [0xbb],
  v128Load: (offset: number) => simd(0x00, ...mem(4, offset)),
  /** Two float32 (8 bytes) into the low half of a v128. */
  v128Load64Zero: (offset: number) => simd(0x5d, ...mem(3, offset)),
  v128Zero: simd(0x0c, ...new Array<number>(16).fill(0)),
  f64x2ExtractLane: (lane: number) => simd(0x21, lane),
  f64x2PromoteLowF32x4: simd(0x5f),
  f64x2Add: simd(0xf0),
  f64x2Sub: simd(0xf1),
  f64x2Mul: simd(0xf2),
};

// ---- the kernel ----

// Parameters and locals of both functions.
const QUERY = 0; // byte address of the query (float64 x dimensions)
const ROW = 1; // byte address of the first row (float32 x dimensions per row)
const COUNT = 2; // rows to score
const DIMENSIONS = 3;
const OUT = 4; // byte address of the scores (float64 x count)
const I = 5; // byte offset of the element in the row
const ROW_BYTES = 6;
const UNROLLED_BYTES = 7; // the part of a row done 8 elements at a time
const ACC = [8, 9, 10, 11]; // four v128 partial sums of two float64 each
const DIFFERENCE = 12; // v128: row - query, for squaredDistance
const SUM = 13; // f64: the row's score
const SCALAR_DIFFERENCE = 14; // f64

type Combine = 'dot' | 'squaredDistance';

/**
 * acc += f(row[i..i+2], query[i..i+2]) for two elements, as float64:
 * dot: row * query; squaredDistance: (row - query)^2.
 */
function twoElements(combine: Combine, acc: number, elementOffset: number): number[] {
  const row = [...op.get(ROW), ...op.get(I), ...op.i32Add, ...op.v128Load64Zero(elementOffset * 4), ...op.f64x2PromoteLowF32x4];
  const query = [...op.get(QUERY), ...op.get(I), ...op.i32Const(1), ...op.i32Shl, ...op.i32Add, ...op.v128Load(elementOffset * 8)];
  const term =
    combine === 'dot'
      ? [...row, ...query, ...op.f64x2Mul]
      : [...row, ...query, ...op.f64x2Sub, ...op.tee(DIFFERENCE), ...op.get(DIFFERENCE), ...op.f64x2Mul];
  return [...op.get(acc), ...term, ...op.f64x2Add, ...op.set(acc)];
}

/** The same for one element (the rest of a row whose size is not a multiple of 8). */
function oneElement(combine: Combine): number[] {
  const row = [...op.get(ROW), ...op.get(I), ...op.i32Add, ...op.f32Load(0), ...op.f64PromoteF32];
  const query = [...op.get(QUERY), ...op.get(I), ...op.i32Const(1), ...op.i32Shl, ...op.i32Add, ...op.f64Load(0)];
  const term =
    combine === 'dot'
      ? [...row, ...query, ...op.f64Mul]
      : [...row, ...query, ...op.f64Sub, ...op.tee(SCALAR_DIFFERENCE), ...op.get(SCALAR_DIFFERENCE), ...op.f64Mul];
  return [...op.get(SUM), ...term, ...op.f64Add, ...op.set(SUM)];
}

/** scores(query, row, count, dimensions, out): out[r] = combine summed over row r, for r < count. */
function scoresFunction(combine: Combine): number[] {
  const body = [
    // rowBytes = dimensions * 4; unrolledBytes = (dimensions & ~7) * 4
    ...op.get(DIMENSIONS), ...op.i32Const(2), ...op.i32Shl, ...op.set(ROW_BYTES),
    ...op.get(DIMENSIONS), ...op.i32Const(-8), ...op.i32And, ...op.i32Const(2), ...op.i32Shl, ...op.set(UNROLLED_BYTES),
    ...op.block,
    ...op.get(COUNT), ...op.i32Eqz, ...op.brIf(0),
    ...op.loop, // one row
    ...ACC.flatMap((acc) => [...op.v128Zero, ...op.set(acc)]),
    ...op.i32Const(0), ...op.set(I),
    ...op.block,
    ...op.loop, // 8 elements at a time, into four independent sums
    ...op.get(I), ...op.get(UNROLLED_BYTES), ...op.i32GeU, ...op.brIf(1),
    ...ACC.flatMap((acc, k) => twoElements(combine, acc, 2 * k)),
    ...op.get(I), ...op.i32Const(32), ...op.i32Add, ...op.set(I),
    ...op.br(0),
    ...op.end,
    ...op.end,
    // sum = both lanes of (acc0 + acc1) + (acc2 + acc3)
    ...op.get(ACC[0]), ...op.get(ACC[1]), ...op.f64x2Add, ...op.get(ACC[2]), ...op.get(ACC[3]), ...op.f64x2Add, ...op.f64x2Add, ...op.set(ACC[0]),
    ...op.get(ACC[0]), ...op.f64x2ExtractLane(0), ...op.get(ACC[0]), ...op.f64x2ExtractLane(1), ...op.f64Add, ...op.set(SUM),
    ...op.block,
    ...op.loop, // the remaining elements one at a time
    ...op.get(I), ...op.get(ROW_BYTES), ...op.i32GeU, ...op.brIf(1),
    ...oneElement(combine),
    ...op.get(I), ...op.i32Const(4), ...op.i32Add, ...op.set(I),
    ...op.br(0),
    ...op.end,
    ...op.end,
    ...op.get(OUT), ...op.get(SUM), ...op.f64Store(0),
    ...op.get(OUT), ...op.i32Const(8), ...op.i32Add, ...op.set(OUT),
    ...op.get(ROW), ...op.get(ROW_BYTES), ...op.i32Add, ...op.set(ROW),
    ...op.get(COUNT), ...op.i32Const(1), ...op.i32Sub, ...op.set(COUNT),
    ...op.get(COUNT), ...op.brIf(0),
    ...op.end,
    ...op.end,
    ...op.end, // function
  ];
  // Locals after the 5 parameters: 3 i32, 5 v128, 2 f64 (numbered as above).
  const locals = vec([[...u32(3), I32], [...u32(5), V128], [...u32(2), F64]]);
  const code = [...locals, ...body];
  return [...u32(code.length), ...code];
}

function assemble(): Uint8Array<ArrayBuffer> {
  const scoresType = [0x60, ...vec([[I32], [I32], [I32], [I32], [I32]]), ...vec([])];
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
    ...section(1, vec([scoresType])), // types
    ...section(2, vec([[...utf8('env'), ...utf8('memory'), 0x02, 0x00, 0x01]])), // import env.memory, at least 1 page
    ...section(3, vec([[0x00], [0x00]])), // two functions of type 0
    ...section(7, vec([[...utf8('dot'), 0x00, 0x00], [...utf8('squaredDistance'), 0x00, 0x01]])), // exports
    ...section(10, vec([scoresFunction('dot'), scoresFunction('squaredDistance')])), // code
  ];
  return new Uint8Array(bytes);
}

/** Scores `count` rows from byte address `row` against the query at `query`, into float64s at `out`. */
export type ScoresFunction = (query: number, row: number, count: number, dimensions: number, out: number) => void;

export interface ScanKernel {
  /** Dot product of each row with the query. */
  dot: ScoresFunction;
  /** Squared L2 distance of each row to the query. */
  squaredDistance: ScoresFunction;
}

/**
 * The same scores in plain JavaScript, for collections too small to be worth a
 * WebAssembly memory of their own (V8 reserves address space for each, and a
 * process runs out of it after some thousands): the same partial sums, added in
 * the same order, so a score is the same to the bit whichever computes it.
 * `rows` holds `dimensions` floats per row; scores rows [start, start + count).
 */
export function scoresInJavaScript(
  combine: 'dot' | 'squaredDistance',
  query: Float64Array,
  rows: Float32Array,
  start: number,
  count: number,
  out: Float64Array,
): void {
  const dimensions = query.length;
  const unrolled = dimensions & ~7;
  const squared = combine === 'squaredDistance';
  for (let r = 0, offset = start * dimensions; r < count; r++, offset += dimensions) {
    // p[2k + lane]: the lanes of the kernel's four v128 sums.
    let p0 = 0, p1 = 0, p2 = 0, p3 = 0, p4 = 0, p5 = 0, p6 = 0, p7 = 0;
    let i = 0;
    if (squared) {
      for (; i < unrolled; i += 8) {
        const o = offset + i;
        const d0 = rows[o] - query[i], d1 = rows[o + 1] - query[i + 1], d2 = rows[o + 2] - query[i + 2], d3 = rows[o + 3] - query[i + 3];
        const d4 = rows[o + 4] - query[i + 4], d5 = rows[o + 5] - query[i + 5], d6 = rows[o + 6] - query[i + 6], d7 = rows[o + 7] - query[i + 7];
        p0 += d0 * d0; p1 += d1 * d1; p2 += d2 * d2; p3 += d3 * d3; p4 += d4 * d4; p5 += d5 * d5; p6 += d6 * d6; p7 += d7 * d7;
      }
    } else {
      for (; i < unrolled; i += 8) {
        const o = offset + i;
        p0 += rows[o] * query[i]; p1 += rows[o + 1] * query[i + 1]; p2 += rows[o + 2] * query[i + 2]; p3 += rows[o + 3] * query[i + 3];
        p4 += rows[o + 4] * query[i + 4]; p5 += rows[o + 5] * query[i + 5]; p6 += rows[o + 6] * query[i + 6]; p7 += rows[o + 7] * query[i + 7];
      }
    }
    // (acc0 + acc1) + (acc2 + acc3), lane by lane, then lane 0 + lane 1.
    let sum = ((p0 + p2) + (p4 + p6)) + ((p1 + p3) + (p5 + p7));
    for (; i < dimensions; i++) {
      const d = squared ? rows[offset + i] - query[i] : 0;
      sum += squared ? d * d : rows[offset + i] * query[i];
    }
    out[r] = sum;
  }
}

let compiled: WebAssembly.Module | null = null;

/** The kernel working on `memory` (compiled once per process, instantiated per memory). */
export function scanKernel(memory: WebAssembly.Memory): ScanKernel {
  compiled ??= new WebAssembly.Module(assemble());
  const { exports } = new WebAssembly.Instance(compiled, { env: { memory } });
  return { dot: exports.dot as ScoresFunction, squaredDistance: exports.squaredDistance as ScoresFunction };
}
