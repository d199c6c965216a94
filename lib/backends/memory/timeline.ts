/**
 * The memory backend's simulated indexing: an exact function of time and of the
 * acknowledged writes, so that after a restart a collection is exactly as far
 * along as it would have been without the restart.
 */

/** One acknowledged write, as far as indexing is concerned. */
export interface IndexingWrite {
  /** Epoch ms of the write. */
  at: number;
  /** Documents to (re)index. */
  count: number;
  /** Documents indexed per second. */
  rate: number;
  /** Seconds before indexing of this write may start. */
  delay: number;
  /** Simulated failure: indexing fails with this reason when this write would start. */
  fail?: string;
}

interface ScheduledWrite extends IndexingWrite {
  start: number;
  /** Infinity for a failing write: it never finishes. */
  finish: number;
}

export interface IndexingState {
  /** Documents written but not yet searchable through the (simulated) index. */
  pendingDocs: number;
  /** True while some write is not fully indexed (and indexing has not failed). */
  busy: boolean;
  /** When the last pending write will be indexed (epoch ms), if known. */
  finishAt: number | null;
  failure: string | null;
}

/**
 * Writes are indexed one after another: write i starts at
 * `max(at_i + delay_i, finish_{i-1})` and takes `count_i / rate_i` seconds. A
 * failing write makes the indexer fail for good when it would start; it and every
 * later write then stay unindexed. Fully indexed writes are folded into
 * `settledUntil`, so the list only holds what is still pending.
 */
export class IndexingTimeline {
  /** When the writes folded away finished indexing (0: none yet; all times are epoch ms). */
  private settledUntil = 0;
  private pending: ScheduledWrite[] = [];
  private failure: { reason: string; since: number; stuckDocs: number } | null = null;

  add(write: IndexingWrite): void {
    this.settle(write.at);
    if (this.failure) {
      this.failure.stuckDocs += write.count;
      return;
    }
    const last = this.pending[this.pending.length - 1];
    const start = Math.max(write.at + write.delay * 1000, last ? last.finish : this.settledUntil);
    const finish = write.fail !== undefined ? Infinity : start + (write.count / write.rate) * 1000;
    this.pending.push({ ...write, start, finish });
  }

  observe(t: number): IndexingState {
    this.settle(t);
    if (this.failure) {
      return { pendingDocs: this.failure.stuckDocs, busy: false, finishAt: null, failure: this.failure.reason };
    }
    let pendingDocs = 0;
    for (const write of this.pending) pendingDocs += write.count - indexedSoFar(write, t);
    const last = this.pending[this.pending.length - 1];
    const finishAt = last && Number.isFinite(last.finish) ? last.finish : null;
    return { pendingDocs, busy: this.pending.length > 0, finishAt, failure: null };
  }

  /**
   * Writes that rebuild this timeline exactly, as seen from time t on (for log
   * compaction). The first one is an empty write that restores `settledUntil`:
   * the compacted log attaches every live document to it.
   */
  toWrites(t: number): IndexingWrite[] {
    this.settle(t);
    const writes: IndexingWrite[] = [{ at: this.settledUntil, count: 0, rate: 1, delay: 0 }];
    if (this.failure) {
      const { reason, since, stuckDocs } = this.failure;
      writes.push({ at: since, count: stuckDocs, rate: 1, delay: 0, fail: reason });
    } else {
      for (const { at, count, rate, delay, fail } of this.pending) {
        writes.push(fail === undefined ? { at, count, rate, delay } : { at, count, rate, delay, fail });
      }
    }
    return writes;
  }

  /** Fold away writes fully indexed at time t (see indexedSoFar); turn a started failing write into a failure. */
  private settle(t: number): void {
    while (this.pending.length > 0) {
      const first = this.pending[0];
      if (first.fail !== undefined) {
        if (first.start > t) return;
        const stuckDocs = this.pending.reduce((sum, w) => sum + w.count, 0);
        this.failure = { reason: first.fail, since: first.start, stuckDocs };
        this.pending = [];
        return;
      }
      // Done when every document counts as indexed - the very test `indexedSoFar` makes -
      // not only once `finish` is reached: float arithmetic may put `finish` a hair after
      // the instant the last document counts (21 / 0.7 s = 30.000000000000004 s), which
      // would read "indexing 21/21".
      if (first.finish > t && indexedSoFar(first, t) < first.count) return;
      this.settledUntil = first.finish;
      this.pending.shift();
    }
  }
}

function indexedSoFar(write: ScheduledWrite, t: number): number {
  if (t <= write.start) return 0;
  // The epsilon absorbs floating-point noise such as 0.1 * 30 = 2.9999999999999996.
  return Math.min(write.count, Math.floor(((t - write.start) * write.rate) / 1000 + 1e-9));
}
