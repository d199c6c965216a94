/**
 * Exact (flat) search: score every row, keep the top k. It runs in slices of
 * at most SLICE_BYTES of vectors (about a millisecond of scanning) and lets the
 * event loop run between slices, so a large collection never holds it for long;
 * a collection that fits in one slice is searched at once, without yielding.
 * The searches of larger collections take turns: one slice per event-loop turn
 * in all, first slices included, so ten concurrent searches do not hold the loop
 * ten times longer.
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

/** Searches waiting for their next slice, in turn order; one is resumed per event-loop turn. */
const waitingForSlice: Array<() => void> = [];
let turnScheduled = false;

function resumeOne(): void {
  turnScheduled = false;
  const resume = waitingForSlice.shift();
  if (waitingForSlice.length > 0) scheduleTurn();
  resume?.();
}

function scheduleTurn(): void {
  if (turnScheduled) return;
  turnScheduled = true;
  setImmediate(resumeOne);
}

/** Resolves on a later event-loop turn, when this search's turn comes. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => {
    waitingForSlice.push(resolve);
    scheduleTurn();
  });
}

/** Best first; on equal scores the earlier row first (see TopK). */
export async function exactSearch(rows: VectorRows, request: ExactSearchRequest): Promise<Array<{ score: number; row: number }>> {
  const { query, metric, rowCount, accept } = request;
  const best = new TopK(request.topK);
  const sliced = rowCount > rows.sliceRows;
  let full = best.full;
  let worst = best.worstScore;
  for (let start = 0; start < rowCount; start += rows.sliceRows) {
    if (sliced) {
      await nextTurn();
      request.checkContinue?.();
    }
    const count = Math.min(rows.sliceRows, rowCount - start);
    const scores = rows.scoreSlice(query, metric, start, count);
    for (let i = 0; i < count; i++) {
      const score = scores[i];
      // Most rows cannot get in: rows come in order, so an equal score loses too (the later row).
      if (full && score <= worst) continue;
      if (accept !== null && !accept(start + i)) continue;
      best.offer(score, start + i);
      full = best.full;
      worst = best.worstScore;
    }
  }
  return best.sorted();
}
