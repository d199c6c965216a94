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
import { describeValue, isPlainObject } from './values';

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
          `${allowed}. Nothing was written to ${collection}.`,
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
    throw new VectorStoreError('INVALID_INPUT', `${what} cannot be stored as JSON (${messageOf(err)}).`);
  }
  if (json === undefined) {
    throw new VectorStoreError('INVALID_INPUT', `${what} cannot be stored as JSON (it is a ${typeof value}).`);
  }
  return json;
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
