/**
 * The checks of `upsert` every backend makes before anything is written, so that
 * a bad call writes nothing and says which document and field is wrong: the
 * documents, their vectors, texts and metadata, and the upsert options.
 *
 * `collection` in these functions names the collection in messages, as the
 * backend words it (see `namedCollection`).
 */
import { VectorStoreError, messageOf } from '../errors';
import type { UpsertOptions } from '../types';
import { describeValue, isPlainObject, kindOf } from './values';

/** What a vector must be, beyond an array of finite numbers that fit in a 32-bit float. */
export interface VectorRules {
  /** Its length; null: any length of 1 or more (a Chroma collection that has no dimension yet). */
  dimensions: number | null;
  /** A lower limit on the magnitude of each value, and why (pgvector's half-precision index). */
  limit?: { magnitude: number; why: string };
  /** Take a Float64Array too (pgvector, which writes the values as text). */
  float64?: boolean;
}

/**
 * Check a vector against the rules; returns it as given. `what` names it at the
 * start of a sentence: "The query vector", 'Document 2 (id "a")'.
 */
export function checkVector(value: unknown, rules: VectorRules, what: string, collection: string): ArrayLike<number> {
  const { dimensions } = rules;
  const isVector =
    value instanceof Float32Array || Array.isArray(value) || (rules.float64 === true && value instanceof Float64Array);
  if (!isVector) {
    throw new VectorStoreError(
      'INVALID_INPUT',
      `${what} has no vector: expected an array of ${dimensions === null ? '' : `${dimensions} `}numbers for ${collection}.`,
    );
  }
  const vector = value as ArrayLike<unknown>;
  if (dimensions !== null && vector.length !== dimensions) {
    throw new VectorStoreError(
      'DIMENSION_MISMATCH',
      `${what} has ${vector.length} dimensions, but ${collection} holds vectors of ${dimensions} dimensions. ` +
        'Use the same embedder and dimensions as when the collection was created, or use another collection.',
    );
  }
  if (vector.length === 0) {
    throw new VectorStoreError('INVALID_INPUT', `${what} has an empty vector: ${collection} needs at least one dimension.`);
  }
  const magnitude = rules.limit?.magnitude ?? Infinity;
  for (let i = 0; i < vector.length; i++) {
    const x = vector[i];
    // fround: 1e39 is finite as a double but not as a 32-bit float.
    if (typeof x !== 'number' || !Number.isFinite(Math.fround(x)) || Math.abs(x) > magnitude) {
      const allowed = rules.limit ? `between -${magnitude} and ${magnitude} (${rules.limit.why})` : 'that fits in 32 bits';
      throw new VectorStoreError(
        'INVALID_INPUT',
        `${what} has an invalid value at position ${i} (${describeValue(x)}): every vector value must be a finite number ` +
          `${allowed} (${collection}).`,
      );
    }
  }
  return vector as ArrayLike<number>;
}

/** Check a vector of `dimensions` (null: any) values; returns a Float32Array copy of it. */
export function toFloat32Vector(value: unknown, dimensions: number | null, what: string, collection: string): Float32Array {
  return Float32Array.from(checkVector(value, { dimensions }, what, collection));
}

/** JSON text of a value, or INVALID_INPUT naming `what` ("The metadata of document 1 (id "a")"). */
export function jsonText(value: unknown, what: string): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (err) {
    throw new VectorStoreError('INVALID_INPUT', `${what} cannot be stored as JSON: ${whyNotJson(err)}.`);
  }
  if (json === undefined) {
    throw new VectorStoreError('INVALID_INPUT', `${what} cannot be stored as JSON (it is a ${typeof value}).`);
  }
  return json;
}

/** JSON.stringify's failure in our words (its own are a runtime's, such as "Do not know how to serialize a BigInt"). */
function whyNotJson(err: unknown): string {
  const text = messageOf(err);
  if (err instanceof RangeError) return `it is nested too deeply; flatten it`;
  if (/BigInt/i.test(text)) return 'it holds a BigInt; convert it to a number or a string';
  if (/circular/i.test(text)) return 'it refers back to itself (a circular structure); remove the reference';
  return 'reading it failed; send plain data (strings, numbers, booleans, null, arrays and objects)';
}

/** A document whose fields were checked, with its vector as the backend's `vector` rule returned it. */
export interface CheckedDocument<V> {
  id: string;
  vector: V;
  text: string | null;
  metadata: Record<string, unknown> | null;
  /** The metadata as JSON text (null without metadata): what the backends store, or copy from. */
  metadataJson: string | null;
}

export interface DocumentRules<V> {
  /** Check (see `checkVector`) and convert a document's vector; `what` is e.g. 'Document 2 (id "a")'. */
  vector(value: unknown, what: string): V;
  /** A further check of the id and the text (pgvector: no NUL characters); `what` names the field. */
  checkString?(value: string, what: string): void;
  /** A further check of the metadata's JSON text (pgvector: no NUL characters). */
  checkJson?(json: string, what: string): void;
}

/**
 * Check every document, in order; throws at the first bad one. Each has a
 * non-empty string id, a vector (`rules.vector`), an optional string text and
 * optional object metadata that JSON can hold.
 */
export function checkDocuments<V>(docs: unknown, collection: string, rules: DocumentRules<V>): Array<CheckedDocument<V>> {
  if (!Array.isArray(docs)) {
    throw new VectorStoreError('INVALID_INPUT', `Documents for ${collection} must be an array of {id, vector, text?, metadata?}.`);
  }
  return docs.map((doc: unknown, index) => checkDocument(doc, index, collection, rules));
}

function checkDocument<V>(doc: unknown, index: number, collection: string, rules: DocumentRules<V>): CheckedDocument<V> {
  if (!isPlainObject(doc)) {
    throw new VectorStoreError('INVALID_INPUT', `Document ${index + 1} for ${collection} is not an object.`);
  }
  const { id, vector, text, metadata } = doc;
  if (typeof id !== 'string' || id.length === 0) {
    throw new VectorStoreError(
      'INVALID_INPUT',
      `Document ${index + 1} for ${collection} has no id: every document needs a non-empty string id.`,
    );
  }
  rules.checkString?.(id, `The id of document ${index + 1}`);
  const what = `document ${index + 1} (id ${JSON.stringify(id)})`;
  const checkedVector = rules.vector(vector, `D${what.slice(1)}`);
  if (text !== undefined && text !== null && typeof text !== 'string') {
    throw new VectorStoreError('INVALID_INPUT', `The text of ${what} is not a string.`);
  }
  if (typeof text === 'string') rules.checkString?.(text, `The text of ${what}`);
  if (metadata !== undefined && metadata !== null && !isPlainObject(metadata)) {
    throw new VectorStoreError('INVALID_INPUT', `The metadata of ${what} is not an object.`);
  }
  const metadataJson = isPlainObject(metadata) ? jsonText(metadata, `The metadata of ${what}`) : null;
  if (metadataJson !== null) rules.checkJson?.(metadataJson, `The metadata of ${what}`);
  return {
    id,
    vector: checkedVector,
    text: typeof text === 'string' ? text : null,
    metadata: isPlainObject(metadata) ? metadata : null,
    metadataJson,
  };
}

/**
 * The last version of each id, in the order of their last appearance: a store
 * that refuses an id twice in one write then stores what writing them one after
 * another would have stored.
 */
export function lastOfEachId<T extends { id: string }>(docs: T[]): T[] {
  const byId = new Map<string, T>();
  for (const doc of docs) {
    byId.delete(doc.id);
    byId.set(doc.id, doc);
  }
  return [...byId.values()];
}

/** Simulated failures are for the memory backend only: any other refuses the option. */
export function refuseSimulatedFailure(options: UpsertOptions | undefined, collection: string): void {
  if (options?.simulateFailure !== undefined) {
    throw new VectorStoreError(
      'INVALID_INPUT',
      `Simulated failures (msg.simulate) only work with the memory backend, not with ${collection}. Remove msg.simulate.`,
    );
  }
}

// ---------------------------------------------------------------------------
// What every store can hold: the checks of all backends, made on a whole input
// before its first write (see `ingestDocuments`). Each names the field the way
// the user wrote it (`msg.payload[3].metadata.tags[2]`) and says how to fix it.

/**
 * Longest id, in UTF-8 bytes: Postgres keeps ids in a btree primary key, whose
 * entries cannot exceed about 2700 bytes.
 */
export const MAX_ID_BYTES = 2048;
/** Deepest metadata nesting: deeper JSON overflows the stack of JSON writers and of Postgres' jsonb parser. */
export const MAX_METADATA_DEPTH = 100;
/** Largest magnitude of a half-precision float: pgvector's index above 2000 dimensions (halfvec). */
export const HALFVEC_MAX = 65504;
/** pgvector indexes as half precision above this many dimensions. */
export const HALFVEC_ABOVE_DIMENSIONS = 2000;
/** Most values (counting a shared object each time it appears) in one document's metadata. */
export const MAX_METADATA_VALUES = 1_000_000;
/** Largest finite 32-bit float, for messages. */
const FLOAT32_MAX_TEXT = '3.4028235e38';

/**
 * Spreads long checks over several turns of the event loop: call `spend` with
 * the work just done (characters, values) and await `pause()` when it says so.
 */
export class WorkSlicer {
  private spent = 0;

  constructor(private readonly unitsPerSlice = 256_000) {}

  /** True when enough work was done since the last pause. */
  spend(units: number): boolean {
    this.spent += units;
    return this.spent >= this.unitsPerSlice;
  }

  async pause(): Promise<void> {
    this.spent = 0;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

const invalid = (message: string) => new VectorStoreError('INVALID_INPUT', message);

/** True when the string has a UTF-16 surrogate without its partner (no store can encode it as UTF-8). */
function hasLoneSurrogate(text: string): boolean {
  const wellFormed = (text as { isWellFormed?: () => boolean }).isWellFormed;
  if (typeof wellFormed === 'function') return !wellFormed.call(text);
  return /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?:^|[^\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(text);
}

/** A string field every store can hold: no NUL character (Postgres), no lone surrogate (UTF-8). */
export function checkPortableString(text: string, field: string, role = 'text'): void {
  const nul = text.indexOf('\u0000');
  if (nul !== -1) {
    throw invalid(
      `${field} contains a NUL character (\\u0000) at position ${nul}, which stores such as Postgres cannot hold: remove it from the ${role}.`,
    );
  }
  if (hasLoneSurrogate(text)) {
    throw invalid(
      `${field} contains a broken character (half of a UTF-16 surrogate pair), which cannot be stored as UTF-8: ` +
        `remove it or repair the ${role}'s encoding.`,
    );
  }
}

/** An id every store can hold: a non-empty string, short enough for a database key, of whole characters. */
export function checkPortableId(id: unknown, field: string): void {
  if (typeof id !== 'string' || id.length === 0) {
    throw invalid(`${field} must be a non-empty string (got ${describeValue(id)}).`);
  }
  // Cheap bound first: a UTF-16 unit is at most 3 UTF-8 bytes.
  const bytes = id.length * 3 <= MAX_ID_BYTES ? id.length : Buffer.byteLength(id, 'utf8');
  if (bytes > MAX_ID_BYTES) {
    throw invalid(
      `${field} is too long (${bytes} bytes in UTF-8; at most ${MAX_ID_BYTES}): use a shorter id, ` +
        'such as a hash of this one, and keep the long value in metadata.',
    );
  }
  checkPortableString(id, field, 'id');
}

/**
 * A vector every store can hold: finite numbers that fit in a 32-bit float (and,
 * when `limit` is given, within ±limit.magnitude). `field` is e.g. "msg.payload[1].vector".
 */
export function checkPortableVector(vector: ArrayLike<unknown>, field: string, limit?: { magnitude: number; why: string }): void {
  if (vector instanceof Float32Array && limit === undefined && allFinite(vector)) return; // the fast common case: an embedder's output
  const magnitude = limit?.magnitude ?? Infinity;
  for (let i = 0; i < vector.length; i++) {
    const x = vector[i];
    if (typeof x !== 'number' || !Number.isFinite(x)) {
      throw invalid(`${field}[${i}] is ${describeValue(x)}: every vector value must be a finite number. Fix or drop this document.`);
    }
    // fround: 1e39 is finite as a double but Infinity as a 32-bit float.
    if (!Number.isFinite(Math.fround(x))) {
      throw invalid(
        `${field}[${i}] is ${x}, which does not fit in a 32-bit float (largest magnitude ${FLOAT32_MAX_TEXT}): ` +
          'scale the vector down (normalise it).',
      );
    }
    if (Math.abs(x) > magnitude) {
      throw invalid(
        `${field}[${i}] is ${x}, beyond ±${magnitude} (${limit?.why}): scale the vector down (normalise it).`,
      );
    }
  }
}

function allFinite(vector: Float32Array): boolean {
  for (let i = 0; i < vector.length; i++) if (vector[i] - vector[i] !== 0) return false; // NaN and ±Infinity give NaN
  return true;
}

/** The magnitude limit this backend puts on vectors of this size, if any (pgvector's halfvec index). */
export function vectorLimitOf(backend: string, dimensions: number): { magnitude: number; why: string } | undefined {
  return backend === 'pgvector' && dimensions > HALFVEC_ABOVE_DIMENSIONS
    ? { magnitude: HALFVEC_MAX, why: `pgvector stores the index in half precision above ${HALFVEC_ABOVE_DIMENSIONS} dimensions` }
    : undefined;
}

/** `field` followed by an object key, as JavaScript would write the access. */
export function fieldWithKey(field: string, key: string): string {
  if (/^[A-Za-z_$][\w$]*$/.test(key)) return `${field}.${key}`;
  const shown = key.length > 40 ? `${key.slice(0, 40)}...` : key;
  return `${field}[${JSON.stringify(shown)}]`;
}

/** An object literal from any realm (a Node-RED function node builds objects in its own VM context). */
function isLiteralObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value);
  return proto === null || Object.getPrototypeOf(proto) === null;
}

/**
 * Metadata every store can hold, checked without recursion (100,000 levels of
 * nesting must give this message, not a stack overflow): plain objects and
 * arrays of strings, finite numbers, booleans, null and Dates (stored as ISO
 * text), at most MAX_METADATA_DEPTH levels deep, no cycles, no NUL characters
 * or broken characters in keys or strings. `undefined` fields are dropped, as
 * JSON does. Awaits `slicer.pause()` between slices of a large value.
 */
export async function checkPortableMetadata(metadata: Record<string, unknown>, field: string, slicer: WorkSlicer): Promise<void> {
  // Paths are kept as links to the parent and written out only for a message:
  // building a string per value would cost more than checking it.
  type Path = { parent: Path | null; key: string | number } | null;
  const pathText = (path: Path): string => {
    const keys: Array<string | number> = [];
    for (let p = path; p !== null; p = p.parent) keys.push(p.key);
    let out = field;
    for (let i = keys.length - 1; i >= 0; i--) {
      const key = keys[i];
      out = typeof key === 'number' ? `${out}[${key}]` : fieldWithKey(out, key);
    }
    return out;
  };
  type Frame = { value: object; path: Path; depth: number } | { leave: object };
  const open = new Set<object>(); // the objects on the path from the root: a cycle comes back to one
  let values = 0;

  /** Checks a value; returns it when it is an array or object to look into, else null. */
  const check = (value: unknown, path: Path, inArray: boolean): object | null => {
    if (++values > MAX_METADATA_VALUES) {
      throw invalid(`${field} holds more than ${MAX_METADATA_VALUES} values (shared objects count each time they appear): store less metadata per document.`);
    }
    switch (typeof value) {
      case 'string':
        if (value.length > 0) checkPortableString(value, pathText(path), 'metadata'); // throws only when bad
        return null;
      case 'boolean':
        return null;
      case 'number':
        if (!Number.isFinite(value)) {
          throw invalid(`${pathText(path)} is ${value}, which JSON cannot hold (it would be stored as null): use a finite number, a string or null.`);
        }
        return null;
      case 'undefined':
        if (inArray) throw invalid(`${pathText(path)} is undefined, which JSON stores as null: use null, or remove the item.`);
        return null;
      case 'bigint':
        throw invalid(`${pathText(path)} is ${kindOf(value)}, which JSON cannot hold: convert it to a number or a string.`);
      case 'function':
      case 'symbol':
        throw invalid(`${pathText(path)} is ${kindOf(value)}, which cannot be stored as metadata: remove it.`);
    }
    if (value === null) return null;
    const object = value as object;
    if (Array.isArray(object)) return object;
    if (object instanceof Date || Object.prototype.toString.call(object) === '[object Date]') {
      if (Number.isNaN((object as Date).getTime?.())) throw invalid(`${pathText(path)} is an invalid Date: use a valid date or a string.`);
      return null;
    }
    if (!isLiteralObject(object)) {
      throw invalid(
        `${pathText(path)} is ${kindOf(object)}, which JSON cannot store faithfully: ` +
          'metadata values are strings, numbers, booleans, null, Dates, arrays and plain objects; convert it to one of those.',
      );
    }
    return object;
  };

  const stack: Frame[] = [];
  const enter = (object: object, path: Path, depth: number): void => {
    if (open.has(object)) {
      throw invalid(`${pathText(path)} refers back to an object that contains it (a circular structure), which JSON cannot hold: remove the reference.`);
    }
    if (depth > MAX_METADATA_DEPTH) {
      const at = pathText(path);
      throw invalid(`${field} is nested more than ${MAX_METADATA_DEPTH} levels deep (at ${at.length > 120 ? `${at.slice(0, 120)}...` : at}): flatten it.`);
    }
    open.add(object);
    stack.push({ leave: object }, { value: object, path, depth });
  };

  try {
    const root = check(metadata, null, false);
    if (root !== null) enter(root, null, 1);
    while (stack.length > 0) {
      const frame = stack.pop() as Frame;
      if ('leave' in frame) {
        open.delete(frame.leave);
        continue;
      }
      const { value: object, path, depth } = frame;
      // Children are checked here; only arrays and objects among them are pushed, last first (so the first is looked into first).
      const nested: Array<[object, Path]> = [];
      let work = 1;
      if (Array.isArray(object)) {
        for (let i = 0; i < object.length; i++) {
          const childPath = { parent: path, key: i };
          const child = check(object[i], childPath, true);
          if (child !== null) nested.push([child, childPath]);
          const item: unknown = object[i];
          work += typeof item === 'string' ? 1 + item.length / 8 : 1;
        }
      } else {
        for (const key of Object.keys(object)) {
          if (key.length > 0) checkPortableString(key, `${pathText(path)} has a key that`, 'key');
          const item: unknown = (object as Record<string, unknown>)[key];
          const childPath = { parent: path, key };
          const child = check(item, childPath, false);
          if (child !== null) nested.push([child, childPath]);
          work += typeof item === 'string' ? 1 + item.length / 8 : 1;
        }
      }
      for (let i = nested.length - 1; i >= 0; i--) enter(nested[i][0], nested[i][1], depth + 1);
      if (slicer.spend(work)) await slicer.pause();
    }
  } catch (err) {
    if (err instanceof VectorStoreError) throw err;
    throw invalid(`${field} cannot be read (reading it threw an error): send plain data, objects of fields without getters or proxies.`);
  }
}
