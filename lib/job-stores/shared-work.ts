/**
 * The durable store of a runtime that shares its work (sensor waits, ingest jobs)
 * with other Node-RED instances through PostgreSQL (./postgres.ts): what the
 * triggerer calls on the file store, on leases instead.
 *
 * Every `heartbeatMs`, counted from the start of the last renewal: renew this
 * runtime's leases (a lease it could not renew in time is lost: its work is dropped
 * here, another runtime takes it), write the progress of the work that moved (only
 * while the lease holds), then claim work of the owners attached here that nobody
 * holds, up to `capacity`. Progress and claims go in bounded steps
 * (PROGRESS_PER_TICK, CLAIM_PER_TICK; the rest at the next turns, more claims at once)
 * so that a runtime holding 100,000 records still renews its leases on time:
 * otherwise renewals late behind long writes let leases lapse, and the work moves
 * back and forth between live runtimes. A new wait or
 * job is leased to the runtime that accepted it. The final is committed by the
 * database (`markFinal`: only the lease holder, only once) before it is delivered.
 * Closing releases the leases, so other runtimes take the work at once; a runtime
 * that dies keeps them until they run out: takeover time = lease + one heartbeat.
 */
import { messageOf } from '../errors';
import type { FinalPayload } from '../trigger';
import type { JobFinalPayload } from '../ingest-job/spec';
import type { DurableRecord, DurableStore, SharedRuntime, WaitStoreStats } from '../wait-store';
import type { PostgresJobStore } from './postgres';
import { HolderCounts, type HolderCount } from './holder-counts';

/**
 * Progress written per turn (about 5 multi-row statements), oldest first; what is left
 * stays marked for the next turns. The table's progress only serves a takeover (the
 * deadline is in the spec from the start): at 100,000 moving waits it lags by minutes.
 */
export const PROGRESS_PER_TICK = 5_000;
/** Records claimed per turn; a full batch asks for another turn at once (leases renewed only when due). */
export const CLAIM_PER_TICK = 5_000;
/** A timer may fire a little before the heartbeat is due by Date.now(): still a heartbeat. */
const RENEW_TOLERANCE_MS = 20;

export interface SharedWorkOptions {
  store: PostgresJobStore;
  /** This runtime's name in the table (`lease_holder`): unique per running instance. */
  instanceId: string;
  leaseMs: number;
  heartbeatMs: number;
  /** Most records this runtime holds at once. */
  capacity: number;
  /** Progress written per turn (default PROGRESS_PER_TICK). */
  progressPerTick?: number;
  /** Records claimed per turn (default CLAIM_PER_TICK). */
  claimPerTick?: number;
  log?: { warn(message: string): void };
}

export class SharedWorkStore implements DurableStore {
  readonly shared = true;
  private readonly held = new Set<string>();
  private readonly dirty = new Map<string, DurableRecord>();
  /** Work the triggerer gave up (its final could not be committed): leases to end. */
  private readonly givenUp = new Set<string>();
  /** Delivered or cancelled work whose record could not be removed yet. */
  private readonly unremoved = new Set<string>();
  private runtime: SharedRuntime | null = null;
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private again = false;
  /** When the last renewal started (ms): the next is due `heartbeatMs` later. */
  private renewedAt = Number.NEGATIVE_INFINITY;
  private closed = false;
  /** Set during an outage: one warning per outage, one on recovery. */
  private outage: string | null = null;

  /** Who holds which waits, for the sidebar and the node statuses: one query every few seconds at most. */
  private readonly counts: HolderCounts;

  constructor(private readonly options: SharedWorkOptions) {
    this.counts = new HolderCounts({ read: (ownerIds) => options.store.holderCounts(ownerIds) });
  }

  get instanceId(): string {
    return this.options.instanceId;
  }

  /** How many waits of these owners each instance holds, per collection (cached: see ./holder-counts.ts). */
  holderCounts(ownerIds: readonly string[]): Promise<HolderCount[]> {
    return this.counts.get(ownerIds);
  }

  /** The instance holding a live lease on this wait (this one, or another), or null. */
  async holderOf(waitId: string): Promise<string | null> {
    return (await this.options.store.holders([waitId])).get(waitId) ?? null;
  }

  get stats(): WaitStoreStats {
    return { bytesWritten: 0, writes: 0, waits: this.held.size, logRecords: 0, compactions: 0 };
  }

  bind(runtime: SharedRuntime): void {
    this.runtime = runtime;
  }

  /** Migrate the table and start the heartbeat; work arrives by claims (adopt), not from here. */
  async load(): Promise<DurableRecord[]> {
    await this.options.store.start();
    this.schedule(0);
    return [];
  }

  async put(record: DurableRecord): Promise<void> {
    await this.options.store.put(record, this.instanceId, this.options.leaseMs);
    this.held.add(record.spec.waitId);
  }

  /**
   * Commit the final. On a "no" or no answer the triggerer forgets the wait, so the
   * lease is given back (at the next heartbeat, before renewing): otherwise this
   * runtime would renew a lease on work it no longer runs, and the wait would never end.
   */
  async markFinal(waitId: string, payload: FinalPayload | JobFinalPayload): Promise<boolean> {
    let mine = false;
    try {
      mine = await this.options.store.markFinal(waitId, this.instanceId, payload);
      return mine;
    } finally {
      if (!mine) this.giveUp(waitId);
    }
  }

  /** Progress: written with the next heartbeat. */
  update(record: DurableRecord): void {
    if (this.held.has(record.spec.waitId)) this.dirty.set(record.spec.waitId, record);
  }

  /** A job's checkpoint: written now; a lost lease stops the job here. */
  async save(record: DurableRecord): Promise<void> {
    const id = record.spec.waitId;
    this.dirty.delete(id);
    if (!(await this.options.store.saveSpec(id, this.instanceId, record.spec))) this.lose([id]);
  }

  /** A delivered or cancelled record. Not removed now (the database away): retried every heartbeat. */
  async remove(waitId: string): Promise<void> {
    this.held.delete(waitId);
    this.dirty.delete(waitId);
    try {
      await this.options.store.remove(waitId);
    } catch {
      // Left in the table it would stay leased here (the heartbeat renews every lease of this runtime).
      this.unremoved.add(waitId);
      this.wake();
    }
  }

  /** An owner attached: look for its work now rather than at the next heartbeat. */
  wake(): void {
    if (!this.closed) this.schedule(0);
  }

  /** Write what moved, release the leases (others take the work at once), end the pool. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.ticking?.catch(() => undefined);
    await this.writeProgress().catch(() => undefined);
    await this.settle().catch(() => undefined);
    await this.options.store.release(this.instanceId).catch(() => undefined);
    await this.options.store.close();
  }

  /** What a crash leaves behind, for tests: nothing more is written or renewed; the leases run out. */
  async abandon(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.ticking?.catch(() => undefined);
    await this.options.store.close();
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    if (this.ticking) {
      this.again = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.ticking = this.tick().finally(() => {
        this.ticking = null;
        const again = this.again;
        this.again = false;
        // From the start of the renewal, not the end of the turn: a long turn must not push renewals late.
        this.schedule(again ? 0 : Math.max(0, this.renewedAt + this.options.heartbeatMs - Date.now()));
      });
    }, ms);
  }

  private async tick(): Promise<void> {
    const { store, leaseMs, capacity } = this.options;
    try {
      await this.settle();
      const now = Date.now();
      // A turn asked for early (new work, a full claim batch) renews only when the heartbeat is due.
      const due = now - this.renewedAt >= this.options.heartbeatMs - RENEW_TOLERANCE_MS;
      if (due) this.renewedAt = now;
      if (due && this.held.size > 0) {
        // Only what was held before the renewal: a wait saved meanwhile has a fresh lease, and
        // one saved while `holders` reads would be missing from its answer, and dropped by mistake.
        const asked = [...this.held];
        const renewed = await store.heartbeat(this.instanceId, leaseMs);
        if (renewed < asked.length) {
          // Some leases ran out (a pause longer than the lease, the database away): find which.
          const holders = await store.holders(asked);
          this.lose(asked.filter((id) => this.held.has(id) && holders.get(id) !== this.instanceId));
        }
      }
      // What is left is written at the next turns: the database holds progress for a takeover only.
      await this.writeProgress(this.options.progressPerTick ?? PROGRESS_PER_TICK);
      const owners = this.runtime?.owners() ?? [];
      const room = Math.min(capacity - this.held.size, this.options.claimPerTick ?? CLAIM_PER_TICK);
      if (owners.length > 0 && room > 0) {
        const claimed = await store.claim(this.instanceId, owners, room, leaseMs);
        for (const record of claimed) this.held.add(record.spec.waitId);
        if (claimed.length > 0) this.runtime?.adopt(claimed);
        if (claimed.length >= room && capacity > this.held.size) this.again = true;
      }
      if (this.outage) {
        this.options.log?.warn(`The shared job store answers again (${this.outage} before).`);
        this.outage = null;
      }
    } catch (err) {
      if (!this.outage) {
        this.outage = messageOf(err);
        this.options.log?.warn(`The shared job store cannot be reached; waits and jobs held here go on, and are taken over by another instance if this one cannot renew its leases in time: ${this.outage}`);
      }
    }
  }

  /** Before any heartbeat, which would renew their leases: remove what was delivered, give back what was given up. */
  private async settle(): Promise<void> {
    const { store } = this.options;
    if (this.unremoved.size > 0) {
      const ids = [...this.unremoved];
      await store.removeMany(ids);
      for (const id of ids) this.unremoved.delete(id);
    }
    if (this.givenUp.size > 0) {
      // Claimable again, by any runtime (this one too).
      const ids = [...this.givenUp];
      await store.giveBack(ids, this.instanceId);
      for (const id of ids) this.givenUp.delete(id);
    }
  }

  /** The progress of what moved since the last heartbeat, in a few multi-row statements. */
  private async writeProgress(limit = Number.POSITIVE_INFINITY): Promise<void> {
    if (this.dirty.size === 0) return;
    const dirty: DurableRecord[] = [];
    // Oldest marked first (a Map keeps insertion order); deleting the visited entry is safe while iterating.
    for (const [id, record] of this.dirty) {
      if (dirty.length >= limit) break;
      dirty.push(record);
      this.dirty.delete(id);
    }
    let saved: Set<string>;
    try {
      saved = await this.options.store.saveSpecs(dirty.map((record) => record.spec), this.instanceId);
    } catch (err) {
      // Not written (or not all): again at the next heartbeat, unless it moved again meanwhile.
      for (const record of dirty) {
        const id = record.spec.waitId;
        if (this.held.has(id) && !this.dirty.has(id)) this.dirty.set(id, record);
      }
      throw err;
    }
    // Not saved and still held here: the lease ran out (another instance may hold it now).
    this.lose(dirty.map((record) => record.spec.waitId).filter((id) => !saved.has(id) && this.held.has(id)));
  }

  private giveUp(id: string): void {
    this.held.delete(id);
    this.dirty.delete(id);
    this.givenUp.add(id);
    this.wake();
  }

  private lose(ids: string[]): void {
    if (ids.length === 0) return;
    for (const id of ids) {
      this.held.delete(id);
      this.dirty.delete(id);
    }
    this.runtime?.drop(ids);
  }
}
