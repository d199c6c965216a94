/**
 * Exact (flat) search: score every row, keep the top k. It runs in slices of
 * at most SLICE_BYTES of vectors (about a millisecond of scanning) and lets the
 * event loop run between slices, so a large collection never holds it for long;
 * a collection that fits in one slice is searched at once, without yielding.
 *
 * The rows must not change while a search is in flight: the collection's gate
 * (./rows-gate.ts) makes writes wait for it.
 */
import type { Metric } from '../../types';
import { TopK } from './search';
import type { VectorRows } from './vector-rows';

export interface ExactSearchRequest {
  query: Float32Array;
  metric: Metric;
  topK: number;
  /** Rows [0, rowCount) are searched. */
  rowCount: number;
  /** Which rows may be returned (a metadata filter); null for all. */
  accept: ((row: number) => boolean) | null;
  /** Called between slices: throws to stop the search (e.g. its backend was closed). */
  checkContinue?: () => void;
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Best first; on equal scores the earlier row first (see TopK). */
export async function exactSearch(rows: VectorRows, request: ExactSearchRequest): Promise<Array<{ score: number; row: number }>> {
  const { query, metric, rowCount, accept } = request;
  const best = new TopK(request.topK);
  for (let start = 0; start < rowCount; start += rows.sliceRows) {
    if (start > 0) {
      await nextTurn();
      request.checkContinue?.();
    }
    const count = Math.min(rows.sliceRows, rowCount - start);
    const scores = rows.scoreSlice(query, metric, start, count);
    for (let i = 0; i < count; i++) {
      if (accept === null || accept(start + i)) best.offer(scores[i], start + i);
    }
  }
  return best.sorted();
}
