/**
 * Benchmark 4b: the memory backend's exact top-k over N vectors of 384
 * dimensions, through `Backend.query`, against the floor: a plain loop of dot
 * products over a Float32Array holding the same (normalised) vectors. One query
 * per repetition, the two back to back in alternating order; the ratio is the
 * median of the pairs' ratios (search / floor).
 */
import { MemoryBackend } from '../lib/backends/memory';
import { compareInterleaved } from './measure';

export interface SearchOptions {
  vectors: number;
  dimensions: number;
  queries: number;
  repetitions: number;
  topK: number;
}

export interface SearchResult {
  vectors: number;
  dimensions: number;
  topK: number;
  searchMsPerQuery: number;
  floorMsPerQuery: number;
  ratio: number;
  /** Each repetition's time (one query), to see the spread. */
  searchRunsMs: number[];
  floorRunsMs: number[];
}

/** Deterministic pseudo-random numbers (mulberry32), so every run searches the same data. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function unitVector(next: () => number, dimensions: number): Float32Array {
  const v = new Float32Array(dimensions);
  let sum = 0;
  for (let i = 0; i < dimensions; i++) {
    v[i] = next() * 2 - 1;
    sum += v[i] * v[i];
  }
  const norm = Math.sqrt(sum);
  for (let i = 0; i < dimensions; i++) v[i] /= norm;
  return v;
}

/** The floor: every dot product, nothing else. */
function dotProducts(data: Float32Array, query: Float32Array, scores: Float32Array): void {
  const dimensions = query.length;
  for (let row = 0, offset = 0; row < scores.length; row++, offset += dimensions) {
    let sum = 0;
    for (let i = 0; i < dimensions; i++) sum += query[i] * data[offset + i];
    scores[row] = sum;
  }
}

export async function run(options: SearchOptions): Promise<SearchResult> {
  const { vectors: n, dimensions } = options;
  const next = random(42);
  const data = new Float32Array(n * dimensions);
  const backend = new MemoryBackend({ dataDir: null, indexingRate: 1e9, indexingDelay: 0 });
  try {
    await backend.ensureCollection('search', { dimensions, metric: 'cosine' });
    for (let start = 0; start < n; start += 10_000) {
      const docs = [];
      for (let row = start; row < Math.min(n, start + 10_000); row++) {
        const vector = unitVector(next, dimensions);
        data.set(vector, row * dimensions);
        docs.push({ id: `v${row}`, vector });
      }
      await backend.upsert('search', docs);
    }
    const queries = Array.from({ length: options.queries }, () => unitVector(next, dimensions));
    const scores = new Float32Array(n);
    // One query per repetition, the same one on both sides of a pair.
    const search = async (rep: number) => {
      await backend.query('search', { vector: queries[rep % queries.length], topK: options.topK });
    };
    const floor = async (rep: number) => {
      dotProducts(data, queries[rep % queries.length], scores);
    };
    for (let rep = 0; rep < queries.length; rep++) {
      await search(rep); // warm-up
      await floor(rep);
    }
    const compared = await compareInterleaved(options.repetitions, search, floor);
    return {
      vectors: n,
      dimensions,
      topK: options.topK,
      searchMsPerQuery: compared.aMs,
      floorMsPerQuery: compared.bMs,
      ratio: compared.ratio,
      searchRunsMs: compared.aRuns,
      floorRunsMs: compared.bRuns,
    };
  } finally {
    await backend.close();
  }
}
