/**
 * The checks of `query` every backend makes, and exact-match metadata filtering
 * for the backends that filter in JavaScript. The query vector is checked with
 * `checkVector` (./documents.ts).
 *
 * `collection` in these functions names the collection in messages, as the
 * backend words it (see `namedCollection`).
 */
import { VectorStoreError } from '../errors';
import type { QueryRequest } from '../types';
import { jsonText } from './documents';
import { describeValue, isPlainObject } from './values';

/** Check the request is an object with a sane topK (its vector and filter are checked apart). */
export function checkQuery(request: unknown, collection: string): asserts request is QueryRequest {
  if (!isPlainObject(request)) {
    throw new VectorStoreError('INVALID_INPUT', `A query on ${collection} must be an object {vector, topK, filter?}.`);
  }
  const { topK } = request;
  if (typeof topK !== 'number' || !Number.isInteger(topK) || topK < 1) {
    throw new VectorStoreError('INVALID_INPUT', `topK must be a whole number of 1 or more, but got ${describeValue(topK)}.`);
  }
}

/** The filter as given (null when there is none), checked to be an object. */
export function checkFilter(filter: unknown, collection: string): Record<string, unknown> | null {
  if (filter === undefined || filter === null) return null;
  if (!isPlainObject(filter)) {
    throw new VectorStoreError('INVALID_INPUT', `The query filter on ${collection} must be an object of metadata field values.`);
  }
  return filter;
}

/**
 * The filter as its values will compare with stored metadata: through JSON, like
 * the metadata itself (a Date becomes a string). Null when there is none.
 */
export function jsonFilter(filter: unknown, collection: string): Record<string, unknown> | null {
  const checked = checkFilter(filter, collection);
  return checked && (JSON.parse(jsonText(checked, 'The query filter')) as Record<string, unknown>);
}

/** Deep equality of JSON values. */
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

/** Every key of the filter equals the metadata field of the same name (no metadata: only an empty filter matches). */
export function matchesFilter(metadata: Record<string, unknown> | null, filter: Record<string, unknown>): boolean {
  return Object.keys(filter).every(
    (key) => metadata !== null && Object.prototype.hasOwnProperty.call(metadata, key) && jsonEqual(metadata[key], filter[key]),
  );
}
