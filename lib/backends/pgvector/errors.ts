/**
 * Turns what `pg` throws (a server error with a SQLSTATE, or a network or TLS
 * error from Node.js) into a VectorStoreError whose `transient` flag tells the
 * triggerer to retry (server unreachable, timeouts, overload) or to give up (bad
 * credentials, missing collection, missing extension, ...).
 */
import { AGAIN, VectorStoreError, messageOf, type ErrorCode } from '../../errors';
import { redact, redactError } from '../../redact';

/** What the failing call was doing, for the message. */
export interface ErrorContext {
  /** "host:port/database" (never holds a password). */
  where: string;
  /** e.g. `reading the status of collection "docs"`. */
  doing: string;
  /** The collection concerned, if any. */
  collection?: string;
  /** The qualified table name, for NOT_FOUND messages. */
  table?: string;
  /** The password, scrubbed from every message should a server or library ever echo it. */
  password?: string;
  /** The call timeout (storeTimeout) in ms, for timeout messages. */
  timeoutMs?: number;
}

/** SQLSTATEs (or their two-character classes) worth retrying: the server is down, starting, overloaded or busy. */
const TRANSIENT_SQLSTATE_CLASSES = new Set(['08', '53', '58']);
const TRANSIENT_SQLSTATES = new Set([
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, in recovery)
  '57014', // query_canceled (by an administrator; by statement_timeout: TIMEOUT, below)
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '55P03', // lock_not_available
  '55006', // object_in_use
]);
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ENOTFOUND',
  'EPIPE',
]);

interface PgLikeError {
  code?: unknown;
  message?: unknown;
  errors?: unknown;
}

/** The SQLSTATE of a server error, or null for client-side and network errors. */
export function sqlState(err: unknown): string | null {
  const code = (err as PgLikeError | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : null;
}

function errnoCode(err: unknown): string | null {
  const code = (err as PgLikeError | null)?.code;
  return typeof code === 'string' && !/^[0-9A-Z]{5}$/.test(code) ? code : null;
}

/**
 * The error's own words, without a final period and without the password.
 * Node's connection errors sometimes have an empty message (AggregateError).
 */
export function reasonOf(err: unknown, password?: string): string {
  let text = messageOf(err).trim();
  const nested = (err as PgLikeError | null)?.errors;
  if (text === '' && Array.isArray(nested) && nested.length > 0) text = messageOf(nested[0]).trim();
  if (text === '') text = errnoCode(err) ?? 'unknown error';
  return scrub(text.replace(/\.$/, ''), password);
}

function scrub(text: string, password: string | undefined): string {
  return redact(text, [password]);
}

/**
 * What timed out, when the error is a timeout of this backend's: the server's
 * statement_timeout or lock_timeout, the client's query timeout, or the wait for a
 * connection. Null for any other error.
 */
export function timeoutKind(err: unknown): string | null {
  const state = sqlState(err);
  const text = messageOf(err);
  if (state === '57014' && /statement timeout/i.test(text)) return 'the server cancelled the statement at statement_timeout';
  if (state === '55P03' && /lock timeout/i.test(text)) return 'another session holds a lock on the table; the server gave up at lock_timeout';
  if (state !== null) return null;
  if (/^Query read timeout/i.test(text)) return 'no answer to the statement';
  // pg-pool: no pooled connection came free, and no new one could be opened, in time.
  if (/timeout exceeded when trying to connect/i.test(text)) return 'no connection could be opened or became free';
  if (/connection timeout/i.test(text)) return 'no connection could be opened';
  return null;
}

function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}

export function toStoreError(err: unknown, ctx: ErrorContext): VectorStoreError {
  if (err instanceof VectorStoreError) return err;
  const state = sqlState(err);
  const reason = reasonOf(err);
  const store = `the pgvector store at ${ctx.where}`;
  const cause = redactError(err, [ctx.password]);
  const make = (code: ErrorCode, message: string, transient?: boolean) =>
    new VectorStoreError(code, scrub(message, ctx.password), { transient, cause });

  const timedOut = timeoutKind(err);
  if (timedOut !== null) {
    const within = ctx.timeoutMs === undefined ? 'in time' : `within ${seconds(ctx.timeoutMs)}`;
    return make(
      'TIMEOUT',
      `The pgvector store at ${ctx.where} did not answer ${within} while ${ctx.doing} (${timedOut}). It may be overloaded, ` +
        `locked by another session or unreachable; ${AGAIN} If it is only slow, raise vectorPipeline.storeTimeout ` +
        '(seconds) in settings.js or the environment variable VECTOR_PIPELINE_STORE_TIMEOUT.',
      true,
    );
  }

  if (state === '28P01' || state === '28000') {
    return make(
      'AUTH',
      `The pgvector store at ${ctx.where} rejected the login while ${ctx.doing} (${reason}). Check the user name in the URL ` +
        'and the Password credential of the vector-store configuration.',
    );
  }
  if (state === '42501') {
    return make(
      'AUTH',
      `The database user has no permission for this while ${ctx.doing} on ${store} (${reason}). Grant the user the rights ` +
        'to create tables in the database (and to use the vector extension), or use another user.',
    );
  }
  if (state === '3D000') {
    return make('INVALID_INPUT', `${capital(store)} has no such database (${reason}). Check the database name at the end of the URL.`);
  }
  if (state === '42P01' || state === '3F000') {
    return make(
      'NOT_FOUND',
      `Collection "${ctx.collection ?? '?'}" does not exist in ${store}` +
        (ctx.table ? ` (no table ${ctx.table})` : '') +
        '. Ingest documents into it first (vector-ingest creates it), or check the collection name.',
    );
  }
  if (state === '58P01' || (state === '0A000' && /extension/i.test(reason)) || (state === '42704' && /"vector"/.test(reason))) {
    return make(
      'NOT_INSTALLED',
      `The vector extension is not available on ${store} (${reason}). Install pgvector on the database server ` +
        '(see https://github.com/pgvector/pgvector#installation), then retry.',
    );
  }
  if (state === '22P05' || state === '22021') {
    return make('INVALID_INPUT', `${capital(store)} refused a value while ${ctx.doing} (${reason}). Remove NUL characters from texts and metadata.`);
  }
  if (state !== null && (TRANSIENT_SQLSTATES.has(state) || TRANSIENT_SQLSTATE_CLASSES.has(state.slice(0, 2)))) {
    return make('UNAVAILABLE', `${capital(store)} is not available right now while ${ctx.doing} (${reason}); ${AGAIN}`, true);
  }
  if (state !== null) {
    return make('INTERNAL', `${capital(store)} failed while ${ctx.doing}: ${reason} (SQLSTATE ${state}).`);
  }

  // Client-side: network, TLS, or the client library itself.
  const code = errnoCode(err);
  if (/does not support SSL/i.test(reason)) {
    return make(
      'INVALID_INPUT',
      `${capital(store)} does not accept TLS connections: turn off TLS in the vector-store configuration, or enable SSL on the server.`,
    );
  }
  if ((code !== null && (code.startsWith('ERR_TLS') || /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code))) || /certificate/i.test(reason)) {
    return make(
      'INVALID_INPUT',
      `The TLS certificate of ${store} was not accepted (${reason}). Use a certificate signed by a trusted authority, or ` +
        'start Node-RED with NODE_EXTRA_CA_CERTS pointing to your CA certificate.',
    );
  }
  if (/password must be a string|SASL|no password/i.test(reason)) {
    return make(
      'AUTH',
      `${capital(store)} asks for a password while ${ctx.doing}: set the Password credential of the vector-store configuration.`,
    );
  }
  if ((code !== null && NETWORK_CODES.has(code)) || /timeout|timed out|terminated|ended unexpectedly|connection/i.test(reason)) {
    return make(
      'UNAVAILABLE',
      `${capital(store)} could not be reached while ${ctx.doing} (${reason}). Check that Postgres is running and the URL is ` +
        `right; ${AGAIN}`,
      true,
    );
  }
  return make('UNAVAILABLE', `${capital(store)} failed while ${ctx.doing} (${reason}); ${AGAIN}`, true);
}

function capital(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
