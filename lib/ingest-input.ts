/**
 * An ingest's input, checked and named: what the direct, gathered and background
 * ingests share. Every check any store would make runs on the whole input before
 * anything is written (so bad input writes nothing), and every document gets its
 * id: the given one, else a stable hash of its text (re-ingesting a text is an
 * upsert, not a duplicate).
 */
import { createHash } from 'node:crypto';
import type { Backend } from './types';
import { VectorStoreError } from './errors';
import { stableId } from './ids';
import type { IdentifiedItem } from './chunking';
import type { IngestItem } from './schemas';
import { WorkSlicer, checkPortableId, checkPortableMetadata, checkPortableString, checkPortableVector } from './backends/documents';
import type { IngestOptions, Store } from './operations';

/**
 * The checks `ingestDocuments` makes on one input before it embeds anything (the
 * simulate option, ids, texts, given vectors, metadata), with every missing id
 * filled in as it would fill it. Throws what `ingestDocuments` would throw for
 * this input alone. The gathering ingest (./ingest-gatherer.ts) runs it on each
 * message before messages join a batch, so a bad message fails alone and each
 * message knows its ids.
 */
export async function checkIngestInput(store: Store, items: IngestItem[], options: Pick<IngestOptions, 'collection' | 'simulateFailure' | 'fieldOf'>): Promise<IngestItem[]> {
  checkSimulate(store.backend.name, options.collection, options.simulateFailure);
  const fieldOf = options.fieldOf ?? ((i: number) => `msg.payload[${i}]`);
  const slicer = new WorkSlicer();
  try {
    await checkItems(items, fieldOf, slicer);
    return await withIds(items, slicer);
  } catch (err) {
    throw nothingWritten(err);
  }
}

/** msg.simulate (a simulated indexing failure) is for the memory backend only. */
export function checkSimulate(backendName: string, collection: string, simulateFailure: string | undefined): void {
  if (simulateFailure !== undefined && backendName !== 'memory') {
    throw new VectorStoreError(
      'INVALID_INPUT',
      `msg.simulate only works with the memory backend; the store of collection "${collection}" is ${backendName}. Remove msg.simulate.`,
    );
  }
}

/** The collection exists with these dimensions, or is created when allowed; the last step before the first write. */
export async function prepareCollection(backend: Backend, collection: string, dimensions: number, create: boolean): Promise<void> {
  if (await backend.collectionExists(collection)) {
    const stats = await backend.stats(collection);
    if (stats.dimensions !== dimensions) {
      throw new VectorStoreError(
        'DIMENSION_MISMATCH',
        `Collection "${collection}" holds vectors of ${stats.dimensions} dimensions, but these documents have ${dimensions}. Use the same embedder settings as when the collection was created, or another collection.`,
      );
    }
  } else if (create) {
    await backend.ensureCollection(collection, { dimensions, metric: 'cosine' });
  } else {
    throw new VectorStoreError(
      'NOT_FOUND',
      `Collection "${collection}" does not exist in the ${backend.name} store, and "create collection" is off. Create it first, or turn the option on.`,
    );
  }
}

/** A rejected input's error, saying that nothing was written (same code). */
export function nothingWritten(err: unknown): unknown {
  if (!(err instanceof VectorStoreError) || err.transient || /Nothing was written/.test(err.message)) return err;
  return new VectorStoreError(err.code, `${err.message} Nothing was written.`, { transient: false, cause: err.cause });
}

/** The checks every store makes on ids, texts, given vectors and metadata, for the whole input. */
export async function checkItems(items: IngestItem[], fieldOf: (i: number) => string, slicer: WorkSlicer): Promise<void> {
  for (let i = 0; i < items.length; i++) {
    const { id, text, vector, metadata } = items[i];
    const field = fieldOf(i);
    if (id !== undefined) checkPortableId(id, `${field}.id`);
    if (text !== undefined) {
      checkPortableString(text, `${field}.text`);
      if (slicer.spend(text.length / 8)) await slicer.pause(); // a scan of the text: cheap per character
    }
    if (vector !== undefined) checkPortableVector(vector, `${field}.vector`);
    if (metadata !== undefined) await checkPortableMetadata(metadata, `${field}.metadata`, slicer);
    if (slicer.spend(1 + (vector?.length ?? 0))) await slicer.pause();
  }
}

/**
 * Every item with its id: the given one, else the stable hash of its text (or of
 * its vector, for a document without text).
 */
export async function withIds(items: IngestItem[], slicer: WorkSlicer): Promise<IdentifiedItem[]> {
  const identified: IdentifiedItem[] = [];
  for (const item of items) {
    const id = await idOf(item, slicer);
    identified.push(item.id === undefined ? { ...item, id } : (item as IdentifiedItem));
  }
  return identified;
}

/** One item's id (see withIds), pausing now and then over long texts. */
export async function idOf(item: IngestItem, slicer: WorkSlicer): Promise<string> {
  const { text } = item;
  // Short texts (nearly all) hashed at once: an await per document would cost more than its hash.
  const id =
    item.id ??
    (text === undefined ? vectorId(item.vector ?? []) : text.length <= ID_HASH_SLICE_CHARS ? stableId(text) : await textId(text, slicer));
  if (text !== undefined && slicer.spend(text.length / 4)) await slicer.pause();
  return id;
}

/** Texts hashed per call to update: about 1 MB of text at a time between pauses. */
export const ID_HASH_SLICE_CHARS = 1 << 20;

/**
 * `stableId(text)`, hashed in slices so a text of many megabytes does not hold
 * the event loop. The same id: slices never split a surrogate pair, so their
 * UTF-8 bytes are the whole text's.
 */
export async function textId(text: string, slicer: WorkSlicer): Promise<string> {
  const hash = createHash('sha256');
  for (let start = 0; start < text.length; ) {
    let end = Math.min(text.length, start + ID_HASH_SLICE_CHARS);
    const last = text.charCodeAt(end - 1);
    if (end < text.length && last >= 0xd800 && last <= 0xdbff) end += 1; // keep a pair whole
    hash.update(text.slice(start, end), 'utf8');
    start = end;
    await slicer.pause();
  }
  return 'doc-' + hash.digest('hex').slice(0, 32);
}

/**
 * One document per id, the last one winning (as if written in order). Stores
 * such as Postgres reject one upsert statement that touches a row twice.
 */
export function lastOfEachId<D extends { id: string }>(docs: D[]): D[] {
  const byId = new Map<string, D>();
  for (const doc of docs) {
    byId.delete(doc.id);
    byId.set(doc.id, doc);
  }
  return byId.size === docs.length ? docs : [...byId.values()];
}

/** A stable id for a document given only as a vector. */
export function vectorId(vector: Float32Array | number[]): string {
  const bytes = Buffer.from(Float32Array.from(vector).buffer);
  return 'vec-' + createHash('sha256').update(bytes).digest('hex').slice(0, 32);
}
