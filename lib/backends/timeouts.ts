/**
 * The last resort behind every store call: whatever the client library does (or
 * fails to do) about time, a call on a backend made by `createBackend` settles
 * within the runtime setting `storeTimeout` (plus a short grace, so that the
 * backend's own timeout, where it has one, fires first and says more precisely
 * what timed out, and releases its connection).
 *
 * On time-out the call rejects with a transient TIMEOUT error naming the store,
 * the operation, the collection and the setting to raise. The call itself goes on
 * in the background (a promise cannot be cancelled): its late result or rejection
 * is swallowed, so it never becomes an unhandled rejection.
 */
import { VectorStoreError } from '../errors';
import type { Backend, ExistingCollection } from '../types';
import { collectionLabel } from '../collection-ref';
import { isPlainObject } from '../schemas';

/** What each operation was doing, for the message. */
const DOING: Record<Exclude<keyof Backend, 'name' | 'close'>, (collection: string) => string> = {
  ensureCollection: (c) => `creating or opening collection ${c}`,
  collectionExists: (c) => `checking whether collection ${c} exists`,
  upsert: (c) => `writing to collection ${c}`,
  delete: (c) => `deleting from collection ${c}`,
  status: (c) => `reading the status of collection ${c}`,
  stats: (c) => `reading the statistics of collection ${c}`,
  query: (c) => `querying collection ${c}`,
};

const TITLES: Record<string, string> = { pgvector: 'pgvector', chroma: 'Chroma', lancedb: 'LanceDB', memory: 'memory' };

/** How long after the backend's own timeout the wrapper gives up on a call. */
export function graceMs(timeoutMs: number): number {
  return Math.min(1000, Math.max(20, Math.round(timeoutMs / 10)));
}

/** "10 s", "0.5 s": the setting as users wrote it (seconds). */
export function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}

/** The sentence users read when a call on the store does not settle in time. */
export function timeoutError(storeName: string, operation: keyof typeof DOING, collection: unknown, timeoutMs: number): VectorStoreError {
  const store = TITLES[storeName] ?? storeName;
  const name = typeof collection === 'string' ? `"${collection}"` : isPlainObject(collection) && typeof collection.name === 'string'
      ? `"${collectionLabel(collection as unknown as ExistingCollection)}"`
      : '(no name)';
  const what = DOING[operation](name);
  const after =
    operation === 'upsert'
      ? ' The write may or may not have completed; sending the same documents again is safe (documents are replaced by id).'
      : operation === 'delete'
        ? ' The delete may or may not have completed; sending the same delete again is safe.'
        : '';
  return new VectorStoreError(
    'TIMEOUT',
    `The ${store} store did not answer within ${seconds(timeoutMs)} while ${what}.${after} ` +
      'It may be overloaded, locked or unreachable; the call can be retried. If the store is only slow, raise ' +
      'vectorPipeline.storeTimeout (seconds) in settings.js or the environment variable VECTOR_PIPELINE_STORE_TIMEOUT.',
    { transient: true },
  );
}

/**
 * Race `call` against a timer of `ms`, started before the call so that its
 * synchronous part counts too; the timer is cleared as soon as the call settles.
 */
function raceTimer<T>(call: () => Promise<T>, ms: number, onTimeout: () => VectorStoreError): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => {
      settled = true;
      // The call goes on; whatever it ends with is swallowed by the handlers below.
      reject(onTimeout());
    }, ms);
    const finish = () => {
      if (settled) return false;
      settled = true;
      clearTimeout(timer);
      return true;
    };
    let promise: Promise<T>;
    try {
      promise = Promise.resolve(call());
    } catch (err) {
      if (finish()) reject(err);
      return;
    }
    promise.then(
      (value) => {
        if (finish()) resolve(value);
      },
      (err: unknown) => {
        if (finish()) reject(err);
      },
    );
  });
}

/** Marks backends already wrapped, so that wrapping twice adds no second timer. */
const WRAPPED = Symbol('withCallTimeouts');

/**
 * The backend with a deadline of `timeoutMs` (+ grace) on every call but
 * `close()`. `name` and `close` pass through unchanged.
 */
export function withCallTimeouts(backend: Backend, timeoutMs: number): Backend {
  if ((backend as unknown as Record<symbol, unknown>)[WRAPPED]) return backend;
  const limit = timeoutMs + graceMs(timeoutMs);
  const timed =
    <A extends unknown[], R>(operation: keyof typeof DOING, method: (...args: A) => Promise<R>) =>
    (...args: A): Promise<R> =>
      raceTimer(() => method.apply(backend, args), limit, () => timeoutError(backend.name, operation, args[0], timeoutMs));
  const wrapped: Backend & { [WRAPPED]: true } = {
    [WRAPPED]: true,
    get name() {
      return backend.name;
    },
    ensureCollection: timed('ensureCollection', backend.ensureCollection),
    collectionExists: timed('collectionExists', backend.collectionExists),
    upsert: timed('upsert', backend.upsert),
    delete: timed('delete', backend.delete),
    status: timed('status', backend.status),
    stats: timed('stats', backend.stats),
    query: timed('query', backend.query),
    close: () => backend.close(),
  };
  return wrapped;
}
