/**
 * What every backend does about being closed: once `close()` was called, every
 * call fails with UNAVAILABLE (the config node stopped or was redeployed, and the
 * caller should use the new instance), and `close()` first lets the calls it
 * tracks finish (so writes in progress become durable).
 */
import { parseExistingCollection } from '../collection-ref';
import { VectorStoreError } from '../errors';
import type { CollectionRef } from '../types';
import { validateCollectionName } from './collection-name';
import { isPlainObject } from './values';

export class BackendLifecycle {
  private closing: Promise<void> | null = null;
  /** Calls in progress that close() waits for. */
  private readonly inFlight = new Set<Promise<unknown>>();

  /**
   * @param backend the backend's name ("lancedb"), for collection name messages
   * @param title how messages call it ("LanceDB")
   */
  constructor(
    private readonly backend: string,
    private readonly title: string = backend,
  ) {}

  /** Throw UNAVAILABLE if the backend was closed. */
  checkOpen(): void {
    if (this.closing) {
      throw new VectorStoreError(
        'UNAVAILABLE',
        `The ${this.title} backend was closed (its vector-store configuration node stopped or was redeployed). Retry with the new one.`,
      );
    }
  }

  /** Check the backend is open and the collection name valid; returns the name. */
  openCollection(collection: unknown): string {
    this.checkOpen();
    return validateCollectionName(collection, this.backend);
  }

  /**
   * Check the backend is open and what names the collection: a string must follow
   * the package's rule (as `openCollection`); an object is a collection made by
   * another tool, checked for its shape only (the backend holds its name to the
   * store's own rule and refuses the fields it does not use).
   */
  openRef(ref: unknown): CollectionRef {
    this.checkOpen();
    if (!isPlainObject(ref)) return validateCollectionName(ref, this.backend);
    return parseExistingCollection(ref, 'collection');
  }

  /** Run the call, and have close() wait until it settles. */
  track<T>(call: () => Promise<T>): Promise<T> {
    const promise = call();
    this.inFlight.add(promise);
    const forget = () => this.inFlight.delete(promise);
    promise.then(forget, forget);
    return promise;
  }

  /**
   * Refuse new calls at once; once the tracked calls settled, run `release` (the
   * backend's own clean-up). Idempotent: later calls return the same promise.
   */
  close(release: () => Promise<void>): Promise<void> {
    if (!this.closing) {
      this.closing = Promise.allSettled([...this.inFlight]).then(release);
    }
    return this.closing;
  }
}
