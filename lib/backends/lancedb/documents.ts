/**
 * Documents <-> LanceDB rows, checked before anything is written.
 *
 * A row is {id, vector, text, metadata}: metadata is JSON text (null when the
 * document has none), because a LanceDB table has one fixed schema while
 * metadata differs from document to document. The cost: metadata filters are
 * applied here, in JavaScript (see `matchesFilter`).
 */
import { VectorStoreError, messageOf } from '../../errors';
import type { Metric, QueryHit } from '../../types';

export const BACKEND_NAME = 'lancedb';

/** A row as written to a table. */
export interface Row {
  id: string;
  vector: Float32Array;
  text: string | null;
  metadata: string | null;
  [column: string]: unknown;
}

/** A row as a vector search returns it (the vector column is not selected). */
export interface FoundRow {
  id: string;
  text: string | null;
  metadata: string | null;
  _distance: number;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !ArrayBuffer.isView(value);
}

export function describeValue(x: unknown): string {
  if (typeof x === 'number' || typeof x === 'boolean' || x === null || x === undefined) return String(x);
  if (typeof x === 'string') return JSON.stringify(x.length > 20 ? `${x.slice(0, 20)}...` : x);
  return Array.isArray(x) ? 'an array' : typeof x;
}

/** Copy a vector into a Float32Array, checking its size and that every value is a finite 32-bit number. */
export function toVector(value: unknown, dimensions: number, what: string, collection: string): Float32Array {
  if (!(value instanceof Float32Array) && !Array.isArray(value)) {
    throw new VectorStoreError(
      'INVALID_INPUT',
      `${what} has no vector: expected an array of ${dimensions} numbers for LanceDB collection "${collection}".`,
    );
  }
  if (value.length !== dimensions) {
    throw new VectorStoreError(
      'DIMENSION_MISMATCH',
      `${what} has ${value.length} dimensions, but LanceDB collection "${collection}" holds vectors of ${dimensions} ` +
        'dimensions. Use the same embedder and dimensions as when the collection was created, or use another collection.',
    );
  }
  const vector = new Float32Array(dimensions);
  for (let i = 0; i < dimensions; i++) {
    const x: unknown = value[i];
    if (typeof x === 'number') vector[i] = x;
    // Checked after the Float32 conversion: 1e39 is finite as a double but not as a float.
    if (typeof x !== 'number' || !Number.isFinite(vector[i])) {
      throw new VectorStoreError(
        'INVALID_INPUT',
        `${what} has an invalid value at position ${i} (${describeValue(x)}): every vector value must be a finite ` +
          `number that fits in 32 bits. Nothing was written to LanceDB collection "${collection}".`,
      );
    }
  }
  return vector;
}

/**
 * Validate documents and turn them into rows. Throws before anything is written;
 * when an id appears twice the last one wins (LanceDB refuses a merge that
 * matches one row twice).
 */
export function toRows(docs: unknown, dimensions: number, collection: string): Row[] {
  if (!Array.isArray(docs)) {
    throw new VectorStoreError(
      'INVALID_INPUT',
      `Documents for LanceDB collection "${collection}" must be an array of {id, vector, text?, metadata?}.`,
    );
  }
  const byId = new Map<string, Row>();
  docs.forEach((doc: unknown, index) => {
    const row = toRow(doc, index, dimensions, collection);
    byId.delete(row.id);
    byId.set(row.id, row);
  });
  return [...byId.values()];
}

function toRow(doc: unknown, index: number, dimensions: number, collection: string): Row {
  if (!isPlainObject(doc)) {
    throw new VectorStoreError('INVALID_INPUT', `Document ${index + 1} for LanceDB collection "${collection}" is not an object.`);
  }
  const { id, vector, text, metadata } = doc;
  if (typeof id !== 'string' || id.length === 0) {
    throw new VectorStoreError(
      'INVALID_INPUT',
      `Document ${index + 1} for LanceDB collection "${collection}" has no id: every document needs a non-empty string id.`,
    );
  }
  const what = `document ${index + 1} (id ${JSON.stringify(id)})`;
  const row: Row = { id, vector: toVector(vector, dimensions, `D${what.slice(1)}`, collection), text: null, metadata: null };
  if (text !== undefined && text !== null) {
    if (typeof text !== 'string') throw new VectorStoreError('INVALID_INPUT', `The text of ${what} is not a string.`);
    row.text = text;
  }
  if (metadata !== undefined && metadata !== null) {
    if (!isPlainObject(metadata)) throw new VectorStoreError('INVALID_INPUT', `The metadata of ${what} is not an object.`);
    row.metadata = toJson(metadata, `The metadata of ${what}`);
  }
  return row;
}

function toJson(value: Record<string, unknown>, what: string): string {
  try {
    return JSON.stringify(value);
  } catch (err) {
    throw new VectorStoreError('INVALID_INPUT', `${what} cannot be stored as JSON (${messageOf(err)}).`);
  }
}

/** A filter as its values will compare with stored metadata: through JSON, like the metadata itself. */
export function normaliseFilter(filter: unknown, collection: string): Record<string, unknown> | null {
  if (filter === undefined || filter === null) return null;
  if (!isPlainObject(filter)) {
    throw new VectorStoreError(
      'INVALID_INPUT',
      `The query filter on LanceDB collection "${collection}" must be an object of metadata field values.`,
    );
  }
  return JSON.parse(toJson(filter, 'The query filter')) as Record<string, unknown>;
}

/** Deep equality of JSON values. */
function jsonEqual(a: unknown, b: unknown): boolean {
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

/** Every key of the filter equals the metadata field of the same name. */
export function matchesFilter(metadata: Record<string, unknown>, filter: Record<string, unknown>): boolean {
  return Object.keys(filter).every(
    (key) => Object.prototype.hasOwnProperty.call(metadata, key) && jsonEqual(metadata[key], filter[key]),
  );
}

export function parseMetadata(json: string | null): Record<string, unknown> {
  if (json === null || json === undefined || json === '') return {};
  try {
    const value: unknown = JSON.parse(json);
    return isPlainObject(value) ? value : {};
  } catch {
    return {}; // not written by this package: no metadata we can read
  }
}

/**
 * LanceDB's `_distance` as a "higher is better" score: cosine distance is
 * 1 - cosine similarity, dot distance is 1 - dot product, l2 distance is the
 * squared euclidean distance (scored as minus the distance, like the memory backend).
 */
export function scoreOf(distance: number, metric: Metric): number {
  if (metric === 'l2') return -Math.sqrt(Math.max(0, distance));
  const score = 1 - distance;
  return metric === 'cosine' ? Math.min(1, Math.max(-1, score)) : score;
}

export function toHit(row: FoundRow, metric: Metric): QueryHit {
  return {
    id: row.id,
    score: scoreOf(row._distance, metric),
    text: row.text ?? null,
    metadata: parseMetadata(row.metadata),
  };
}
