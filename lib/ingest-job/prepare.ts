/**
 * Turning an ingest message into a job: every check the direct ingest makes on
 * the whole input (lib/operations.ts), ids assigned, documents split into
 * chunks when asked, then the batches written to the job's spool. Nothing
 * reaches the store before the input is known to be good, and nothing is
 * acknowledged before the spool is on disk.
 */
import { VectorStoreError } from '../errors';
import { WorkSlicer, checkPortableVector, vectorLimitOf } from '../backends/documents';
import type { IngestOptions, Store } from '../operations';
import { checkItems, checkSimulate, idOf, lastOfEachId, nothingWritten, withIds } from '../ingest-input';
import type { IngestItem } from '../schemas';
import { createIngestJobSpec, type IngestJobSpec } from './spec';
import { checkChunkOptions, chunkItems, sourcesStartingIn } from '../chunking';
import { spoolFileName, type SpoolBatch, type SpooledDocument } from './spool';
import { FileSpools, type JobSpools } from './spools';

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

/** A spooled job: its spec, and its batches while the input is in memory. */
export interface SpooledJob {
  spec: IngestJobSpec;
  batches: InMemoryBatches;
}

/** Batch b of a job, and the spool offset just after it: what a run reads, without the disk. */
export interface InMemoryBatches {
  count: number;
  batch(b: number): SpoolBatch;
  endOffset(b: number): number;
}

/** The direct ingest's options, plus the job's id. */
export interface NewJobOptions extends IngestOptions {
  jobId: string;
  /** Epoch ms when the message arrived. */
  now?: number;
}

/**
 * Check the input, spool it in `spools` (a directory: files there), and return
 * the job's spec (not yet deferred). Bad input rejects with a sentence naming the field, saying that
 * nothing was written.
 */
export async function spoolIngestJob(store: Store, items: IngestItem[], spools: JobSpools | string, options: NewJobOptions): Promise<SpooledJob> {
  const startedAt = options.now ?? Date.now();
  const t0 = performance.now();
  const { backend, embedder } = store;
  const { collection, chunking } = options;
  const fieldOf = options.fieldOf ?? ((i: number) => `msg.payload[${i}]`);
  checkSimulate(backend.name, collection, options.simulateFailure);
  const slicer = new WorkSlicer();
  let pieces: Pieces;
  try {
    if (chunking) checkChunkOptions(chunking);
    await checkItems(items, fieldOf, slicer);
    if (chunking) {
      // Chunks after the ids: a chunk's id and source are its document's id (lib/chunking.ts).
      const chunks = await chunkItems(await withIds(items, slicer), chunking, fieldOf, slicer);
      pieces = listed(lastOfEachId(chunks.map(({ input: _input, ...piece }) => piece)));
    } else {
      pieces = wholeDocuments(items, await idsOf(items, slicer));
    }
    checkGivenVectors(pieces, backend.name, embedder.dimensions);
    await checkCollection(store, collection, options.createCollection, dimensionsOf(pieces, embedder.dimensions));
  } catch (err) {
    throw nothingWritten(err);
  }

  const batchCount = Math.ceil(pieces.count / options.batchSize);
  // Built one batch at a time (as the spool is written, and again as the job runs): the input is never copied whole.
  const batchAt = (b: number): SpoolBatch => {
    const docs: SpooledDocument[] = [];
    for (let k = b * options.batchSize; k < Math.min(pieces.count, (b + 1) * options.batchSize); k++) docs.push(pieces.doc(k));
    // A chunked document's old chunks go before its first new chunk is written: no stale chunk is left.
    const replace = chunking ? sourcesStartingIn(docs) : [];
    return replace.length > 0 ? { docs, replace } : { docs };
  };
  function* batches(): Generator<SpoolBatch> {
    for (let b = 0; b < batchCount; b++) yield batchAt(b);
  }
  const ids = Array.from({ length: pieces.count }, (_, k) => pieces.id(k));
  const spool = spoolFileName(options.jobId);
  const layout = await (typeof spools === 'string' ? new FileSpools(spools) : spools).write(
    spool,
    { v: 1, jobId: options.jobId, collection, documents: items.length, chunks: pieces.count, batches: batchCount, ids },
    batches(),
  );
  const spec = createIngestJobSpec({
    jobId: options.jobId,
    collection,
    spool,
    documents: items.length,
    chunks: pieces.count,
    batches: batchCount,
    createCollection: options.createCollection,
    buildIndex: options.buildIndex,
    ...(options.simulateFailure !== undefined ? { simulateFailure: options.simulateFailure } : {}),
    startedAt,
    offset: layout.first,
    spoolMs: Math.round(performance.now() - t0),
  });
  // The same batches as the spool's, from the input still in memory: the job's first run
  // in this process reads none of them back from the spool (a resumed run after a restart does).
  return { spec, batches: { count: batchCount, batch: batchAt, endOffset: (b) => layout.ends[b] } };
}

/**
 * What a job writes, in order, without copying the input: piece k's id, its
 * item (text, vector, metadata), and the document the spool holds for it
 * (made when its batch is written).
 */
interface Pieces {
  readonly count: number;
  id(k: number): string;
  item(k: number): IngestItem;
  doc(k: number): SpooledDocument;
}

/** Pieces already made (chunks). */
function listed(docs: SpooledDocument[]): Pieces {
  return { count: docs.length, id: (k) => docs[k].id, item: (k) => docs[k], doc: (k) => docs[k] };
}

/**
 * The input's documents with their ids: one per id, the last one winning (as if
 * written in order), in the order of the winners, like lastOfEachId.
 */
function wholeDocuments(items: IngestItem[], ids: string[]): Pieces {
  let order: number[] | null = null;
  if (new Set(ids).size !== ids.length) {
    const last = new Map<string, number>();
    ids.forEach((id, i) => {
      last.delete(id);
      last.set(id, i);
    });
    order = [...last.values()];
  }
  const at = (k: number) => (order ? order[k] : k);
  return {
    count: order ? order.length : items.length,
    id: (k) => ids[at(k)],
    item: (k) => items[at(k)],
    doc: (k) => ({ ...items[at(k)], id: ids[at(k)] }),
  };
}

/** Each item's id (see withIds), without copying the items. */
async function idsOf(items: IngestItem[], slicer: WorkSlicer): Promise<string[]> {
  const ids: string[] = [];
  for (const item of items) ids.push(await idOf(item, slicer));
  return ids;
}

/** The vector size the job will write: a given vector's, else the embedder's when it is known up front. */
function dimensionsOf(pieces: Pieces, embedderDimensions: number | null): number | null {
  for (let k = 0; k < pieces.count; k++) {
    const vector = pieces.item(k).vector;
    if (vector) return vector.length;
  }
  return embedderDimensions;
}

/** Given vectors all have one size (the embedder's too, when known) and values every store can hold. */
function checkGivenVectors(pieces: Pieces, backendName: string, embedderDimensions: number | null): void {
  let first = -1;
  let needsEmbedding = false;
  for (let k = 0; k < pieces.count; k++) {
    if (pieces.item(k).vector) {
      if (first === -1) first = k;
    } else {
      needsEmbedding = true;
    }
  }
  if (first === -1) return;
  const firstId = pieces.id(first);
  const dimensions = (pieces.item(first).vector as number[]).length;
  const limit = vectorLimitOf(backendName, dimensions);
  if (needsEmbedding && embedderDimensions !== null && embedderDimensions !== dimensions) {
    throw new VectorStoreError(
      'DIMENSION_MISMATCH',
      `Document "${firstId}" has a vector of ${dimensions} dimensions, but the embedder makes vectors of ${embedderDimensions} for the documents given as text: all documents of one message must have vectors of the same size.`,
    );
  }
  for (let k = 0; k < pieces.count; k++) {
    const vector = pieces.item(k).vector;
    if (!vector) continue;
    if (vector.length !== dimensions) {
      throw new VectorStoreError(
        'DIMENSION_MISMATCH',
        `Document "${pieces.id(k)}" has a vector of ${vector.length} dimensions but document "${firstId}" has ${dimensions}: all documents of one message must have vectors of the same size.`,
      );
    }
    checkPortableVector(vector, `the vector of document "${pieces.id(k)}"`, limit);
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
