/**
 * The checks of `ensureCollection` every backend makes: a sane spec before
 * anything is created, and a collection that already exists must have been
 * created with the same dimensions and metric.
 */
import { VectorStoreError } from '../errors';
import type { CollectionSpec, Metric } from '../types';
import { capitalised, describeValue } from './values';

export const METRICS: readonly Metric[] = ['cosine', 'l2', 'dot'];
/** Most dimensions a collection may have, unless the store allows fewer. */
export const MAX_DIMENSIONS = 65536;

/**
 * Check the spec asked for; returns its dimensions and metric (cosine when not
 * given). `collection` names the collection in messages (see `namedCollection`);
 * `limit` lowers MAX_DIMENSIONS, with why it is lower.
 */
export function checkCollectionSpec(
  spec: CollectionSpec,
  collection: string,
  limit: { maxDimensions: number; why: string } = { maxDimensions: MAX_DIMENSIONS, why: '' },
): { dimensions: number; metric: Metric } {
  const dimensions = spec?.dimensions;
  const max = limit.maxDimensions;
  if (typeof dimensions !== 'number' || !Number.isInteger(dimensions) || dimensions < 1 || dimensions > max) {
    throw new VectorStoreError(
      'INVALID_INPUT',
      `Cannot create ${collection}: dimensions must be a whole number from 1 to ${max}${limit.why ? ` (${limit.why})` : ''}, ` +
        `but got ${describeValue(dimensions)}.`,
    );
  }
  if (spec.metric !== undefined && !METRICS.includes(spec.metric)) {
    throw new VectorStoreError(
      'INVALID_INPUT',
      `Cannot create ${collection}: metric must be one of ${METRICS.join(', ')}, but got ${describeValue(spec.metric)}.`,
    );
  }
  return { dimensions, metric: spec.metric ?? 'cosine' };
}

/**
 * The collection found (or just created) must match the spec asked for.
 * `found.dimensions` null: the store does not know them yet (an empty Chroma
 * collection created elsewhere), so any will do.
 */
export function checkSameSpec(found: { dimensions: number | null; metric: Metric }, spec: CollectionSpec, collection: string): void {
  if (found.dimensions !== null && found.dimensions !== spec.dimensions) {
    throw new VectorStoreError(
      'DIMENSION_MISMATCH',
      `${capitalised(collection)} holds vectors of ${found.dimensions} dimensions, but ${spec.dimensions} were given. ` +
        'Use the same embedder and dimensions as when the collection was created, or use another collection name.',
    );
  }
  if (spec.metric !== undefined && found.metric !== spec.metric) {
    throw new VectorStoreError(
      'INVALID_INPUT',
      `${capitalised(collection)} uses the ${found.metric} metric, not ${spec.metric}. Use another collection name for ${spec.metric}.`,
    );
  }
}
