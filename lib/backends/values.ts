/**
 * Small helpers every backend uses on values it receives, and to word its
 * messages the same way.
 */
import { VectorStoreError } from '../errors';

/** An object of fields: not null, not an array, not a typed array. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !ArrayBuffer.isView(value);
}

/** A short description of a received value for a message: 42, NaN, "abc", null, an array, a Date, a Map. */
export function describeValue(x: unknown): string {
  if (typeof x === 'number' || typeof x === 'boolean' || x === null || x === undefined) return String(x);
  if (typeof x === 'string') return JSON.stringify(x.length > 20 ? `${x.slice(0, 20)}...` : x);
  return Array.isArray(x) ? 'an array' : kindOf(x);
}

/**
 * What kind of value this is, in words, for values that are not plain numbers,
 * strings or booleans: "a BigInt (10n)", "a Date", "a Map", "a Uint8Array",
 * "a function", "an object" (a plain one), "a Foo object" (an instance of a class).
 * Never throws, even on a hostile object (a Proxy, a throwing getter).
 */
export function kindOf(x: unknown): string {
  switch (typeof x) {
    case 'bigint':
      return `a BigInt (${String(x).length > 20 ? `${String(x).slice(0, 20)}...` : String(x)}n)`;
    case 'symbol':
      return 'a symbol';
    case 'function':
      return 'a function';
    case 'undefined':
      return 'nothing (undefined)';
    case 'number':
      return Number.isNaN(x) ? 'NaN' : String(x);
    case 'string':
      return 'a string';
    case 'boolean':
      return String(x);
  }
  if (x === null) return 'null';
  try {
    if (Array.isArray(x)) return 'an array';
    const tag = Object.prototype.toString.call(x).slice(8, -1);
    const proto = Object.getPrototypeOf(x);
    if (proto === null || Object.getPrototypeOf(proto) === null) return tag === 'Object' ? 'an object' : withArticle(tag);
    const name = (proto as { constructor?: { name?: unknown } }).constructor?.name;
    const named = typeof name === 'string' && /^[A-Za-z_$][\w$]{0,40}$/.test(name) ? name : null;
    if (tag !== 'Object') return withArticle(named ?? tag); // a Date, a Map, a Buffer (tagged Uint8Array)
    return named ? `${withArticle(named)} object` : 'an object of a class';
  } catch {
    return 'an object that cannot be read';
  }
}

/** "an Error", "a Map" (a "U" is read "you": "a Uint8Array"). */
function withArticle(word: string): string {
  return `${/^[AEIOaeio]/.test(word) ? 'an' : 'a'} ${word}`;
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
