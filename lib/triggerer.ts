/**
 * The triggerer: one per Node-RED runtime, it runs every deferred wait.
 *
 * Built for very many waits in one process:
 * - one scheduler (one timer, a heap of wake-up times) for every sleep, woken in
 *   slices so that a crowd of due waits never blocks the event loop;
 * - status calls coalesced per store and collection (lib/status-pool.ts): waits that poll the same
 *   collection at about the same time share one `backend.status` call (one in
 *   flight, or an answer asked for at most half their poll interval before they
 *   were due), so a scheduler tick calls each collection at most once, however
 *   many waits it wakes and however long it takes to work through them;
 * - the next poll is timed from when the status was asked for, so sharing an
 *   answer or a slow store never stretches the time between two looks at the
 *   store: readiness is seen within one poll interval;
 * - per wait, only its record, its trigger and a scheduler entry: the triggerer
 *   drives the trigger's poll steps itself instead of keeping a suspended
 *   `run()` generator per wait (half the memory, measured with 100,000 waits),
 *   and the record holds the trigger's live state rather than a copy per poll;
 * - runs of a sensor attaching with many waits (after a restart) start in
 *   slices, like any other scheduler work;
 * - progress written to disk lazily (WaitStore checkpoints), never per poll.
 * Figures (bench/, BENCHMARKS.md): 100,000 waits take about 1.5 KB each, keep
 * the event loop's p99 delay in the tens of milliseconds, and resume from disk
 * in under two seconds.
 *
 * Lifecycle of a wait: `defer` persists it, then runs it while its owner (a
 * sensor node) is attached. `detach` (node closed: redeploy, shutdown) stops
 * it quietly and keeps it on disk; the next `attach` of that owner id resumes it
 * from its saved spec (same start time and deadline, same poll count). After a
 * restart, waits loaded by `start` stay dormant until their owner attaches;
 * `dropOrphans` removes those whose owner no longer exists.
 *
 * Deadlines: a wait's deadline holds whatever the store does. A status call
 * in flight carries a scheduler entry for the earliest deadline among the waits
 * that share it: a store that never answers ends each of them at its own
 * deadline ("the store did not answer"). Transient errors are retried until the
 * deadline (unless the owner sets a limit), and logged once per store and
 * collection per outage, not once per wait. An owner without a store (its
 * config node is gone) keeps its waits until their deadline, then ends them
 * with that reason.
 *
 * Delivery: exactly once per process, at most one flagged redelivery across a
 * crash. A final is first recorded on disk as being delivered (WaitStore
 * `markFinal`), then handed to the owner, then, a moment later (`removalGraceMs`:
 * Node-RED passes a sent message on asynchronously), the wait is removed. A wait
 * loaded with such a record (the process died between the two) is not polled
 * again: its recorded final is delivered with `redelivered: true`. Every event
 * of a wait carries the same `spec.waitId` (the sensor's `msg.waitId`).
 */
import { VectorStoreError, messageOf } from './errors';
import { Scheduler, type ScheduledTask, type SchedulerSlot, type Timers, type Wakeable } from './scheduler';
import { StatusPool, type Answer, type PoolWaiter } from './status-pool';
import { CollectionReadyTrigger, parseTriggerSpec, watchedCollection, type FinalEvent, type StepContext, type TriggerEvent, type TriggerSpec } from './trigger';
import { collectionKey } from './collection-ref';
import type { Backend, Embedder } from './types';
import { isJobRecord, type DurableRecord, type DurableStore, type JobRecord, type WaitRecord, type WaitStoreStats } from './wait-store';
import { parseIngestJobSpec, type IngestJobSpec } from './ingest-job/spec';
import { JobRun, type JobEvent, type JobFinalEvent, type JobHost } from './ingest-job/run';
import type { InMemoryBatches } from './ingest-job/prepare';
import { FileSpools, type JobSpools } from './ingest-job/spools';
import { SharedWorkStore } from './job-stores/shared-work';

export type { WaitRecord, JobRecord, DurableRecord } from './wait-store';

/** A deferrable-sensor node, attached while it runs. */
export interface WaitOwner {
  /** What to poll; null when the owner has no usable store (then `unavailable` says why). */
  backend: Backend | null;
  /** Why there is no backend, as a clause ("its vector-store configuration node ... is missing"). */
  unavailable?: string;
  /** Transient errors in a row before a wait fails; 0 or absent: no limit, retried until the deadline. */
  maxConsecutiveErrors?: number;
  /** Embeds the texts of the owner's ingest jobs (a vector-ingest node); sensors have none. */
  embedder?: Embedder;
  /** Identifies the backend (the config node id); part of the coalescing key. */
  storeKey: string;
  /**
   * Progress, warning and final events of the owner's waits (a sensor), or of
   * its ingest jobs (a vector-ingest node). `wait` is the triggerer's: do not modify it.
   */
  onEvent(wait: DurableRecord, event: TriggerEvent | JobEvent): void;
  /**
   * Some of the owner's waits were cancelled from outside its flow (`cancelAndNotify`: the
   * Vector waits sidebar): end their messages as `msg.reset` does, no event follows.
   */
  onCancelled?(waits: WaitRecord[], note: CancelNote): void;
}

/** Why waits were cancelled from outside their flow, for the owner's status. */
export interface CancelNote {
  /** The owner's short status text, given how many of its waits are still pending ("cancelled from sidebar"). */
  statusText(pending: number): string;
  /** Who cancelled (the admin user name), when known. */
  by: string | null;
}

/**
 * What the Vector waits sidebar shows of a wait: read only, built on demand
 * (`inspect`), never kept per wait.
 */
export interface WaitInfo {
  /** The triggerer's record (latest spec): do not modify it. */
  record: Readonly<WaitRecord>;
  /**
   * running: polled now (durable, its owner attached); saving: not yet on disk;
   * dormant: on disk, its owner not attached (node stopped, disabled flow or node);
   * delivering: ended, its final message not yet handed to its owner (redelivery
   * pending after a crash, or the owner is not attached).
   */
  state: 'running' | 'saving' | 'dormant' | 'delivering';
  durable: boolean;
  /** The latest warning (store not answering ...), and whether the wait is still retrying because of it. */
  warning: { message: string; at: number; current: boolean } | null;
}

/** Told of every change to a wait's sidebar view (new, progress, state, ended); cheap: no work per call. */
export interface WaitWatcher {
  /** The wait changed, or is gone (then `inspect(waitId)` returns null). */
  touched(record: Readonly<WaitRecord>): void;
  /** The triggerer closed: forget its waits. */
  closed(): void;
}

export interface TriggererOptions {
  /**
   * Where waits are persisted (closed by `close()`): the file store (WaitStore), or a
   * store several runtimes share (lib/job-stores/shared-work.ts); null or absent: in
   * memory only, nothing survives a restart.
   */
  waitStore?: DurableStore | null;
  /** Where ingest jobs keep their documents (spools); needed to run jobs (or `spools`). */
  jobsDir?: string;
  /** Where ingest jobs keep their documents, when not files in `jobsDir` (a table shared by several runtimes). */
  spools?: JobSpools;
  now?: () => number;
  random?: () => number;
  /** Default for owners that set none: transient errors in a row before a wait fails; 0: no limit. */
  maxConsecutiveErrors?: number;
  log?: { warn(message: string): void };
  /** Timer functions (tests drive time by hand). */
  timers?: Timers;
  /** Waits woken per event-loop turn. */
  sliceSize?: number;
  /** Longest time a status answer is shared with other waits (also capped at half their poll interval). */
  statusReuseMs?: number;
  /**
   * How long a delivered wait stays on disk (marked as delivered) before it is
   * removed: Node-RED hands a sent message to the next node a moment later, so a
   * crash in that moment must redeliver (flagged), not lose it.
   */
  removalGraceMs?: number;
}

export interface TriggererStats {
  /** Pending waits (running or dormant). */
  waits: number;
  /** Waits being polled now (their owner is attached). */
  running: number;
  owners: number;
  /** Sleeping waits in the scheduler. */
  scheduled: number;
  /** Calls made to `backend.status`. */
  statusCalls: number;
  /** Status requests answered by a shared call instead. */
  sharedStatus: number;
  /** Scheduler timer firings that woke waits. */
  ticks: number;
  finals: number;
  warnings: number;
  store: WaitStoreStats | null;
}

/** A pending wait as the triggerer holds it. */
interface WaitState {
  record: DurableRecord;
  /** The current run, while the owner is attached. */
  run: WaitRun | JobRun | null;
  /** On disk (or no store): may run. */
  durable: boolean;
  /** Still pending (indexed by the triggerer): false once it ended or was cancelled. */
  pending: boolean;
  /** Its final event, once it ended: being recorded, or waiting for its owner to attach. */
  final?: FinalEvent | JobFinalEvent;
  /** The final is recorded on disk (or there is no disk): it may be handed over. */
  recorded?: boolean;
  /** An ingest job's batches from memory, while the input that made it is in this process (never persisted). */
  batches?: InMemoryBatches;
  /** The latest warning event, for the sidebar; `retrying` until the next progress. */
  warning?: { message: string; at: number; retrying: boolean };
}

/** An attached owner and the step context its waits share. */
interface OwnerSlot {
  owner: WaitOwner;
  ctx: StepContext;
  /** Pool keys by collection name, one string shared by the runs of a collection (one each cost 50 bytes at 100,000 waits). */
  poolKeys: Map<string, string>;
}


/** What every run shares: the scheduler, the status pool and the steps. */
interface RunHost {
  scheduler: Scheduler;
  /** `dueAt`: when the poll was scheduled for; it may run later when many are due at once. */
  poll(run: WaitRun, dueAt: number): void;
  apply(run: WaitRun, answer: Answer, sampledAt: number): void;
  /** The run's deadline came while the status asked for at `askedAt` had not answered. */
  silent(run: WaitRun, askedAt: number): void;
}

/**
 * One run of one wait: its trigger and where it is in its poll cycle. It is the
 * scheduler's wake-up target for both halves of a poll: "time to poll" (after a
 * sleep) and "your status has arrived" (after a shared call answered). No
 * generator and no promise per wait: the per-wait footprint stays small.
 */
class WaitRun implements SchedulerSlot, PoolWaiter {
  readonly trigger: CollectionReadyTrigger;
  /** Which status calls it may share: same store, same collection. */
  readonly poolKey: string;
  stopped = false;
  /** The scheduler's ticket while a poll is scheduled (the run is its own scheduler entry). */
  ticket = -1;
  /** When the scheduled poll is due. */
  private dueAt = 0;
  private answer: Answer | null = null;
  /** When the status in `answer` was asked for: the moment it describes. */
  private sampledAt = 0;

  constructor(
    private readonly host: RunHost,
    readonly wait: WaitState & { record: WaitRecord },
    readonly slot: OwnerSlot,
  ) {
    this.trigger = new CollectionReadyTrigger(wait.record.spec);
    this.poolKey = poolKeyOf(slot, wait.record.spec);
  }

  /** Poll at `at` (epoch ms). */
  pollAt(at: number): void {
    if (this.stopped) return;
    this.dueAt = at;
    this.host.scheduler.scheduleSlot(at, this);
  }

  /** The shared status call answered: handle it in turn with the other ready waits. */
  receive(answer: Answer, sampledAt: number): void {
    if (this.stopped) return;
    this.answer = answer;
    this.sampledAt = sampledAt;
    this.host.scheduler.wakeSoon(this);
  }

  wake(): void {
    const dueAt = this.dueAt;
    if (this.stopped) return;
    const answer = this.answer;
    this.answer = null;
    if (answer) this.host.apply(this, answer, this.sampledAt);
    else this.host.poll(this, dueAt);
  }

  get deadline(): number {
    return this.wait.record.spec.deadline;
  }

  get expectedCount(): number {
    return this.wait.record.spec.expectedCount;
  }

  /** The shared status call has not answered by this run's deadline. */
  silent(askedAt: number): void {
    if (this.stopped) return;
    this.host.silent(this, askedAt);
  }

  /** Stop quietly: nothing more is polled or delivered. */
  stop(): void {
    this.stopped = true;
    this.answer = null;
    this.host.scheduler.cancelSlot(this);
  }
}

/** Which status calls a run may share: same store, same collection. */
function poolKeyOf(slot: OwnerSlot, spec: TriggerSpec): string {
  const key = (): string => `${slot.owner.storeKey}\u0000${collectionKey(watchedCollection(spec))}`;
  // Another tool's collection is named by more than its label: not cached.
  if (spec.source) return key();
  let known = slot.poolKeys.get(spec.collection);
  if (known === undefined) slot.poolKeys.set(spec.collection, (known = key()));
  return known;
}

/** Longest wait for the disk to confirm a final's record before the final goes out anyway. */
const FINAL_RECORD_LIMIT_MS = 10_000;

/** Loaded waits indexed per event-loop turn at start. */
const LOADS_PER_TURN = 10_000;

/** Longest time one wake-up of the RunStarter spends starting runs. */
const START_BUDGET_MS = 4;

/**
 * Starts runs in turn with the other scheduler work, for at most START_BUDGET_MS
 * per wake-up, so that a sensor attaching with 100,000 waits does not hold the loop
 * while their runs are built. `start` decides, when the turn comes, whether the
 * wait still wants a run.
 */
class RunStarter implements Wakeable {
  private queue: WaitState[] = [];
  /** When each queued wait became due to start: its first poll counts from then. */
  private dueAt: number[] = [];
  private head = 0;
  private queued = false;

  constructor(
    private readonly scheduler: Scheduler,
    private readonly now: () => number,
    private readonly start: (wait: WaitState, dueAt: number) => void,
  ) {}

  add(wait: WaitState): void {
    this.queue.push(wait);
    this.dueAt.push(this.now());
    if (this.queued) return;
    this.queued = true;
    this.scheduler.wakeSoon(this);
  }

  wake(): void {
    // Several per wake-up, for a few milliseconds: one each put every start behind the answers of
    // the runs started before it (the scheduler's queue is first come, first served), and 100,000
    // waits took seconds to be running again while the store loaded beside them.
    const until = performance.now() + START_BUDGET_MS;
    do {
      const index = this.head++;
      this.start(this.queue[index], this.dueAt[index]);
    } while (this.head < this.queue.length && performance.now() < until);
    if (this.head < this.queue.length) {
      this.scheduler.wakeSoon(this);
    } else {
      this.queued = false;
      this.queue = [];
      this.dueAt = [];
      this.head = 0;
    }
  }
}

/**
 * Removals of delivered waits, written together `graceMs` after the first of
 * them: one scheduler entry per batch, not per wait.
 */
class RemovalBatch implements Wakeable {
  private ids: string[] = [];
  private task: ScheduledTask | null = null;

  constructor(
    private readonly scheduler: Scheduler,
    private readonly now: () => number,
    private readonly graceMs: number,
    private readonly write: (ids: string[]) => void,
  ) {}

  add(id: string): void {
    this.ids.push(id);
    this.task ??= this.scheduler.schedule(this.now() + this.graceMs, this);
  }

  wake(): void {
    this.task = null;
    this.flush();
  }

  flush(): void {
    this.task?.cancel();
    this.task = null;
    const ids = this.ids;
    this.ids = [];
    if (ids.length > 0) this.write(ids);
  }
}

export class Triggerer {
  private readonly store: DurableStore | null;
  private readonly now: () => number;
  private readonly log: { warn(message: string): void };
  private readonly scheduler: Scheduler;
  private readonly timers: Timers;
  private readonly pool: StatusPool;
  private readonly host: RunHost;
  private readonly starter: RunStarter;
  private readonly random: () => number;
  private readonly maxConsecutiveErrors: number;
  private readonly waits = new Map<string, WaitState>();
  private readonly byOwner = new Map<string, Set<WaitState>>();
  private readonly owners = new Map<string, OwnerSlot>();
  /** Ended waits whose final is being recorded, or whose owner is detached: handed over on attach. */
  private readonly finishing = new Set<WaitState>();
  /** Finals being recorded on disk before they are handed over. */
  private readonly recording = new Set<Promise<void>>();
  private readonly removals: RemovalBatch;
  private starting: Promise<void> | null = null;
  private closing: Promise<void> | null = null;
  private finals = 0;
  private warnings = 0;
  private readonly watchers = new Set<WaitWatcher>();
  private readonly jobSpools: JobSpools | null;
  /** Spools of delivered jobs, removed with their record (RemovalBatch). */
  private readonly spoolsToRemove = new Map<string, string>();

  constructor(options: TriggererOptions = {}) {
    this.store = options.waitStore ?? null;
    this.now = options.now ?? Date.now;
    this.log = options.log ?? { warn: () => undefined };
    this.timers = options.timers ?? { setTimeout: (cb, ms) => setTimeout(cb, ms), clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout) };
    this.scheduler = new Scheduler({
      now: this.now,
      timers: this.timers,
      sliceSize: options.sliceSize,
      onError: (err) => this.log.warn(`A pending wait failed to wake up: ${messageOf(err)}`),
    });
    this.pool = new StatusPool(this.now, options.statusReuseMs ?? 1000, this.scheduler, this.log);
    this.random = options.random ?? Math.random;
    this.maxConsecutiveErrors = options.maxConsecutiveErrors ?? 0;
    this.starter = new RunStarter(this.scheduler, this.now, (wait, dueAt) => this.startIfWanted(wait, dueAt));
    this.jobSpools = options.spools ?? (options.jobsDir ? new FileSpools(options.jobsDir) : null);
    this.removals = new RemovalBatch(this.scheduler, this.now, options.removalGraceMs ?? 1000, (ids) => {
      for (const id of ids) {
        this.store?.remove(id).catch((err) => this.log.warn(`Could not remove the finished wait ${id} from disk: ${messageOf(err)}`));
        const spool = this.spoolsToRemove.get(id);
        if (spool === undefined) continue;
        this.spoolsToRemove.delete(id);
        this.removeSpoolOf(id, spool);
      }
    });
    this.store?.bind?.({
      owners: () => [...this.owners.keys()],
      adopt: (records) => this.adopt(records),
      drop: (ids) => this.drop(ids),
    });
    this.host = {
      scheduler: this.scheduler,
      poll: (run, dueAt) => this.poll(run, dueAt),
      apply: (run, answer, sampledAt) => this.apply(run, answer, sampledAt),
      silent: (run, askedAt) => this.deliver(run, run.trigger.storeSilent(run.slot.ctx, askedAt), false),
    };
  }

  /** Where ingest jobs keep their documents; null: this runtime runs no jobs. */
  get spools(): JobSpools | null {
    return this.jobSpools;
  }

  /** True when the work is shared with other runtimes (a SharedWorkStore). */
  get shared(): boolean {
    return this.store?.shared === true;
  }

  /** The store shared with other runtimes (its instance name, who holds which waits); null in file mode. */
  get sharedWork(): SharedWorkStore | null {
    return this.store instanceof SharedWorkStore ? this.store : null;
  }

  /** Load persisted waits. They stay dormant until their owner attaches. Idempotent. */
  start(): Promise<void> {
    this.starting ??= this.load();
    return this.starting;
  }

  /** Attach a sensor node: every durable wait it owns starts (or resumes) polling. */
  attach(ownerId: string, owner: WaitOwner): void {
    if (this.closing) return;
    if (this.owners.has(ownerId)) this.detach(ownerId);
    const slot: OwnerSlot = {
      owner,
      ctx: {
        now: this.now,
        random: this.random,
        maxConsecutiveErrors: owner.maxConsecutiveErrors ?? this.maxConsecutiveErrors,
        storeName: owner.backend?.name,
        deferred: true,
      },
      poolKeys: new Map(),
    };
    this.owners.set(ownerId, slot);
    this.store?.wake?.(); // a shared store looks for this owner's work now
    for (const wait of this.byOwner.get(ownerId) ?? []) {
      if (wait.durable && !wait.run) this.starter.add(wait);
    }
    // Finals that ended while the owner was away (a redeploy): deliver them now.
    for (const wait of this.finishing) {
      if (wait.record.ownerId === ownerId && wait.final) this.starter.add(wait);
    }
  }

  /** Stop polling the owner's waits (node closed). They stay persisted, ready to resume. */
  detach(ownerId: string): void {
    this.owners.delete(ownerId);
    for (const wait of this.byOwner.get(ownerId) ?? []) this.stopRun(wait);
  }

  /**
   * Hand over a wait. Resolves once it is durable (on disk when there is a
   * store); it then runs as soon as its owner is attached. Rejects when the
   * record is invalid, its id is already pending, or it cannot be saved.
   */
  async defer(record: DurableRecord, options: { batches?: InMemoryBatches } = {}): Promise<void> {
    this.assertOpen();
    const job = isJobRecord(record);
    const spec = job ? parseIngestJobSpec(record.spec) : parseTriggerSpec(record.spec);
    const what = job ? 'ingest job' : 'wait';
    if (typeof record.ownerId !== 'string' || record.ownerId.length === 0) {
      throw new VectorStoreError(
        'INVALID_INPUT',
        `The ${what} for collection "${spec.collection}" has no owner id; give the id of the ${job ? 'vector-ingest' : 'sensor'} node it belongs to.`,
      );
    }
    if (this.waits.has(spec.waitId)) {
      throw new VectorStoreError('INVALID_INPUT', `A ${what} with id ${spec.waitId} is already pending; give each its own id.`);
    }
    if (job && !this.jobSpools) {
      throw new VectorStoreError('INTERNAL', `The ingest job for collection "${spec.collection}" cannot run: this runtime has no place for job spools (no jobs directory).`);
    }
    const wait: WaitState = { record: { ownerId: record.ownerId, spec, message: record.message ?? {} } as DurableRecord, run: null, durable: false, pending: false };
    if (job && options.batches) wait.batches = options.batches;
    // Indexed at once, before it is durable, so that a cancel arriving meanwhile finds it.
    this.index(wait);
    const spools = job ? this.jobSpools : null;
    const spool = spools ? (spec as IngestJobSpec).spool : null;
    try {
      await this.start();
      this.assertOpen();
      await this.store?.put(wait.record);
    } catch (err) {
      if (this.waits.get(spec.waitId) === wait) this.unindex(wait);
      if (spools && spool) await spools.remove(spool).catch(() => undefined); // never acknowledged: nothing to resume
      throw err;
    } finally {
      if (spools && spool) spools.settled(spool);
    }
    if (this.waits.get(spec.waitId) !== wait) {
      // Cancelled while being saved (before the store knew it): take it back off the disk.
      await this.store?.remove(spec.waitId);
      return;
    }
    if (this.closing) return; // stays on disk: resumes after the restart
    wait.durable = true;
    this.touch(wait);
    const slot = this.owners.get(wait.record.ownerId);
    if (slot) this.startRun(wait, slot, undefined, !job && (spec as TriggerSpec).polls > 0);
  }

  /**
   * Remove the matching pending waits (msg.reset, node deleted): no further
   * event. Returns them. With `includeEnded`, also the ended waits whose final
   * has not been handed over (their owner is deleted: nobody will take it).
   */
  cancel(predicate: (wait: DurableRecord) => boolean, options: { includeEnded?: boolean } = {}): DurableRecord[] {
    const removed: WaitState[] = [];
    for (const wait of this.waits.values()) {
      if (predicate(wait.record)) removed.push(wait);
    }
    for (const wait of removed) this.forget(wait);
    if (options.includeEnded) {
      for (const wait of [...this.finishing]) {
        if (!predicate(wait.record)) continue;
        this.finishing.delete(wait);
        this.touch(wait);
        this.removeFromDisk(wait, 'cancelled');
      }
    }
    return removed.map((w) => w.record);
  }

  /**
   * Cancel from outside the flows (the Vector waits sidebar): like `cancel` with
   * ended waits included, then each attached owner is told which of its waits
   * ended this way (`onCancelled`), so it completes their messages and says so in
   * its status. Returns every wait removed, ended ones included.
   */
  cancelAndNotify(predicate: (wait: WaitRecord) => boolean, note: CancelNote): WaitRecord[] {
    // The sidebar shows sensors' waits only: ingest jobs are never cancelled from it.
    const matches = (record: DurableRecord): record is WaitRecord => !isJobRecord(record) && predicate(record);
    const ended: WaitRecord[] = [];
    for (const wait of this.finishing) if (matches(wait.record)) ended.push(wait.record);
    const removed = [...(this.cancel(matches, { includeEnded: true }) as WaitRecord[]), ...ended];
    const byOwner = new Map<string, WaitRecord[]>();
    for (const record of removed) {
      const list = byOwner.get(record.ownerId);
      if (list) list.push(record);
      else byOwner.set(record.ownerId, [record]);
    }
    for (const [ownerId, records] of byOwner) {
      const owner = this.owners.get(ownerId)?.owner;
      if (!owner?.onCancelled) continue;
      try {
        owner.onCancelled(records, note);
      } catch (err) {
        this.log.warn(`The sensor ${ownerId} failed to end ${records.length} cancelled wait(s): ${messageOf(err)}`);
      }
    }
    return removed;
  }

  /**
   * What the sidebar shows of one wait (pending, or ended and not yet handed
   * over), or null when the triggerer no longer has it.
   */
  inspect(waitId: string): WaitInfo | null {
    let wait = this.waits.get(waitId);
    if (!wait) {
      for (const ending of this.finishing) {
        if (ending.record.spec.waitId === waitId) {
          wait = ending;
          break;
        }
      }
    }
    if (!wait || isJobRecord(wait.record)) return null; // the sidebar shows sensors' waits
    const state: WaitInfo['state'] = wait.final || wait.record.final ? 'delivering' : wait.run ? 'running' : wait.durable ? 'dormant' : 'saving';
    const { warning } = wait;
    return {
      record: wait.record,
      state,
      durable: wait.durable,
      warning: warning ? { message: warning.message, at: warning.at, current: warning.retrying } : null,
    };
  }

  /** Every wait `inspect` knows (pending, then ended not yet handed over): for a watcher's first look. */
  *allRecords(): IterableIterator<Readonly<WaitRecord>> {
    for (const wait of this.waits.values()) if (!isJobRecord(wait.record)) yield wait.record;
    for (const wait of this.finishing) if (!isJobRecord(wait.record)) yield wait.record;
  }

  /** Be told of every change to a wait (the sidebar's feed); returns the unsubscribe function. */
  watch(watcher: WaitWatcher): () => void {
    this.watchers.add(watcher);
    return () => {
      this.watchers.delete(watcher);
    };
  }

  /** Remove the waits whose owner is not live (a node deleted while the runtime was down). */
  dropOrphans(liveOwnerIds: ReadonlySet<string> | ((ownerId: string) => boolean)): DurableRecord[] {
    const isLive = typeof liveOwnerIds === 'function' ? liveOwnerIds : (id: string) => liveOwnerIds.has(id);
    return this.cancel((wait) => !isLive(wait.ownerId), { includeEnded: true });
  }

  /** Number of pending waits, of one owner or in all. */
  pending(ownerId?: string): number {
    if (ownerId === undefined) return this.waits.size;
    return this.byOwner.get(ownerId)?.size ?? 0;
  }

  /** The pending waits and jobs (latest spec), of one owner or all, oldest first. Read only. */
  list(ownerId?: string): DurableRecord[] {
    const waits = ownerId === undefined ? this.waits.values() : (this.byOwner.get(ownerId) ?? []);
    return [...waits].map((w) => w.record);
  }

  stats(): TriggererStats {
    let running = 0;
    for (const wait of this.waits.values()) if (wait.run) running += 1;
    return {
      waits: this.waits.size,
      running,
      owners: this.owners.size,
      scheduled: this.scheduler.size,
      statusCalls: this.pool.calls,
      sharedStatus: this.pool.shared,
      ticks: this.scheduler.ticks,
      finals: this.finals,
      warnings: this.warnings,
      store: this.store?.stats ?? null,
    };
  }

  /** Stop every wait quietly, write their latest state, release the timer and the file. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.starting?.catch(() => undefined);
      for (const wait of this.waits.values()) this.stopRun(wait);
      this.owners.clear();
      this.removals.flush(); // delivered while running: written as removed
      this.scheduler.close();
      this.pool.clear();
      for (const watcher of [...this.watchers]) watcher.closed();
      this.watchers.clear();
      await this.store?.close();
    })();
    return this.closing;
  }

  // -------------------------------------------------------------------------

  /**
   * Work a shared store leased to this runtime: indexed as if loaded from disk,
   * started when its owner is attached. A record that had its final committed
   * (its runtime died before removing it) is redelivered, flagged.
   */
  private adopt(records: DurableRecord[]): void {
    if (this.closing) return;
    for (const record of records) {
      if (this.waits.has(record.spec.waitId)) continue;
      const wait: WaitState = { record, run: null, durable: true, pending: false };
      this.index(wait);
      if (this.owners.has(record.ownerId)) this.starter.add(wait);
    }
  }

  /** Work whose lease a shared store lost: stopped and forgotten here, kept in the store for its new holder. */
  private drop(ids: string[]): void {
    for (const id of ids) {
      const wait = this.waits.get(id);
      if (!wait) continue;
      wait.run?.stop();
      wait.run = null;
      this.unindex(wait);
    }
  }

  private async load(): Promise<void> {
    if (!this.store) return;
    const records = await this.store.load();
    await this.removeStraySpools(records);
    for (let i = 0; i < records.length; i++) {
      if (i % LOADS_PER_TURN === LOADS_PER_TURN - 1) await new Promise<void>((resolve) => setImmediate(resolve));
      const record = records[i];
      if (this.waits.has(record.spec.waitId)) continue;
      const wait: WaitState = { record, run: null, durable: true, pending: false };
      this.index(wait);
      if (this.owners.has(record.ownerId)) this.starter.add(wait);
    }
  }

  /** Spools no job names: a crash came between spooling a job and saving it (it was never acknowledged). */
  private async removeStraySpools(records: DurableRecord[]): Promise<void> {
    const spools = this.jobSpools;
    if (!spools) return;
    const known = new Set<string>();
    for (const record of records) if (isJobRecord(record)) known.add(record.spec.spool);
    let strays: string[];
    try {
      strays = await spools.strays(known);
    } catch (err) {
      this.log.warn(`Could not look for the documents of ingest jobs that were never started (left by a crash): ${messageOf(err)}`);
      return;
    }
    for (const name of strays) await spools.remove(name).catch(() => undefined);
  }

  /**
   * A queued start, when its turn comes: only if the wait is still pending,
   * durable, idle and its owner attached. A wait that has ended (its final is
   * waiting for the owner, or was recorded before a crash) is handed over
   * instead of polled.
   */
  private startIfWanted(wait: WaitState, dueAt: number): void {
    if (this.closing) return;
    if (wait.final) {
      if (this.finishing.has(wait)) this.handOver(wait);
      return;
    }
    if (wait.run || !wait.durable || !wait.pending) return;
    const slot = this.owners.get(wait.record.ownerId);
    if (!slot) return;
    const recorded = wait.record.final;
    if (recorded) {
      // The process died after recording this final, maybe after sending it: send it again, flagged.
      this.unindex(wait);
      this.finals += 1;
      wait.final = { type: 'final', payload: recorded, redelivered: true } as FinalEvent | JobFinalEvent;
      wait.recorded = true;
      this.finishing.add(wait);
      this.handOver(wait);
      return;
    }
    this.startRun(wait, slot, dueAt);
  }

  /**
   * `dueAt`: the run starts in a scheduler slice (the starter's turn) for a poll
   * due since then: it polls at once, and every wait started by the same attach
   * shares one status call per collection. Without it, the first poll is on the
   * next scheduler tick, or a poll interval after the wait began when its owner
   * checked the store as it arrived (`checkedOnArrival`).
   */
  private startRun(wait: WaitState, slot: OwnerSlot, dueAt?: number, checkedOnArrival = false): void {
    if (isJobRecord(wait.record)) {
      this.startJob(wait as WaitState & { record: JobRecord }, slot);
      return;
    }
    const run = new WaitRun(this.host, wait as WaitState & { record: WaitRecord }, slot);
    wait.run = run;
    this.touch(wait);
    // The record holds the trigger's live state (no copy per poll): the store's
    // checkpoints write whatever it is at the time.
    wait.record.spec = run.trigger.state as TriggerSpec;
    if (dueAt !== undefined) this.poll(run, dueAt);
    else if (checkedOnArrival) {
      // Its owner looked at the store as it arrived (the sensor's quick check, its first poll): the next look is an interval later.
      const { startedAt, pollIntervalMs } = wait.record.spec as TriggerSpec;
      const at = Math.max(this.now(), startedAt + pollIntervalMs);
      run.pollAt(this.pool.alignPoll(run.poolKey, at, pollIntervalMs));
    } else run.pollAt(this.now());
  }

  /**
   * An ingest job runs on its own (lib/ingest-job/run.ts): no polls, no
   * scheduler entry. Each checkpoint replaces the record's spec and is written
   * at once; its progress and final go the way of a wait's.
   */
  private startJob(wait: WaitState & { record: JobRecord }, slot: OwnerSlot): void {
    const host: JobHost = {
      now: this.now,
      spools: this.jobSpools as JobSpools,
      save: async () => {
        await this.store?.save(wait.record);
      },
      sleep: (ms, signal) => abortableSleep(this.timers, ms, signal),
      progress: (event) => {
        if (wait.run !== run) return;
        this.notify(slot.owner, wait.record, event);
      },
      final: (event) => {
        if (wait.run !== run) return;
        run.stop();
        wait.run = null;
        this.end(wait, event);
      },
    };
    const { backend, embedder, unavailable } = slot.owner;
    const run: JobRun = new JobRun(
      host,
      wait.record.spec,
      { backend, embedder, unavailable },
      (spec: IngestJobSpec) => {
        if (wait.run === run) wait.record.spec = spec;
      },
      wait.batches ?? null,
    );
    wait.run = run;
    run.start();
  }

  private stopRun(wait: WaitState): void {
    if (!wait.run) return;
    wait.run.stop();
    wait.run = null;
    this.touch(wait);
    // Make sure the latest poll count reaches the disk, for the next resume.
    this.store?.update(wait.record);
  }

  /** First half of a poll: the deadline check, then the (shared) status call. */
  private poll(run: WaitRun, dueAt: number): void {
    const { owner, ctx } = run.slot;
    const { spec } = run.wait.record;
    if (!owner.backend) {
      // Nothing to ask: sleep until the deadline, then say why the wait could not go on.
      if (this.now() < spec.deadline) run.pollAt(spec.deadline);
      else this.deliver(run, run.trigger.expired(ctx, owner.unavailable ?? 'the sensor has no vector store to ask', 'STORE_MISSING'), false);
      return;
    }
    const timeout = run.trigger.beginPoll(ctx);
    if (timeout) {
      this.deliver(run, timeout, false);
      return;
    }
    this.pool.request(run, owner.backend, watchedCollection(spec), spec.pollIntervalMs / 2, spec.startedAt, dueAt);
  }

  /**
   * Second half: the trigger turns the answer into an event and the next delay.
   * The delay counts from when the status was asked for, not from now: a shared
   * answer (asked for by another wait a moment earlier) or a slow store then
   * never stretches the time between two looks at the store beyond the poll
   * interval. After an error the delay counts from now, as a pause before the
   * retry. The deadline is never overrun.
   */
  private apply(run: WaitRun, answer: Answer, sampledAt: number): void {
    const { ctx } = run.slot;
    const { lastProgress, consecutiveErrors } = run.trigger.state;
    const isStatus = 'status' in answer;
    const step = isStatus ? run.trigger.onStatus(answer.status, ctx) : run.trigger.onError(answer.error, ctx);
    this.deliver(run, step.event, changedState(lastProgress, consecutiveErrors, run.trigger.state));
    if (step.delayMs === null) return;
    const now = this.now();
    const deadline = run.wait.record.spec.deadline;
    const byDeadline = now + step.delayMs >= deadline; // the trigger cut the delay short to meet the deadline
    const at = isStatus && !byDeadline ? sampledAt + step.delayMs : now + step.delayMs;
    run.pollAt(byDeadline ? at : this.pool.alignPoll(run.poolKey, at, step.delayMs));
  }

  /** `changed`: the step moved the wait's state enough to be worth a checkpoint. */
  private deliver(run: WaitRun, event: TriggerEvent, changed: boolean): void {
    const wait = run.wait;
    if (event.type === 'final') {
      run.stop();
      wait.run = null;
      this.end(wait, event);
      return;
    }
    // Warnings reach the owner (for its status); the log gets one line per outage (StatusPool).
    if (event.type === 'warning') {
      this.warnings += 1;
      wait.warning = { message: event.message, at: this.now(), retrying: true };
    } else if (wait.warning) {
      wait.warning.retrying = false;
    }
    this.touch(wait);
    if (changed) this.store?.update(wait.record);
    this.notify(run.slot.owner, wait.record, event);
  }

  /**
   * A wait ended: record durably that its final is being delivered, then hand
   * it over. A crash before the record is on disk resumes the wait (it ends
   * again, first time for the user); a crash after it redelivers this very
   * final, flagged. Never lost: if the record cannot be written, the final is
   * still delivered (a crash could then repeat it unflagged; logged).
   */
  private end(wait: WaitState, event: FinalEvent | JobFinalEvent): void {
    this.unindex(wait);
    this.finals += 1;
    wait.final = event;
    this.finishing.add(wait);
    if (!this.store) {
      wait.recorded = true;
      this.handOver(wait);
      return;
    }
    const { waitId, collection } = wait.record.spec;
    const store = this.store;
    if (store.shared) {
      // Across runtimes the database decides who ends the wait, once: only a "yes" delivers.
      // A "no" or no answer: this runtime lost the work; whoever holds it ends it.
      const decided = store
        .markFinal(waitId, event.payload)
        .catch((err) => {
          this.log.warn(`Could not commit the final of wait ${waitId} (collection "${collection}"); the runtime that holds it next ends it: ${messageOf(err)}`);
          return false;
        })
        .then((mine) => {
          this.recording.delete(decided);
          if (!mine) {
            this.finishing.delete(wait);
            this.touch(wait);
            return;
          }
          wait.recorded = true;
          this.handOver(wait);
        });
      this.recording.add(decided);
      return;
    }
    const recorded = this.boundedByDisk(store.markFinal(waitId, event.payload))
      .catch((err) => this.log.warn(`Could not record on disk that the final message of wait ${waitId} (collection "${collection}") is being delivered; delivering it anyway: ${messageOf(err)}`))
      .then(() => {
        this.recording.delete(recorded);
        wait.recorded = true;
        this.handOver(wait);
      });
    this.recording.add(recorded);
  }

  /**
   * A disk that never answers must not hold a final for ever: after
   * FINAL_RECORD_LIMIT_MS the final goes out unrecorded (then a crash could
   * repeat it unflagged; the caller logs why).
   */
  private boundedByDisk<T>(write: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = this.timers.setTimeout(
        () => reject(new Error(`the disk did not confirm the write within ${FINAL_RECORD_LIMIT_MS / 1000} s`)),
        FINAL_RECORD_LIMIT_MS,
      );
      write.then(
        (value) => {
          this.timers.clearTimeout(timer);
          resolve(value);
        },
        (err: unknown) => {
          this.timers.clearTimeout(timer);
          reject(err);
        },
      );
    });
  }

  /** Resolves once every final ended so far has been recorded and handed over (if its owner is attached). */
  async delivered(): Promise<void> {
    while (this.recording.size > 0) await Promise.all(this.recording);
  }

  /** Give an ended wait's final to its owner, if attached (else on its next attach), then forget the wait. */
  private handOver(wait: WaitState): void {
    const slot = this.owners.get(wait.record.ownerId);
    // Not before its record is on disk: a crash after an unrecorded delivery would repeat it unflagged.
    if (!slot || this.closing || !wait.final || !wait.recorded || !this.finishing.has(wait)) return;
    this.finishing.delete(wait);
    this.touch(wait);
    this.notify(slot.owner, wait.record, wait.final);
    // Removed a little later: a crash before the next node got the message redelivers it, flagged.
    // A job's spool goes with it, after its owner has read the final's ids from it.
    const id = wait.record.spec.waitId;
    if (isJobRecord(wait.record) && this.jobSpools) this.spoolsToRemove.set(id, wait.record.spec.spool);
    if (this.store || this.spoolsToRemove.has(id)) this.removals.add(id);
  }

  /** Remove the spool of a job that ended or was cancelled (its record is gone, or going). */
  private removeSpoolOf(id: string, spool: string): void {
    this.jobSpools?.remove(spool).catch((err) => this.log.warn(`Could not remove the documents (spool ${spool}) of the finished ingest job ${id}: ${messageOf(err)}`));
  }

  private removeFromDisk(wait: WaitState, what: string): void {
    const id = wait.record.spec.waitId;
    this.store?.remove(id).catch((err) => this.log.warn(`Could not remove the ${what} wait ${id} from disk: ${messageOf(err)}`));
  }

  private notify(owner: WaitOwner, record: DurableRecord, event: TriggerEvent | JobEvent): void {
    try {
      owner.onEvent(record, event);
    } catch (err) {
      this.log.warn(`The handler of wait ${record.spec.waitId} (collection "${record.spec.collection}") threw on a ${event.type} event: ${messageOf(err)}`);
    }
  }

  /** Cancel: stop, unindex, remove from disk. */
  private forget(wait: WaitState): void {
    wait.run?.stop();
    wait.run = null;
    this.unindex(wait);
    this.removeFromDisk(wait, 'cancelled');
    if (isJobRecord(wait.record)) this.removeSpoolOf(wait.record.spec.waitId, wait.record.spec.spool);
  }

  private index(wait: WaitState): void {
    wait.pending = true;
    this.waits.set(wait.record.spec.waitId, wait);
    let set = this.byOwner.get(wait.record.ownerId);
    if (!set) this.byOwner.set(wait.record.ownerId, (set = new Set()));
    set.add(wait);
    this.touch(wait);
  }

  /** Tell the watchers (the sidebar feed) that a wait changed. */
  private touch(wait: WaitState): void {
    if (this.watchers.size === 0 || isJobRecord(wait.record)) return; // the sidebar shows sensors' waits
    for (const watcher of this.watchers) {
      try {
        watcher.touched(wait.record);
      } catch (err) {
        this.log.warn(`A watcher of the pending waits failed: ${messageOf(err)}`);
      }
    }
  }

  private unindex(wait: WaitState): void {
    wait.pending = false;
    this.waits.delete(wait.record.spec.waitId);
    const set = this.byOwner.get(wait.record.ownerId);
    set?.delete(wait);
    if (set?.size === 0) this.byOwner.delete(wait.record.ownerId);
    this.touch(wait);
  }

  private assertOpen(): void {
    if (this.closing) throw new Error('The triggerer is closed (Node-RED is stopping); the wait was not deferred. Send the message again once it runs.');
  }
}

/**
 * Worth a checkpoint: the indexing moved, or the error count changed. A poll
 * that only bumps `polls` is not (a crash then under-counts polls a little).
 */
function changedState(lastProgress: TriggerSpec['lastProgress'], consecutiveErrors: number, after: Readonly<TriggerSpec>): boolean {
  if (consecutiveErrors !== after.consecutiveErrors) return true;
  const a = lastProgress;
  const b = after.lastProgress;
  if (a === b) return false;
  if (!a || !b) return true;
  // Not a new estimate alone: it moves on every poll (a store counting down), and 10,000 waits
  // would rewrite 10,000 records a second for it; the next real change saves the estimate too.
  return a.indexedCount !== b.indexedCount || a.progress !== b.progress;
}

/** A sleep that `signal` cuts short (it then rejects), on the triggerer's timers. */
function abortableSleep(timers: Timers, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      timers.clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = timers.setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
