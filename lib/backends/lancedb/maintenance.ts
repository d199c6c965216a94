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
 * A failed run is kept (`failure`) until a later requested run succeeds.
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

export class IndexMaintenance {
  private wanted = false;
  private loop: Promise<void> | null = null;
  private stopped = false;
  private current: Run | null = null;
  /** Rows per second of the last successful run of each kind (this process only). */
  private readonly rates: Partial<Record<WorkKind, number>> = {};
  failure: MaintenanceFailure | null = null;

  constructor(private readonly options: IndexMaintenanceOptions) {}

  /** True from a request until the work it asked for is done. */
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

  /**
   * Seconds until a run of `kind` over `rows` rows is done, from the speed of the
   * last such run; null before one was measured.
   */
  etaSeconds(kind: WorkKind, rows: number): number | null {
    const rate = this.rates[kind];
    if (rate === undefined) return null;
    const run = this.current;
    if (run && run.kind === kind) {
      const elapsed = (this.options.now() - run.startedAt) / 1000;
      return Math.max(0, run.rows / rate - elapsed);
    }
    return rows / rate;
  }

  /** Accept no more requests; resolves once the work already asked for is done. Never rejects. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  private async drain(): Promise<void> {
    while (this.wanted) {
      this.wanted = false;
      try {
        await this.options.queue.run(() => this.catchUp());
        this.failure = null;
      } catch (err) {
        this.failure = { kind: this.current?.kind ?? 'optimize', reason: lanceReason(err) || messageOf(err) };
      } finally {
        this.current = null;
      }
    }
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
    const seconds = (this.options.now() - run.startedAt) / 1000;
    if (seconds > 0 && run.rows > 0) this.rates[run.kind] = run.rows / seconds;
  }
}
