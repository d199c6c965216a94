/**
 * The background work that keeps a table's vector index complete.
 *
 * LanceDB indexes nothing by itself: `createIndex` builds an index over the rows
 * present, and rows added later stay "unindexed" (still found, by a flat scan
 * beside the index) until `optimize()` folds them in. So after writes, one
 * `IndexMaintenance` per table:
 * - creates the vector index once the table holds `threshold` rows, or
 * - runs `optimize()` when the index reports unindexed rows.
 *
 * One run at a time per table; requests made while a run is going coalesce into
 * one more run. Runs and writes take turns on the table's `SerialQueue`, so an
 * optimize never races a merge (which could otherwise fail on a commit conflict).
 * A failed run is kept (`failure`) until a later requested run succeeds or the
 * table turns out fully indexed anyway. A run that loses a commit race with
 * another process on the same directory is retried with backoff (`conflict`),
 * never kept as a failure.
 */
import type * as LanceDb from '@lancedb/lancedb';
import { messageOf } from '../../errors';
import type { Metric } from '../../types';
import { lanceReason } from './errors';

/** Runs async tasks one after the other, in the order they were queued. */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(() => task());
    this.tail = result.catch(() => undefined);
    return result;
  }
}

export const VECTOR_COLUMN = 'vector';

export interface VectorIndexInfo {
  name: string;
  /** As LanceDB names it, e.g. "IvfFlat". */
  indexType: string;
  numIndexedRows: number;
  numUnindexedRows: number;
}

/** The table's vector index with its coverage, or null when it has none. */
export async function findVectorIndex(table: LanceDb.Table): Promise<VectorIndexInfo | null> {
  const index = (await table.listIndices()).find((i) => i.columns.includes(VECTOR_COLUMN));
  if (!index) return null;
  let { numIndexedRows, numUnindexedRows } = index;
  // listIndices carries the same counters as indexStats on a local table (and
  // without indexStats' warning on stderr); indexStats is the fallback.
  if (numIndexedRows === undefined || numUnindexedRows === undefined) {
    const stats = await table.indexStats(index.name);
    numIndexedRows = stats?.numIndexedRows ?? 0;
    numUnindexedRows = stats?.numUnindexedRows ?? 0;
  }
  return { name: index.name, indexType: index.indexType, numIndexedRows, numUnindexedRows };
}

export type WorkKind = 'create' | 'optimize';

export interface MaintenanceFailure {
  kind: WorkKind;
  reason: string;
}

/** The last run lost a commit race (another process committed first); it is being retried. */
export interface CommitConflict {
  kind: WorkKind;
  reason: string;
}

interface Run {
  kind: WorkKind;
  /** Epoch ms. */
  startedAt: number;
  /** Rows the run works on: all rows for "create", the unindexed ones for "optimize". */
  rows: number;
}

export interface IndexMaintenanceOptions {
  table: LanceDb.Table;
  lancedb: typeof LanceDb;
  metric: Metric;
  queue: SerialQueue;
  /** Rows a table needs before its vector index is created. */
  threshold: number;
  now: () => number;
}

/**
 * LanceDB's "Retryable commit conflict ... preempted by concurrent transaction"
 * (and the plain "Commit conflict"): another process committed to the table
 * while our run worked (two optimizers, or two index creations). A new run sees
 * the table as it now is, so it is always worth retrying.
 */
export function isCommitConflict(reason: string): boolean {
  return /commit conflict|preempted by concurrent transaction/i.test(reason);
}

/** Retries after commit conflicts in a row; after that, the next status that still finds unindexed rows asks again. */
export const MAX_CONFLICT_RETRIES = 8;
/** Backoff before retry n: BASE * 2^(n-1), at most MAX, each with up to 50% random jitter (so two processes drift apart). */
const CONFLICT_BACKOFF_BASE_MS = 100;
const CONFLICT_BACKOFF_MAX_MS = 5000;
/** Weight of a new rate sample in the smoothed rate. */
const RATE_SMOOTHING = 0.5;
/** The ETA while work remains is never below this: "0 s" would claim it is done. */
export const MIN_ETA_SECONDS = 1;

/** Exponentially smoothed rows per second. */
export class SmoothedRate {
  private value: number | null = null;

  /** Rows per second, null before the first sample. */
  get rowsPerSecond(): number | null {
    return this.value;
  }

  add(rows: number, seconds: number): void {
    if (!(rows > 0) || !(seconds > 0)) return;
    const sample = rows / seconds;
    this.value = this.value === null ? sample : this.value + RATE_SMOOTHING * (sample - this.value);
  }
}

export class IndexMaintenance {
  private wanted = false;
  private loop: Promise<void> | null = null;
  private stopped = false;
  private current: Run | null = null;
  /** Ends the backoff before a conflict retry early (on stop). */
  private wakeUp: (() => void) | null = null;
  /** Rows per second of each kind of work, smoothed (runs of this process, and backlog drops seen by status). */
  private readonly rates: Record<WorkKind, SmoothedRate> = { create: new SmoothedRate(), optimize: new SmoothedRate() };
  /** Runs of this process completed: tells a backlog drop of our own from one by another process. */
  private completedRuns = 0;
  /** What status saw last of the backlog (unindexed rows), for the rate of other processes' optimize. */
  private backlog: { rows: number; since: number; completedRuns: number } | null = null;
  failure: MaintenanceFailure | null = null;
  /** Set while runs lose commit races with another process (cleared by a run that succeeds). */
  conflict: CommitConflict | null = null;
  /** Retries after conflicts in a row, for the backoff. */
  private conflictRetries = 0;

  constructor(private readonly options: IndexMaintenanceOptions) {}

  /** True from a request until the work it asked for is done (retries included). */
  get busy(): boolean {
    return this.loop !== null;
  }

  /**
   * Ask for a run (after a write, or when status finds unindexed rows).
   * `retry` clears a kept failure, so status says "indexing" again meanwhile.
   */
  request(retry: boolean): void {
    if (this.stopped) return;
    if (retry) this.failure = null;
    this.wanted = true;
    if (!this.loop) {
      this.loop = this.drain().finally(() => {
        this.loop = null;
      });
    }
  }

  /** The table is fully indexed (by us or by another process): a kept failure or conflict no longer applies. */
  settled(): void {
    this.failure = null;
    this.conflict = null;
  }

  /**
   * Status saw `rows` unindexed rows at time t (epoch ms). When fewer than last
   * time and no run of ours finished meanwhile, another process folded them in:
   * a rate sample (rows gone over the time since the backlog last changed).
   */
  observeBacklog(rows: number, t: number): void {
    const last = this.backlog;
    if (last && rows === last.rows && last.completedRuns === this.completedRuns) return; // nothing new
    if (last && rows < last.rows && last.completedRuns === this.completedRuns) {
      this.rates.optimize.add(last.rows - rows, (t - last.since) / 1000);
    }
    this.backlog = rows > 0 ? { rows, since: t, completedRuns: this.completedRuns } : null;
  }

  /**
   * Seconds until the `rows` unindexed rows are folded in at the smoothed rate,
   * less the time they have already been waiting (since status last saw the
   * backlog change); null before any rate was measured, never below
   * MIN_ETA_SECONDS (the work is not done). t: epoch ms.
   */
  optimizeEtaSeconds(rows: number, t: number): number | null {
    const rate = this.rates.optimize.rowsPerSecond;
    if (rate === null) return null;
    const waited = this.backlog ? (t - this.backlog.since) / 1000 : 0;
    return Math.max(MIN_ETA_SECONDS, rows / rate - waited);
  }

  /** Seconds until the vector index over `rows` rows exists, from the rate of earlier creations; null when unknown. */
  createEtaSeconds(rows: number, t: number): number | null {
    const rate = this.rates.create.rowsPerSecond;
    if (rate === null) return null;
    const run = this.current;
    const elapsed = run && run.kind === 'create' ? (t - run.startedAt) / 1000 : 0;
    return Math.max(MIN_ETA_SECONDS, rows / rate - elapsed);
  }

  /** Accept no more requests; resolves once the work already asked for is done (no more conflict retries). Never rejects. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wakeUp?.();
    await this.loop;
  }

  private async drain(): Promise<void> {
    while (this.wanted) {
      this.wanted = false;
      try {
        await this.options.queue.run(() => this.catchUp());
        this.failure = null;
        this.conflict = null;
        this.conflictRetries = 0;
      } catch (err) {
        const kind = this.current?.kind ?? 'optimize';
        const reason = lanceReason(err) || messageOf(err);
        if (!isCommitConflict(reason)) {
          this.failure = { kind, reason };
          this.conflict = null;
          this.conflictRetries = 0;
          continue;
        }
        // Lost a commit race with another process: not a failure. Back off and try again
        // (the next run sees the table as the other process left it), a bounded number of
        // times; after that, the next status that still finds unindexed rows asks again.
        this.conflict = { kind, reason };
        this.conflictRetries += 1;
        if (this.conflictRetries > MAX_CONFLICT_RETRIES || this.stopped) {
          this.conflictRetries = 0;
          continue;
        }
        await this.pause(conflictBackoffMs(this.conflictRetries));
        if (!this.stopped) this.wanted = true;
      } finally {
        this.current = null;
      }
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done(): void {
        clearTimeout(timer);
        self.wakeUp = null;
        resolve();
      }
      this.wakeUp = done;
    });
  }

  /** One run: create the index, or fold unindexed rows into it, or nothing if neither is due. */
  private async catchUp(): Promise<void> {
    const { table, lancedb, metric, threshold } = this.options;
    const index = await findVectorIndex(table);
    if (!index) {
      const rows = await table.countRows();
      if (rows < threshold) return;
      await this.timed({ kind: 'create', startedAt: this.options.now(), rows }, () =>
        table.createIndex(VECTOR_COLUMN, { config: lancedb.Index.ivfFlat({ distanceType: metric }) }),
      );
    } else if (index.numUnindexedRows > 0) {
      await this.timed({ kind: 'optimize', startedAt: this.options.now(), rows: index.numUnindexedRows }, () =>
        table.optimize(),
      );
    }
  }

  private async timed(run: Run, work: () => Promise<unknown>): Promise<void> {
    this.current = run;
    await work();
    this.completedRuns += 1;
    this.rates[run.kind].add(run.rows, (this.options.now() - run.startedAt) / 1000);
  }
}

function conflictBackoffMs(attempt: number): number {
  const base = Math.min(CONFLICT_BACKOFF_MAX_MS, CONFLICT_BACKOFF_BASE_MS * 2 ** (attempt - 1));
  return base * (1 + Math.random() * 0.5);
}
