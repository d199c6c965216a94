/**
 * The status pool of the triggerer: how many waits share few `backend.status`
 * calls, how a call that never answers still ends each wait at its deadline, and
 * how an outage is logged once per store and collection instead of once per wait.
 * Knows nothing of the waits beyond `PoolWaiter`.
 */
import { isTransient, messageOf } from './errors';
import type { ScheduledTask, Scheduler, Wakeable } from './scheduler';
import { formatDuration, sentence } from './trigger';
import type { Backend, CollectionRef, CollectionStatus } from './types';
import { collectionLabel } from './collection-ref';

/** Polls planned per collection that later ones may join (the latest kept). */
const MAX_PLANNED = 16;

/** What a status call ended with. */
export type Answer = { status: CollectionStatus } | { error: unknown };

/** A wait's run, as the pool sees it. */
export interface PoolWaiter {
  /** Which calls it may share: same store, same collection. */
  readonly poolKey: string;
  /** Epoch ms: the wait ends then, answered or not. */
  readonly deadline: number;
  /** The documents it expects: a hint for the store (see Backend.status). */
  readonly expectedCount: number;
  /** Stopped (detached, cancelled, ended): nothing more for it. */
  readonly stopped: boolean;
  /** The call answered; `sampledAt` is when it was asked for. */
  receive(answer: Answer, sampledAt: number): void;
  /** Its deadline came while the call asked for at `askedAt` had not answered. */
  silent(askedAt: number): void;
}

/**
 * Shares `backend.status` calls among waits on the same store and collection:
 * while a call is in flight, later askers join it; after it answered, its answer
 * is reused by waits that became due at most `reuseMs` (and half their poll
 * interval) after it was asked for. Age is counted from when a wait became due,
 * not from when it is handled: when a crowd of waits is due at once and takes a
 * while to work through, one call per collection still answers them all.
 *
 * It also keeps the deadlines of waits whose call hangs (see PoolEntry) and
 * tells the log once when a store starts failing for a collection and once when
 * it answers again: one outage, two lines, however many waits.
 */
export class StatusPool {
  calls = 0;
  shared = 0;
  private readonly entries = new Map<string, PoolEntry>();
  private readonly outages = new Map<string, Outage>();
  /** The polls planned (epoch ms, ascending) per store and collection (see alignPoll). */
  private readonly planned = new Map<string, number[]>();

  constructor(
    private readonly now: () => number,
    private readonly reuseMs: number,
    private readonly scheduler: Scheduler,
    private readonly log: { warn(message: string): void },
  ) {}

  /**
   * `notBefore`: only a call started at or after this time may answer (the
   * wait's start): an older answer may predate the write the wait is about.
   * `dueAt`: when the wait's poll was due.
   */
  request(run: PoolWaiter, backend: Backend, collection: CollectionRef, maxAgeMs: number, notBefore: number, dueAt: number): void {
    const key = run.poolKey;
    const entry = this.entries.get(key);
    if (entry && entry.requestedAt >= notBefore) {
      if (entry.answer === null) {
        this.shared += 1;
        entry.join(run);
        return;
      }
      if (dueAt - entry.requestedAt <= Math.min(this.reuseMs, maxAgeMs)) {
        this.shared += 1;
        run.receive(entry.answer, entry.requestedAt);
        return;
      }
    }
    this.calls += 1;
    const fresh = new PoolEntry(this.now(), this.scheduler, this.now);
    fresh.join(run);
    this.entries.set(key, fresh);
    if (this.entries.size > 1000) this.prune();
    const settle = (answer: Answer): void => {
      this.noteOutage(key, backend.name, collectionLabel(collection), answer, fresh.waiting);
      fresh.settle(answer, this.now());
    };
    callStatus(backend, collection, run.expectedCount).then(
      (status) => settle({ status }),
      (error: unknown) => settle({ error }),
    );
  }

  /**
   * When a run should next poll, asked to poll at `at` after `delayMs`: the latest
   * poll already planned for its store and collection that falls at most half the
   * delay before `at` (the run looks a little early and shares that call), else
   * `at`, which becomes a planned poll. Never later than asked: waits of one
   * collection started at different moments fall into step after a poll or two,
   * and the collection is asked about once per interval, not once per wait's own
   * schedule.
   */
  alignPoll(key: string, at: number, delayMs: number): number {
    const now = this.now();
    let times = this.planned.get(key);
    if (!times) {
      if (this.planned.size >= 1000) this.forgetPastPlans(now);
      this.planned.set(key, (times = []));
    }
    // Few per collection: the waits' backoff stages (older plans are dropped as they pass).
    while (times.length > 0 && times[0] < now) times.shift();
    for (let i = times.length - 1; i >= 0; i--) {
      if (times[i] > at) continue;
      if (times[i] >= at - delayMs / 2) return times[i];
      break;
    }
    let i = times.length;
    while (i > 0 && times[i - 1] > at) i--;
    times.splice(i, 0, at);
    if (times.length > MAX_PLANNED) times.splice(0, times.length - MAX_PLANNED);
    return at;
  }

  private forgetPastPlans(now: number): void {
    for (const [key, times] of this.planned) if (times.length === 0 || times[times.length - 1] < now) this.planned.delete(key);
  }

  clear(): void {
    for (const entry of this.entries.values()) entry.cancelDeadline();
    this.entries.clear();
    this.outages.clear();
    this.planned.clear();
  }

  private noteOutage(key: string, store: string, collection: string, answer: Answer, waiting: number): void {
    const outage = this.outages.get(key);
    if ('status' in answer) {
      if (!outage) return;
      this.outages.delete(key);
      this.log.warn(
        `The ${store} store answers again for collection "${collection}" after ${formatDuration(this.now() - outage.since)} (${outage.failures} failed status call${outage.failures === 1 ? '' : 's'}).`,
      );
      return;
    }
    if (!isTransient(answer.error)) return; // the waits end with it, each through its own final message
    if (outage) {
      outage.failures += 1;
      return;
    }
    this.outages.set(key, { since: this.now(), failures: 1 });
    this.log.warn(
      `Could not get the status of collection "${collection}" from the ${store} store: ${sentence(messageOf(answer.error))} ` +
        `${waiting} pending wait${waiting === 1 ? '' : 's'} keep retrying until the store answers or their timeout; this is logged once per outage.`,
    );
  }

  private prune(): void {
    const now = this.now();
    for (const [key, entry] of this.entries) {
      if (entry.answer !== null && now - entry.answeredAt > this.reuseMs) this.entries.delete(key);
    }
  }
}

interface Outage {
  since: number;
  failures: number;
}

/**
 * One status call and the runs waiting for it. While it is in flight, one
 * scheduler entry is armed for the earliest deadline among its waiters: when it
 * comes, the runs past their deadline end ("the store did not answer") and the
 * entry re-arms for the next one. One entry per call, not per wait.
 */
class PoolEntry implements Wakeable {
  /** null while the call is in flight. */
  answer: Answer | null = null;
  answeredAt = 0;
  private waiters: PoolWaiter[] = [];
  private deadlineTask: ScheduledTask | null = null;

  constructor(
    readonly requestedAt: number,
    private readonly scheduler: Scheduler,
    private readonly now: () => number,
  ) {}

  get waiting(): number {
    return this.waiters.length;
  }

  join(run: PoolWaiter): void {
    this.waiters.push(run);
    const deadline = run.deadline;
    if (this.deadlineTask && this.deadlineTask.at <= deadline) return;
    this.deadlineTask?.cancel();
    this.deadlineTask = this.scheduler.schedule(deadline, this);
  }

  settle(answer: Answer, now: number): void {
    this.answer = answer;
    this.answeredAt = now;
    this.cancelDeadline();
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter.receive(answer, this.requestedAt);
  }

  cancelDeadline(): void {
    this.deadlineTask?.cancel();
    this.deadlineTask = null;
  }

  /** A waiter's deadline came while the call was still in flight. */
  wake(): void {
    this.deadlineTask = null;
    if (this.answer !== null) return;
    const now = this.now();
    const still: PoolWaiter[] = [];
    let next = Infinity;
    for (const run of this.waiters) {
      if (run.stopped) continue;
      if (run.deadline <= now) {
        run.silent(this.requestedAt);
      } else {
        still.push(run);
        next = Math.min(next, run.deadline);
      }
    }
    this.waiters = still;
    if (next !== Infinity) this.deadlineTask = this.scheduler.schedule(next, this);
  }
}

function callStatus(backend: Backend, collection: CollectionRef, expectedCount: number): Promise<CollectionStatus> {
  try {
    // The asking wait's count (waits sharing the call may expect others: the store counts exactly for a ready answer).
    return Promise.resolve(backend.status(collection, expectedCount > 0 ? { expectedCount } : undefined));
  } catch (err) {
    return Promise.reject(err); // a backend that throws synchronously is still just an error
  }
}
