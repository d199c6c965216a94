/**
 * Collection names shared by every backend. The rule is deliberately narrow so a
 * valid name is also a safe file name (memory backend, LanceDB) and a safe SQL
 * identifier (pgvector) without quoting tricks.
 */
import { VectorStoreError } from '../errors';

export const COLLECTION_NAME_MAX_LENGTH = 63;
export const COLLECTION_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;

const RULE =
  `use 1 to ${COLLECTION_NAME_MAX_LENGTH} characters: letters, digits, "_" or "-", ` +
  'starting with a letter or a digit';

/** Return the name if it is valid, else throw an INVALID_INPUT error naming the value and the rule. */
export function validateCollectionName(name: unknown, backend: string): string {
  if (typeof name !== 'string') {
    const got = name === null ? 'null' : Array.isArray(name) ? 'an array' : typeof name;
    throw new VectorStoreError(
      'INVALID_INPUT',
      `The collection name for the ${backend} store must be a string, but got ${got}: ${RULE} ` +
        '(set "collection" on the node or msg.collection).',
    );
  }
  if (name.length === 0) {
    throw new VectorStoreError(
      'INVALID_INPUT',
      `The collection name for the ${backend} store is empty: ${RULE} (set "collection" on the node or msg.collection).`,
    );
  }
  if (name.length > COLLECTION_NAME_MAX_LENGTH || !COLLECTION_NAME_PATTERN.test(name)) {
    const shown = name.length > 80 ? `${JSON.stringify(name.slice(0, 80))}... (${name.length} characters)` : JSON.stringify(name);
    throw new VectorStoreError(
      'INVALID_INPUT',
      `The collection name ${shown} is not valid for the ${backend} store: ${RULE}.`,
    );
  }
  return name;
}
