/**
 * Checks documents and queries before anything reaches Postgres, so that a bad
 * call writes nothing and says which document and field is wrong, and turns
 * them into the text forms the SQL takes (vector literals, JSON).
 */
import { VectorStoreError, messageOf } from '../../errors';
import type { VectorDocument } from '../../types';
import { vectorLiteral } from './sql';

/** One validated document, as the upsert statement's parameters take it. */
export interface PreparedDocument {
  id: string;
  vector: string;
  text: string | null;
  /** JSON text, or null for no metadata. */
  metadata: string | null;
}

/** Largest magnitude a half-precision float holds (the index type above 2000 dimensions). */
const HALFVEC_MAX = 65504;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !ArrayBuffer.isView(value);
}

function describeValue(x: unknown): string {
  if (typeof x === 'number' || typeof x === 'boolean' || x === null || x === undefined) return String(x);
  if (typeof x === 'string') return JSON.stringify(x.length > 20 ? `${x.slice(0, 20)}...` : x);
  return typeof x;
}

/**
 * The vector as pgvector text, after checking its size and values: finite, and
 * representable as a 32-bit float (half precision when indexed as halfvec).
 */
export function toVectorLiteral(value: unknown, dimensions: number, what: string, collection: string): string {
  if (!(value instanceof Float32Array) && !(value instanceof Float64Array) && !Array.isArray(value)) {
    throw new VectorStoreError(
      'INVALID_INPUT',
      `${what} has no vector: expected an array of ${dimensions} numbers for collection "${collection}".`,
    );
  }
  if (value.length !== dimensions) {
    throw new VectorStoreError(
      'DIMENSION_MISMATCH',
      `${what} has ${value.length} dimensions, but collection "${collection}" holds vectors of ${dimensions} dimensions. ` +
        'Use the same embedder and dimensions as when the collection was created, or use another collection.',
    );
  }
  const limit = dimensions > 2000 ? HALFVEC_MAX : Infinity;
  for (let i = 0; i < dimensions; i++) {
    const x: unknown = value[i];
    if (typeof x !== 'number' || !Number.isFinite(Math.fround(x)) || Math.abs(x) > limit) {
      throw new VectorStoreError(
        'INVALID_INPUT',
        `${what} has an invalid value at position ${i} (${describeValue(x)}): every vector value must be a finite number ` +
          (limit === Infinity ? 'that fits in 32 bits' : `between -${HALFVEC_MAX} and ${HALFVEC_MAX} (the index stores half precision above 2000 dimensions)`) +
          `. Nothing was written to collection "${collection}".`,
      );
    }
  }
  return vectorLiteral(value);
}

/** Postgres text cannot hold NUL characters. */
function checkNoNul(text: string, what: string): void {
  if (text.includes('\u0000')) {
    throw new VectorStoreError('INVALID_INPUT', `${what} contains a NUL character (\\u0000), which Postgres cannot store: remove it.`);
  }
}

/** JSON text of a value, checked to be storable as jsonb. */
export function toJsonText(value: unknown, what: string): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (err) {
    throw new VectorStoreError('INVALID_INPUT', `${what} cannot be stored as JSON (${messageOf(err)}).`);
  }
  if (json === undefined) {
    throw new VectorStoreError('INVALID_INPUT', `${what} cannot be stored as JSON (it is a ${typeof value}).`);
  }
  // JSON writes NUL as \u0000 (after an even number of backslashes); jsonb refuses it.
  if (/(^|[^\\])(\\\\)*\\u0000/.test(json)) {
    throw new VectorStoreError('INVALID_INPUT', `${what} contains a NUL character (\\u0000), which Postgres cannot store: remove it.`);
  }
  return json;
}

/**
 * Validate every document (all before any is written) and keep the last version
 * of each id: one INSERT ... ON CONFLICT may not touch a row twice.
 */
export function prepareDocuments(docs: unknown, dimensions: number, collection: string): PreparedDocument[] {
  if (!Array.isArray(docs)) {
    throw new VectorStoreError(
      'INVALID_INPUT',
      `Documents for collection "${collection}" must be an array of {id, vector, text?, metadata?}.`,
    );
  }
  const byId = new Map<string, PreparedDocument>();
  docs.forEach((doc: unknown, index) => {
    const prepared = prepareDocument(doc, index, dimensions, collection);
    byId.delete(prepared.id);
    byId.set(prepared.id, prepared);
  });
  return [...byId.values()];
}

function prepareDocument(doc: unknown, index: number, dimensions: number, collection: string): PreparedDocument {
  let what = `Document ${index + 1}`;
  if (!isPlainObject(doc)) {
    throw new VectorStoreError('INVALID_INPUT', `${what} for collection "${collection}" is not an object.`);
  }
  const { id, vector, text, metadata } = doc as Partial<VectorDocument> & Record<string, unknown>;
  if (typeof id !== 'string' || id.length === 0) {
    throw new VectorStoreError(
      'INVALID_INPUT',
      `${what} for collection "${collection}" has no id: every document needs a non-empty string id.`,
    );
  }
  checkNoNul(id, `The id of ${what.toLowerCase()}`);
  what = `document ${index + 1} (id ${JSON.stringify(id)})`;
  const literal = toVectorLiteral(vector, dimensions, `D${what.slice(1)}`, collection);
  if (text !== undefined && text !== null && typeof text !== 'string') {
    throw new VectorStoreError('INVALID_INPUT', `The text of ${what} is not a string.`);
  }
  if (typeof text === 'string') checkNoNul(text, `The text of ${what}`);
  if (metadata !== undefined && metadata !== null && !isPlainObject(metadata)) {
    throw new VectorStoreError('INVALID_INPUT', `The metadata of ${what} is not an object.`);
  }
  return {
    id,
    vector: literal,
    text: typeof text === 'string' ? text : null,
    metadata: isPlainObject(metadata) ? toJsonText(metadata, `The metadata of ${what}`) : null,
  };
}

/** The filter as (key, JSON value) pairs: each key must equal its value exactly. */
export function prepareFilter(filter: unknown, collection: string): Array<[string, string]> {
  if (filter === undefined || filter === null) return [];
  if (!isPlainObject(filter)) {
    throw new VectorStoreError('INVALID_INPUT', `The query filter on collection "${collection}" must be an object of metadata field values.`);
  }
  const pairs: Array<[string, string]> = [];
  for (const [key, value] of Object.entries(filter)) {
    if (value === undefined) continue; // as JSON would drop it
    checkNoNul(key, `The query filter field ${JSON.stringify(key)}`);
    pairs.push([key, toJsonText(value, `The query filter field ${JSON.stringify(key)}`)]);
  }
  return pairs;
}
