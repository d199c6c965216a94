/**
 * What a node or a message names as the collection to watch: a package
 * collection's name (a string), or a collection another tool made (an object, see
 * ExistingCollection in ./types.ts). This module checks the object's shape, which
 * is the same for every store, and gives the two names the rest of the engine
 * uses: a label for messages and a key for sharing status calls. Each backend
 * then checks the fields it knows (./backends/*).
 */
import { VectorStoreError } from './errors';
import { describeValue, isPlainObject } from './schemas';
import type { CollectionRef, ExistingCollection } from './types';

export const PRESETS = ['langchain', 'llamaindex'] as const;
const FIELDS = ['name', 'schema', 'column', 'index', 'path', 'preset'] as const;
/** What users may write: the fields, and `table` for `name` (the pgvector and LanceDB word). */
const INPUT_FIELDS: readonly string[] = [...FIELDS, 'table'];
/** Chroma allows names up to 512 characters, the longest of the stores. */
const MAX_NAME_LENGTH = 512;

export function isExisting(ref: CollectionRef): ref is ExistingCollection {
  return typeof ref !== 'string';
}

/**
 * Check an ExistingCollection given by a user (`where` names it: "msg.collection",
 * "the node's Watch properties"). Returns a copy with only the fields given
 * (empty strings count as not given), or throws INVALID_INPUT naming the field:
 * `${where}.${field}`, or as `fieldNames` calls it (a node's property names).
 */
export function parseExistingCollection(
  value: unknown,
  where: string,
  fieldNames: Partial<Record<keyof ExistingCollection | 'table', string>> = {},
): ExistingCollection {
  const fieldName = (field: keyof ExistingCollection | 'table') => fieldNames[field] ?? `${where}.${field}`;
  if (!isPlainObject(value)) {
    throw invalid(`${where} must be an object such as {"name": "my_table"}, but got ${describeValue(value)}.`);
  }
  const unknown = Object.keys(value).filter((k) => !INPUT_FIELDS.includes(k));
  if (unknown.length > 0) {
    throw invalid(
      `${where} has ${unknown.length === 1 ? 'a field' : 'fields'} this package does not know: ${unknown.map((k) => JSON.stringify(k)).join(', ')}. ` +
        `Use ${INPUT_FIELDS.join(', ')}.`,
    );
  }
  const table = text(value.table, fieldName('table'), false);
  const name = text(value.name, fieldName('name'), table === undefined);
  if (table !== undefined && name !== undefined && table !== name) {
    throw invalid(`${where} gives both a name (${JSON.stringify(name)}) and a table (${JSON.stringify(table)}): give one of them.`);
  }
  const result: ExistingCollection = { name: (name ?? table) as string };
  for (const field of ['schema', 'column', 'index', 'path'] as const) {
    const given = text(value[field], fieldName(field), false);
    if (given !== undefined) result[field] = given;
  }
  const preset = value.preset;
  if (preset !== undefined && preset !== null && preset !== '') {
    if (!(PRESETS as readonly unknown[]).includes(preset)) {
      throw invalid(`${fieldName('preset')} must be one of ${PRESETS.map((p) => JSON.stringify(p)).join(', ')}, or left out, but got ${describeValue(preset)}.`);
    }
    result.preset = preset as ExistingCollection['preset'];
  }
  return result;
}

function text(value: unknown, field: string, required: boolean): string | undefined {
  if (value === undefined || value === null || value === '') {
    if (!required) return undefined;
    throw invalid(`${field} is missing: give the name the other tool uses for the table or collection (as "name", or "table").`);
  }
  if (typeof value !== 'string') throw invalid(`${field} must be a string, but got ${describeValue(value)}.`);
  if (value.length > MAX_NAME_LENGTH) throw invalid(`${field} is too long (${value.length} characters; at most ${MAX_NAME_LENGTH}).`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) throw invalid(`${field} contains a control character (a line break, a tab, NUL): remove it.`);
  if (value.trim() !== value) throw invalid(`${field} ${JSON.stringify(value)} starts or ends with a space: remove it.`);
  return value;
}

/**
 * The name messages use: the collection's name, or for a collection of another
 * tool "schema.table", "langchain:name", "llamaindex:name". Also what the
 * sensor's payloads carry in `collection` and what `msg.reset` matches.
 */
export function collectionLabel(ref: CollectionRef): string {
  if (typeof ref === 'string') return ref;
  if (ref.preset) return `${ref.preset}:${ref.name}`;
  return ref.schema ? `${ref.schema}.${ref.name}` : ref.name;
}

/**
 * A key that is the same for the same collection and differs otherwise: the
 * name for a package collection; for another tool's collection, every field
 * (a ":" never occurs in a package collection's name, so the two never meet).
 */
export function collectionKey(ref: CollectionRef): string {
  if (typeof ref === 'string') return ref;
  return `existing:${JSON.stringify(FIELDS.map((f) => ref[f] ?? null))}`;
}

/**
 * For a backend that supports none of the pgvector-only fields: throw naming the
 * first one given. `store` is the store's title ("LanceDB", "Chroma").
 */
export function refuseFields(ref: ExistingCollection, store: string, fields: ReadonlyArray<keyof ExistingCollection>): void {
  const given = fields.find((f) => ref[f] !== undefined);
  if (given) {
    throw invalid(
      `"${given}" ${given === 'path' ? 'only applies to a LanceDB table' : given === 'column' ? 'only applies to pgvector and LanceDB tables' : 'only applies to a pgvector table'}; ` +
        `a ${store} collection made by another tool is named by "name" alone (got ${JSON.stringify(ref)}).`,
    );
  }
}

function invalid(message: string): VectorStoreError {
  return new VectorStoreError('INVALID_INPUT', message);
}
