/**
 * How documents are stored in a Chroma collection, and read back.
 *
 * Chroma metadata values must be scalars (string, number, boolean), and an
 * upsert *merges* new metadata into the old (keys it does not mention stay) and
 * keeps the old document text when none is sent. To store any JSON metadata and
 * to replace a document whole, each record carries:
 *
 * - `vp:meta`: the user's metadata as a JSON string (absent when there is none);
 *   this is what queries return, so nested objects and arrays round-trip;
 * - a copy of every top-level scalar field of the user's metadata, so Chroma's
 *   `where` can filter on it (exact equality);
 * - `vp:notext: true` when the document has no text (its Chroma document is then
 *   "", which replaces an older text);
 * - `null` for each field an older version of the record had and this one does
 *   not (Chroma deletes a key set to null), found by reading the old records first.
 *
 * Records written by others (no `vp:meta`) read back with their scalar metadata.
 */
import { VectorStoreError } from '../../errors';
import type { Metric, QueryHit } from '../../types';
import { checkDocuments, lastOfEachId, toFloat32Vector } from '../documents';
import { matchesFilter } from '../queries';
import { describeValue, isPlainObject, namedCollection } from '../values';

export const META_KEY = 'vp:meta';
export const NO_TEXT_KEY = 'vp:notext';
/** Collection metadata: the dimension given at creation (Chroma itself learns it on the first write). */
export const DIMENSIONS_KEY = 'vp:dimensions';

export type ScalarMetadata = Record<string, string | number | boolean | null>;

/** A validated document, encoded for Chroma's upsert. */
export interface ChromaRecord {
  id: string;
  vector: Float32Array;
  document: string;
  metadata: ScalarMetadata;
}

/** How messages name a collection of this backend. */
export function chromaCollection(name: string): string {
  return namedCollection(name, 'Chroma');
}

/** True for keys this backend copies to the top level (and so can filter on). */
export function isFilterableKey(key: string): boolean {
  // "vp:" is ours; Chroma drops "chroma:" keys and uses "$"/"#" for its own syntax.
  return key.length > 0 && !/^(vp:|chroma:|\$|#)/.test(key);
}

export function isScalar(value: unknown): value is string | number | boolean {
  return typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value));
}

/**
 * Check every document before anything is written, and keep the last of each
 * id (as if written one after another; Chroma refuses an id twice in one request).
 * `dimensions` null: the collection has none yet, so all vectors must match the first.
 */
export function prepareRecords(docs: unknown, dimensions: number | null, collection: string): ChromaRecord[] {
  const named = chromaCollection(collection);
  let expected = dimensions;
  const checked = checkDocuments(docs, named, {
    vector: (value, what) => {
      const vector = toFloat32Vector(value, expected, what, named);
      expected = vector.length;
      return vector;
    },
  });
  return lastOfEachId(
    checked.map(({ id, vector, text, metadata, metadataJson }) => ({
      id,
      vector,
      document: text ?? '',
      metadata: encodeMetadata(metadata, metadataJson, text !== null),
    })),
  );
}

/** `json`: the metadata as JSON text (see `checkDocuments`). */
function encodeMetadata(metadata: Record<string, unknown> | null, json: string | null, hasText: boolean): ScalarMetadata {
  const encoded: ScalarMetadata = {};
  if (metadata && json !== null && Object.keys(metadata).length > 0) {
    // Parsed back so what is filtered on equals what is read back (a Date becomes a string).
    const copy = JSON.parse(json) as Record<string, unknown>;
    for (const [key, value] of Object.entries(copy)) {
      if (isFilterableKey(key) && isScalar(value)) encoded[key] = value;
    }
    encoded[META_KEY] = json;
  }
  if (!hasText) encoded[NO_TEXT_KEY] = true;
  return encoded;
}

/**
 * The metadata to send for a record that replaces `previous` (the stored one, or
 * null): every key the old version had and the new one lacks is set to null,
 * which Chroma deletes.
 */
export function replacingMetadata(record: ChromaRecord, previous: Record<string, unknown> | null): ScalarMetadata | null {
  const metadata: ScalarMetadata = { ...record.metadata };
  if (previous) {
    for (const key of Object.keys(previous)) {
      if (!(key in metadata)) metadata[key] = null;
    }
  }
  // Chroma stores {} as null; send null so a new record carries no empty object.
  return Object.keys(metadata).length > 0 ? metadata : null;
}

/** Little-endian float32 bytes in base64: Chroma's compact embedding format. */
export function base64Vector(vector: Float32Array): string {
  const bytes = Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength);
  if (bytes.length > 0 && new Uint8Array(new Float32Array([1]).buffer)[3] !== 0x3f) {
    // Big-endian host: swap to little-endian.
    return Buffer.from(bytes).swap32().toString('base64');
  }
  return bytes.toString('base64');
}

/**
 * Chroma's `where` for an exact-equality filter. Only top-level scalar fields
 * are copied where Chroma can see them, so only those can be filtered on.
 */
export function whereOf(filter: Record<string, unknown>, collection: string): Record<string, unknown> | undefined {
  const clauses: Array<Record<string, unknown>> = [];
  for (const [key, value] of Object.entries(filter)) {
    if (!isFilterableKey(key)) {
      throw new VectorStoreError(
        'INVALID_INPUT',
        `The query filter on ${chromaCollection(collection)} uses the field ${JSON.stringify(key)}, which the chroma backend ` +
          'cannot filter on (empty names and names starting with "vp:", "chroma:", "$" or "#" are reserved). Filter on another field.',
      );
    }
    if (!isScalar(value)) {
      throw new VectorStoreError(
        'INVALID_INPUT',
        `The query filter on ${chromaCollection(collection)} gives field ${JSON.stringify(key)} the value ${describeValue(value)}: ` +
          'the chroma backend filters only on strings, numbers and booleans (exact equality). Remove that field from the filter.',
      );
    }
    clauses.push({ [key]: { $eq: value } });
  }
  if (clauses.length === 0) return undefined;
  return clauses.length === 1 ? clauses[0] : { $and: clauses };
}

/** The user's metadata of a stored record: `vp:meta` when we wrote it, else its own scalar fields. */
export function decodeMetadata(stored: unknown): Record<string, unknown> {
  if (!isPlainObject(stored)) return {};
  const json = stored[META_KEY];
  if (typeof json === 'string') {
    try {
      const parsed = JSON.parse(json) as unknown;
      if (isPlainObject(parsed)) return parsed;
    } catch {
      // Not ours after all: fall through to the plain fields.
    }
  }
  const plain: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(stored)) {
    if (!key.startsWith('vp:')) plain[key] = value;
  }
  return plain;
}

export function decodeText(document: unknown, stored: unknown): string | null {
  if (isPlainObject(stored) && stored[NO_TEXT_KEY] === true) return null;
  return typeof document === 'string' ? document : null;
}

/** Chroma's distance to a "higher is better" score: cosine similarity for cosine, the dot product for ip. */
export function scoreOf(distance: unknown, metric: Metric): number {
  if (typeof distance !== 'number' || !Number.isFinite(distance)) return 0;
  // Chroma: cosine distance = 1 - cos; ip distance = 1 - dot; l2 distance = squared L2.
  return metric === 'l2' ? -distance : 1 - distance;
}

/** The hits of a query answer (first query of the batch), best first. */
export function hitsOf(answer: unknown, metric: Metric, filter: Record<string, unknown> | null): QueryHit[] | null {
  if (!isPlainObject(answer) || !Array.isArray(answer.ids)) return null;
  const ids = answer.ids[0];
  if (!Array.isArray(ids)) return null;
  const column = (name: string): unknown[] => {
    const rows = answer[name];
    return Array.isArray(rows) && Array.isArray(rows[0]) ? (rows[0] as unknown[]) : [];
  };
  const documents = column('documents');
  const metadatas = column('metadatas');
  const distances = column('distances');
  const hits: QueryHit[] = ids.map((id, i) => ({
    id: String(id),
    score: scoreOf(distances[i], metric),
    text: decodeText(documents[i], metadatas[i]),
    metadata: decodeMetadata(metadatas[i]),
  }));
  const kept = filter ? hits.filter((hit) => matchesFilter(hit.metadata, filter)) : hits;
  return kept.sort((a, b) => b.score - a.score);
}
