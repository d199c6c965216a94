/** Deterministic vector data sets for the search benchmarks (bench/search.ts, bench/hnsw.ts). */

/** Deterministic pseudo-random numbers in [0, 1) (mulberry32), so every run searches the same data. */
export function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function unit(v: Float32Array): Float32Array {
  let sum = 0;
  for (let i = 0; i < v.length; i++) sum += v[i] * v[i];
  const norm = Math.sqrt(sum);
  for (let i = 0; i < v.length; i++) v[i] /= norm;
  return v;
}

/** Vectors drawn from a data set: uniform in the cube, or clustered. */
export type Draw = () => Float32Array;

export function uniform(next: () => number, dimensions: number): Draw {
  return () => {
    const v = new Float32Array(dimensions);
    for (let i = 0; i < dimensions; i++) v[i] = next() * 2 - 1;
    return unit(v);
  };
}

/**
 * Like text embeddings: every vector shares one direction (their mean is far
 * from zero), belongs to one of 64 topics (a centroid), and has its own noise.
 */
export function clustered(next: () => number, dimensions: number): Draw {
  const shared = uniform(next, dimensions)();
  const centroids = Array.from({ length: 64 }, uniform(next, dimensions));
  const noise = 1.5 / Math.sqrt(dimensions);
  return () => {
    const centroid = centroids[Math.floor(next() * centroids.length)];
    const v = new Float32Array(dimensions);
    for (let i = 0; i < dimensions; i++) v[i] = 0.6 * shared[i] + centroid[i] + noise * (next() * 2 - 1);
    return unit(v);
  };
}
