/**
 * Small helpers every backend uses on values it receives, and to word its
 * messages the same way.
 */
import { VectorStoreError } from '../errors';

/** An object of fields: not null, not an array, not a typed array. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !ArrayBuffer.isView(value);
}

/** A short description of a received value for a message: 42, "abc", null, an array, object. */
export function describeValue(x: unknown): string {
  if (typeof x === 'number' || typeof x === 'boolean' || x === null || x === undefined) return String(x);
  if (typeof x === 'string') return JSON.stringify(x.length > 20 ? `${x.slice(0, 20)}...` : x);
  return Array.isArray(x) ? 'an array' : typeof x;
}

/**
 * How messages name a collection: `collection "docs"`, or with the store when the
 * backend's messages say it, `LanceDB collection "docs"`.
 */
export function namedCollection(name: string, store?: string): string {
  return store ? `${store} collection "${name}"` : `collection "${name}"`;
}

/** The phrase with a capital first letter, to start a sentence with it. */
export function capitalised(phrase: string): string {
  return phrase.charAt(0).toUpperCase() + phrase.slice(1);
}

/**
 * A whole-number option of a backend's configuration: `fallback` when unset
 * (undefined), else a whole number of at least `min`. `subject` names it in the
 * message, e.g. "The chroma backend's maximum batch size".
 */
export function wholeNumberOption(value: unknown, fallback: number, subject: string, min = 1): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new VectorStoreError('INVALID_INPUT', `${subject} must be a whole number of ${min} or more, but got ${describeValue(value)}.`);
  }
  return value;
}
