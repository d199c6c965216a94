/**
 * One run of an ingest job: read the spool from the first unfinished batch,
 * embed, write, save the checkpoint, repeat; then one final event. The
 * triggerer starts a run when the job's owner (its vector-ingest node) is
 * attached and stops it when the node closes; a stopped run never writes its
 * checkpoint again, so the next run resumes exactly at the first batch not saved
 * as written.
 *
 * Order per batch, and why: embed, write (delete the replaced chunks, then
 * upsert), then `save` the checkpoint durably, and only then read the next batch.
 * A crash at any point re-embeds at most the batch in flight, and its writes are
 * upserts by id.
 *
 * Transient errors (the store or the embedding service down, after the
 * embedder's own retries) are retried with backoff for up to RETRY_WINDOW_MS
 * without progress, each retry told in a progress message; then the job fails,
 * saying how far it got. Other errors fail it at once.
 */
import { VectorStoreError, isTransient, messageOf } from '../errors';
import { checkPortableVector, vectorLimitOf } from '../backends/documents';
import { prepareCollection } from '../ingest-input';
import type { Backend, EmbedRetry, Embedder, VectorDocument } from '../types';
import { jobProgress, type IngestJobSpec, type JobFailurePayload, type JobFinalPayload, type JobProgressPayload, type JobSuccessPayload } from './spec';
import type { SpooledDocument } from './spool';
import type { JobSpools } from './spools';
import type { InMemoryBatches } from './prepare';

/** How long a job keeps retrying without progress before it fails. */
export const RETRY_WINDOW_MS = 10 * 60_000;
const MIN_RETRY_MS = 500;
const MAX_RETRY_MS = 30_000;
/** Progress messages at most this often (plus the first and the last batch). */
export const PROGRESS_EVERY_MS = 1000;

export interface JobProgressEvent {
  type: 'progress';
  payload: JobProgressPayload;
}
export interface JobFinalEvent {
  type: 'final';
  payload: JobFinalPayload;
  /** Delivered again after a crash (see the triggerer). */
  redelivered?: boolean;
}
export type JobEvent = JobProgressEvent | JobFinalEvent;

/** What a run needs from the triggerer. */
export interface JobHost {
  now(): number;
  /** Where spools live. */
  spools: JobSpools;
  /** Write the record's spec durably (the checkpoint); resolves once on disk. */
  save(spec: IngestJobSpec): Promise<void>;
  progress(event: JobProgressEvent): void;
  final(event: JobFinalEvent): void;
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

export interface JobStore {
  backend: Backend | null;
  embedder?: Embedder;
  /** Why there is no backend, as a clause. */
  unavailable?: string;
}

export class JobRun {
  private readonly abort = new AbortController();
  private lastProgressAt = 0;
  /** The job's state in this run: the saved spec, moved forward batch by batch. */
  private readonly spec: IngestJobSpec;

  constructor(
    private readonly host: JobHost,
    /** The job as saved; the run works on a copy and hands back each checkpoint. */
    saved: Readonly<IngestJobSpec>,
    private readonly store: JobStore,
    /** Receives every checkpoint the run saves (the triggerer's record). */
    private readonly publish: (spec: IngestJobSpec) => void,
    /** The job's batches from memory, when the input that made it is still here (see spoolIngestJob). */
    private readonly inMemory: InMemoryBatches | null = null,
  ) {
    this.spec = { ...saved, runs: saved.runs + 1 };
  }

  get stopped(): boolean {
    return this.abort.signal.aborted;
  }

  /** Run in the background; every outcome is an event (never a rejection). */
  start(): void {
    void this.run().catch((err: unknown) => {
      if (!this.stopped) this.host.final({ type: 'final', payload: this.failure(this.spec, err) });
    });
  }

  /** Stop quietly: no more events, no more checkpoints. */
  stop(): void {
    this.abort.abort();
  }

  private async run(): Promise<void> {
    const { spec } = this;
    const { backend, embedder } = this.store;
    if (!backend || !embedder) {
      throw new VectorStoreError('NOT_FOUND', `The ingest job cannot run: ${this.store.unavailable ?? 'its node has no vector store'}.`, { transient: false });
    }
    this.emitProgress(spec, null, true);
    const reader = this.host.spools.reader(spec.spool, spec.offset);
    const nextBatch = async () => {
      const b = spec.batchesDone;
      if (this.inMemory && b < this.inMemory.count) return { batch: this.inMemory.batch(b), nextOffset: this.inMemory.endOffset(b) };
      return this.inMemory ? null : reader.next();
    };
    let prepared = false;
    try {
      for (;;) {
        if (this.stopped) return;
        // A spool in the job store may be briefly out of reach: retried like the store's writes.
        const next = await this.retrying(spec, nextBatch);
        if (this.stopped) return;
        if (!next) break;
        const started = this.host.now();
        const { docs, replace } = next.batch;
        const embedStarted = performance.now();
        const documents = await this.retrying(spec, () => this.embed(docs, embedder, backend.name));
        if (this.stopped) return;
        spec.embedMs += performance.now() - embedStarted;
        spec.embedded += docs.length;
        const writeStarted = performance.now();
        if (!prepared && documents.length > 0) {
          await this.retrying(spec, () => prepareCollection(backend, spec.collection, documents[0].vector.length, spec.createCollection));
          prepared = true;
        }
        if (replace && replace.length > 0) {
          await this.retrying(spec, () => backend.delete(spec.collection, { sources: replace }));
        }
        const result = await this.retrying(spec, () =>
          backend.upsert(spec.collection, documents, { buildIndex: spec.buildIndex, simulateFailure: spec.simulateFailure }),
        );
        if (this.stopped) return;
        spec.writeMs += performance.now() - writeStarted;
        spec.written += docs.length;
        spec.totalCount = result.totalCount;
        spec.batchesDone += 1;
        spec.offset = next.nextOffset;
        spec.activeMs += this.host.now() - started;
        const checkpoint = { ...spec };
        this.publish(checkpoint);
        await this.retrying(spec, () => this.host.save(checkpoint));
        if (this.stopped) return;
        this.emitProgress(spec, null, spec.batchesDone === spec.batches);
      }
    } finally {
      await reader.close();
    }
    if (this.stopped) return;
    this.host.final({ type: 'final', payload: this.success(spec) });
  }

  /** The batch's documents with vectors: given ones kept, texts embedded in one call, all checked. */
  private async embed(docs: SpooledDocument[], embedder: Embedder, backendName: string): Promise<VectorDocument[]> {
    const texts: string[] = [];
    for (const doc of docs) if (!doc.vector) texts.push(doc.text as string);
    // The embedder's own retries (rate limits, a busy service) count and are told like the job's.
    const onRetry = (retry: EmbedRetry) => {
      this.spec.retries += 1;
      this.emitProgress(this.spec, `retrying in ${Math.round(retry.delayMs / 100) / 10} s: ${retry.reason}`, true);
    };
    const vectors = texts.length > 0 ? await embedder.embed(texts, this.abort.signal, { onRetry }) : [];
    const out: VectorDocument[] = [];
    let k = 0;
    for (const doc of docs) {
      const vector = doc.vector ?? vectors[k++];
      out.push({ id: doc.id, vector, text: doc.text, metadata: doc.metadata });
    }
    const dimensions = out[0]?.vector.length ?? 0;
    const limit = vectorLimitOf(backendName, dimensions);
    for (const doc of out) {
      if (doc.vector.length !== dimensions) {
        throw new VectorStoreError(
          'DIMENSION_MISMATCH',
          `The embedder returned a vector of ${doc.vector.length} dimensions for document "${doc.id}" where the others have ${dimensions}: check the embedding service and model.`,
          { transient: false },
        );
      }
      try {
        checkPortableVector(doc.vector, 'value', limit);
      } catch (err) {
        throw new VectorStoreError('INVALID_INPUT', `The embedder returned a vector for document "${doc.id}" that cannot be stored: its ${messageOf(err)} Check the embedding service and model.`, {
          transient: false,
        });
      }
    }
    return out;
  }

  /** Call `fn`, retrying transient errors with backoff within RETRY_WINDOW_MS; each retry is a progress message. */
  private async retrying<T>(spec: IngestJobSpec, fn: () => Promise<T>): Promise<T> {
    const since = this.host.now();
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (this.stopped || !isTransient(err)) throw err;
        const delay = Math.min(MAX_RETRY_MS, MIN_RETRY_MS * 2 ** attempt);
        if (this.host.now() + delay - since > RETRY_WINDOW_MS) {
          throw new VectorStoreError(
            (err as VectorStoreError).code ?? 'UNAVAILABLE',
            `kept failing for ${Math.round((this.host.now() - since) / 60_000)} minutes (last: ${messageOf(err).replace(/\.$/, '')})`,
            { transient: true, cause: err },
          );
        }
        spec.retries += 1;
        this.emitProgress(spec, `retrying in ${Math.round(delay / 100) / 10} s: ${messageOf(err).replace(/\.$/, '')}`, true);
        try {
          await this.host.sleep(delay, this.abort.signal);
        } catch {
          // stopped while waiting
        }
        if (this.stopped) throw err;
      }
    }
  }

  private emitProgress(spec: IngestJobSpec, detail: string | null, force: boolean): void {
    const now = this.host.now();
    if (!force && now - this.lastProgressAt < PROGRESS_EVERY_MS) return;
    this.lastProgressAt = now;
    this.host.progress({ type: 'progress', payload: jobProgress(spec, now, detail) });
  }

  private success(spec: IngestJobSpec): JobSuccessPayload {
    return {
      status: 'success',
      collection: spec.collection,
      jobId: spec.waitId,
      ingested: spec.written,
      totalCount: spec.totalCount,
      batches: spec.batches,
      documents: spec.documents,
      chunks: spec.chunks,
      retries: spec.retries,
      durationMs: Math.max(0, this.host.now() - spec.startedAt),
      durations: {
        spoolMs: Math.round(spec.spoolMs),
        embedMs: Math.round(spec.embedMs),
        writeMs: Math.round(spec.writeMs),
        activeMs: Math.round(spec.activeMs),
      },
      resumed: Math.max(0, spec.runs - 1),
    };
  }

  private failure(spec: IngestJobSpec, err: unknown): JobFailurePayload {
    const done = spec.written;
    const what = done === 0 ? 'nothing was written' : `${done} of ${spec.chunks} ${spec.chunks === spec.documents ? 'documents' : 'chunks'} were written (${spec.batchesDone} of ${spec.batches} batches)`;
    const reason = messageOf(err).replace(/\.$/, '');
    return {
      status: 'failed',
      ...(err instanceof VectorStoreError ? { code: err.code } : {}),
      collection: spec.collection,
      jobId: spec.waitId,
      message: `The ingest job into collection "${spec.collection}" failed: ${reason}; ${what}. Send the message again to write the rest (documents already written are replaced, not duplicated).`,
      documents: spec.documents,
      chunks: spec.chunks,
      written: spec.written,
      batchesDone: spec.batchesDone,
      batches: spec.batches,
      retries: spec.retries,
      elapsedMs: Math.max(0, this.host.now() - spec.startedAt),
    };
  }
}
