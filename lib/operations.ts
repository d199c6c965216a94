/**
 * What the ingest, health and query nodes do, without Node-RED: each function
 * takes a store (backend + embedder) and already-validated input, and returns
 * the payload the node sends. Keeping them here lets tests and benchmarks call
 * exactly what the nodes call. The checks and ids every ingest shares are in
 * ./ingest-input.ts; background jobs in ./ingest-job/, gathering in ./ingest-gatherer.ts.
 */
import type { Backend, CollectionRef, CollectionStats, Embedder, QueryHit, VectorDocument } from './types';
import { collectionLabel } from './collection-ref';
import { VectorStoreError, messageOf } from './errors';
import { chunkItems, checkChunkOptions, sourcesStartingIn, type ChunkOptions, type IdentifiedItem } from './chunking';
import { checkItems, checkSimulate, lastOfEachId, nothingWritten, prepareCollection, withIds } from './ingest-input';
import type { DeletePayload, IngestItem, QuerySpec } from './schemas';
import { WorkSlicer, checkPortableId, checkPortableMetadata, checkPortableVector, vectorLimitOf } from './backends/documents';

/** A configured store: what a `vector-store` config node hands to the other nodes. */
export interface Store {
  backend: Backend;
  embedder: Embedder;
}

// ---------------------------------------------------------------- ingest

export interface IngestOptions {
  collection: string;
  batchSize: number;
  createCollection: boolean;
  buildIndex: boolean;
  /** Memory backend only: make this collection's indexing fail with this reason. */
  simulateFailure?: string;
  /** How messages name input document i; default `msg.payload[i]`. */
  fieldOf?: (index: number) => string;
  /** Split texts into chunks `<id>#<n>` before embedding; absent: documents are written whole. */
  chunking?: ChunkOptions;
}

export interface IngestResult {
  collection: string;
  /** Documents (with chunking: chunks) written, and their ids. */
  ingested: number;
  ids: string[];
  /** With chunking: the input's documents, and the chunks written for them. */
  documents?: number;
  chunks?: number;
  totalCount: number;
  batches: number;
  durationMs: number;
}

/** What a delete did (vector-ingest with operation "delete"). */
export interface DeleteReport {
  collection: string;
  operation: 'delete';
  /** Documents (and chunks) removed by this call. */
  deleted: number;
  /** Documents in the collection after it. */
  totalCount: number;
  durationMs: number;
}

/**
 * Remove documents by id, and by source document with its chunks (`<source>#<n>`),
 * in one store call. Ids are checked as every store would before anything is removed.
 */
export async function deleteDocuments(store: Store, collection: string, selector: DeletePayload): Promise<DeleteReport> {
  const started = performance.now();
  selector.ids.forEach((id, i) => checkPortableId(id, selector.ids.length === 1 ? 'the id to delete' : `ids[${i}]`));
  selector.sources.forEach((id, i) => checkPortableId(id, selector.sources.length === 1 ? 'the source to delete' : `sources[${i}]`));
  const { deleted, totalCount } = await store.backend.delete(collection, {
    ...(selector.ids.length > 0 ? { ids: selector.ids } : {}),
    ...(selector.sources.length > 0 ? { sources: selector.sources } : {}),
  });
  return { collection, operation: 'delete', deleted, totalCount, durationMs: Math.round(performance.now() - started) };
}

/**
 * Embed, validate and write documents. Everything that can be checked is checked
 * on the whole input before the first write and before a collection is created
 * (ids, texts, metadata, vectors, dimensions, the collection), with the checks of
 * every backend, so bad input writes nothing. Long inputs are checked in slices,
 * so the event loop keeps turning.
 */
export async function ingestDocuments(store: Store, items: IngestItem[], options: IngestOptions): Promise<IngestResult> {
  const started = performance.now();
  const { backend } = store;
  const { collection } = options;
  checkSimulate(store.backend.name, options.collection, options.simulateFailure);
  const fieldOf = options.fieldOf ?? ((i: number) => `msg.payload[${i}]`);

  const { chunking } = options;

  const slicer = new WorkSlicer();
  let docs: VectorDocument[];
  try {
    if (chunking) checkChunkOptions(chunking);
    await checkItems(items, fieldOf, slicer);
    const identified = await withIds(items, slicer);
    // Chunks after the ids: a chunk's id and source are its document's id.
    const pieces: Array<IdentifiedItem & { input?: number }> = chunking
      ? await chunkItems(identified, chunking, fieldOf, slicer)
      : identified;
    const fieldOfPiece = (k: number) => fieldOf(pieces[k].input ?? k);
    docs = await toDocuments(store.embedder, pieces, slicer);
    checkVectors(docs, pieces, fieldOfPiece, backend.name);
    docs = lastOfEachId(docs);
    await prepareCollection(backend, collection, docs[0].vector.length, options.createCollection);
  } catch (err) {
    throw nothingWritten(err);
  }

  let totalCount = 0;
  let batches = 0;
  for (let start = 0; start < docs.length; start += options.batchSize) {
    const batch = docs.slice(start, start + options.batchSize);
    if (chunking) {
      // A document's old chunks go before its new first chunk is written: an edit that
      // makes fewer chunks leaves none behind (later batches only add its other chunks).
      const sources = sourcesStartingIn(batch);
      if (sources.length > 0) await backend.delete(collection, { sources });
    }
    const result = await backend.upsert(collection, batch, {
      buildIndex: options.buildIndex,
      simulateFailure: options.simulateFailure,
    });
    totalCount = result.totalCount;
    batches += 1;
  }
  return {
    collection,
    ingested: docs.length,
    ids: docs.map((d) => d.id),
    ...(chunking ? { documents: items.length, chunks: docs.length } : {}),
    totalCount,
    batches,
    durationMs: Math.round(performance.now() - started),
  };
}

/**
 * Every vector, given or embedded, has the size of the first and values every
 * store can hold (pgvector's half-precision index included when it is the store).
 */
function checkVectors(docs: VectorDocument[], items: IngestItem[], fieldOf: (i: number) => string, backendName: string): void {
  const dimensions = docs[0].vector.length;
  const limit = vectorLimitOf(backendName, dimensions);
  docs.forEach((doc, i) => {
    if (doc.vector.length !== dimensions) {
      throw new VectorStoreError(
        'DIMENSION_MISMATCH',
        `${fieldOf(i)} has a vector of ${doc.vector.length} dimensions but ${fieldOf(0)} has ${dimensions}: all documents of one message must have vectors of the same size.`,
      );
    }
    if (items[i].vector) {
      checkPortableVector(doc.vector, `${fieldOf(i)}.vector`, limit);
      return;
    }
    try {
      checkPortableVector(doc.vector, 'value', limit);
    } catch (err) {
      throw new VectorStoreError(
        'INVALID_INPUT',
        `The embedder returned a vector for ${fieldOf(i)}.text that cannot be stored: its ${messageOf(err)} Check the embedding service and model.`,
      );
    }
  });
}

/** Give every item its vector; texts are embedded in one call. */
async function toDocuments(embedder: Embedder, items: IdentifiedItem[], slicer: WorkSlicer): Promise<VectorDocument[]> {
  const toEmbed: number[] = [];
  items.forEach((item, i) => {
    if (!item.vector) toEmbed.push(i);
  });
  const embedded = toEmbed.length > 0 ? await embedder.embed(toEmbed.map((i) => items[i].text as string)) : [];
  const vectors: Array<Float32Array | number[]> = items.map((item) => item.vector ?? []);
  toEmbed.forEach((itemIndex, k) => {
    vectors[itemIndex] = embedded[k];
  });
  const docs: VectorDocument[] = [];
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    docs.push({ id: item.id, vector: vectors[i], text: item.text, metadata: item.metadata });
    if (slicer.spend(1)) await slicer.pause();
  }
  return docs;
}

// ---------------------------------------------------------------- health

export interface HealthOptions {
  /** A package collection, or one another tool made (see ExistingCollection). */
  collection: CollectionRef;
  /** 0: not checked. */
  expectedCount: number;
  countMode: 'atLeast' | 'exact';
  /** 0: not checked. */
  dimensions: number;
}

export interface HealthCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface HealthReport {
  /** The collection's name, or for another tool's collection its label ("public.items", "langchain:docs"). */
  collection: string;
  healthy: boolean;
  documentCount: number | null;
  indexedCount: number | null;
  dimensions: number | null;
  metric: string | null;
  indexType: string | null;
  /** Which search answers queries now, when the backend says (the memory store: "exact" or "hnsw"); else null. */
  search: 'exact' | 'hnsw' | null;
  queryable: boolean;
  queryLatencyMs: number | null;
  checks: HealthCheck[];
}

/**
 * Prove the index answers queries, holds the expected documents, and is fully
 * indexed. Never throws for an unhealthy index: the report says why. Throws only
 * when the store itself cannot be asked (then the triggerer-style retry is the
 * caller's business).
 */
export async function checkHealth(store: Store, options: HealthOptions): Promise<HealthReport> {
  const { backend } = store;
  const { collection } = options;
  const label = collectionLabel(collection);
  const report: HealthReport = {
    collection: label,
    healthy: false,
    documentCount: null,
    indexedCount: null,
    dimensions: null,
    metric: null,
    indexType: null,
    search: null,
    queryable: false,
    queryLatencyMs: null,
    checks: [],
  };
  const check = (name: string, ok: boolean, detail: string) => report.checks.push({ name, ok, detail });

  if (!(await backend.collectionExists(collection))) {
    check('exists', false, `collection "${label}" does not exist in the ${backend.name} store`);
    return report;
  }
  check('exists', true, `collection "${label}" exists`);

  const stats: CollectionStats = await backend.stats(collection);
  const status = await backend.status(collection);
  Object.assign(report, {
    documentCount: stats.documentCount,
    indexedCount: status.indexedCount,
    dimensions: stats.dimensions,
    metric: stats.metric,
    indexType: stats.indexType,
    search: stats.search ?? null,
  });

  const indexed = status.state === 'ready' && status.indexedCount >= status.documentCount;
  check(
    'indexed',
    indexed,
    status.state === 'failed'
      ? `indexing failed: ${status.detail ?? 'no reason given'}`
      : `${status.indexedCount} of ${status.documentCount} documents indexed (${status.state})`,
  );

  if (options.expectedCount > 0) {
    const n = stats.documentCount;
    const want = options.expectedCount;
    const ok = options.countMode === 'exact' ? n === want : n >= want;
    check('count', ok, `${n} documents, expected ${options.countMode === 'exact' ? 'exactly' : 'at least'} ${want}`);
  }

  if (options.dimensions > 0) {
    check(
      'dimensions',
      stats.dimensions === options.dimensions,
      `${stats.dimensions} dimensions, expected ${options.dimensions}`,
    );
  }

  // A query with a fixed probe vector proves the index answers, and times it.
  const probe = new Float32Array(stats.dimensions);
  probe[0] = 1;
  const t0 = performance.now();
  try {
    const hits = await backend.query(collection, { vector: probe, topK: 1 });
    report.queryLatencyMs = Math.round((performance.now() - t0) * 100) / 100;
    report.queryable = stats.documentCount === 0 || hits.length > 0;
    check(
      'queryable',
      report.queryable,
      report.queryable
        ? `a probe query answered in ${report.queryLatencyMs} ms`
        : `a probe query returned nothing although the collection holds ${stats.documentCount} documents`,
    );
  } catch (err) {
    check('queryable', false, `a probe query failed: ${messageOf(err)}`);
  }

  report.healthy = report.checks.every((c) => c.ok);
  return report;
}

/** One sentence naming what is wrong with an unhealthy report. */
export function describeUnhealthy(report: HealthReport): string {
  const failed = report.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);
  return `Collection "${report.collection}" is not healthy (${failed.join('; ')}).`;
}

// ---------------------------------------------------------------- query

/** Run queries (texts embedded in one call); one hit list per query, best first. */
export async function queryCollection(
  store: Store,
  collection: CollectionRef,
  queries: QuerySpec[],
  /** How messages name query i; default `msg.payload[i]`, or `msg.payload` for a single query. */
  fieldOf: (index: number) => string = (i) => (queries.length === 1 ? 'msg.payload' : `msg.payload[${i}]`),
): Promise<QueryHit[][]> {
  // No existence check first: every backend answers NOT_FOUND itself (the
  // conformance suite checks it), and the extra round trip doubled query cost
  // on server stores.
  const { backend } = store;
  // What every store can take, checked for all queries before the first is sent.
  const slicer = new WorkSlicer();
  for (let i = 0; i < queries.length; i++) {
    const { vector, filter } = queries[i];
    if (vector) checkPortableVector(vector, `${fieldOf(i)}.vector`);
    if (filter) await checkPortableMetadata(filter, `${fieldOf(i)}.filter`, slicer);
  }
  const textIndexes = queries.flatMap((q, i) => (q.vector ? [] : [i]));
  const embedded = textIndexes.length > 0 ? await store.embedder.embed(textIndexes.map((i) => queries[i].text as string)) : [];
  const vectors: Array<Float32Array | number[]> = queries.map((q) => q.vector ?? []);
  textIndexes.forEach((queryIndex, k) => {
    vectors[queryIndex] = embedded[k];
  });
  const results: QueryHit[][] = [];
  for (let i = 0; i < queries.length; i++) {
    results.push(await backend.query(collection, { vector: vectors[i], topK: queries[i].topK, filter: queries[i].filter }));
  }
  return results;
}
