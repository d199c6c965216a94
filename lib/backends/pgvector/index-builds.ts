/**
 * The index builds one backend instance runs in the background: at most one per
 * collection at a time, never awaited by the write that asked for it.
 *
 * What is kept here, in memory: what each build is doing right now (getting a
 * connection, waiting for another session's build, building) and how the last one
 * failed. The failure is also recorded in the state table by the build itself
 * (./build-runner.ts), which is what a restarted process reads; the copy here
 * covers a server on which even that write could not be made. Nothing here is
 * retried on its own: a failed build is built again only on a new explicit request.
 */
import { messageOf } from '../../errors';
import { BuildFailed, type BuildActivity, type BuildFailure, type BuildRequest } from './build-runner';

export type { BuildRequest } from './build-runner';

interface CollectionBuilds {
  running: Promise<void> | null;
  /** Identifies the build in flight, so a finished one's late reports are ignored. */
  token: object | null;
  activity: BuildActivity | null;
  lastFailure: BuildFailure | null;
}

export class IndexBuilds {
  private readonly byCollection = new Map<string, CollectionBuilds>();
  private stopped = false;

  constructor(
    /** Runs one build to its end; rejects with BuildFailed. `activity` reports what it is doing. */
    private readonly runBuild: (collection: string, request: BuildRequest, activity: (a: BuildActivity | null) => void) => Promise<void>,
  ) {}

  /** Start a build unless one is running. An explicit request forgets an earlier failure. */
  request(collection: string, request: BuildRequest): void {
    if (this.stopped) return;
    const entry = this.entry(collection);
    if (entry.running) return;
    if (request.replaceInvalid) entry.lastFailure = null;
    entry.activity = { kind: 'connecting', since: Date.now(), problem: null };
    const token = {};
    entry.token = token;
    const running = this.runBuild(collection, request, (activity) => {
      if (entry.token === token) entry.activity = activity;
    }).then(
      () => {
        entry.lastFailure = null;
      },
      (err: unknown) => {
        if (this.stopped) return; // a build cut short by close() is nobody's failure
        entry.lastFailure = err instanceof BuildFailed ? err.failure : { code: null, reason: messageOf(err) };
      },
    );
    entry.running = running;
    void running.finally(() => {
      if (entry.running === running) {
        entry.running = null;
        entry.token = null;
        entry.activity = null;
      }
    });
  }

  inFlight(collection: string): boolean {
    return Boolean(this.byCollection.get(collection)?.running);
  }

  /** What this process's build of the collection is doing, or null when none runs. */
  activity(collection: string): BuildActivity | null {
    const entry = this.byCollection.get(collection);
    return entry?.running ? entry.activity : null;
  }

  lastFailure(collection: string): BuildFailure | null {
    return this.byCollection.get(collection)?.lastFailure ?? null;
  }

  /** The index was seen valid: whatever failed before no longer matters. */
  forgetFailure(collection: string): void {
    const entry = this.byCollection.get(collection);
    if (entry) entry.lastFailure = null;
  }

  /** Start no more builds; resolves once the running ones have settled. */
  async stop(): Promise<void> {
    this.stopped = true;
    const running = [...this.byCollection.values()].map((e) => e.running).filter((p): p is Promise<void> => p !== null);
    await Promise.allSettled(running);
  }

  isStopped(): boolean {
    return this.stopped;
  }

  private entry(collection: string): CollectionBuilds {
    let entry = this.byCollection.get(collection);
    if (!entry) {
      entry = { running: null, token: null, activity: null, lastFailure: null };
      this.byCollection.set(collection, entry);
    }
    return entry;
  }
}
