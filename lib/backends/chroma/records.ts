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
import { VectorStoreError, messageOf } from '../../errors';
import type { Metric, QueryHit, VectorDocument } from '../../types';

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

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !ArrayBuffer.isView(value);
}

/** True for keys this backend copies to the top level (and so can filter on). */
export function isFilterableKey(key: string): boolean {
  // "vp:" is ours; Chroma drops "chroma:" keys and uses "$"/"#" for its own syntax.
  return key.length > 0 && !/^(vp:|chroma:|\$|#)/.test(key);
}

export function isScalar(value: unknown): value is string | number | boolean {
  return typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value));
}

export function describeValue(x: unknown): string {
  if (typeof x === 'number' || typeof x === 'boolean' || x === null || x === undefined) return String(x);
  if (typeof x === 'string') return JSON.stringify(x.length > 20 ? `${x.slice(0, 20)}...` : x);
  return Array.isArray(x) ? 'an array' : typeof x;
}

/** Copy a vector into a Float32Array, checking its size and that every value is a finite 32-bit number. */
export function toVector(value: unknown, dimensions: number | null, what: string, collection: string): Float32Array {
  if (!(value instanceof Float32Array) && !Array.isArray(value)) {
    throw new VectorStoreError(
      'INVALID_INPUT',
      `${what} has no vector: expected an array of numbers for Chroma collection "${collection}".`,
    );
  }
  if (dimensions !== null && value.length !== dimensions) {
    throw new VectorStoreError(
      'DIMENSION_MISMATCH',
      `${what} has ${value.length} dimensions, but Chroma collection "${collection}" holds vectors of ${dimensions} dimensions. ` +
        'Use the same embedder and dimensions as when the collection was created, or use another collection. Nothing was written.',
    );
  }
  if (value.length === 0) {
    throw new VectorStoreError('INVALID_INPUT', `${what} has an empty vector: Chroma collection "${collection}" needs at least one dimension.`);
  }
  const vector = new Float32Array(value.length);
  for (let i = 0; i < value.length; i++) {
    const x: unknown = value[i];
    if (typeof x === 'number') vector[i] = x;
    // Checked after the Float32 conversion: 1e39 is finite as a double but not as a float.
    if (typeof x !== 'number' || !Number.isFinite(vector[i])) {
      throw new VectorStoreError(
        'INVALID_INPUT',
        `${what} has an invalid value at position ${i} (${describeValue(x)}): every vector value must be a finite ` +
          `number that fits in 32 bits. Nothing was written to Chroma collection "${collection}".`,
      );
    }
  }
  return vector;
}

/**
 * Validate every document before anything is written, and keep the last of each
 * id (as if written one after another; Chroma refuses an id twice in one request).
 * `dimensions` null: the collection has none yet, so all vectors must match the first.
 */
export function prepareRecords(docs: unknown, dimensions: number | null, collection: string): ChromaRecord[] {
  if (!Array.isArray(docs)) {
    throw new VectorStoreError(
      'INVALID_INPUT',
      `Documents for Chroma collection "${collection}" must be an array of {id, vector, text?, metadata?}.`,
    );
  }
  let expected = dimensions;
  const byId = new Map<string, ChromaRecord>();
  docs.forEach((doc: unknown, index) => {
    const record = prepareRecord(doc, index, expected, collection);
    expected = record.vector.length;
    byId.delete(record.id);
    byId.set(record.id, record);
  });
  return [...byId.values()];
}

function prepareRecord(doc: unknown, index: number, dimensions: number | null, collection: string): ChromaRecord {
  let what = `Document ${index + 1}`;
  if (!isPlainObject(doc)) {
    throw new VectorStoreError('INVALID_INPUT', `${what} for Chroma collection "${collection}" is not an object.`);
  }
  const { id, vector, text, metadata } = doc as Partial<VectorDocument> & Record<string, unknown>;
  if (typeof id !== 'string' || id.length === 0) {
    throw new VectorStoreError(
      'INVALID_INPUT',
      `${what} for Chroma collection "${collection}" has no id: every document needs a non-empty string id.`,
    );
  }
  what = `Document ${index + 1} (id ${JSON.stringify(id)})`;
  const stored = toVector(vector, dimensions, what, collection);
  if (text !== undefined && text !== null && typeof text !== 'string') {
    throw new VectorStoreError('INVALID_INPUT', `The text of ${what.toLowerCase()} is not a string.`);
  }
  if (metadata !== undefined && metadata !== null && !isPlainObject(metadata)) {
    throw new VectorStoreError('INVALID_INPUT', `The metadata of ${what.toLowerCase()} is not an object.`);
  }
  return {
    id,
    vector: stored,
    document: typeof text === 'string' ? text : '',
    metadata: encodeMetadata(isPlainObject(metadata) ? metadata : null, typeof text === 'string', what),
  };
}

function encodeMetadata(metadata: Record<string, unknown> | null, hasText: boolean, what: string): ScalarMetadata {
  const encoded: ScalarMetadata = {};
  if (metadata && Object.keys(metadata).length > 0) {
    let json: string;
    try {
      json = JSON.stringify(metadata);
    } catch (err) {
      throw new VectorStoreError('INVALID_INPUT', `The metadata of ${what.toLowerCase()} cannot be stored as JSON (${messageOf(err)}).`);
    }
    // Round-trip through JSON so what is filtered on equals what is read back (a Date becomes a string).
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
        `The query filter on Chroma collection "${collection}" uses the field ${JSON.stringify(key)}, which the chroma backend ` +
          'cannot filter on (empty names and names starting with "vp:", "chroma:", "$" or "#" are reserved). Filter on another field.',
      );
    }
    if (!isScalar(value)) {
      throw new VectorStoreError(
        'INVALID_INPUT',
        `The query filter on Chroma collection "${collection}" gives field ${JSON.stringify(key)} the value ${describeValue(value)}: ` +
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

/** Deep equality of JSON values: the last word on a filter, after Chroma's own `where`. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  return ka.every((k) => Object.prototype.hasOwnProperty.call(rb, k) && jsonEqual(ra[k], rb[k]));
}

export function matchesFilter(metadata: Record<string, unknown>, filter: Record<string, unknown>): boolean {
  return Object.keys(filter).every((key) => Object.prototype.hasOwnProperty.call(metadata, key) && jsonEqual(metadata[key], filter[key]));
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
