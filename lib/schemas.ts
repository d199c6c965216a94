/**
 * Validation of node configurations and message inputs (zod 4).
 *
 * Node-RED hands us config properties as the editor saved them: numbers may be
 * strings ("100"), booleans may be "true"/"false", and an unset field is often
 * an empty string. The schemas accept those, apply the defaults and produce
 * typed objects. Every failure becomes one `VectorStoreError('INVALID_INPUT')`
 * whose message names the field the way a Node-RED user sees it (a node
 * property by its dialog label, "Batch size"; `msg.payload[3].vector[2]`), says
 * what is expected and what was received. zod's own wording is never shown.
 */
import { z } from 'zod';
import { VectorStoreError } from './errors';
import { kindOf } from './backends/values';
import { MAX_CONCURRENCY } from './embedders/openai';
import { MAX_CHUNK_SIZE } from './chunking';

// ---------------------------------------------------------------------------
// Public types

export const BACKEND_NAMES = ['memory', 'lancedb', 'pgvector', 'chroma'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];
export const EMBEDDER_NAMES = ['hash', 'openai'] as const;
export type EmbedderName = (typeof EMBEDDER_NAMES)[number];

/** The `vector-store` config node. */
export interface StoreConfig {
  backend: BackendName;
  embedder: EmbedderName;
  /** Vector size of the hash embedder. */
  dimensions: number;
  /** openai embedder: base URL of the API (".../v1"); '' for hash. */
  embedUrl: string;
  /** openai embedder: model name; '' for hash. */
  embedModel: string;
  /** openai embedder: texts per request. */
  embedBatchSize: number;
  /** openai embedder: requests in flight at once (fewer for a while after rate limits). */
  embedConcurrency: number;
  /** memory backend: documents indexed per second. */
  indexingRate: number;
  /** memory backend: seconds before indexing of a write starts. */
  indexingDelay: number;
  /** memory backend: keep collections on disk. */
  persist: boolean;
  /**
   * memory backend: "exact" scans every vector; "hnsw" searches collections of
   * 20,000 documents or more with an HNSW index (usearch, optional) once built.
   */
  memoryIndex: 'exact' | 'hnsw';
  url: string;
  path: string;
  tenant: string;
  database: string;
  ssl: boolean;
}

export interface IngestConfig {
  /** '' when every message brings `msg.collection`. */
  collection: string;
  /** "upsert" writes the documents of msg.payload; "delete" removes the documents (and chunks) it names. */
  operation: 'upsert' | 'delete';
  batchSize: number;
  createCollection: boolean;
  buildIndex: boolean;
  /**
   * Upsert only: 0 writes each message's documents at once; more gathers the
   * documents of several messages into batches of `batchSize`, written at the
   * latest this many milliseconds after a batch's first document arrived.
   */
  gatherMs: number;
  /** "auto": large inputs (JOB_THRESHOLD) run as durable background jobs; "always"; "never" (in the message's handler). */
  background: 'auto' | 'always' | 'never';
  /** Split texts into chunks before embedding ("off": documents are written whole). */
  chunking: 'off' | 'text' | 'markdown';
  /** Most characters (or approximate tokens) in one chunk. */
  chunkSize: number;
  /** What of a chunk's end the next one repeats, in the same unit; less than chunkSize. */
  chunkOverlap: number;
  chunkUnit: 'characters' | 'tokens';
}

/**
 * Which collection a sensor, health check or sample query watches: a collection
 * of this package named by `collection` (origin "package"), or one another tool
 * made (origin "other"), named by `collection` too, with the pgvector fields
 * (see ExistingCollection in ./types.ts; '' when not given).
 */
export interface WatchConfig {
  origin: 'package' | 'other';
  preset: '' | 'langchain' | 'llamaindex';
  tableSchema: string;
  vectorColumn: string;
  indexName: string;
  /** LanceDB: the database directory of another tool's table, when not the store's Path. */
  databasePath: string;
}

export interface SensorConfig extends WatchConfig {
  collection: string;
  /** 0: take msg.expectedCount, else wait for "ready" alone. */
  expectedCount: number;
  /** Seconds. */
  pollInterval: number;
  /** Seconds; when unset, the larger of 60 and pollInterval. */
  maxPollInterval: number;
  /** Seconds. */
  timeout: number;
  deferrable: boolean;
  /** Transient store errors in a row before a wait fails; 0: no limit (retried until the timeout). */
  maxErrors: number;
}

export type CountMode = 'atLeast' | 'exact';

export interface HealthConfig extends WatchConfig {
  collection: string;
  expectedCount: number;
  countMode: CountMode;
  /** 0: not checked. */
  dimensions: number;
}

export interface QueryConfig extends WatchConfig {
  collection: string;
  query: string;
  topK: number;
  failOnEmpty: boolean;
}

/** One document of an ingest payload, validated. */
export interface IngestItem {
  id?: string;
  text?: string;
  vector?: number[];
  metadata?: Record<string, unknown>;
}

export interface SimulateOption {
  fail: string;
}

export interface QuerySpec {
  text?: string;
  vector?: number[];
  topK: number;
  filter?: Record<string, unknown>;
}

export interface QueryInput {
  queries: QuerySpec[];
  /** True when msg.payload was an array: answer with an array of result lists. */
  batch: boolean;
}

// ---------------------------------------------------------------------------
// Turning zod issues into one readable message

/** Issues flagged with this param are not followed by "(got ...)". */
const NO_GOT = { noGot: true };
/** Separates what is expected from advice, so "(got ...)" goes between them. */
const HINT_SEPARATOR = '\n';
const withHint = (expected: string, hint: string) => `${expected}${HINT_SEPARATOR}${hint}`;
const MAX_ISSUES_IN_MESSAGE = 3;

/**
 * Validates `value` and returns the typed result, or throws
 * `VectorStoreError('INVALID_INPUT')`. `label` is how the value is called in
 * Node-RED terms ("msg.payload", "msg.collection"); '' for a node's config,
 * whose fields are then named alone ("batchSize").
 */
export function parseOrThrow<T>(schema: z.ZodType<T>, value: unknown, label: string, fieldLabels: FieldLabels = {}): T {
  return readable(label, () => {
    // Issues whose schema set no message get ours, never zod's default wording.
    const result = schema.safeParse(value, { error: fallbackMessage });
    if (result.success) return result.data;
    // The fields at fault, by label alone (unquoted), for the node's status.
    const names = (issue: z.core.$ZodIssue) => fieldName(label, issue.path, fieldLabels).replace(/^"([^"]*)"/, '$1');
    throw new InvalidFieldsError(describeIssues(result.error.issues, value, label, fieldLabels), [...new Set(result.error.issues.map(names))]);
  });
}

/**
 * How a node's dialog calls its properties ("Batch size" for batchSize): config
 * errors name what the user sees. A property without a label keeps its name.
 */
export type FieldLabels = Readonly<Record<string, string>>;

/** An INVALID_INPUT error that also lists the fields at fault, named as in its message (first first). */
export class InvalidFieldsError extends VectorStoreError {
  readonly fields: readonly string[];

  constructor(message: string, fields: readonly string[]) {
    super('INVALID_INPUT', message);
    this.fields = fields;
  }
}

/**
 * Runs a parser; anything but our own error (a Proxy or a getter that throws,
 * a value no check foresaw) becomes a sentence naming the value, never the
 * foreign error's text.
 */
function readable<T>(label: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof VectorStoreError) throw err;
    throw new VectorStoreError(
      'INVALID_INPUT',
      `${label || 'the node configuration'} cannot be read (reading it threw an error): send plain data, objects of fields without getters or proxies`,
    );
  }
}

function describeIssues(issues: readonly z.core.$ZodIssue[], root: unknown, label: string, fieldLabels: FieldLabels): string {
  // Several rules of one field can fail at once (an integer, at most 1000): say it once.
  const sentences = [...new Set(issues.map((issue) => describeIssue(issue, root, label, fieldLabels)))];
  const parts = sentences.slice(0, MAX_ISSUES_IN_MESSAGE);
  const more = sentences.length - parts.length;
  if (more > 0) parts.push(`and ${more} more problem${more === 1 ? '' : 's'}`);
  return parts.join('; ');
}

function describeIssue(issue: z.core.$ZodIssue, root: unknown, label: string, fieldLabels: FieldLabels): string {
  const where = fieldName(label, issue.path, fieldLabels);
  // A rule naming another field ("at least {field:pollInterval}") names it the same way.
  const [expected, hint] = issue.message
    .replace(FIELD_REFERENCE, (_whole, name: string) => fieldName(label, [name], fieldLabels))
    .split(HINT_SEPARATOR);
  const original = valueAt(root, issue.path);
  const showGot =
    original !== undefined && issue.code !== 'unrecognized_keys' && !(issue.code === 'custom' && issue.params?.noGot);
  const got = showGot ? ` (got ${describeValue(original)})` : '';
  return `${where} ${expected}${got}${hint ? `: ${hint}` : ''}`;
}

/** How an expected type is said: "must be a string", "must be true or false". */
const TYPE_WORDS: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  bigint: 'a BigInt',
  object: 'an object',
  array: 'an array',
  date: 'a Date',
  map: 'a Map',
  set: 'a Set',
  null: 'null',
  undefined: 'absent',
};

/** "1 item", "3 characters": what a size limit counts. */
function sizeUnit(origin: unknown, n: number | bigint): string {
  const unit = origin === 'array' || origin === 'set' ? 'item' : origin === 'string' ? 'character' : origin === 'map' || origin === 'object' ? 'entry' : null;
  if (unit === null) return '';
  return ` ${unit === 'entry' ? (Number(n) === 1 ? 'entry' : 'entries') : Number(n) === 1 ? unit : `${unit}s`}`;
}

/** For the issues whose schema did not set a message of its own: every zod 4 issue code, in our words. */
function fallbackMessage(issue: z.core.$ZodRawIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      return `must be ${TYPE_WORDS[issue.expected] ?? 'of another type'}`;
    case 'unrecognized_keys':
      return `has unknown field${issue.keys.length === 1 ? '' : 's'} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
    case 'invalid_value':
      return `must be one of ${issue.values.map((v) => (typeof v === 'bigint' ? `${v}n` : JSON.stringify(v))).join(', ')}`;
    case 'too_small':
      return `must be at least ${issue.minimum}${sizeUnit(issue.origin, issue.minimum)}`;
    case 'too_big':
      return `must be at most ${issue.maximum}${sizeUnit(issue.origin, issue.maximum)}`;
    case 'not_multiple_of':
      return `must be a multiple of ${issue.divisor}`;
    case 'invalid_format':
      return `is not a valid ${issue.format}`;
    case 'invalid_union':
      return 'does not match any of the accepted forms';
    case 'invalid_key':
      return 'has a key that is not valid';
    case 'invalid_element':
      return 'has an entry that is not valid';
    default:
      return 'is not valid';
  }
}

/** In a rule's message, stands for another field of the same object, named as the message names fields. */
const FIELD_REFERENCE = /\{field:(\w+)\}/g;
const fieldReference = (name: string) => `{field:${name}}`;

/**
 * A field as the message names it: a node property by its dialog label when it
 * has one (quoted: "Poll every" is a label, not a sentence), else its path.
 */
function fieldName(label: string, path: readonly PropertyKey[], fieldLabels: FieldLabels): string {
  const [first, ...rest] = path;
  if (label === '' && typeof first === 'string' && Object.hasOwn(fieldLabels, first)) {
    return `"${fieldLabels[first]}"${rest.length > 0 ? ` ${fieldPath('', rest)}` : ''}`;
  }
  return fieldPath(label, path);
}

/** "msg.payload" + [3, "vector", 2] -> "msg.payload[3].vector[2]". */
function fieldPath(label: string, path: readonly PropertyKey[]): string {
  let out = label;
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else if (typeof key === 'string' && /^[A-Za-z_$][\w$]*$/.test(key)) out += out === '' ? key : `.${key}`;
    else out += `[${JSON.stringify(String(key))}]`;
  }
  return out === '' ? 'the value' : out;
}

/** The original (pre-coercion) value at a path, so messages quote what the user sent. */
function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let current: unknown = root;
  for (const key of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}

/**
 * A short, safe description of a received value: 42, NaN, "abc", null, nothing,
 * an array of 3 items, a BigInt (10n), a Date, a Map, a Float32Array, an object.
 */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') {
    return JSON.stringify(value.length > 40 ? value.slice(0, 37) + '...' : value);
  }
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  try {
    if (Array.isArray(value)) {
      return value.length === 0 ? 'an empty array' : `an array of ${value.length} item${value.length === 1 ? '' : 's'}`;
    }
  } catch {
    return 'an object that cannot be read';
  }
  return kindOf(value);
}

// ---------------------------------------------------------------------------
// Field builders: lenient about how Node-RED stores values, strict about meaning

/** Stands for a value that throws when looked at (a hostile Proxy), so zod reports the field instead of throwing. */
const UNREADABLE = Symbol('unreadable');

/** The value, or UNREADABLE when merely inspecting it throws. */
function readableValue(value: unknown): unknown {
  if ((typeof value !== 'object' && typeof value !== 'function') || value === null) return value;
  try {
    Object.getPrototypeOf(value);
    Array.isArray(value);
    return value;
  } catch {
    return UNREADABLE;
  }
}

function isBlank(value: unknown): boolean {
  return value === undefined || value === null || (typeof value === 'string' && value.trim() === '');
}

/**
 * An object literal (or `Object.create(null)`), from any realm: objects built in a
 * Node-RED function node come from its own VM context, whose Object.prototype is
 * not ours, so compare shapes, not identities.
 */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === null || Object.getPrototypeOf(proto) === null;
}

/** Numbers may arrive as strings; blank means "use the default" (or unset). */
function toNumberOrBlank(value: unknown): unknown {
  if (isBlank(value)) return undefined;
  if (typeof value === 'string') return Number(value.trim());
  return value;
}

interface NumberRule {
  integer?: boolean;
  /** Inclusive lower bound. */
  min?: number;
  /** Exclusive lower bound. */
  above?: number;
  /** Inclusive upper bound. */
  max?: number;
}

/** "must be an integer between 1 and 10000", "must be a number greater than 0", ... */
function numberExpectation(rule: NumberRule): string {
  const kind = rule.integer ? 'an integer' : 'a number';
  if (rule.min !== undefined && rule.max !== undefined) return `must be ${kind} between ${rule.min} and ${rule.max}`;
  if (rule.above !== undefined) return `must be ${kind} greater than ${rule.above}`;
  if (rule.min !== undefined) return `must be ${kind} of at least ${rule.min}`;
  return `must be ${kind}`;
}

function numberSchema(rule: NumberRule, message = numberExpectation(rule)) {
  const error = { error: message };
  let schema = z.number(error); // zod 4 rejects NaN and Infinity here
  if (rule.integer) schema = schema.int(error);
  if (rule.min !== undefined) schema = schema.gte(rule.min, error);
  if (rule.above !== undefined) schema = schema.gt(rule.above, error);
  if (rule.max !== undefined) schema = schema.lte(rule.max, error);
  return schema;
}

function numberField(rule: NumberRule, defaultValue: number) {
  return z.preprocess((v) => toNumberOrBlank(readableValue(v)) ?? defaultValue, numberSchema(rule));
}

function optionalNumberField(rule: NumberRule) {
  return z.preprocess((v) => toNumberOrBlank(readableValue(v)), numberSchema(rule).optional());
}

function booleanField(defaultValue: boolean) {
  return z.preprocess(
    (raw) => {
      const v = readableValue(raw);
      if (isBlank(v)) return defaultValue;
      if (v === 'true') return true;
      if (v === 'false') return false;
      return v;
    },
    z.boolean({ error: 'must be true or false' }),
  );
}

function enumField<const T extends readonly [string, ...string[]]>(values: T, defaultValue: T[number]) {
  const message = `must be one of ${values.map((v) => `"${v}"`).join(', ')}`;
  return z.preprocess((raw) => {
    const v = readableValue(raw);
    return isBlank(v) ? defaultValue : v;
  }, z.enum(values, { error: message }));
}

/** A plain string property; unset means ''. Surrounding spaces are never meant, so they go. */
function stringField() {
  return z.preprocess(
    (v) => (v === undefined || v === null ? '' : typeof v === 'string' ? v.trim() : readableValue(v)),
    z.string({ error: 'must be a string' }),
  );
}

// ---------------------------------------------------------------------------
// Node configurations

export const collectionSchema: z.ZodType<string> = z.preprocess(
  (v) => (typeof v === 'string' ? v.trim() : v),
  z
    .string({ error: 'must be a collection name (a non-empty string)' })
    .min(1, { error: 'must be a collection name (a non-empty string)' }),
);

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

function hasUserInfo(value: string): boolean {
  const url = new URL(value);
  return url.username !== '' || url.password !== '';
}

export const storeConfigSchema: z.ZodType<StoreConfig> = z
  .object({
    backend: enumField(BACKEND_NAMES, 'memory'),
    embedder: enumField(EMBEDDER_NAMES, 'hash'),
    dimensions: numberField({ integer: true, min: 1, max: 8192 }, 384),
    embedUrl: stringField(),
    embedModel: stringField(),
    // 2048: the most inputs OpenAI takes in one request.
    embedBatchSize: numberField({ integer: true, min: 1, max: 2048 }, 64),
    embedConcurrency: numberField({ integer: true, min: 1, max: MAX_CONCURRENCY }, 4),
    indexingRate: numberField({ above: 0 }, 200),
    indexingDelay: numberField({ min: 0 }, 1),
    persist: booleanField(true),
    // Exact by default: HNSW answers are approximate and need an optional package.
    memoryIndex: enumField(['exact', 'hnsw'] as const, 'exact'),
    url: stringField(),
    path: stringField(),
    tenant: stringField(),
    database: stringField(),
    ssl: booleanField(false),
  })
  .superRefine((config, ctx) => {
    if (config.embedder !== 'openai') return;
    if (config.embedUrl === '') {
      ctx.addIssue({
        code: 'custom',
        path: ['embedUrl'],
        params: NO_GOT,
        message:
          'is required when embedder is "openai": set the base URL of an OpenAI-compatible API, e.g. https://api.openai.com/v1',
      });
    } else if (!isHttpUrl(config.embedUrl)) {
      ctx.addIssue({
        code: 'custom',
        path: ['embedUrl'],
        message: 'must be an http(s) URL such as https://api.openai.com/v1',
      });
    } else if (hasUserInfo(config.embedUrl)) {
      ctx.addIssue({
        code: 'custom',
        path: ['embedUrl'],
        params: NO_GOT, // the value holds a password
        message: 'must not contain a user name or password: put the key in the embedApiKey credential',
      });
    }
    if (config.embedModel === '') {
      ctx.addIssue({
        code: 'custom',
        path: ['embedModel'],
        params: NO_GOT,
        message: 'is required when embedder is "openai": set the model name, e.g. text-embedding-3-small',
      });
    }
  });

export const ingestConfigSchema: z.ZodType<IngestConfig> = z
  .object({
    collection: stringField(),
    operation: enumField(['upsert', 'delete'] as const, 'upsert'),
    batchSize: numberField({ integer: true, min: 1, max: 10000 }, 100),
    createCollection: booleanField(true),
    buildIndex: booleanField(true),
    // Flows saved before chunking existed have none of these: they write documents whole, as before.
    chunking: enumField(['off', 'text', 'markdown'] as const, 'off'),
    chunkSize: numberField({ integer: true, min: 1, max: MAX_CHUNK_SIZE }, 1000),
    chunkOverlap: numberField({ integer: true, min: 0, max: MAX_CHUNK_SIZE - 1 }, 200),
    chunkUnit: enumField(['characters', 'tokens'] as const, 'characters'),
    // 0 (off) for flows saved before it: each message is written alone, as before.
    gatherMs: numberField({ integer: true, min: 0, max: 60000 }, 0),
    background: enumField(['auto', 'always', 'never'] as const, 'auto'),
  })
  .superRefine((config, ctx) => {
    // Checked only when chunking is on: sizes left in a dialog with chunking off change nothing.
    // (zod runs this even when chunkSize itself failed: that is already said.)
    if (config.chunking !== 'off' && config.chunkSize >= 1 && config.chunkOverlap >= config.chunkSize) {
      ctx.addIssue({
        code: 'custom',
        path: ['chunkOverlap'],
        message: withHint(`must be less than ${fieldReference('chunkSize')} (${config.chunkSize})`, `lower it, or raise ${fieldReference('chunkSize')}`),
      });
    }
  });

/** The default upper bound of the poll interval, in seconds. */
const DEFAULT_MAX_POLL_INTERVAL = 60;

/** The WatchConfig fields, shared by the sensor, health and query nodes. */
const watchFields = {
  origin: enumField(['package', 'other'] as const, 'package'),
  preset: enumField(['', 'langchain', 'llamaindex'] as const, ''),
  tableSchema: stringField(),
  vectorColumn: stringField(),
  indexName: stringField(),
  databasePath: stringField(),
};

export const sensorConfigSchema: z.ZodType<SensorConfig> = z
  .object({
    collection: stringField(),
    ...watchFields,
    expectedCount: numberField({ integer: true, min: 0 }, 0),
    pollInterval: numberField({ above: 0 }, 5),
    maxPollInterval: optionalNumberField({ above: 0 }),
    timeout: numberField({ above: 0, max: 31_536_000 }, 3600),
    deferrable: booleanField(true),
    maxErrors: numberField({ integer: true, min: 0, max: 1_000_000 }, 0),
  })
  .superRefine((config, ctx) => {
    if (config.maxPollInterval !== undefined && config.maxPollInterval < config.pollInterval) {
      ctx.addIssue({
        code: 'custom',
        path: ['maxPollInterval'],
        message: `must be at least ${fieldReference('pollInterval')} (${config.pollInterval} s)`,
      });
    }
  })
  // An unset maxPollInterval must not contradict a long pollInterval.
  .transform((config) => ({
    ...config,
    maxPollInterval: config.maxPollInterval ?? Math.max(DEFAULT_MAX_POLL_INTERVAL, config.pollInterval),
  }));

export const healthConfigSchema: z.ZodType<HealthConfig> = z.object({
  collection: stringField(),
  ...watchFields,
  expectedCount: numberField({ integer: true, min: 0 }, 0),
  countMode: enumField(['atLeast', 'exact'] as const, 'atLeast'),
  dimensions: numberField({ integer: true, min: 0 }, 0),
});

export const queryConfigSchema: z.ZodType<QueryConfig> = z.object({
  collection: stringField(),
  ...watchFields,
  // The query text is kept as typed; only a missing one becomes ''.
  query: z.preprocess((v) => (v === undefined || v === null ? '' : readableValue(v)), z.string({ error: 'must be a string' })),
  topK: numberField({ integer: true, min: 1, max: 1000 }, 3),
  failOnEmpty: booleanField(true),
});

const WATCH_LABELS = {
  collection: 'Collection',
  origin: 'Made by',
  preset: 'Layout',
  tableSchema: 'Schema',
  vectorColumn: 'Vector column',
  indexName: 'Index',
  databasePath: 'Database path',
};

/**
 * The dialog label of each node property (as the editor's en-US catalog shows
 * it), by node type: the nodes pass them to the parsers below so that config
 * errors say "Batch size", not "batchSize".
 */
export const CONFIG_FIELD_LABELS: Readonly<Record<string, FieldLabels>> = {
  'vector-store': {
    backend: 'Backend',
    embedder: 'Embedder',
    dimensions: 'Dimensions',
    embedUrl: 'Base URL',
    embedModel: 'Model',
    embedBatchSize: 'Texts per request',
    embedConcurrency: 'Requests at once',
    indexingRate: 'Indexing rate',
    indexingDelay: 'Delay',
    persist: 'Keep collections on disk',
    memoryIndex: 'Search',
    url: 'URL',
    path: 'Directory',
    tenant: 'Tenant',
    database: 'Database',
    ssl: 'Use SSL/TLS',
  },
  'vector-ingest': {
    collection: 'Collection',
    operation: 'Operation',
    batchSize: 'Batch size',
    createCollection: 'Create the collection',
    buildIndex: 'Build the vector index',
    gatherMs: 'Gather for',
    background: 'Run in the background',
    chunking: 'Chunking',
    chunkSize: 'Chunk size',
    chunkOverlap: 'Overlap',
    chunkUnit: 'Unit',
  },
  'deferrable-sensor': {
    ...WATCH_LABELS,
    expectedCount: 'Expected',
    pollInterval: 'Poll every',
    maxPollInterval: 'Back off to',
    timeout: 'Timeout',
    deferrable: 'Deferrable',
    maxErrors: 'Give up after',
  },
  'index-health': {
    ...WATCH_LABELS,
    expectedCount: 'Expected',
    countMode: 'Count',
    dimensions: 'Dimensions',
  },
  'sample-query': {
    ...WATCH_LABELS,
    query: 'Query',
    topK: 'Results',
    failOnEmpty: 'Fail when a query finds nothing',
  },
};

/**
 * Each node's `def` (its saved properties) to a typed config; names the field on
 * error, by its dialog label when `labels` are given (see CONFIG_FIELD_LABELS).
 */
export const parseStoreConfig = (def: unknown, labels?: FieldLabels): StoreConfig => parseOrThrow(storeConfigSchema, def, '', labels);
export const parseIngestConfig = (def: unknown, labels?: FieldLabels): IngestConfig => parseOrThrow(ingestConfigSchema, def, '', labels);
export const parseSensorConfig = (def: unknown, labels?: FieldLabels): SensorConfig => parseOrThrow(sensorConfigSchema, def, '', labels);
export const parseHealthConfig = (def: unknown, labels?: FieldLabels): HealthConfig => parseOrThrow(healthConfigSchema, def, '', labels);
export const parseQueryConfig = (def: unknown, labels?: FieldLabels): QueryConfig => parseOrThrow(queryConfigSchema, def, '', labels);

/**
 * The collection a message works on: `msg.collection` when it is set, else the
 * node's `collection` property. Throws when neither names one.
 */
export function resolveCollection(msgCollection: unknown, configured: string): string {
  if (typeof msgCollection === 'object' && msgCollection !== null) {
    throw new VectorStoreError('INVALID_INPUT', `msg.collection must be a collection name (a non-empty string) (got ${describeValue(msgCollection)})`);
  }
  if (!isBlank(msgCollection)) return parseOrThrow(collectionSchema, msgCollection, 'msg.collection');
  if (configured.trim() !== '') return configured.trim();
  throw new VectorStoreError(
    'INVALID_INPUT',
    'no collection given: set the node\'s collection property or send msg.collection',
  );
}

// ---------------------------------------------------------------------------
// Message inputs

/** null means "not given" for optional fields of message objects (JSON often has nulls). */
function optional<T extends z.ZodType>(schema: T) {
  return z.preprocess((v) => (v === null ? undefined : readableValue(v)), schema.optional());
}

const idSchema = z.preprocess(
  (v) => (typeof v === 'number' && Number.isSafeInteger(v) ? String(v) : v),
  z
    .string({ error: 'must be a non-empty string or an integer' })
    .min(1, { error: 'must be a non-empty string or an integer' }),
);

const nonEmptyText = z
  .string({ error: 'must be a string' })
  .refine((s) => s.trim() !== '', { error: 'must not be empty' });

/**
 * A vector: a non-empty array (or typed array) of finite numbers. Checked with
 * a plain loop, not one zod schema per element: payloads can hold millions.
 */
const vectorSchema = z.unknown().transform((value, ctx): number[] => {
  const vector = ArrayBuffer.isView(value) && !(value instanceof DataView) ? Array.from(value as Float32Array) : value;
  if (!Array.isArray(vector)) {
    ctx.addIssue({ code: 'custom', message: 'must be an array of numbers' });
    return z.NEVER;
  }
  if (vector.length === 0) {
    ctx.addIssue({ code: 'custom', message: 'must not be an empty array', params: NO_GOT });
    return z.NEVER;
  }
  for (let i = 0; i < vector.length; i++) {
    const x: unknown = vector[i];
    if (typeof x !== 'number' || !Number.isFinite(x)) {
      ctx.addIssue({ code: 'custom', path: [i], message: 'must be a finite number' });
      return z.NEVER;
    }
  }
  return vector as number[];
});

const plainObjectSchema = z.custom<Record<string, unknown>>(isPlainObject, { error: 'must be an object' });

const INGEST_ITEM_SHAPE = '{id?, text?, vector?, metadata?}';

const ingestItemSchema: z.ZodType<IngestItem> = z.preprocess(
  (v) => (typeof v === 'string' && v.trim() !== '' ? { text: v } : v),
  z
    .strictObject(
      {
        id: optional(idSchema),
        text: optional(nonEmptyText),
        vector: optional(vectorSchema),
        metadata: optional(plainObjectSchema),
      },
      {
        error: (issue) => {
          if (issue.code === 'unrecognized_keys') {
            const keys = issue.keys.map((k) => JSON.stringify(k)).join(', ');
            return withHint(
              `has unknown field${issue.keys.length === 1 ? '' : 's'} ${keys}`,
              'a document has only id, text, vector and metadata (put other fields inside metadata)',
            );
          }
          if (typeof issue.input === 'string') return 'must not be an empty string';
          return `must be a text or an object ${INGEST_ITEM_SHAPE}`;
        },
      },
    )
    .superRefine((item, ctx) => {
      if (item.text === undefined && item.vector === undefined) {
        ctx.addIssue({ code: 'custom', params: NO_GOT, message: 'needs a text or a vector' });
      }
    })
    .transform((item) => {
      // Drop absent keys so results compare and serialise cleanly.
      const out: IngestItem = {};
      if (item.id !== undefined) out.id = item.id;
      if (item.text !== undefined) out.text = item.text;
      if (item.vector !== undefined) out.vector = item.vector;
      if (item.metadata !== undefined) out.metadata = item.metadata;
      return out;
    }),
);

const INGEST_PAYLOAD_SHAPE = `a text, or an array of texts or ${INGEST_ITEM_SHAPE} objects`;

/**
 * Validates an ingest `msg.payload`: a string, a non-empty array of strings or
 * {id?, text?, vector?, metadata?} objects, or one such object. Each object
 * needs a non-empty `text` or a non-empty `vector` of finite numbers; integer
 * ids become strings ("7"); `metadata` is a plain object; `null` fields count as
 * absent; unknown fields are rejected (extra data belongs in `metadata`).
 * Duplicate ids are not rejected: as writes are upserts, the last one wins.
 */
export function parseIngestPayload(payload: unknown): IngestItem[] {
  return readable('msg.payload', () => parseIngestPayloadUnguarded(payload));
}

function parseIngestPayloadUnguarded(payload: unknown): IngestItem[] {
  const invalid = (message: string) => new VectorStoreError('INVALID_INPUT', message);
  if (payload === undefined || payload === null) {
    throw invalid(`msg.payload is missing: send ${INGEST_PAYLOAD_SHAPE}`);
  }
  if (typeof payload === 'string') {
    if (payload.trim() === '') throw invalid('msg.payload must not be an empty string: send the text to ingest');
    return [{ text: payload }];
  }
  if (Array.isArray(payload)) {
    if (payload.length === 0) throw invalid('msg.payload must not be an empty array: send at least one document');
    // The common case, plain texts, without zod's per-item cost; anything else
    // (or a bad text) goes through the schema, which explains what is wrong.
    if (payload.every((item) => typeof item === 'string' && item.trim() !== '')) {
      return (payload as string[]).map((text) => ({ text }));
    }
    return parseOrThrow(z.array(ingestItemSchema), payload, 'msg.payload');
  }
  if (isPlainObject(payload)) return [parseOrThrow(ingestItemSchema, payload, 'msg.payload')];
  throw invalid(`msg.payload must be ${INGEST_PAYLOAD_SHAPE} (got ${describeValue(payload)})`);
}

const FAIL_REASON = withHint('must be a non-empty string', 'the reason indexing should fail');

const simulateSchema: z.ZodType<SimulateOption> = z.strictObject(
  {
    fail: z
      .string({ error: FAIL_REASON })
      .refine((s) => s.trim() !== '', { error: FAIL_REASON }),
  },
  {
    error: (issue) =>
      issue.code === 'unrecognized_keys'
        ? 'must be {fail: "reason"} and nothing else'
        : 'must be an object {fail: "reason"} (memory backend only)',
  },
);

/** `msg.simulate`: absent, or `{fail: "reason"}` (memory backend only). */
export function parseSimulate(value: unknown): SimulateOption | undefined {
  if (value === undefined) return undefined;
  if (!readable('msg.simulate', () => isPlainObject(value))) {
    throw new VectorStoreError('INVALID_INPUT', `msg.simulate must be an object {fail: "reason"} (memory backend only) (got ${describeValue(value)})`);
  }
  return parseOrThrow(simulateSchema, value, 'msg.simulate');
}

const QUERY_SHAPE = 'a query text, an array of them, or an object {text | vector, topK?, filter?}';

const topKSchema = z.preprocess((v) => toNumberOrBlank(readableValue(v)), numberSchema({ integer: true, min: 1, max: 1000 }).optional());

const queryObjectSchema = z
  .strictObject(
    {
      text: optional(nonEmptyText),
      vector: optional(vectorSchema),
      topK: topKSchema,
      filter: optional(plainObjectSchema),
    },
    {
      error: (issue) => {
        if (issue.code === 'unrecognized_keys') {
          const keys = issue.keys.map((k) => JSON.stringify(k)).join(', ');
          return withHint(
            `has unknown field${issue.keys.length === 1 ? '' : 's'} ${keys}`,
            'a query has only text, vector, topK and filter',
          );
        }
        if (typeof issue.input === 'string') return 'must not be an empty string';
        if (typeof issue.input === 'number') {
          return withHint('must be a query text or an object {text | vector, topK?, filter?}', 'to query by vector, send {vector: [...]}');
        }
        return 'must be a query text or an object {text | vector, topK?, filter?}';
      },
    },
  )
  .superRefine((query, ctx) => {
    if (query.text === undefined && query.vector === undefined) {
      ctx.addIssue({ code: 'custom', params: NO_GOT, message: 'needs a text or a vector' });
    } else if (query.text !== undefined && query.vector !== undefined) {
      ctx.addIssue({ code: 'custom', params: NO_GOT, message: 'must have a text or a vector, not both' });
    }
  });

const queryItemSchema = z.preprocess(
  (v) => (typeof v === 'string' && v.trim() !== '' ? { text: v } : v),
  queryObjectSchema,
);

/** Is this payload meant as a query, rather than the output of an upstream node? */
function looksLikeQuery(payload: unknown): boolean {
  if (typeof payload === 'string') return payload.trim() !== '';
  if (Array.isArray(payload)) return true;
  return isPlainObject(payload) && ('text' in payload || 'vector' in payload);
}

/**
 * Validates a sample-query `msg.payload`: a string, a non-empty array of
 * strings (or query objects), or `{text | vector, topK?, filter?}`.
 *
 * When the payload is not a query (missing, empty, a number such as an inject
 * timestamp, or an object with neither text nor vector, such as the output of
 * index-health), the node's `query` property is used; with no such property,
 * that is an error.
 */
export function parseQueryInput(payload: unknown, defaultQuery: string, defaultTopK: number): QueryInput {
  return readable('msg.payload', () => parseQueryInputUnguarded(payload, defaultQuery, defaultTopK));
}

function parseQueryInputUnguarded(payload: unknown, defaultQuery: string, defaultTopK: number): QueryInput {
  if (!looksLikeQuery(payload)) {
    if (defaultQuery.trim() !== '') return { queries: [{ text: defaultQuery, topK: defaultTopK }], batch: false };
    const got = isBlank(payload)
      ? ''
      : isPlainObject(payload)
        ? ' (got an object without text or vector)'
        : ` (got ${describeValue(payload)})`;
    throw new VectorStoreError(
      'INVALID_INPUT',
      `msg.payload must be ${QUERY_SHAPE}${got}; or set the node's query property`,
    );
  }
  // Plain texts, the common case, skip zod's per-message cost.
  if (typeof payload === 'string' && payload.trim() !== '') {
    return { queries: [{ text: payload, topK: defaultTopK }], batch: false };
  }
  const toSpec = (q: z.output<typeof queryObjectSchema>): QuerySpec => {
    const spec: QuerySpec = { topK: q.topK ?? defaultTopK };
    if (q.text !== undefined) spec.text = q.text;
    if (q.vector !== undefined) spec.vector = q.vector;
    if (q.filter !== undefined) spec.filter = q.filter;
    return spec;
  };
  if (Array.isArray(payload)) {
    if (payload.length === 0) {
      throw new VectorStoreError('INVALID_INPUT', 'msg.payload must not be an empty array: send at least one query');
    }
    return { queries: parseOrThrow(z.array(queryItemSchema), payload, 'msg.payload').map(toSpec), batch: true };
  }
  return { queries: [toSpec(parseOrThrow(queryItemSchema, payload, 'msg.payload'))], batch: false };
}

// ---------------------------------------------------------------------------
// What a delete removes

/** The documents a delete names: by id, and by source document (the document and its chunks `<source>#<n>`). */
export interface DeletePayload {
  ids: string[];
  sources: string[];
}

/** Most ids and sources one delete message may name. */
export const MAX_DELETE_ITEMS = 100_000;

/**
 * `msg.payload` of a delete: an id, an array of ids, or `{ids?, source?, sources?}`.
 * Names the bad field; an empty selection is an error (a delete that removes
 * nothing by mistake must not look like a success).
 */
export function parseDeletePayload(payload: unknown): DeletePayload {
  const ids: string[] = [];
  const sources: string[] = [];
  const take = (list: string[], value: unknown, field: string) => {
    if (typeof value !== 'string' || value.length === 0) {
      throw new VectorStoreError('INVALID_INPUT', `${field} must be a document id, a non-empty string (got ${describeValue(value)}).`);
    }
    list.push(value);
  };
  const takeAll = (list: string[], value: unknown, field: string) => {
    if (!Array.isArray(value)) {
      throw new VectorStoreError('INVALID_INPUT', `${field} must be an array of document ids (got ${describeValue(value)}).`);
    }
    value.forEach((v, i) => take(list, v, `${field}[${i}]`));
  };
  if (typeof payload === 'string') take(ids, payload, 'msg.payload');
  else if (Array.isArray(payload)) takeAll(ids, payload, 'msg.payload');
  else if (isPlainObject(payload)) {
    const unknownKeys = Object.keys(payload).filter((k) => !['ids', 'source', 'sources'].includes(k));
    if (unknownKeys.length > 0) {
      throw new VectorStoreError(
        'INVALID_INPUT',
        `msg.payload of a delete has ${unknownKeys.length === 1 ? 'a field' : 'fields'} it does not know: ${unknownKeys.map((k) => JSON.stringify(k)).join(', ')}. Use ids, source or sources.`,
      );
    }
    if (payload.ids !== undefined) takeAll(ids, payload.ids, 'msg.payload.ids');
    if (payload.source !== undefined) take(sources, payload.source, 'msg.payload.source');
    if (payload.sources !== undefined) takeAll(sources, payload.sources, 'msg.payload.sources');
  } else {
    throw new VectorStoreError(
      'INVALID_INPUT',
      `msg.payload of a delete must be a document id, an array of ids, or {ids, source, sources} (got ${describeValue(payload)}).`,
    );
  }
  if (ids.length + sources.length === 0) {
    throw new VectorStoreError('INVALID_INPUT', 'msg.payload of a delete names no document: give ids, a source or sources.');
  }
  if (ids.length + sources.length > MAX_DELETE_ITEMS) {
    throw new VectorStoreError(
      'INVALID_INPUT',
      `msg.payload of a delete names ${ids.length + sources.length} documents; at most ${MAX_DELETE_ITEMS} per message: send them in several messages.`,
    );
  }
  return { ids: [...new Set(ids)], sources: [...new Set(sources)] };
}
