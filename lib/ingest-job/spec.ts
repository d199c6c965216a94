/**
 * An ingest job's serialized description: the second `kind` of durable work the
 * triggerer runs, beside the sensor's wait (kind "collection-ready", the format
 * of lib/trigger.ts, whose saved specs carry no `kind`).
 *
 * Like a wait's spec it is plain JSON, rebuilt anywhere: the validated documents
 * are in the job's spool file (./spool.ts), and the spec says how far the job
 * got. Invariants a reader can trust:
 * - `v` is 2: the first format with a `kind`. A version of the package that only
 *   reads version 1 keeps such a record untouched instead of calling it damage.
 * - The totals (`documents`, `chunks`, `batches`) and `startedAt` are fixed
 *   when the job is created.
 * - `batchesDone`, `offset` and the counters only move forward, and are on disk
 *   (WaitStore.save) before the next batch is embedded: a resumed job starts at
 *   the first unfinished batch, and embeds again at most the one that was in
 *   flight (its writes are upserts by id: repeating them is harmless).
 * - `waitId` is the job's id (`msg.jobId`), the key of every durable record.
 */
import { z } from 'zod';
import { VectorStoreError, messageOf } from '../errors';
import { parseOrThrow } from '../schemas';

export const INGEST_JOB = 'ingest-job';

export interface IngestJobSpec {
  v: 2;
  kind: typeof INGEST_JOB;
  /** The job's id: `msg.jobId` of its messages. */
  waitId: string;
  collection: string;
  /** The spool file's name, inside the runtime's jobs directory. */
  spool: string;
  /** Documents of the input message. */
  documents: number;
  /** Pieces written: the chunks, or the documents when they are not chunked. */
  chunks: number;
  batches: number;
  createCollection: boolean;
  buildIndex: boolean;
  /** Memory backend only: make the collection's indexing fail with this reason. */
  simulateFailure?: string;
  /** Epoch ms when the message arrived. */
  startedAt: number;
  /** Batches written (and saved as written). */
  batchesDone: number;
  /** Byte offset in the spool of the first unfinished batch. */
  offset: number;
  /** Chunks embedded (or given with their vector) and written. */
  embedded: number;
  written: number;
  /** Retries so far: the embedder's (rate limits, errors) and the store's. */
  retries: number;
  /** Documents in the collection after the last batch. */
  totalCount: number;
  /** Time spent running, over every run: the rate and ETA survive a restart. */
  activeMs: number;
  /** Time spent per phase, over every run. */
  spoolMs: number;
  embedMs: number;
  writeMs: number;
  /** Times the job started running: 1, plus one per resume. */
  runs: number;
}

/** Output 2 of vector-ingest while a job runs. */
export interface JobProgressPayload {
  status: 'ingesting';
  collection: string;
  jobId: string;
  documents: number;
  chunks: number;
  embedded: number;
  written: number;
  /** 0..1: written / chunks. */
  progress: number;
  /** Seconds left at the rate so far; null before the first batch. */
  etaSeconds: number | null;
  docsPerSecond: number | null;
  retries: number;
  elapsedMs: number;
  /** A short sentence about the last retry while it is retrying, else null. */
  detail: string | null;
}

/**
 * What a job ended with. Success: output 1's payload (the direct ingest's, plus
 * the job's counts and durations); `ids` are added when it is sent (read from the
 * spool, not kept in the durable record). Failure: done(err) with this payload.
 */
export type JobFinalPayload = JobSuccessPayload | JobFailurePayload;
export interface JobSuccessPayload {
  status: 'success';
  collection: string;
  jobId: string;
  ingested: number;
  totalCount: number;
  batches: number;
  documents: number;
  chunks: number;
  retries: number;
  /** From the message's arrival to the last batch written (wall time, restarts included). */
  durationMs: number;
  durations: { spoolMs: number; embedMs: number; writeMs: number; activeMs: number };
  /** Times the job resumed after a redeploy, restart or crash. */
  resumed: number;
  ids?: string[];
}
export interface JobFailurePayload {
  status: 'failed';
  code?: string;
  collection: string;
  jobId: string;
  message: string;
  documents: number;
  chunks: number;
  written: number;
  batchesDone: number;
  batches: number;
  retries: number;
  elapsedMs: number;
}

export interface NewIngestJob {
  jobId: string;
  collection: string;
  spool: string;
  documents: number;
  chunks: number;
  batches: number;
  createCollection: boolean;
  buildIndex: boolean;
  simulateFailure?: string;
  startedAt: number;
  /** Byte offset of the first batch in the spool (after its header). */
  offset: number;
  spoolMs: number;
}

export function createIngestJobSpec(job: NewIngestJob): IngestJobSpec {
  return parseIngestJobSpec({
    v: 2,
    kind: INGEST_JOB,
    waitId: job.jobId,
    collection: job.collection,
    spool: job.spool,
    documents: job.documents,
    chunks: job.chunks,
    batches: job.batches,
    createCollection: job.createCollection,
    buildIndex: job.buildIndex,
    ...(job.simulateFailure !== undefined ? { simulateFailure: job.simulateFailure } : {}),
    startedAt: job.startedAt,
    batchesDone: 0,
    offset: job.offset,
    embedded: 0,
    written: 0,
    retries: 0,
    totalCount: 0,
    activeMs: 0,
    spoolMs: job.spoolMs,
    embedMs: 0,
    writeMs: 0,
    runs: 0,
  });
}

const count = z.number().int().nonnegative();
const specV2Schema = z.object({
  v: z.literal(2),
  kind: z.literal(INGEST_JOB),
  waitId: z.string().min(1),
  collection: z.string().min(1),
  // A bare file name: a spec never points outside the jobs directory.
  spool: z.string().regex(/^[A-Za-z0-9._-]+$/),
  documents: count,
  chunks: count,
  batches: count,
  createCollection: z.boolean(),
  buildIndex: z.boolean(),
  simulateFailure: z.string().optional(),
  startedAt: z.number(),
  batchesDone: count,
  offset: count,
  embedded: count,
  written: count,
  retries: count,
  totalCount: count,
  activeMs: z.number().nonnegative(),
  spoolMs: z.number().nonnegative(),
  embedMs: z.number().nonnegative(),
  writeMs: z.number().nonnegative(),
  runs: count,
});

/** True for the spec of an ingest job (any version), false for a sensor's wait. */
export function isIngestJobSpec(value: unknown): value is IngestJobSpec {
  return typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === INGEST_JOB;
}

/**
 * Check a job spec read from disk and bring it to the current format (there is
 * only version 2 so far). Throws INVALID_INPUT naming what is wrong.
 */
export function parseIngestJobSpec(value: unknown): IngestJobSpec {
  const version = (value as { v?: unknown } | null)?.v;
  if (version !== 2) {
    throw new VectorStoreError(
      'INVALID_INPUT',
      `This ingest job was saved in format version ${JSON.stringify(version)}, which this version of the package does not know (it reads version 2). Upgrade the package to resume it.`,
    );
  }
  try {
    return parseOrThrow(specV2Schema, value, '') as IngestJobSpec;
  } catch (err) {
    throw new VectorStoreError('INVALID_INPUT', `This saved ingest job is damaged: ${messageOf(err)}`);
  }
}

/** The job's progress message payload, from its spec. */
export function jobProgress(spec: IngestJobSpec, now: number, detail: string | null = null): JobProgressPayload {
  const rate = spec.activeMs > 0 && spec.written > 0 ? spec.written / (spec.activeMs / 1000) : null;
  const left = spec.chunks - spec.written;
  return {
    status: 'ingesting',
    collection: spec.collection,
    jobId: spec.waitId,
    documents: spec.documents,
    chunks: spec.chunks,
    embedded: spec.embedded,
    written: spec.written,
    progress: spec.chunks === 0 ? 1 : Math.min(1, spec.written / spec.chunks),
    etaSeconds: rate === null ? null : left === 0 ? 0 : Math.max(1, Math.round(left / rate)),
    docsPerSecond: rate === null ? null : Math.round(rate * 10) / 10,
    retries: spec.retries,
    elapsedMs: Math.max(0, now - spec.startedAt),
    detail,
  };
}
