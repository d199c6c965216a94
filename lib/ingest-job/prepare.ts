/**
 * Turning an ingest message into a job: every check the direct ingest makes on
 * the whole input (lib/operations.ts), ids assigned, documents split into
 * chunks when asked, then the batches written to the job's spool. Nothing
 * reaches the store before the input is known to be good, and nothing is
 * acknowledged before the spool is on disk.
 */
import * as path from 'node:path';
import { VectorStoreError } from '../errors';
import { WorkSlicer, checkPortableVector, vectorLimitOf } from '../backends/documents';
import { checkItems, checkSimulate, lastOfEachId, nothingWritten, withIds, type IngestOptions, type Store } from '../operations';
import type { IngestItem } from '../schemas';
import { createIngestJobSpec, type IngestJobSpec } from './spec';
import { checkChunkOptions, chunkItems, sourcesStartingIn } from '../chunking';
import { spoolFileName, writeSpool, type SpoolBatch, type SpooledDocument } from './spool';

/**
 * When `background` is "auto", a message runs as a background job from this
 * size on: a direct ingest of it would hold the message for minutes.
 */
export const JOB_THRESHOLD = { documents: 1000, characters: 1_000_000 } as const;

/** Does this input run as a background job? "always", "never", or "auto" by JOB_THRESHOLD. */
export function runsAsJob(background: 'auto' | 'always' | 'never', items: readonly IngestItem[]): boolean {
  if (background !== 'auto') return background === 'always';
  if (items.length >= JOB_THRESHOLD.documents) return true;
  let characters = 0;
  for (const item of items) {
    characters += item.text?.length ?? 0;
    if (characters >= JOB_THRESHOLD.characters) return true;
  }
  return false;
}

/** The direct ingest's options, plus the job's id. */
export interface NewJobOptions extends IngestOptions {
  jobId: string;
  /** Epoch ms when the message arrived. */
  now?: number;
}

/**
 * Check the input, spool it under `jobsDir`, and return the job's spec (not yet
 * deferred). Bad input rejects with a sentence naming the field, saying that
 * nothing was written.
 */
export async function spoolIngestJob(store: Store, items: IngestItem[], jobsDir: string, options: NewJobOptions): Promise<IngestJobSpec> {
  const startedAt = options.now ?? Date.now();
  const t0 = performance.now();
  const { backend, embedder } = store;
  const { collection, chunking } = options;
  const fieldOf = options.fieldOf ?? ((i: number) => `msg.payload[${i}]`);
  checkSimulate(backend.name, collection, options.simulateFailure);
  const slicer = new WorkSlicer();
  let pieces: SpooledDocument[];
  try {
    if (chunking) checkChunkOptions(chunking);
    await checkItems(items, fieldOf, slicer);
    const docs = await withIds(items, slicer);
    // Chunks after the ids: a chunk's id and source are its document's id (lib/chunking.ts).
    pieces = chunking ? (await chunkItems(docs, chunking, fieldOf, slicer)).map(({ input: _input, ...piece }) => piece) : docs;
    pieces = lastOfEachId(pieces);
    checkGivenVectors(pieces, backend.name, embedder.dimensions);
    await checkCollection(store, collection, options.createCollection, dimensionsOf(pieces, embedder.dimensions));
  } catch (err) {
    throw nothingWritten(err);
  }

  const batches: SpoolBatch[] = [];
  for (let start = 0; start < pieces.length; start += options.batchSize) {
    const docs = pieces.slice(start, start + options.batchSize);
    // A chunked document's old chunks go before its first new chunk is written: no stale chunk is left.
    const replace = chunking ? sourcesStartingIn(docs) : [];
    batches.push(replace.length > 0 ? { docs, replace } : { docs });
  }
  const spool = spoolFileName(options.jobId);
  const offset = await writeSpool(
    path.join(jobsDir, spool),
    { v: 1, jobId: options.jobId, collection, documents: items.length, chunks: pieces.length, batches: batches.length, ids: pieces.map((d) => d.id) },
    batches,
  );
  return createIngestJobSpec({
    jobId: options.jobId,
    collection,
    spool,
    documents: items.length,
    chunks: pieces.length,
    batches: batches.length,
    createCollection: options.createCollection,
    buildIndex: options.buildIndex,
    ...(options.simulateFailure !== undefined ? { simulateFailure: options.simulateFailure } : {}),
    startedAt,
    offset,
    spoolMs: Math.round(performance.now() - t0),
  });
}

/** The vector size the job will write: a given vector's, else the embedder's when it is known up front. */
function dimensionsOf(docs: SpooledDocument[], embedderDimensions: number | null): number | null {
  for (const doc of docs) if (doc.vector) return doc.vector.length;
  return embedderDimensions;
}

/** Given vectors all have one size (the embedder's too, when known) and values every store can hold. */
function checkGivenVectors(docs: SpooledDocument[], backendName: string, embedderDimensions: number | null): void {
  const first = docs.find((d) => d.vector);
  if (!first?.vector) return;
  const dimensions = first.vector.length;
  const limit = vectorLimitOf(backendName, dimensions);
  const needsEmbedding = docs.some((d) => !d.vector);
  if (needsEmbedding && embedderDimensions !== null && embedderDimensions !== dimensions) {
    throw new VectorStoreError(
      'DIMENSION_MISMATCH',
      `Document "${first.id}" has a vector of ${dimensions} dimensions, but the embedder makes vectors of ${embedderDimensions} for the documents given as text: all documents of one message must have vectors of the same size.`,
    );
  }
  for (const doc of docs) {
    if (!doc.vector) continue;
    if (doc.vector.length !== dimensions) {
      throw new VectorStoreError(
        'DIMENSION_MISMATCH',
        `Document "${doc.id}" has a vector of ${doc.vector.length} dimensions but document "${first.id}" has ${dimensions}: all documents of one message must have vectors of the same size.`,
      );
    }
    checkPortableVector(doc.vector, `the vector of document "${doc.id}"`, limit);
  }
}

/** The collection exists (with these dimensions, when known) or may be created. */
async function checkCollection(store: Store, collection: string, create: boolean, dimensions: number | null): Promise<void> {
  const { backend } = store;
  if (await backend.collectionExists(collection)) {
    if (dimensions === null) return; // learnt from the first embedding: the first batch checks it
    const stats = await backend.stats(collection);
    if (stats.dimensions !== dimensions) {
      throw new VectorStoreError(
        'DIMENSION_MISMATCH',
        `Collection "${collection}" holds vectors of ${stats.dimensions} dimensions, but these documents have ${dimensions}. Use the same embedder settings as when the collection was created, or another collection.`,
      );
    }
  } else if (!create) {
    throw new VectorStoreError(
      'NOT_FOUND',
      `Collection "${collection}" does not exist in the ${backend.name} store, and "create collection" is off. Create it first, or turn the option on.`,
    );
  }
}
