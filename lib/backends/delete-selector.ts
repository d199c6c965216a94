/**
 * What `Backend.delete` removes, checked once for every store: documents by id,
 * and for each source S the document S and its chunks, whose ids start with
 * `S#` (the chunk id contract: `<docId>#<n>`). Nothing else: a document "S2",
 * or one whose id merely starts with S, is not touched.
 */
import { VectorStoreError } from '../errors';
import type { DeleteSelector } from '../types';
import { describeValue, isPlainObject } from './values';

/** The chunk ids of source S start with this. */
export const CHUNK_SEPARATOR = '#';

export interface CheckedSelector {
  /** Ids to remove exactly: the given ids and every source's own id. */
  ids: string[];
  /** Id prefixes to remove: `S#` for every source S. */
  prefixes: string[];
}

function checkIdList(value: unknown, field: 'ids' | 'sources', collection: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.some((id) => typeof id !== 'string' || id.length === 0)) {
    throw new VectorStoreError(
      'INVALID_INPUT',
      `Deleting from ${collection}: "${field}" must be a list of non-empty strings (document ids), but got ${describeValue(value)}.`,
    );
  }
  return value as string[];
}

/**
 * The selector checked: INVALID_INPUT when it is not `{ ids?, sources? }` of
 * non-empty strings, or names nothing at all (an empty selector never means "everything").
 */
export function checkDeleteSelector(selector: unknown, collection: string): CheckedSelector {
  if (!isPlainObject(selector)) {
    throw new VectorStoreError(
      'INVALID_INPUT',
      `Deleting from ${collection} needs { ids: [...] } and/or { sources: [...] }, but got ${describeValue(selector)}.`,
    );
  }
  const unknown = Object.keys(selector).find((key) => key !== 'ids' && key !== 'sources');
  if (unknown !== undefined) {
    throw new VectorStoreError('INVALID_INPUT', `Deleting from ${collection}: "${unknown}" is not known; give "ids" and/or "sources".`);
  }
  const ids = checkIdList(selector.ids, 'ids', collection);
  const sources = checkIdList(selector.sources, 'sources', collection);
  if (ids.length === 0 && sources.length === 0) {
    throw new VectorStoreError(
      'INVALID_INPUT',
      `Deleting from ${collection} needs at least one document id in "ids" or one source in "sources"; nothing was deleted.`,
    );
  }
  return {
    ids: [...new Set([...ids, ...sources])],
    prefixes: [...new Set(sources.map((source) => source + CHUNK_SEPARATOR))],
  };
}

/** A matcher over many ids: a Set for the exact ids, so that long id lists stay fast. */
export function selectorMatcher(selector: CheckedSelector): (id: string) => boolean {
  const exact = new Set(selector.ids);
  return (id) => exact.has(id) || selector.prefixes.some((prefix) => id.startsWith(prefix));
}

/** A SQL LIKE pattern matching ids that start with `prefix`, its wildcards escaped (escape character `\`). */
export function likePrefixPattern(prefix: string): string {
  return prefix.replace(/[\\%_]/g, (c) => `\\${c}`) + '%';
}
