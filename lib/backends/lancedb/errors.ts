/**
 * LanceDB's errors (plain Errors from its native part, with Rust source
 * locations in the text) as VectorStoreErrors a person can act on.
 */
import { VectorStoreError, isVectorStoreError, messageOf } from '../../errors';

/** LanceDB's own message without Rust file locations and "Caused by" repetitions, kept short. */
export function lanceReason(err: unknown): string {
  const text = messageOf(err)
    .replace(/,?\s*\/\S+\.rs:\d+:\d+/g, '')
    .split(/\s+Caused by:/)[0]
    .replace(/\s+/g, ' ')
    .trim()
    .replace(/\.+$/, ''); // the caller ends the sentence
  return text.length > 300 ? `${text.slice(0, 300)}...` : text;
}

/**
 * Wrap a failure of LanceDB while doing `action` (e.g. `write 3 document(s) to
 * collection "docs"`) on the store in `dir`.
 */
export function storeError(err: unknown, action: string, dir: string): VectorStoreError {
  if (isVectorStoreError(err)) return err;
  const reason = lanceReason(err);
  if (/permission denied|read-only file system|not a directory|access is denied/i.test(reason)) {
    return new VectorStoreError(
      'INVALID_INPUT',
      `The LanceDB store could not ${action}: ${dir} cannot be used (${reason}). Make it a directory Node-RED ` +
        'may write to, or choose another Path in the vector-store configuration.',
      { cause: err },
    );
  }
  // A full disk, too many open files or a concurrent commit may pass: worth retrying.
  if (/no space left|too many open files|commit conflict|retryable|timed out|io error/i.test(reason)) {
    return new VectorStoreError('UNAVAILABLE', `The LanceDB store in ${dir} could not ${action} (${reason}). Retry later.`, {
      cause: err,
    });
  }
  return new VectorStoreError('INTERNAL', `The LanceDB store in ${dir} could not ${action}: ${reason}.`, { cause: err });
}
