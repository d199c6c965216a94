/**
 * Runtime settings of the package: Node-RED's `settings.js` key `vectorPipeline`,
 * overridden by environment variables (for containers). Nothing here comes from a
 * flow: a flow cannot raise a limit or point the job store elsewhere.
 *
 *   vectorPipeline: {
 *     storeTimeout: 10,            // seconds any one store call may take
 *     maxPendingWaitsPerSensor: 10000,
 *   }
 *
 * Environment: VECTOR_PIPELINE_STORE_TIMEOUT (seconds),
 * VECTOR_PIPELINE_MAX_PENDING_WAITS.
 *
 * The job store (where waits and ingest jobs are kept) is read apart, by
 * readJobStoreSettings: a mistake there must not reset the other settings.
 *
 *   vectorPipeline: {
 *     jobStore: { type: 'postgres', url: 'postgres://user@host:5432/db', password, schema, table,
 *                 leaseSeconds: 30, heartbeatSeconds: 10, capacity: 100000 },
 *   }
 *
 * Environment: VECTOR_PIPELINE_JOB_STORE (a postgres:// URL, or "file"),
 * VECTOR_PIPELINE_JOB_STORE_PASSWORD (else the setting, else PGPASSWORD).
 */
import { VectorStoreError } from './errors';

export interface RuntimeSettings {
  /** Longest time one store call (status, write, query...) may take before it fails as a timeout. */
  storeTimeoutMs: number;
  /** Most pending waits one sensor node holds; more are rejected with a clear error. */
  maxPendingWaitsPerSensor: number;
}

export const DEFAULT_SETTINGS: Readonly<RuntimeSettings> = Object.freeze({
  storeTimeoutMs: 10_000,
  maxPendingWaitsPerSensor: 10_000,
});

type Env = Record<string, string | undefined>;

/**
 * Read the settings; throws INVALID_INPUT naming the setting and the fix when a
 * value is not usable (the caller logs it and keeps the defaults).
 */
export function readRuntimeSettings(fromSettingsJs: unknown, env: Env = process.env): RuntimeSettings {
  const section = isObject(fromSettingsJs) ? fromSettingsJs : {};
  const storeTimeout = pick(env.VECTOR_PIPELINE_STORE_TIMEOUT, section.storeTimeout, 'storeTimeout', 'VECTOR_PIPELINE_STORE_TIMEOUT');
  const maxPending = pick(env.VECTOR_PIPELINE_MAX_PENDING_WAITS, section.maxPendingWaitsPerSensor, 'maxPendingWaitsPerSensor', 'VECTOR_PIPELINE_MAX_PENDING_WAITS');
  return {
    storeTimeoutMs: storeTimeout === undefined ? DEFAULT_SETTINGS.storeTimeoutMs : positive(storeTimeout, 'seconds', 0.001, 3600) * 1000,
    maxPendingWaitsPerSensor:
      maxPending === undefined ? DEFAULT_SETTINGS.maxPendingWaitsPerSensor : Math.floor(positive(maxPending, 'waits', 1, 10_000_000)),
  };
}

/** The settings, or the defaults plus a warning when they are not usable: a bad setting never stops Node-RED. */
/** Problems already warned about: every node type reads the settings, the log says it once. */
const warned = new Set<string>();

export function runtimeSettingsOrDefaults(fromSettingsJs: unknown, warn: (message: string) => void, env: Env = process.env): RuntimeSettings {
  try {
    return readRuntimeSettings(fromSettingsJs, env);
  } catch (err) {
    const message = `${(err as Error).message} Using the defaults meanwhile.`;
    if (!warned.has(message)) {
      warned.add(message);
      warn(message);
    }
    return { ...DEFAULT_SETTINGS };
  }
}

function pick(envValue: string | undefined, value: unknown, name: string, envName: string): { value: unknown; label: string } | undefined {
  if (envValue !== undefined && envValue.trim() !== '') return { value: Number(envValue), label: `The environment variable ${envName}` };
  if (value === undefined || value === null) return undefined;
  return { value, label: `The setting vectorPipeline.${name} in settings.js` };
}

function positive(entry: { value: unknown; label: string }, unit: string, min: number, max: number): number {
  const n = entry.value;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < min || n > max) {
    throw new VectorStoreError('INVALID_INPUT', `${entry.label} must be a number of ${unit} between ${min} and ${max}.`);
  }
  return n;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Where the durable work (waits, ingest jobs) is kept: the user directory's file, or a PostgreSQL table shared by instances. */
export type JobStoreSettings = FileJobStoreSettings | PostgresJobStoreSettings;

export interface FileJobStoreSettings {
  type: 'file';
}

export interface PostgresJobStoreSettings {
  type: 'postgres';
  host: string;
  port: number;
  /** Undefined: pg's default (PGUSER, else the operating-system user). */
  user: string | undefined;
  /** Undefined: pg's default (PGDATABASE, else the user name). */
  database: string | undefined;
  /** From VECTOR_PIPELINE_JOB_STORE_PASSWORD, the setting, or PGPASSWORD; never from a flow. */
  password: string | undefined;
  schema: string;
  table: string;
  /** How long a claimed record stays with an instance without a heartbeat. */
  leaseMs: number;
  heartbeatMs: number;
  /** Most records one instance holds at a time. */
  capacity: number;
  /** "host:port/database" for messages: never holds a password. */
  where: string;
}

export const JOB_STORE_DEFAULTS = Object.freeze({
  schema: 'public',
  table: 'vector_pipeline_work',
  leaseSeconds: 30,
  heartbeatSeconds: 10,
  capacity: 100_000,
});

const JOB_STORE = 'vectorPipeline.jobStore';
const URL_EXAMPLE = 'postgres://user@host:5432/database';
/** Lower-case SQL identifiers only: they are written into statements unquoted-safe and never need escaping. */
const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;
/**
 * The job store names its spool table and indexes after the table, `<table>_spool_headers`
 * the longest: PostgreSQL cuts names at 63 characters, so a longer table name could make
 * `<table>_spool` the table itself.
 */
const MAX_TABLE_NAME = 63 - '_spool_headers'.length;

/**
 * Read `vectorPipeline.jobStore` and its environment variables; throws
 * INVALID_INPUT naming the setting and the fix. Nothing runs on it yet: the
 * triggerer still keeps its work in the file store (issue 11 continues).
 */
export function readJobStoreSettings(fromSettingsJs: unknown, env: Env = process.env): JobStoreSettings {
  const section = isObject(fromSettingsJs) ? fromSettingsJs : {};
  const given = section.jobStore;
  if (given !== undefined && given !== null && !isObject(given)) {
    throw jobStoreError(`The setting ${JOB_STORE} in settings.js must be an object such as {type: 'postgres', url: '${URL_EXAMPLE}'}, or be left out for the file store.`);
  }
  const store: Record<string, unknown> = isObject(given) ? given : {};
  const envUrl = env.VECTOR_PIPELINE_JOB_STORE?.trim();

  let type: unknown = store.type ?? (store.url !== undefined ? 'postgres' : 'file');
  let url: { value: unknown; label: string } = { value: store.url, label: `The setting ${JOB_STORE}.url in settings.js` };
  if (envUrl === 'file') type = 'file';
  else if (envUrl) {
    type = 'postgres';
    url = { value: envUrl, label: 'The environment variable VECTOR_PIPELINE_JOB_STORE' };
  }
  if (type === 'file') return { type: 'file' };
  if (type !== 'postgres') {
    throw jobStoreError(`The setting ${JOB_STORE}.type in settings.js must be 'file' or 'postgres'.`);
  }

  const connection = parseJobStoreUrl(url);
  const password = jobStorePassword(store.password, env);
  const schema = identifier(store.schema, 'schema', JOB_STORE_DEFAULTS.schema);
  const table = identifier(store.table, 'table', JOB_STORE_DEFAULTS.table, MAX_TABLE_NAME);
  const seconds = (name: string, fallback: number, min: number, max: number): number => {
    const value = store[name];
    if (value === undefined || value === null) return fallback;
    return positive({ value, label: `The setting ${JOB_STORE}.${name} in settings.js` }, 'seconds', min, max);
  };
  const leaseSeconds = seconds('leaseSeconds', JOB_STORE_DEFAULTS.leaseSeconds, 0.1, 3600);
  const heartbeatSeconds = seconds('heartbeatSeconds', Math.min(JOB_STORE_DEFAULTS.heartbeatSeconds, leaseSeconds / 3), 0.01, 3600);
  if (heartbeatSeconds >= leaseSeconds) {
    throw jobStoreError(
      `The setting ${JOB_STORE}.heartbeatSeconds (${heartbeatSeconds}) must be less than ${JOB_STORE}.leaseSeconds (${leaseSeconds}), ` +
        'or every lease would expire before it is renewed: a third of the lease or less is a good value.',
    );
  }
  const capacity =
    store.capacity === undefined || store.capacity === null
      ? JOB_STORE_DEFAULTS.capacity
      : Math.floor(positive({ value: store.capacity, label: `The setting ${JOB_STORE}.capacity in settings.js` }, 'records', 1, 10_000_000));
  return {
    type: 'postgres',
    ...connection,
    password,
    schema,
    table,
    leaseMs: Math.round(leaseSeconds * 1000),
    heartbeatMs: Math.round(heartbeatSeconds * 1000),
    capacity,
  };
}

function jobStoreError(message: string): VectorStoreError {
  return new VectorStoreError('INVALID_INPUT', message);
}

/** Split the URL; its value is never repeated in a message (a mistyped one may still hold a password). */
function parseJobStoreUrl(entry: { value: unknown; label: string }): Pick<PostgresJobStoreSettings, 'host' | 'port' | 'user' | 'database' | 'where'> {
  const { value, label } = entry;
  if (typeof value !== 'string' || value.trim() === '') {
    throw jobStoreError(
      `The PostgreSQL job store needs a connection string: set ${JOB_STORE}.url in settings.js (or the environment variable ` +
        `VECTOR_PIPELINE_JOB_STORE) to ${URL_EXAMPLE}.`,
    );
  }
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    throw jobStoreError(`${label} is not a valid connection string: write it as ${URL_EXAMPLE}.`);
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw jobStoreError(`${label} must start with postgres:// (or be "file" in the environment variable): write it as ${URL_EXAMPLE}.`);
  }
  if (url.password !== '' || url.searchParams.has('password')) {
    throw jobStoreError(
      `${label} contains a password: remove it from the URL and set the environment variable VECTOR_PIPELINE_JOB_STORE_PASSWORD ` +
        `(or ${JOB_STORE}.password in settings.js, or PGPASSWORD) instead.`,
    );
  }
  const params = [...url.searchParams.keys()];
  if (params.length > 0) {
    throw jobStoreError(`${label} has query parameters (${params.map((p) => JSON.stringify(p)).join(', ')}), which the job store does not read: remove them.`);
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '') throw jobStoreError(`${label} has no host name: write it as ${URL_EXAMPLE}.`);
  const port = url.port === '' ? 5432 : Number(url.port);
  let user: string | undefined;
  let database: string | undefined;
  try {
    user = url.username === '' ? undefined : decodeURIComponent(url.username);
    const path = url.pathname.replace(/^\//, '');
    database = path === '' ? undefined : decodeURIComponent(path);
  } catch {
    throw jobStoreError(`${label} has a badly escaped user or database name (a stray "%"): write it as ${URL_EXAMPLE}.`);
  }
  if (database !== undefined && database.includes('/')) {
    throw jobStoreError(`${label} names the database after the host and port only: write it as ${URL_EXAMPLE}.`);
  }
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return { host, port, user, database, where: `${shownHost}:${port}/${database ?? user ?? '(default database)'}` };
}

function jobStorePassword(fromSettings: unknown, env: Env): string | undefined {
  const fromEnv = env.VECTOR_PIPELINE_JOB_STORE_PASSWORD;
  if (fromEnv !== undefined && fromEnv !== '') return checkedPassword(fromEnv, 'the environment variable VECTOR_PIPELINE_JOB_STORE_PASSWORD');
  if (fromSettings !== undefined && fromSettings !== null && fromSettings !== '') {
    if (typeof fromSettings !== 'string') throw jobStoreError(`The setting ${JOB_STORE}.password in settings.js must be a string.`);
    return checkedPassword(fromSettings, `the setting ${JOB_STORE}.password in settings.js`);
  }
  const pgPassword = env.PGPASSWORD;
  return pgPassword !== undefined && pgPassword !== '' ? checkedPassword(pgPassword, 'the environment variable PGPASSWORD') : undefined;
}

/** A password with a line break cannot be sent; the message names where it came from, never the value. */
function checkedPassword(password: string, from: string): string {
  if (/[\u0000-\u001f\u007f]/.test(password)) {
    throw jobStoreError(`The job store password in ${from} contains a line break or another control character: set it again without it (check for a trailing newline).`);
  }
  return password;
}

function identifier(value: unknown, name: string, fallback: string, maxLength = 63): string {
  if (value === undefined || value === null || value === '') return fallback;
  if (typeof value !== 'string' || !IDENTIFIER.test(value) || value.length > maxLength) {
    throw jobStoreError(
      `The setting ${JOB_STORE}.${name} in settings.js must be a lower-case SQL name (letters, digits and _, not starting with a digit, ` +
        `at most ${maxLength} characters), such as "${fallback}".`,
    );
  }
  return value;
}
