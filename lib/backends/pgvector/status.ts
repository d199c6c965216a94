/**
 * How the pgvector backend answers `status`: a pure function from what Postgres
 * shows (row count, the HNSW index's `indisvalid`, rows of
 * `pg_stat_progress_create_index`) and what this process knows about its own
 * builds, to {state, counts, progress}.
 *
 * What "indexed" means here: an HNSW index, once built, is updated by every
 * INSERT in the same transaction, so once it is valid every acknowledged row is
 * indexed. Only the initial build (CREATE INDEX, or a rebuild of an invalid
 * index) takes time. Without an index a query scans every row exactly, so a
 * collection with no index and no build under way is ready too.
 */
import type { CollectionStatus } from '../../types';

/** One row of pg_stat_progress_create_index (numbers null when not reported). */
export interface BuildProgressRow {
  phase: string;
  blocksDone: number | null;
  blocksTotal: number | null;
  tuplesDone: number | null;
  tuplesTotal: number | null;
}

export interface StatusReading {
  documentCount: number;
  /** indisvalid of the collection's HNSW index; null when there is no index. */
  indexValid: boolean | null;
  /** Progress rows of index builds on the table (none on PGlite, nor between phases). */
  builds: BuildProgressRow[];
  /** A build started by this process has not finished yet. */
  buildInFlight: boolean;
  /** A build of this process could not run for a passing reason and will be retried. */
  retryReason: string | null;
  /** Why the last build of this process failed, if it did. */
  lastBuildError: string | null;
  /** For messages. */
  indexName: string;
}

/**
 * Where each phase of CREATE INDEX [CONCURRENTLY] sits on the way from 0 to 1.
 * The HNSW build proper ("building index: loading tuples") is most of the work;
 * the validation and waiting phases of a concurrent build come after it.
 */
const PHASES: Array<{ prefix: string; from: number; to: number }> = [
  { prefix: 'initializing', from: 0, to: 0 },
  { prefix: 'waiting for writers before build', from: 0, to: 0 },
  { prefix: 'building index', from: 0, to: 0.9 },
  { prefix: 'waiting for writers before validation', from: 0.9, to: 0.9 },
  { prefix: 'index validation: scanning index', from: 0.9, to: 0.93 },
  { prefix: 'index validation: sorting tuples', from: 0.93, to: 0.95 },
  { prefix: 'index validation: scanning table', from: 0.95, to: 0.98 },
  { prefix: 'waiting for old snapshots', from: 0.98, to: 0.98 },
  { prefix: 'waiting for readers', from: 0.99, to: 0.99 },
];

function fraction(done: number | null, total: number | null): number | null {
  if (done === null || total === null || !(total > 0)) return null;
  return Math.min(1, Math.max(0, done / total));
}

/** 0..1 for a progress row, or null for a phase this table does not know. */
export function progressOfBuild(row: BuildProgressRow): number | null {
  const phase = PHASES.find((p) => row.phase.startsWith(p.prefix));
  if (!phase) return null;
  // HNSW reports blocks (tuples_total stays 0); other phases may report tuples.
  const part = fraction(row.blocksDone, row.blocksTotal) ?? fraction(row.tuplesDone, row.tuplesTotal) ?? 0;
  return phase.from + (phase.to - phase.from) * part;
}

function describeBuild(row: BuildProgressRow): string {
  const blocks =
    row.blocksTotal !== null && row.blocksTotal > 0 ? ` (${row.blocksDone ?? 0} of ${row.blocksTotal} blocks)` : '';
  return `${row.phase}${blocks}`;
}

export function decideStatus(r: StatusReading): CollectionStatus {
  const { documentCount } = r;
  if (r.indexValid === true) {
    // Valid wins over "in flight": a build that just finished, or a request that found the index there.
    return { state: 'ready', documentCount, indexedCount: documentCount, progress: 1, etaSeconds: 0 };
  }
  if (r.builds.length > 0 || r.buildInFlight || r.retryReason !== null) {
    const row = r.builds[0];
    const progress = row ? progressOfBuild(row) : null;
    // The index being built serves nothing yet: only what the progress says is indexed.
    const indexedCount = progress === null ? 0 : Math.min(documentCount, Math.floor(progress * documentCount));
    let detail: string;
    if (row) detail = `building HNSW index: ${describeBuild(row)}`;
    else if (r.retryReason !== null && !r.buildInFlight) detail = `HNSW index build waiting to be retried (${r.retryReason})`;
    else detail = 'building HNSW index';
    return { state: 'indexing', documentCount, indexedCount, progress, etaSeconds: null, detail };
  }
  const failed = (reason: string, remedy: string): CollectionStatus => ({
    state: 'failed',
    documentCount,
    indexedCount: 0,
    progress: null,
    etaSeconds: null,
    detail: `${reason}. Queries still work, by an exact scan; ingest again with "build index" on to ${remedy}`,
  });
  if (r.indexValid === false) {
    const reason =
      r.lastBuildError ??
      `the HNSW index "${r.indexName}" is invalid and no build is running (a CREATE INDEX CONCURRENTLY failed or was interrupted)`;
    return failed(reason, 'drop and rebuild the index');
  }
  if (r.lastBuildError !== null) return failed(r.lastBuildError, 'retry the build');
  // No index and no build: queries scan every row, so every row is searchable.
  return { state: 'ready', documentCount, indexedCount: documentCount, progress: 1, etaSeconds: 0 };
}
