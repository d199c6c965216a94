/**
 * Checks documents and queries before anything reaches Postgres, so that a bad
 * call writes nothing and says which document and field is wrong, and turns
 * them into the text forms the SQL takes (vector literals, JSON).
 */
import { VectorStoreError } from '../../errors';
import { type VectorRules, checkDocuments, checkVector, jsonText, lastOfEachId } from '../documents';
import { checkFilter } from '../queries';
import { namedCollection } from '../values';
import { vectorLiteral } from './sql';

/** One validated document, as the upsert statement's parameters take it. */
export interface PreparedDocument {
  id: string;
  vector: string;
  text: string | null;
  /** JSON text, or null for no metadata. */
  metadata: string | null;
}

/** Largest magnitude a half-precision float holds (the index type above 2000 dimensions). */
const HALFVEC_MAX = 65504;

/** Vectors are written as text from the values given, so a Float64Array will do. */
function vectorRules(dimensions: number): VectorRules {
  return {
    dimensions,
    float64: true,
    limit: dimensions > 2000 ? { magnitude: HALFVEC_MAX, why: 'the index stores half precision above 2000 dimensions' } : undefined,
  };
}

/**
 * The vector as pgvector text, after checking its size and values: finite, and
 * representable as a 32-bit float (half precision when indexed as halfvec).
 */
export function toVectorLiteral(value: unknown, dimensions: number, what: string, collection: string): string {
  return vectorLiteral(checkVector(value, vectorRules(dimensions), what, namedCollection(collection)));
}

/** Postgres text cannot hold NUL characters. */
function checkNoNul(text: string, what: string): void {
  if (text.includes('\u0000')) {
    throw new VectorStoreError('INVALID_INPUT', `${what} contains a NUL character (\\u0000), which Postgres cannot store: remove it.`);
  }
}

/** jsonb cannot hold NUL characters either. */
function checkJsonNoNul(json: string, what: string): void {
  // JSON writes NUL as \u0000 (after an even number of backslashes).
  if (/(^|[^\\])(\\\\)*\\u0000/.test(json)) {
    throw new VectorStoreError('INVALID_INPUT', `${what} contains a NUL character (\\u0000), which Postgres cannot store: remove it.`);
  }
}

/** JSON text of a value, checked to be storable as jsonb. */
export function toJsonText(value: unknown, what: string): string {
  const json = jsonText(value, what);
  checkJsonNoNul(json, what);
  return json;
}

/**
 * Validate every document (all before any is written) and keep the last version
 * of each id: one INSERT ... ON CONFLICT may not touch a row twice.
 */
export function prepareDocuments(docs: unknown, dimensions: number, collection: string): PreparedDocument[] {
  const named = namedCollection(collection);
  const rules = vectorRules(dimensions);
  const checked = checkDocuments(docs, named, {
    vector: (value, what) => vectorLiteral(checkVector(value, rules, what, named)),
    checkString: checkNoNul,
    checkJson: checkJsonNoNul,
  });
  return lastOfEachId(checked.map(({ id, vector, text, metadataJson }) => ({ id, vector, text, metadata: metadataJson })));
}

/** The filter as (key, JSON value) pairs: each key must equal its value exactly. */
export function prepareFilter(filter: unknown, collection: string): Array<[string, string]> {
  const checked = checkFilter(filter, namedCollection(collection));
  const pairs: Array<[string, string]> = [];
  for (const [key, value] of Object.entries(checked ?? {})) {
    if (value === undefined) continue; // as JSON would drop it
    checkNoNul(key, `The query filter field ${JSON.stringify(key)}`);
    pairs.push([key, toJsonText(value, `The query filter field ${JSON.stringify(key)}`)]);
  }
  return pairs;
}
