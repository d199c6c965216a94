/**
 * One error type for the whole engine. `transient` is the only thing the
 * triggerer needs to know to decide between "retry later" and "fail now";
 * `code` lets callers and tests tell failures apart without parsing text.
 * Messages are sentences for a person: what, where, and what to do.
 */

export type ErrorCode =
  | 'INVALID_INPUT' // bad configuration or message: fix the field named in the message
  | 'NOT_FOUND' // the collection does not exist
  | 'DIMENSION_MISMATCH' // vector size differs from the collection's
  | 'AUTH' // bad or missing credentials
  | 'UNAVAILABLE' // connection refused, 5xx, rate-limited: worth retrying
  | 'TIMEOUT' // the store did not answer in time (storeTimeout): worth retrying
  | 'INDEX_FAILED' // the store reports its index build failed
  | 'NOT_INSTALLED' // an optional client package is missing
  | 'LIMIT' // a configured limit was reached (e.g. pending waits per sensor)
  | 'INTERNAL';

const TRANSIENT_BY_DEFAULT: ReadonlySet<ErrorCode> = new Set(['UNAVAILABLE', 'TIMEOUT']);

export class VectorStoreError extends Error {
  readonly code: ErrorCode;
  readonly transient: boolean;

  constructor(code: ErrorCode, message: string, options: { transient?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'VectorStoreError';
    this.code = code;
    this.transient = options.transient ?? TRANSIENT_BY_DEFAULT.has(code);
  }
}

export function isVectorStoreError(err: unknown): err is VectorStoreError {
  return err instanceof VectorStoreError;
}

/** True when retrying later may succeed. Unknown errors are treated as transient. */
export function isTransient(err: unknown): boolean {
  return isVectorStoreError(err) ? err.transient : true;
}

/** The message of anything thrown, for logs and payloads. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/**
 * What a passing failure means for the caller: only a sensor's status polls are
 * retried by the package; an ingest or a query is the flow's to send again.
 */
export const AGAIN =
  'a sensor\'s wait retries on its own; an ingest or a query can be sent again (a failed ingest keeps its documents in msg.payload).';
