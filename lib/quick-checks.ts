/**
 * The sensor's quick check on arrival (does the collection exist, is it already
 * ready?), each of its two store calls shared per store and collection the way the
 * triggerer shares its polls.
 *
 * A message may only take the answer of a call started after it arrived: an
 * older answer may predate the write the message is about (an ingest's output
 * arrives once its write is acknowledged). So while one call is in flight, the
 * messages that arrive meanwhile join the next one, started once the first settles.
 * And calls for one collection start at most once per GAP_MS: the messages of a burst
 * wait up to that long for the next call (a message on a quiet collection is checked
 * at once). A burst of 10,000 messages on one collection over ten seconds costs about
 * ten calls of each kind, not 10,000; the triggerer then polls the collection once for
 * all of them. Order is by a sequence number, not the clock (two events in one
 * millisecond keep their order).
 *
 * One exception, for messages that arrive one after another (an ingest's outputs): "the
 * collection exists" is reused for REUSE_MS even by later messages (were it deleted since,
 * the wait's first poll says so). A status is never reused across a message's arrival: even
 * "still indexing" would defer a message whose collection became ready meanwhile, which the
 * quick check promises to answer at once; nor is "missing".
 */
import type { Backend, CollectionRef, CollectionStatus, StatusHint } from './types';
import { collectionKey } from './collection-ref';

interface Check {
  /** Sequence number when the check started (null: not started yet, queued behind the one in flight). */
  startedAt: number | null;
  answer: Promise<unknown>;
  start: () => void;
}

interface KeyState {
  current: Check | null;
  next: Check | null;
}

/** How long "the collection exists" serves later messages. */
export const REUSE_MS = 1000;
/** Shortest time from one call's start to the next for the same store, collection and kind. */
export const GAP_MS = 1000;
/** Reused answers kept at most (one per store, collection and kind; stale ones go first). */
const MAX_REUSABLE = 1000;

export class QuickChecks {
  /** Store calls made. */
  started = 0;
  /** Calls saved: answers another message's call gave. */
  joined = 0;
  private sequence = 0;
  private readonly byKey = new Map<string, KeyState>();
  /** The last "exists" answer of each key, with when it was given. */
  private readonly reusable = new Map<string, { value: unknown; at: number }>();
  /** When the last call of each key started (ms), while that is within GAP_MS; oldest first. */
  private readonly lastStarts = new Map<string, number>();

  constructor(
    private readonly now: () => number = Date.now,
    private readonly timers: { setTimeout(callback: () => void, ms: number): unknown } = { setTimeout: (callback, ms) => setTimeout(callback, ms) },
  ) {}

  /** The moment a message arrives, as a sequence number: pass it to `exists` and `status`. */
  arrive(): number {
    return ++this.sequence;
  }

  /** Does the collection exist? Shared as described above. */
  exists(backend: Backend, storeKey: string, collection: CollectionRef, arrival: number): Promise<boolean> {
    return this.shared(`exists\u0000${storeKey}\u0000${collectionKey(collection)}`, arrival, () => backend.collectionExists(collection), (found) => found);
  }

  /**
   * The collection's status. `hint.expectedCount` only matters to stores that
   * estimate counts, so calls with and without one are not shared.
   */
  status(backend: Backend, storeKey: string, collection: CollectionRef, arrival: number, hint?: StatusHint): Promise<CollectionStatus> {
    const key = `status\u0000${storeKey}\u0000${collectionKey(collection)}\u0000${hint?.expectedCount ? 'counted' : 'plain'}`;
    return this.shared(key, arrival, () => backend.status(collection, hint), () => false);
  }

  /** The answer of a call for `key` started after `arrival`: joined, or queued behind the one in flight. */
  private shared<T>(key: string, arrival: number, call: () => Promise<T>, reusable: (answer: T) => boolean): Promise<T> {
    const recent = this.reusable.get(key);
    if (recent && this.now() - recent.at <= REUSE_MS) {
      this.joined += 1;
      return Promise.resolve(recent.value as T);
    }
    let state = this.byKey.get(key);
    if (!state) this.byKey.set(key, (state = { current: null, next: null }));
    for (const check of [state.current, state.next]) {
      if (check && (check.startedAt === null || check.startedAt > arrival)) {
        this.joined += 1;
        return check.answer as Promise<T>;
      }
    }
    const check = this.newCheck(key, state, () =>
      call().then((answer) => {
        this.remember(key, answer, reusable(answer));
        return answer;
      }),
    );
    if (state.current) {
      // The one in flight may predate this message: queue behind it.
      state.next = check;
    } else {
      state.current = check;
      this.startWithinGap(key, check);
    }
    return check.answer as Promise<T>;
  }

  /** Start now, or once GAP_MS has passed since the key's last call started; messages arriving meanwhile join it. */
  private startWithinGap(key: string, check: Check): void {
    const last = this.lastStarts.get(key);
    const wait = last === undefined ? 0 : last + GAP_MS - this.now();
    if (wait <= 0) check.start();
    else this.timers.setTimeout(() => check.start(), wait);
  }

  private newCheck(key: string, state: KeyState, call: () => Promise<unknown>): Check {
    let resolve!: (answer: Promise<unknown>) => void;
    const answer = new Promise<unknown>((r) => (resolve = r));
    const check: Check = {
      startedAt: null,
      answer,
      start: () => {
        check.startedAt = ++this.sequence;
        this.started += 1;
        this.noteStart(key);
        const settled = call();
        resolve(settled);
        settled.catch(() => undefined).then(() => this.settled(key, state, check));
      },
    };
    return check;
  }

  private remember(key: string, value: unknown, reusable: boolean): void {
    this.reusable.delete(key); // re-inserted last: the map stays in answer order, oldest first
    if (!reusable) return;
    this.reusable.set(key, { value, at: this.now() });
    for (const [old, { at }] of this.reusable) {
      if (this.reusable.size <= MAX_REUSABLE && this.now() - at <= REUSE_MS) break;
      this.reusable.delete(old);
    }
  }

  private noteStart(key: string): void {
    this.lastStarts.delete(key); // re-inserted last: the map stays in start order, oldest first
    const at = this.now();
    this.lastStarts.set(key, at);
    for (const [old, started] of this.lastStarts) {
      if (at - started < GAP_MS) break;
      this.lastStarts.delete(old);
    }
  }

  private settled(key: string, state: KeyState, check: Check): void {
    if (state.current !== check) return;
    state.current = state.next;
    state.next = null;
    if (state.current) this.startWithinGap(key, state.current);
    else this.byKey.delete(key);
  }
}
