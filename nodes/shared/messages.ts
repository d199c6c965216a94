/**
 * Small helpers shared by the nodes for reading messages and reporting errors.
 */
import { VectorStoreError, messageOf } from '../../lib/errors';
import { validateCollectionName } from '../../lib/backends/collection-name';
import { describeValue, isPlainObject, type WatchConfig } from '../../lib/schemas';
import { parseExistingCollection } from '../../lib/collection-ref';
import type { CollectionRef, ExistingCollection } from '../../lib/types';

/** `msg.collection` wins over the configured collection; one of them must be set. */
export function collectionOf(msg: { collection?: unknown }, configured: string, backend: string): string {
  const fromMsg = msg.collection;
  if (fromMsg !== undefined && fromMsg !== null && fromMsg !== '') {
    if (isPlainObject(fromMsg)) {
      throw new VectorStoreError(
        'INVALID_INPUT',
        `msg.collection must be the name of a collection of this package (a string): documents are written only to collections this package made, not to another tool's (got ${describeValue(fromMsg)}).`,
      );
    }
    if (typeof fromMsg !== 'string') {
      throw new VectorStoreError('INVALID_INPUT', `msg.collection must be a string, the collection's name (got ${describeValue(fromMsg)}).`);
    }
    return validateCollectionName(fromMsg, backend);
  }
  if (!configured) {
    throw new VectorStoreError(
      'INVALID_INPUT',
      'No collection given: set the Collection property of the node, or send msg.collection.',
    );
  }
  return validateCollectionName(configured, backend);
}

/**
 * What a sensor, health check or sample query works on. `msg.collection` wins:
 * an object names a collection another tool made (ExistingCollection), a string
 * a collection of this package, or, on a node set to watch another tool's
 * collection, that collection's name (the node's other fields still apply).
 * Else the node's own properties.
 */
export function watchedCollectionOf(
  msg: { collection?: unknown },
  config: WatchConfig & { collection: string },
  backend: string,
): CollectionRef {
  const fromMsg = msg.collection;
  if (isPlainObject(fromMsg)) return parseExistingCollection(fromMsg, 'msg.collection');
  if (config.origin === 'package') return collectionOf(msg, config.collection, backend);
  const given = fromMsg !== undefined && fromMsg !== null && fromMsg !== '';
  if (given && typeof fromMsg !== 'string') {
    throw new VectorStoreError(
      'INVALID_INPUT',
      `msg.collection must be the other tool's name for the collection (a string), or an object such as {"name": "items"} (got ${describeValue(fromMsg)}).`,
    );
  }
  const name = given ? (fromMsg as string) : config.collection;
  if (!name) {
    throw new VectorStoreError(
      'INVALID_INPUT',
      'No collection given: set the Collection property of the node to the name the other tool uses (the table, the Chroma collection, the LangChain collection), or send msg.collection.',
    );
  }
  const ref: Record<keyof ExistingCollection, string> = {
    name,
    preset: config.preset,
    schema: config.tableSchema,
    column: config.vectorColumn,
    index: config.indexName,
    path: config.databasePath,
  };
  return parseExistingCollection(ref, 'the node', {
    name: given ? 'msg.collection' : 'Collection',
    preset: 'Preset',
    schema: 'Schema',
    column: 'Vector column',
    index: 'Index',
    path: 'Database path',
  });
}

/** The structured payload a failed ingest or query leaves in msg.payload. */
export interface ErrorPayload {
  status: 'error';
  collection: string | null;
  code: string;
  message: string;
}

export function errorPayload(collection: string | null, err: unknown): ErrorPayload {
  return {
    status: 'error',
    collection,
    code: err instanceof VectorStoreError ? err.code : 'INTERNAL',
    message: messageOf(err),
  };
}

/**
 * The Error handed to done(err): a plain Error whose message is the sentence a
 * person reads (Catch nodes show it as "Error: ..."), with the engine's `code`
 * kept so flows can branch on msg.error.code.
 */
export function toError(err: unknown): Error {
  const plain = new Error(messageOf(err));
  if (err instanceof VectorStoreError) Object.assign(plain, { code: err.code });
  return plain;
}

/** `msg.expectedCount`, used when the node's own expected count is 0; absent means 0. */
export function expectedCountOf(msg: object & { expectedCount?: unknown }): number {
  const value = msg.expectedCount;
  if (value === undefined || value === null || value === '') return 0;
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  // Safe integers only: 1e300 is an integer to JavaScript, but no count of documents.
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
    throw new VectorStoreError(
      'INVALID_INPUT',
      `msg.expectedCount must be a whole number of documents, 0 or more (got ${describeValue(value)}).`,
    );
  }
  return n;
}

/** A deep copy of JSON data (what `parkable` keeps): plain objects, arrays and primitives only. */
export function copyJson(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    const out = new Array<unknown>(value.length);
    for (let i = 0; i < value.length; i++) out[i] = copyJson(value[i]);
    return out;
  }
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    const copy = copyJson((value as Record<string, unknown>)[key]);
    // JSON.parse makes "__proto__" an own key: keep it one (an assignment would set the copy's prototype).
    if (key === '__proto__') Object.defineProperty(out, key, { value: copy, enumerable: true, writable: true, configurable: true });
    else out[key] = copy;
  }
  return out;
}

/** The fields of a message that survive JSON: what a resumed wait or ingest job can deliver. */
export function parkable(msg: Record<string, unknown>): { parked: Record<string, unknown>; dropped: Array<{ key: string; reason: string }> } {
  const parked: Record<string, unknown> = {};
  const dropped: Array<{ key: string; reason: string }> = [];
  for (const [key, value] of Object.entries(msg)) {
    if (key === 'req' || key === 'res') continue; // live HTTP objects: never serializable (documented)
    // A string, boolean or finite number is what JSON gives back: kept as it is, not copied (10,000 waits, 10,000 copies fewer).
    if (typeof value === 'string' || typeof value === 'boolean' || value === null || (typeof value === 'number' && Number.isFinite(value))) {
      parked[key] = value;
      continue;
    }
    try {
      const json = JSON.stringify(value);
      if (json !== undefined) parked[key] = JSON.parse(json);
    } catch (err) {
      dropped.push({ key, reason: err instanceof RangeError ? 'nested too deeply' : messageOf(err).split('\n')[0].slice(0, 80) });
    }
  }
  return { parked, dropped };
}

