/**
 * How the pgvector backend answers `status`: a pure function from what Postgres
 * shows (row count, the HNSW index's `indisvalid`, rows of
 * `pg_stat_progress_create_index`, the failure recorded in the package's state
 * table) and what this process knows about its own build (./index-builds.ts), to
 * {state, counts, progress, phase, detail, code}; and the ETA, from the rate at which
 * that progress moves (EtaClock).
 *
 * What "indexed" means here: an HNSW index, once built, is updated by every
 * INSERT in the same transaction, so once it is valid every acknowledged row is
 * indexed. Only the initial build (CREATE INDEX, or a rebuild of an invalid
 * index) takes time. Without an index a query scans every row exactly, so a
 * collection with no index and no build under way is ready too.
 */
import type { CollectionStatus } from '../../types';
import type { BuildActivity, BuildFailure } from './build-runner';

/** One row of pg_stat_progress_create_index (numbers null when not reported). */
export interface BuildProgressRow {
  phase: string;
  blocksDone: number | null;
  blocksTotal: number | null;
  tuplesDone: number | null;
  tuplesTotal: number | null;
  /** The backend running the build, when known. */
  pid?: number | null;
  /** How details name the index being built (`the hnsw index "x"`); default: the collection's HNSW index. */
  label?: string | null;
}

export interface StatusReading {
  documentCount: number;
  /** indisvalid of the collection's HNSW index; null when there is no index. */
  indexValid: boolean | null;
  /** Progress rows of index builds on the table (none on PGlite, nor between phases). */
  builds: BuildProgressRow[];
  /** What this process's build is doing, or null when it runs none. */
  activity: BuildActivity | null;
  /** How the last build failed (this process's, or the one recorded in the state table). */
  failure: BuildFailure | null;
  /** Sessions our build's connection waits for (pg_blocking_pids), if any. */
  blockedBy?: number[];
  /** Other sessions holding an index build's lock on the table (see build-sessions.ts). */
  otherBuilders?: number[];
  /** For messages. */
  indexName: string;
}

/**
 * Where each phase of CREATE INDEX CONCURRENTLY of an HNSW index sits on the way
 * from 0 to 1, from measured phase durations: the build proper ("building index:
 * loading tuples") is most of the work, the validation pass (a scan of the whole
 * index, a sort, then a scan of the table) the rest. Measured: HNSW on PGlite
 * (20k rows x 32 dims, CONCURRENTLY against plain CREATE INDEX) 82 % build / 18 %
 * validation; 30 % validation on a 200k-row HNSW build on PostgreSQL 15 (issue 8);
 * btree on PostgreSQL 15 (1.5M rows) 84 / 14 %, gin 88 / 12 %. Hence 75 / 23 %,
 * the waits for snapshots and readers last.
 */
export const PHASES: Array<{ prefix: string; from: number; to: number }> = [
  { prefix: 'initializing', from: 0, to: 0 },
  { prefix: 'waiting for writers before build', from: 0, to: 0 },
  // btree reports three sub-phases, each counting from 0 again (measured shares 55 / 13 / 16 %);
  // a sort reports no counter (its blocks are the table scan's, then 0): it holds one figure.
  { prefix: 'building index: scanning table', from: 0, to: 0.49 },
  { prefix: 'building index: sorting live tuples', from: 0.55, to: 0.55 },
  { prefix: 'building index: loading tuples in tree', from: 0.55, to: 0.75 },
  // HNSW: "building index: loading tuples"; gin and others: "building index".
  { prefix: 'building index', from: 0, to: 0.75 },
  { prefix: 'waiting for writers before validation', from: 0.75, to: 0.75 },
  { prefix: 'index validation: scanning index', from: 0.75, to: 0.88 },
  { prefix: 'index validation: sorting tuples', from: 0.88, to: 0.91 },
  { prefix: 'index validation: scanning table', from: 0.91, to: 0.98 },
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

function secondsSince(since: number): string {
  return `${Math.max(0, Math.round((Date.now() - since) / 1000))} s`;
}

/** The sentence saying what is going on while indexing. */
function indexingDetail(r: StatusReading, row: BuildProgressRow | undefined): string {
  const a = r.activity;
  if (a?.kind === 'connecting') {
    return a.problem ?? 'opening a connection for the index build';
  }
  if (a?.kind === 'waiting-for-other-build') {
    const who = a.pid !== null ? `another session (pid ${a.pid})` : 'another session';
    return (
      `${who} is building an index on this table: this build waits for it to end (for ${secondsSince(a.since)}) ` +
      'instead of dropping it or starting its own' + (row ? `; that build: ${describeBuild(row)}` : '')
    );
  }
  const blockers = r.blockedBy ?? [];
  if (a?.kind === 'building' && blockers.length > 0) {
    const what = row ? `${row.phase}: ` : '';
    return (
      `building the HNSW index "${r.indexName}": ${what}the build waits for ${blockers.length === 1 ? 'the session' : 'the sessions'} ` +
      `with pid ${blockers.join(', ')} (a lock on the table, or a transaction that must end first); it goes on once they are done`
    );
  }
  if (row) {
    if (row.label) return `building ${row.label} (${row.pid ? `session pid ${row.pid}` : 'another session'}): ${describeBuild(row)}`;
    const whose = a ? '' : ' (by another session or an earlier run of this one)';
    return `building the HNSW index "${r.indexName}"${whose}: ${describeBuild(row)}`;
  }
  return `building the HNSW index "${r.indexName}" (for ${a ? secondsSince(a.since) : '?'}; the server shows no progress for it)`;
}

export function decideStatus(r: StatusReading): CollectionStatus {
  const { documentCount } = r;
  if (r.indexValid === true) {
    // Valid wins over "in flight": a build that just finished, or a request that found the index there.
    return { state: 'ready', documentCount, indexedCount: documentCount, progress: 1, etaSeconds: 0, phase: null };
  }
  if (r.builds.length > 0 || r.activity !== null) {
    const row = r.builds[0];
    const progress = row ? progressOfBuild(row) : null;
    // The index being built serves nothing yet: only what the progress says is indexed.
    const indexedCount = progress === null ? 0 : Math.min(documentCount, Math.floor(progress * documentCount));
    // The server's own phase name when it shows one; else what this process is waiting for.
    let phase: string | null = row ? row.phase : null;
    if (!row && r.activity?.kind === 'building' && (r.blockedBy ?? []).length > 0) phase = 'waiting for a lock';
    if (!row && r.activity?.kind === 'connecting') phase = 'waiting for a connection';
    if (!row && r.activity?.kind === 'waiting-for-other-build') phase = 'waiting for another build';
    return { state: 'indexing', documentCount, indexedCount, progress, etaSeconds: null, phase, detail: indexingDetail(r, row) };
  }
  const others = r.otherBuilders ?? [];
  if (others.length > 0) {
    // A build this user cannot see in the progress view (another role's), but whose lock it can.
    return {
      state: 'indexing',
      documentCount,
      indexedCount: 0,
      progress: null,
      etaSeconds: null,
      phase: null,
      detail:
        `another session (pid ${others.join(', ')}) is building an index on this table; its progress is not visible to ` +
        'this database user (grant it pg_read_all_stats to see it), nor whether it is a vector index: it is taken for one until it ends',
    };
  }
  const failed = (reason: string, remedy: string, code: string | null): CollectionStatus => ({
    state: 'failed',
    documentCount,
    indexedCount: 0,
    progress: null,
    etaSeconds: null,
    phase: null,
    detail: `${reason}. Queries still work, by an exact scan; ingest again with "build index" on to ${remedy}`,
    ...(code ? { code } : {}),
  });
  if (r.failure !== null) {
    return failed(r.failure.reason, r.indexValid === false ? 'drop and rebuild the index' : 'retry the build', r.failure.code);
  }
  if (r.indexValid === false) {
    const reason = `the HNSW index "${r.indexName}" is invalid and no build is running (a CREATE INDEX CONCURRENTLY failed or was interrupted)`;
    return failed(reason, 'drop and rebuild the index', null);
  }
  // No index and no build: queries scan every row, so every row is searchable.
  return { state: 'ready', documentCount, indexedCount: documentCount, progress: 1, etaSeconds: 0, phase: null };
}

/**
 * Seconds left, from the rate at which the progress moves: an exponentially
 * smoothed rate (progress per second) over the polls of one build. Null while
 * unknown (no progress figure, or not yet two samples that moved); never below 1
 * second while not ready.
 */
export class EtaClock {
  private readonly samples = new Map<string, { at: number; progress: number; rate: number | null }>();
  /** Weight of the newest rate measurement. */
  private static readonly SMOOTHING = 0.3;

  eta(collection: string, status: CollectionStatus, now = Date.now()): number | null {
    if (status.state !== 'indexing' || status.progress === null) {
      if (status.state !== 'indexing') this.samples.delete(collection);
      return status.state === 'ready' ? 0 : null;
    }
    const last = this.samples.get(collection);
    if (!last || status.progress < last.progress) {
      // First sample, or a new build: start over.
      this.samples.set(collection, { at: now, progress: status.progress, rate: null });
      return null;
    }
    let rate = last.rate;
    const elapsed = (now - last.at) / 1000;
    if (elapsed > 0 && status.progress > last.progress) {
      const measured = (status.progress - last.progress) / elapsed;
      rate = rate === null ? measured : EtaClock.SMOOTHING * measured + (1 - EtaClock.SMOOTHING) * rate;
      this.samples.set(collection, { at: now, progress: status.progress, rate });
    } else if (elapsed > 0 && rate !== null) {
      // No movement (a waiting phase): the rate decays, so the ETA grows rather than freezes.
      rate = rate * Math.exp(-elapsed / 60);
      this.samples.set(collection, { at: now, progress: status.progress, rate });
    }
    if (rate === null || !(rate > 0)) return null;
    return Math.max(1, Math.ceil((1 - status.progress) / rate - 1e-6)); // (1e-6: float noise must not add a second)
  }
}
