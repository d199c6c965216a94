/**
 * The pending waits as the "Vector waits" sidebar shows them: grouped by store
 * and collection, summarised per group, paged per group, and a throttled feed of
 * what changed. Pure: no Node-RED (the plugin in nodes/plugins/ serves it).
 *
 * Built for 10,000 waits and more:
 * - nothing is kept per wait until the list is first read (see `following`);
 * - the triggerer only *touches* a wait when it changes (one Map.set); the work
 *   happens at most once per `intervalMs`, when the feed is due;
 * - the feed carries group summaries (counts, mean progress), never one entry
 *   per wait, and only the groups that changed since the previous message;
 * - a client asks for the waits of the group it opens, one page at a time.
 *
 * Feed protocol: each message has a sequence number `v`. A client reads the
 * whole list of groups (`groups()`, with the `v` of the last message sent),
 * then applies each message whose `v` follows; a gap (a missed message) means
 * "read the groups again". A message's groups replace the client's, so applying
 * one twice is harmless. A group's `rev` changes whenever one of its waits does:
 * a client showing that group's waits reads its page again.
 */
import type { Timers } from './scheduler';
import type { WaitInfo, WaitRecord, WaitWatcher } from './triggerer';

/** What the wait list reads: the runtime's triggerer. */
export interface WaitSource {
  inspect(waitId: string): WaitInfo | null;
  allRecords(): Iterable<Readonly<WaitRecord>>;
  watch(watcher: WaitWatcher): () => void;
}

/** The sensor node that owns a wait, as the flows describe it. */
export interface OwnerInfo {
  /** The sensor's vector-store config node id ('' when it has none). */
  storeId: string;
  /** What the store is called in the editor (its name, else its backend). */
  storeName: string;
  /** The sensor's label in the editor. */
  nodeName: string;
  /** The tab or subflow the sensor is on, or null when it is not in the flows. */
  flowId: string | null;
}

export interface GroupSummary {
  /** Opaque id of the group (store and collection). */
  key: string;
  store: { id: string; name: string };
  collection: string;
  count: number;
  running: number;
  saving: number;
  dormant: number;
  delivering: number;
  /** Waits whose store is failing right now (their latest event was a warning). */
  retrying: number;
  indexedCount: number;
  expectedCount: number;
  /** Mean progress (0..1) of the waits that know theirs, or null. */
  progress: number | null;
  /** The longest estimate of the group, or null. */
  etaSeconds: number | null;
  oldestStartedAt: number;
  /** Changes whenever one of the group's waits changes. */
  rev: number;
}

/** One wait, as a row of the sidebar. */
export interface WaitView {
  waitId: string;
  nodeId: string;
  nodeName: string;
  flowId: string | null;
  store: { id: string; name: string };
  collection: string;
  state: WaitInfo['state'];
  durable: boolean;
  progress: number | null;
  indexedCount: number;
  expectedCount: number;
  phase: string | null;
  detail: string | null;
  etaSeconds: number | null;
  startedAt: number;
  deadline: number;
  elapsedMs: number;
  polls: number;
  lastWarning: { message: string; at: number; current: boolean } | null;
}

/** A feed message: the groups that changed since message `v - 1`. */
export interface WaitFeed {
  v: number;
  /** Waits in all groups. */
  total: number;
  groups: GroupSummary[];
  /** Keys of groups that no longer have waits. */
  removed: string[];
}

export interface WaitPage {
  v: number;
  group: GroupSummary | null;
  offset: number;
  /** Waits in the group. */
  total: number;
  waits: WaitView[];
}

export interface WaitListOptions {
  describeOwner(ownerId: string): OwnerInfo;
  /** Sends a feed message (Node-RED: RED.comms.publish). */
  publish(feed: WaitFeed): void;
  /** Shortest time between two feed messages. */
  intervalMs?: number;
  now?: () => number;
  timers?: Timers;
}

export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 500;

interface Group {
  key: string;
  storeId: string;
  storeName: string;
  collection: string;
  members: Set<Entry>;
  rev: number;
  summary: GroupSummary | null;
}

/** What the list keeps per wait: its group and the facts its summary needs (the record is the triggerer's live one). */
interface Entry {
  waitId: string;
  record: Readonly<WaitRecord>;
  group: Group;
  state: WaitInfo['state'];
  retrying: boolean;
}

/** Touched waits applied per event-loop turn while a feed message is prepared. */
const SYNC_SLICE = 2000;
/**
 * Most touches a read applies at once (about 20 ms here): beyond that a read
 * answers from what is applied so far, and the feed brings the rest.
 */
const READ_SYNC_LIMIT = 20_000;

/** The group key of a store and a collection. */
export function groupKey(storeId: string, collection: string): string {
  return `${storeId}/${collection}`;
}

const unrefTimers: Timers = {
  setTimeout: (callback, ms) => {
    const timer = setTimeout(callback, ms);
    // A pending feed message never keeps a process alive on its own.
    timer.unref();
    return timer;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export class WaitList {
  private readonly describeOwner: (ownerId: string) => OwnerInfo;
  private readonly publish: (feed: WaitFeed) => void;
  private readonly intervalMs: number;
  private readonly now: () => number;
  private readonly timers: Timers;

  private source: WaitSource | null = null;
  private unwatch: (() => void) | null = null;
  /** Ids of the waits touched since they were last applied. */
  private readonly touched = new Set<string>();
  private readonly entries = new Map<string, Entry>();
  private readonly groupsByKey = new Map<string, Group>();
  private dirty = new Set<Group>();
  /** What the last feed messages said of each group (JSON), to send changes only. */
  private readonly published = new Map<string, string>();
  private version = 0;
  private lastPublishAt = -Infinity;
  private timer: unknown = null;
  /** A feed message is being prepared (touches applied in slices). */
  private flushing = false;
  /**
   * Nothing is kept per wait until the list is first read (the sidebar opened):
   * a runtime nobody watches pays no memory or time per wait for it. From then on
   * the list follows every change (a client following the feed does not read again).
   */
  private following = false;
  private closed = false;

  constructor(options: WaitListOptions) {
    this.describeOwner = options.describeOwner;
    this.publish = options.publish;
    this.intervalMs = options.intervalMs ?? 1000;
    this.now = options.now ?? Date.now;
    this.timers = options.timers ?? unrefTimers;
  }

  /** Follow a triggerer (null: none, e.g. it closed). Every wait it has is looked at afresh. */
  bind(source: WaitSource | null): void {
    if (source === this.source) return;
    this.unwatch?.();
    this.unwatch = null;
    this.source = source;
    // Everything known so far is gone (or comes back from the new source).
    for (const waitId of this.entries.keys()) this.touched.add(waitId);
    if (source) {
      this.unwatch = source.watch({
        touched: (record) => this.touch(record),
        closed: () => {
          if (this.source === source) this.bind(null);
        },
      });
      if (this.following) for (const record of source.allRecords()) this.touched.add(record.spec.waitId);
    }
    this.schedule();
  }

  /** The owners may have changed (a deploy: names, stores): look at every wait again. */
  refreshOwners(): void {
    for (const waitId of this.entries.keys()) this.touched.add(waitId);
    this.schedule();
  }

  /** Every group, by store name then collection, and the `v` of the last feed message. */
  groups(): { v: number; total: number; groups: GroupSummary[] } {
    this.follow();
    this.sync();
    const groups = [...this.groupsByKey.values()].map((g) => g.summary!).sort(compareGroups);
    return { v: this.version, total: this.entries.size, groups };
  }

  /** The group of a store and a collection, if it has waits. */
  group(storeId: string, collection: string): GroupSummary | null {
    this.follow();
    this.sync();
    return this.groupsByKey.get(groupKey(storeId, collection))?.summary ?? null;
  }

  /** Ids of the waits of a group. */
  waitIdsOf(storeId: string, collection: string): Set<string> {
    this.follow();
    this.sync();
    const ids = new Set<string>();
    for (const entry of this.groupsByKey.get(groupKey(storeId, collection))?.members ?? []) ids.add(entry.waitId);
    return ids;
  }

  /** One page of a group's waits, oldest first. */
  page(storeId: string, collection: string, offset = 0, limit = DEFAULT_PAGE_SIZE): WaitPage {
    this.follow();
    this.sync();
    const group = this.groupsByKey.get(groupKey(storeId, collection));
    const start = Math.max(0, Math.floor(offset));
    const size = Math.min(MAX_PAGE_SIZE, Math.max(1, Math.floor(limit)));
    const waits: WaitView[] = [];
    if (group) {
      let index = 0;
      for (const entry of group.members) {
        if (index++ < start) continue;
        if (waits.length >= size) break;
        const view = this.view(entry.waitId);
        if (view) waits.push(view);
      }
    }
    return { v: this.version, group: group?.summary ?? null, offset: start, total: group?.members.size ?? 0, waits };
  }

  /** One wait, or null. */
  view(waitId: string): WaitView | null {
    const info = this.source?.inspect(waitId);
    if (!info) return null;
    const { record } = info;
    const { spec } = record;
    const owner = this.describeOwner(record.ownerId);
    const last = spec.lastProgress;
    return {
      waitId: spec.waitId,
      nodeId: record.ownerId,
      nodeName: owner.nodeName,
      flowId: owner.flowId,
      store: { id: owner.storeId, name: owner.storeName },
      collection: spec.collection,
      state: info.state,
      durable: info.durable,
      progress: last?.progress ?? null,
      indexedCount: last?.indexedCount ?? 0,
      expectedCount: spec.expectedCount,
      phase: last?.phase ?? null,
      detail: last?.detail ?? null,
      etaSeconds: last?.etaSeconds ?? null,
      startedAt: spec.startedAt,
      deadline: spec.deadline,
      elapsedMs: Math.max(0, this.now() - spec.startedAt),
      polls: spec.polls,
      lastWarning: info.warning,
    };
  }

  /** Stop following the triggerer and drop the pending feed message. */
  close(): void {
    this.unwatch?.();
    this.unwatch = null;
    this.source = null;
    this.closed = true;
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
  }

  // -------------------------------------------------------------------------

  private touch(record: Readonly<WaitRecord>): void {
    if (!this.following) return;
    this.touched.add(record.spec.waitId);
    this.schedule();
  }

  /** The first read: from now on every wait is followed, starting with those there are. */
  private follow(): void {
    if (this.following) return;
    this.following = true;
    for (const record of this.source?.allRecords() ?? []) this.touched.add(record.spec.waitId);
  }

  /** The next feed message: now if the last one is older than the interval, else when it is. */
  private schedule(): void {
    if (this.timer !== null || this.flushing || this.closed) return;
    const delay = Math.max(0, this.lastPublishAt + this.intervalMs - this.now());
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      this.flushing = true;
      this.applySlices();
    }, delay);
  }

  /**
   * Apply the touches a slice per event-loop turn (100,000 waits polled at once
   * must not hold the loop), then send the message.
   */
  private applySlices(): void {
    if (this.closed) return;
    if (this.touched.size > SYNC_SLICE) {
      this.apply(SYNC_SLICE);
      setImmediate(() => this.applySlices());
      return;
    }
    this.flushing = false;
    this.flush();
  }

  private flush(): void {
    this.sync(SYNC_SLICE);
    const groups: GroupSummary[] = [];
    const removed: string[] = [];
    for (const [key, json] of this.published) {
      const group = this.groupsByKey.get(key);
      if (!group) {
        removed.push(key);
        this.published.delete(key);
      } else if (JSON.stringify(group.summary) !== json) {
        groups.push(group.summary!);
      }
    }
    for (const [key, group] of this.groupsByKey) if (!this.published.has(key)) groups.push(group.summary!);
    if (groups.length === 0 && removed.length === 0) return;
    for (const summary of groups) this.published.set(summary.key, JSON.stringify(summary));
    this.version += 1;
    this.lastPublishAt = this.now();
    this.publish({ v: this.version, total: this.entries.size, groups: groups.sort(compareGroups), removed });
    // Touched while the message was prepared: the next one, an interval later.
    if (this.touched.size > 0) this.schedule();
  }

  /** Apply the touches (up to `limit`), then summarise the groups that changed. */
  private sync(limit = READ_SYNC_LIMIT): void {
    this.apply(limit);
    if (this.dirty.size === 0) return;
    for (const group of this.dirty) {
      if (group.members.size === 0) {
        if (this.groupsByKey.get(group.key) === group) this.groupsByKey.delete(group.key);
      } else {
        group.summary = this.summarise(group);
      }
    }
    this.dirty = new Set();
  }

  /** Apply up to `limit` touches: each wait to its group (or out, when it is gone). */
  private apply(limit: number): void {
    if (this.touched.size === 0) return;
    // A few owners for many waits: describe each once per slice.
    const owners = new Map<string, OwnerInfo>();
    let done = 0;
    for (const waitId of this.touched) {
      if (done++ >= limit) break;
      this.touched.delete(waitId);
      this.place(waitId, owners);
    }
  }

  private place(waitId: string, owners: Map<string, OwnerInfo>): void {
    const entry = this.entries.get(waitId);
    const info = this.source?.inspect(waitId) ?? null;
    if (!info) {
      if (entry) {
        this.entries.delete(waitId);
        this.leave(entry);
      }
      return;
    }
    const { ownerId, spec } = info.record;
    let owner = owners.get(ownerId);
    if (!owner) owners.set(ownerId, (owner = this.describeOwner(ownerId)));
    let group = entry?.group;
    if (!group || group.storeId !== owner.storeId || group.collection !== spec.collection) {
      if (entry) this.leave(entry);
      group = this.groupFor(owner, spec.collection);
    }
    group.storeName = owner.storeName;
    const retrying = info.warning?.current ?? false;
    if (entry) {
      entry.record = info.record;
      entry.group = group;
      entry.state = info.state;
      entry.retrying = retrying;
      group.members.add(entry);
    } else {
      const added: Entry = { waitId, record: info.record, group, state: info.state, retrying };
      this.entries.set(waitId, added);
      group.members.add(added);
    }
    group.rev += 1;
    this.dirty.add(group);
  }

  private leave(entry: Entry): void {
    entry.group.members.delete(entry);
    entry.group.rev += 1;
    this.dirty.add(entry.group);
  }

  private groupFor(owner: OwnerInfo, collection: string): Group {
    const key = groupKey(owner.storeId, collection);
    let group = this.groupsByKey.get(key);
    if (!group) {
      group = { key, storeId: owner.storeId, storeName: owner.storeName, collection, members: new Set(), rev: 0, summary: null };
      this.groupsByKey.set(key, group);
    }
    return group;
  }

  private summarise(group: Group): GroupSummary {
    const summary: GroupSummary = {
      key: group.key,
      store: { id: group.storeId, name: group.storeName },
      collection: group.collection,
      count: group.members.size,
      running: 0,
      saving: 0,
      dormant: 0,
      delivering: 0,
      retrying: 0,
      indexedCount: 0,
      expectedCount: 0,
      progress: null,
      etaSeconds: null,
      oldestStartedAt: Infinity,
      rev: group.rev,
    };
    let progressSum = 0;
    let known = 0;
    for (const entry of group.members) {
      const { spec } = entry.record;
      summary[entry.state] += 1;
      if (entry.retrying) summary.retrying += 1;
      const last = spec.lastProgress;
      summary.expectedCount += spec.expectedCount;
      if (last) {
        summary.indexedCount += last.indexedCount;
        if (last.progress !== null) {
          progressSum += last.progress;
          known += 1;
        }
        if (last.etaSeconds !== null) summary.etaSeconds = Math.max(summary.etaSeconds ?? 0, last.etaSeconds);
      }
      if (spec.startedAt < summary.oldestStartedAt) summary.oldestStartedAt = spec.startedAt;
    }
    summary.progress = known > 0 ? progressSum / known : null;
    if (summary.oldestStartedAt === Infinity) summary.oldestStartedAt = 0;
    return summary;
  }
}

function compareGroups(a: GroupSummary, b: GroupSummary): number {
  if (a.store.name !== b.store.name) return a.store.name < b.store.name ? -1 : 1;
  if (a.store.id !== b.store.id) return a.store.id < b.store.id ? -1 : 1;
  return a.collection < b.collection ? -1 : a.collection > b.collection ? 1 : 0;
}
