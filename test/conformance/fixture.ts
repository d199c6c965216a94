/**
 * What the conformance suite needs from each backend: a way to make one (the
 * real store, started by the fixture), and the few store-specific things no
 * interface can hide (how to make it unreachable, or reject credentials).
 */
import type { Backend, ExistingCollection } from '../../lib/types';

export interface BackendFixture {
  /** Backend name, as in `Backend.name`. */
  name: string;
  /** How this fixture sets the backend up, when another fixture runs the same backend otherwise. */
  variant?: string;
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
  /**
   * Make a collection the way another tool would (the store's own client or SQL,
   * not this package) under a name the package's own rule refuses where the store
   * allows one (dots, capitals, a schema), holding `vectors` (ids "a0", "a1", ...,
   * texts "text 0", ...), and return how to name it. `name` is a fresh prefix.
   * Absent: the store holds only what the package made (memory).
   */
  createForeign?(name: string, vectors: number[][]): Promise<ExistingCollection>;
  /**
   * The other tool builds its own vector index on a collection `createForeign`
   * made, with the l2 metric, and waits for the build to end (pgvector: CREATE INDEX
   * CONCURRENTLY ... USING hnsw; LanceDB: createIndex). Returns the index type and
   * metric `stats` must then report. Absent: the store indexes as it writes (Chroma).
   */
  buildForeignIndex?(ref: ExistingCollection): Promise<{ indexType: string; metric: string }>;
}
