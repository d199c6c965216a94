/**
 * The pgvector backend's connection settings: the connection string of the
 * vector-store configuration (`postgres://user@host:port/database`, never with a
 * password), the `password` credential and the TLS switch, turned into the
 * discrete settings the `pg` client takes.
 *
 * The string is parsed here rather than handed to `pg` as `connectionString`,
 * because `pg` lets every field parsed from the string (even an empty password)
 * override the separate settings, which would silently drop the credential.
 */
import type { ConnectionOptions } from 'node:tls';
import { VectorStoreError } from '../../errors';

export interface ConnectionSettings {
  host: string;
  port: number;
  /** Undefined: pg's default (PGUSER, else the operating-system user). */
  user: string | undefined;
  /** Undefined: pg's default (PGDATABASE, else the user name). */
  database: string | undefined;
  /** TLS options for pg, or false for a plain connection. */
  ssl: false | ConnectionOptions;
  /** "host:port/database" for messages: never holds a password. */
  where: string;
}

const DEFAULT_PORT = 5432;
const EXAMPLE = 'postgres://user@host:5432/database';

function invalid(message: string): VectorStoreError {
  return new VectorStoreError('INVALID_INPUT', message);
}

/**
 * Check and split the connection string. Throws INVALID_INPUT naming the field
 * to fix; the value itself is never repeated in a message, since a mistyped one
 * may still hold a password.
 */
export function parseConnectionString(value: unknown, ssl: boolean | ConnectionOptions | undefined): ConnectionSettings {
  if (typeof value !== 'string' || value.trim() === '') {
    throw invalid(
      `The pgvector backend needs a connection string: set URL in the vector-store configuration to ${EXAMPLE} ` +
        '(the password goes in the Password credential, not in the URL).',
    );
  }
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    throw invalid(`The pgvector URL in the vector-store configuration is not a valid connection string: write it as ${EXAMPLE}.`);
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw invalid(
      `The pgvector URL in the vector-store configuration must start with postgres:// (it starts with ${url.protocol}//): ` +
        `write it as ${EXAMPLE}.`,
    );
  }
  if (url.password !== '' || url.searchParams.has('password')) {
    throw invalid(
      'The pgvector URL in the vector-store configuration contains a password: remove it from the URL and put it in the ' +
        'Password credential of the vector-store configuration instead (credentials are stored encrypted and never exported with the flow).',
    );
  }
  const params = [...url.searchParams.keys()];
  if (params.length > 0) {
    throw invalid(
      `The pgvector URL in the vector-store configuration has query parameters (${params.map((p) => JSON.stringify(p)).join(', ')}), ` +
        `which this backend does not read: remove them (use the TLS option for an encrypted connection) and write the URL as ${EXAMPLE}.`,
    );
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1'); // IPv6 literals come bracketed
  if (host === '') {
    throw invalid(`The pgvector URL in the vector-store configuration has no host name: write it as ${EXAMPLE}.`);
  }
  const port = url.port === '' ? DEFAULT_PORT : Number(url.port);
  let user: string | undefined;
  let database: string | undefined;
  try {
    user = url.username === '' ? undefined : decodeURIComponent(url.username);
    const path = url.pathname.replace(/^\//, '');
    database = path === '' ? undefined : decodeURIComponent(path);
  } catch {
    throw invalid(`The pgvector URL in the vector-store configuration has a badly escaped user or database name (a stray "%"): write it as ${EXAMPLE}.`);
  }
  if (database !== undefined && database.includes('/')) {
    throw invalid(`The pgvector URL in the vector-store configuration names the database after the host and port only: write it as ${EXAMPLE}.`);
  }
  const tls: false | ConnectionOptions = ssl === true ? { rejectUnauthorized: true } : ssl ? ssl : false;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return { host, port, user, database, ssl: tls, where: `${shownHost}:${port}/${database ?? user ?? '(default database)'}` };
}

const APPLICATION_NAME = 'node-red-vector-pipeline';

export interface ConnectionTimeouts {
  password: string | undefined;
  /** 'pool': the connections of every call; 'index build': a background build's own connection. */
  purpose: 'pool' | 'index build';
  /** Longest time one call may take (the runtime setting storeTimeout), in ms. */
  callTimeoutMs: number;
  /** Longest wait for a connection, in ms. */
  connectionTimeoutMs: number;
}

/** How much later than the server's statement_timeout the client itself gives up on an answer. */
function clientGraceMs(callTimeoutMs: number): number {
  return Math.min(500, Math.max(10, Math.round(callTimeoutMs / 20)));
}

/**
 * The `pg` settings of one connection.
 *
 * Pooled connections carry the call timeout three ways: statement_timeout and
 * lock_timeout are sent in the startup message, so the server itself cancels a
 * statement that runs too long or waits for a lock held by another session (the
 * connection stays usable); query_timeout, a little later, is the client's own
 * clock, for a server that accepted the connection and then stopped answering
 * (that connection is then destroyed, never returned to the pool).
 *
 * An index build's connection has no statement, lock or query timeout (0): a
 * CREATE INDEX CONCURRENTLY can rightly take hours, and waits for older
 * transactions to end. It runs in the background and no caller waits for it;
 * `close()` ends it.
 */
export function connectionConfig(settings: ConnectionSettings, options: ConnectionTimeouts): import('pg').ClientConfig {
  const { host, port, user, database, ssl } = settings;
  const pooled = options.purpose === 'pool';
  return {
    host,
    port,
    user,
    database,
    password: options.password,
    ssl,
    connectionTimeoutMillis: options.connectionTimeoutMs,
    keepAlive: true,
    application_name: pooled ? APPLICATION_NAME : `${APPLICATION_NAME} ${options.purpose}`,
    ...(pooled
      ? {
          statement_timeout: options.callTimeoutMs,
          lock_timeout: options.callTimeoutMs,
          query_timeout: options.callTimeoutMs + clientGraceMs(options.callTimeoutMs),
        }
      : // pg leaves out a statement_timeout of 0; the startup options say it explicitly, so that
        // a timeout set on the role or database does not kill a build either.
        { options: '-c statement_timeout=0 -c lock_timeout=0' }),
  };
}
