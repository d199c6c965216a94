/**
 * What a store file of this folder says: how that store produces each failure
 * situation of the shared statement in ../situations.test.ts. A store that cannot
 * have a situation leaves it out (and its file header says why); the shared test
 * then defines no test for it.
 *
 * Every writer (the package, another client, another process) gives row i the id
 * "doc-<i>", the vector rowVector(i) and the text "text doc <i>": the same formula
 * is in test/support/lancedb-other-process.js.
 */
import type { Backend, CollectionStatus, VectorDocument } from '../../../lib/types';

export const DIM = 8;

export function rowVector(i: number): number[] {
  return Array.from({ length: DIM }, (_, d) => Math.sin(i * 7 + d + 1));
}

/** Rows doc-<from> .. doc-<from + count - 1>. */
export function rowsFrom(from: number, count: number): VectorDocument[] {
  return Array.from({ length: count }, (_, k) => {
    const i = from + k;
    return { id: `doc-${i}`, vector: rowVector(i), text: `text doc ${i}`, metadata: { n: i } };
  });
}

/** A backend set up for one situation, and what the test may do to the store around it. */
export interface Scene {
  backend: Backend;
  /** Undo what the situation left (servers, processes, triggers) and close the backend. */
  close(): Promise<void>;
}

/** The store cancels (or ends with an error) the build an ingest asks for. */
export interface CancelledBuild {
  /** How the store is made to cancel it (named in the test). */
  how: string;
  /** The store's code for the failure, and words of its reason. */
  code: string;
  reason: RegExp;
  /** Make the store cancel every build of `collection` from now on (the collection does not exist yet). */
  arrange(collection: string): Promise<
    Scene & {
      /** Builds of the collection the store has seen started so far. */
      buildsStarted(): Promise<number>;
      /** The store no longer cancels the build. */
      removeCause(): Promise<void>;
    }
  >;
}

/** A build (or the store's indexing work) waits for something another session or process holds. */
export interface BlockedBuild {
  how: string;
  /** Words of the detail naming what the build waits for. */
  waitsFor: RegExp;
  /** The collection exists and is indexed (ready) when `blockWhile` is called. */
  arrange(collection: string): Promise<
    Scene & {
      /**
       * Write more rows and hold what their indexing waits for, calling `poll` meanwhile,
       * until `seen()` is true or the store's way gives up; then let go. Resolves with the
       * rows the collection holds in all.
       */
      blockWhile(poll: () => Promise<CollectionStatus>, seen: () => boolean): Promise<number>;
    }
  >;
}

/** The store has no connection free for the build: another client holds the only one. */
export interface ConnectionLimit {
  how: string;
  /** The bounded wait for a connection the backend was given (ms). */
  waitMs: number;
  /** Words of the detail while waiting, and of the failure after the wait. */
  waiting: RegExp;
  reason: RegExp;
  arrange(collection: string): Promise<
    Scene & {
      /** Ingest `docs` with buildIndex (the collection exists), then let the other client take the connection. */
      ingestAndHold(docs: VectorDocument[]): Promise<void>;
      /** The other client lets go. */
      release(): Promise<void>;
    }
  >;
}

/** Another client or process writes into the collection. */
export interface SecondWriter {
  how: string;
  /** true: the store indexes a write as part of it (the next status is ready); false: rows wait for indexing. */
  indexesOnWrite: boolean;
  arrange(): Promise<
    Scene & {
      /** Write rows doc-<from>.. as the other writer, into a collection the backend made. */
      write(collection: string, from: number, count: number): Promise<void>;
    }
  >;
}

export interface StoreSituations {
  /** Backend name, as in `Backend.name`. */
  store: string;
  /** What the tests run on, for their names ("PGlite with pgvector", ...). */
  runsOn: string;
  /** Seconds indexing a few thousand rows may take, at most. */
  budgetSeconds: number;
  start(): Promise<void>;
  stop(): Promise<void>;
  cancelledBuild?: CancelledBuild;
  blockedBuild?: BlockedBuild;
  connectionLimit?: ConnectionLimit;
  secondWriter?: SecondWriter;
}
