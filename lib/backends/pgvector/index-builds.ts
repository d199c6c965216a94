/**
 * The HNSW index builds one backend instance runs in the background: at most one
 * per collection at a time, never awaited by the write that asked for it.
 *
 * Postgres keeps no reason for a failed build (it only leaves an invalid index,
 * or none), so the reason is kept here, in memory, for `status` to report. A
 * build that could not run for a passing reason (server unreachable) is retried
 * the next time someone asks for the status, which the sensor does anyway.
 */
import { isTransient, messageOf } from '../../errors';

export interface BuildRequest {
  /** Drop an invalid index and build it again (an explicit request); else leave it. */
  replaceInvalid: boolean;
}

interface CollectionBuilds {
  running: Promise<void> | null;
  /** Set after a transient failure: the request to run again. */
  retry: { request: BuildRequest; reason: string } | null;
  lastError: string | null;
}

export class IndexBuilds {
  private readonly byCollection = new Map<string, CollectionBuilds>();
  private stopped = false;

  constructor(
    /** Runs one build to its end; rejects with a VectorStoreError. */
    private readonly runBuild: (collection: string, request: BuildRequest) => Promise<void>,
  ) {}

  /** Start a build unless one is running. An explicit request forgets an earlier failure. */
  request(collection: string, request: BuildRequest): void {
    if (this.stopped) return;
    const entry = this.entry(collection);
    if (request.replaceInvalid) entry.lastError = null;
    entry.retry = null;
    if (entry.running) return;
    const running = this.runBuild(collection, request).then(
      () => {
        entry.lastError = null;
      },
      (err: unknown) => {
        if (this.stopped) return; // a build cut short by close() is nobody's failure
        if (isTransient(err)) entry.retry = { request, reason: messageOf(err) };
        else entry.lastError = messageOf(err);
      },
    );
    entry.running = running;
    void running.finally(() => {
      if (entry.running === running) entry.running = null;
    });
  }

  /** Run again a build that failed for a passing reason, if any. */
  resumeRetry(collection: string): void {
    const retry = this.byCollection.get(collection)?.retry;
    if (retry && !this.byCollection.get(collection)?.running) this.request(collection, retry.request);
  }

  inFlight(collection: string): boolean {
    return Boolean(this.byCollection.get(collection)?.running);
  }

  retryReason(collection: string): string | null {
    return this.byCollection.get(collection)?.retry?.reason ?? null;
  }

  lastError(collection: string): string | null {
    return this.byCollection.get(collection)?.lastError ?? null;
  }

  /** The index was seen valid: whatever failed before no longer matters. */
  forgetFailure(collection: string): void {
    const entry = this.byCollection.get(collection);
    if (entry) {
      entry.lastError = null;
      entry.retry = null;
    }
  }

  /** Start no more builds; resolves once the running ones have settled. */
  async stop(): Promise<void> {
    this.stopped = true;
    const running = [...this.byCollection.values()].map((e) => e.running).filter((p): p is Promise<void> => p !== null);
    await Promise.allSettled(running);
  }

  private entry(collection: string): CollectionBuilds {
    let entry = this.byCollection.get(collection);
    if (!entry) {
      entry = { running: null, retry: null, lastError: null };
      this.byCollection.set(collection, entry);
    }
    return entry;
  }
}
