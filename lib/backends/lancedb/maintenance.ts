/**
 * The background work that keeps a table's vector index complete.
 *
 * LanceDB indexes nothing by itself: `createIndex` builds an index over the rows
 * present, and rows added later stay "unindexed" (still found, by a flat scan
 * beside the index) until `optimize()` folds them in. So after writes, one
 * `IndexMaintenance` per table:
 * - creates the vector index once the table holds `threshold` rows, or
 * - runs `optimize()` when the index reports unindexed rows, or rebuilds the
 *   index over all rows once the table has grown REBUILD_GROWTH times since it
 *   was built (see there).
 *
 * Runs are debounced and coalesced per table, never one per write: each
 * optimize() compacts the table's small fragments into one (rewriting the rows)
 * and updates the index, so its cost grows with the table; one per batch of an
 * ingest made the ingest quadratic (issue 12). A run starts once writes have
 * been quiet for `quietMs`, or once a request has waited `maxWaitMs` (a long
 * ingest never pauses), and never sooner than RUN_SPACING times the last run's
 * duration after it: runs get rarer as they get longer, so maintenance holds
 * the table at most 1/(1 + RUN_SPACING) of the time and its total work stays
 * about proportional to the rows written. One run at a time; requests made
 * meanwhile coalesce into one more. Runs and the writes that may touch stored
 * rows (merges, deletes) take turns on the table's `SerialQueue`, so an optimize
 * never races a merge (which could otherwise fail on a commit conflict); a write
 * of new ids only (an append, see known-ids.ts) goes on during a run: LanceDB
 * commits an append beside a compaction or an index build. Each optimize() also removes table versions older than
 * `keepVersionsMs` (LanceDB keeps them 7 days by default: the disk filled up
 * with a copy of the table per run). Next to the vector index, the run keeps a
 * btree index on `id`: mergeInsert finds the ids it replaces through it instead
 * of scanning the whole column (only the rows written since the last run are
 * still scanned), so a write's time grows with those, not with the table.
 * A failed run is kept (`failure`) until a later requested run succeeds or the
 * table turns out fully indexed anyway. A run that loses a commit race with
 * another process on the same directory is retried with backoff (`conflict`),
 * never kept as a failure.
 */
import { performance } from 'node:perf_hooks';
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
/** The column writes merge on (mergeInsert('id')). */
export const ID_COLUMN = 'id';

export interface VectorIndexInfo {
  name: string;
  /** As LanceDB names it, e.g. "IvfFlat". */
  indexType: string;
  numIndexedRows: number;
  numUnindexedRows: number;
}

/** The table's vector index with its coverage, or null when it has none (`indices`: what listIndices said, if already read). */
export async function findVectorIndex(table: LanceDb.Table, indices?: LanceDb.IndexConfig[]): Promise<VectorIndexInfo | null> {
  const index = (indices ?? (await table.listIndices())).find((i) => i.columns.includes(VECTOR_COLUMN));
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

/** When catch-up runs (see the top of this file). Milliseconds. */
export interface CatchUpSchedule {
  /** A run starts once no request came for this long. */
  quietMs: number;
  /** ...or once the oldest request not yet served has waited this long, however busy the writes. */
  maxWaitMs: number;
  /** optimize() removes table versions older than this. */
  keepVersionsMs: number;
}

export const DEFAULT_CATCH_UP: CatchUpSchedule = {
  // An ingest's batches come back to back (ms to a few hundred ms apart): half a second
  // without a write means it stopped or paused, and then one run folds in all of it.
  quietMs: 500,
  // A long ingest never pauses; its rows still get indexed as it goes, so the id index keeps
  // writes fast and a wait on the collection sees progress (RUN_SPACING makes runs rarer on big tables).
  maxWaitMs: 2_000,
  // A read in progress, here or in another process, may still be on a version a little older than
  // the latest; a search takes well under a second, so half a minute is a wide margin.
  keepVersionsMs: 30_000,
};

/** After a run that took d ms, the next one starts no sooner than RUN_SPACING * d ms after it ended. */
export const RUN_SPACING = 4;

/**
 * IVF partitions are trained on the rows present when the index is built (about
 * sqrt(rows) of them). Folding many times that into it makes every later optimize()
 * slow (measured: 10 s for 2,000 rows on a 70,000-row table whose index was built
 * on 6,700, against 0.1 s for one built on all of them) and searches worse. So a
 * catch-up on a table that has grown to REBUILD_GROWTH times the rows of the last
 * build rebuilds the index over all rows first; doubling keeps the work of all
 * rebuilds together under twice that of the last one.
 */
export const REBUILD_GROWTH = 2;
/** The removal of old versions after the last run waits keepVersionsMs and this much more (so that they are past it). */
const PRUNE_SLACK_MS = 1_000;

/** Below this many rows optimize() is quick whatever the index was built on: no rebuild. */
export const REBUILD_MIN_ROWS = 10_000;

export interface IndexMaintenanceOptions {
  table: LanceDb.Table;
  /** Told when a run starts and ends: its commits move the table's version without changing its ids. */
  knownIds?: { runStarted(): void; runEnded(): void };
  lancedb: typeof LanceDb;
  metric: Metric;
  queue: SerialQueue;
  /** Rows a table needs before its vector index is created. */
  threshold: number;
  /** Epoch ms, for the ETA (the schedule runs on the real monotonic clock). */
  now: () => number;
  schedule: CatchUpSchedule;
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
  /** A request not yet served by a run that started after it. */
  private wanted = false;
  /** performance.now() of the oldest and the latest request not yet served. */
  private firstWantedAt = 0;
  private lastWantedAt = 0;
  /** The scheduled start of the next run. */
  private timer: NodeJS.Timeout | null = null;
  /** The run going (with its conflict retries). */
  private running: Promise<void> | null = null;
  /** performance.now() when the last run ended, and how long its work took (ms). */
  private lastRunEndedAt = 0;
  private lastRunMs = 0;
  /**
   * The last runs replaced files (rows folded into the index, fragments compacted, an index
   * rebuilt) whose old versions were too recent to remove: once they are older than
   * keepVersionsMs, a run removes them even if nothing else is due (`pruneTimer`).
   */
  private pruneDue = false;
  /** Whether the requests not yet served include one that keeps RUN_SPACING (see `ask`). */
  private spaced = false;
  private pruneTimer: NodeJS.Timeout | null = null;
  /** Rows the vector index was last built (trained) on by this process. */
  private builtOnRows: number | undefined;
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

  /** True from a request until the work it asked for is done (scheduled, running, or retrying). */
  get busy(): boolean {
    return this.wanted || this.running !== null;
  }

  /**
   * Ask for a run (after a write, or when status finds unindexed rows); it starts
   * when the schedule says (see the top of this file), never at once.
   * `retry` clears a kept failure, so status says "indexing" again meanwhile.
   */
  request(retry: boolean): void {
    this.ask(retry, true);
  }

  /** `spaced`: the run waits RUN_SPACING times the last one's duration (all but the removal of old versions). */
  private ask(retry: boolean, spaced: boolean): void {
    if (this.stopped) return;
    if (retry) this.failure = null;
    const t = performance.now();
    if (!this.wanted) {
      this.firstWantedAt = t;
      this.spaced = false;
    }
    this.spaced ||= spaced;
    this.wanted = true;
    this.lastWantedAt = t;
    this.schedule();
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

  /**
   * Accept no more requests and drop a scheduled run (its rows stay unindexed: the
   * next status that finds them, in this process or the next, asks again); resolves
   * once a run in progress is done (no more conflict retries). Never rejects.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wanted = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.pruneTimer) clearTimeout(this.pruneTimer);
    this.pruneTimer = null;
    this.wakeUp?.();
    await this.running;
  }

  /** (Re)arm the timer of the next run; while a run is going, its end does that. */
  private schedule(): void {
    if (this.running || this.stopped) return;
    const { quietMs, maxWaitMs } = this.options.schedule;
    const due = Math.min(this.lastWantedAt + quietMs, this.firstWantedAt + maxWaitMs);
    const earliest = this.spaced ? this.lastRunEndedAt + RUN_SPACING * this.lastRunMs : 0;
    const delay = Math.max(0, Math.max(due, earliest) - performance.now());
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.start(), delay);
  }

  private start(): void {
    this.timer = null;
    this.wanted = false;
    this.running = this.runWithRetries().finally(() => {
      this.running = null;
      this.lastRunEndedAt = performance.now();
      if (this.wanted) this.schedule(); // requests made during the run
      else if (this.pruneDue) this.schedulePrune();
    });
  }

  /** A run once the versions the last runs left are older than keepVersionsMs (see `pruneDue`). */
  private schedulePrune(): void {
    if (this.stopped) return;
    if (this.pruneTimer) clearTimeout(this.pruneTimer);
    this.pruneTimer = setTimeout(() => {
      this.pruneTimer = null;
      // Not spaced: the removal is due keepVersionsMs after the last run (spaced, it came 4 times
      // that run's duration later: over a minute after a 100,000-row ingest, two copies on disk).
      this.ask(false, false);
    }, this.options.schedule.keepVersionsMs + PRUNE_SLACK_MS);
  }

  /** One run; after a lost commit race, the same run again after a backoff. Never rejects. */
  private async runWithRetries(): Promise<void> {
    for (;;) {
      try {
        await this.options.queue.run(async () => {
          const started = performance.now();
          this.options.knownIds?.runStarted();
          try {
            await this.catchUp();
          } finally {
            this.options.knownIds?.runEnded();
            this.lastRunMs = performance.now() - started;
          }
        });
        this.failure = null;
        this.conflict = null;
        this.conflictRetries = 0;
        return;
      } catch (err) {
        const kind = this.current?.kind ?? 'optimize';
        const reason = lanceReason(err) || messageOf(err);
        if (!isCommitConflict(reason)) {
          this.failure = { kind, reason };
          this.conflict = null;
          this.conflictRetries = 0;
          return;
        }
        // Lost a commit race with another process: not a failure. Back off and try again
        // (the next run sees the table as the other process left it), a bounded number of
        // times; after that, the next status that still finds unindexed rows asks again.
        this.conflict = { kind, reason };
        this.conflictRetries += 1;
        if (this.conflictRetries > MAX_CONFLICT_RETRIES || this.stopped) {
          this.conflictRetries = 0;
          return;
        }
        await this.pause(conflictBackoffMs(this.conflictRetries));
        if (this.stopped) return;
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

  /**
   * One run: create the vector index, or fold unindexed rows into it (rebuilding it
   * first when the table has grown REBUILD_GROWTH times since it was built), or
   * nothing if neither is due; and create the index on id if it is missing (a table
   * of an earlier version of this package).
   */
  private async catchUp(): Promise<void> {
    const { table, lancedb, metric, threshold } = this.options;
    const indices = await table.listIndices();
    const index = await findVectorIndex(table, indices);
    const vectorIndex = () => ({ config: lancedb.Index.ivfFlat({ distanceType: metric }), replace: true });
    let idIndexed = indices.some((i) => i.columns.includes(ID_COLUMN));
    if (!index) {
      const rows = await table.countRows();
      if (rows < threshold) return;
      await this.timed({ kind: 'create', startedAt: this.options.now(), rows }, () => table.createIndex(VECTOR_COLUMN, vectorIndex()));
      this.builtOnRows = rows;
    } else if (index.numUnindexedRows > 0) {
      const rows = index.numIndexedRows + index.numUnindexedRows;
      this.builtOnRows ??= index.numIndexedRows; // built before this process opened the table: what it covers now
      const rebuild = rows >= REBUILD_MIN_ROWS && rows >= REBUILD_GROWTH * this.builtOnRows;
      const cleanupOlderThan = new Date(Date.now() - this.options.schedule.keepVersionsMs);
      await this.timed({ kind: 'optimize', startedAt: this.options.now(), rows: index.numUnindexedRows }, async () => {
        if (rebuild) {
          // Over all rows: nothing is left unindexed (the id index is rebuilt too, being
          // as cheap). Then compact the fragments the writes added and remove old versions
          // (writes of new ids go on meanwhile): left for a later run, the compaction came
          // only after a fast ingest, whose every write paid for the fragments piling up.
          await table.createIndex(VECTOR_COLUMN, vectorIndex());
          await table.createIndex(ID_COLUMN, { config: lancedb.Index.btree(), replace: true });
          idIndexed = true;
          this.builtOnRows = rows;
          await table.optimize({ cleanupOlderThan });
        } else {
          // Compacts the fragments the writes added, folds their rows into the indexes
          // (the id index too) and removes old versions.
          await table.optimize({ cleanupOlderThan });
        }
      });
      this.pruneDue = true;
    } else if (this.pruneDue) {
      // Nothing to index: only the files the last runs replaced, now old enough to go.
      const cleanupOlderThan = new Date(Date.now() - this.options.schedule.keepVersionsMs);
      const stats = await table.optimize({ cleanupOlderThan });
      // Again while it removed something: its optimize() may itself have replaced files (after a
      // compaction; or the vector index, rewritten once after a compaction remapped it: one more copy).
      const { compaction, prune } = stats;
      this.pruneDue = compaction.filesRemoved > 0 || prune.oldVersionsRemoved > 0;
    }
    // Cheap (a sorted copy of the ids: 30 ms for 100,000); optimize() keeps it up to date from then on.
    if (!idIndexed) {
      await table.createIndex(ID_COLUMN, { config: lancedb.Index.btree() });
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
