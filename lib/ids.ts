/**
 * Identifiers: stable document ids (so re-ingesting the same text is an upsert,
 * not a duplicate) and random ids for sensor waits.
 */
import { createHash, randomUUID } from 'node:crypto';

/**
 * The id of a document that came without one: "doc-" and the first 32 hex
 * characters (128 bits) of the SHA-256 of its exact text. The text is not
 * trimmed or normalised: "a" and "a " are different documents.
 */
export function stableId(text: string): string {
  return 'doc-' + createHash('sha256').update(text, 'utf8').digest('hex').slice(0, 32);
}

/** A random, URL-safe id for one sensor wait. */
export function newWaitId(): string {
  return randomUUID();
}
