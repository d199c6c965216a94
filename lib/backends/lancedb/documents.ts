/**
 * Documents <-> LanceDB rows, checked before anything is written.
 *
 * A row is {id, vector, text, metadata}: metadata is JSON text (null when the
 * document has none), because a LanceDB table has one fixed schema while
 * metadata differs from document to document. The cost: metadata filters are
 * applied in JavaScript (see `matchesFilter` in ../queries.ts).
 */
import type { Metric, QueryHit } from '../../types';
import { checkDocuments, lastOfEachId, toFloat32Vector } from '../documents';
import { isPlainObject, namedCollection } from '../values';

export const BACKEND_NAME = 'lancedb';

/** A row as written to a table. */
export interface Row {
  id: string;
  vector: Float32Array;
  text: string | null;
  metadata: string | null;
  [column: string]: unknown;
}

/** A row as a vector search returns it (the vector column is not selected). */
export interface FoundRow {
  id: string;
  text: string | null;
  metadata: string | null;
  _distance: number;
}

/** How messages name a collection of this backend. */
export function lanceCollection(name: string): string {
  return namedCollection(name, 'LanceDB');
}

/**
 * Check the documents and turn them into rows. Throws before anything is
 * written; when an id appears twice the last one wins (LanceDB refuses a merge
 * that matches one row twice).
 */
export function toRows(docs: unknown, dimensions: number, collection: string): Row[] {
  const named = lanceCollection(collection);
  const checked = checkDocuments(docs, named, { vector: (value, what) => toFloat32Vector(value, dimensions, what, named) });
  return lastOfEachId(checked.map(({ id, vector, text, metadataJson }) => ({ id, vector, text, metadata: metadataJson })));
}

export function parseMetadata(json: string | null): Record<string, unknown> {
  if (json === null || json === undefined || json === '') return {};
  try {
    const value: unknown = JSON.parse(json);
    return isPlainObject(value) ? value : {};
  } catch {
    return {}; // not written by this package: no metadata we can read
  }
}

/**
 * LanceDB's `_distance` as a "higher is better" score: cosine distance is
 * 1 - cosine similarity, dot distance is 1 - dot product, l2 distance is the
 * squared euclidean distance (scored as minus the distance, like the memory backend).
 */
export function scoreOf(distance: number, metric: Metric): number {
  if (metric === 'l2') return -Math.sqrt(Math.max(0, distance));
  const score = 1 - distance;
  return metric === 'cosine' ? Math.min(1, Math.max(-1, score)) : score;
}

export function toHit(row: FoundRow, metric: Metric): QueryHit {
  return {
    id: row.id,
    score: scoreOf(row._distance, metric),
    text: row.text ?? null,
    metadata: parseMetadata(row.metadata),
  };
}
