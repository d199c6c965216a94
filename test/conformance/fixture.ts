/**
 * What the conformance suite needs from each backend: a way to make one (the
 * real store, started by the fixture), and the few store-specific things no
 * interface can hide (how to make it unreachable, or reject credentials).
 */
import type { Backend } from '../../lib/types';

export interface BackendFixture {
  /** Backend name, as in `Backend.name`. */
  name: string;
  /** Start what the store needs (server, directory). Called once per suite. */
  start(): Promise<void>;
  /** Stop it and remove what it wrote. */
  stop(): Promise<void>;
  /**
   * A backend on the running store. Each call may share the store with earlier
   * ones; tests use fresh collection names.
   */
  create(): Backend;
  /** Seconds a full indexing cycle of a few hundred documents may take, at most. */
  indexingBudgetSeconds: number;
  /** A backend pointed at a store that is not there (server backends). */
  unreachable?(): Backend;
  /** A backend whose credentials the store rejects, and how that is arranged (named in the test). */
  badCredentials?: { how: string; create(): Promise<{ backend: Backend; close(): Promise<void> }> };
}
