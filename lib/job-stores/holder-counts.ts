/**
 * Who holds the shared waits (PostgresJobStore.holderCounts), read for the
 * Vector waits sidebar and for the status of every sensor node: many callers,
 * every few seconds. This cache makes them cost one grouped query at most every
 * `maxAgeMs` (3 s) per runtime, with at most one in flight: a query reads the
 * owners every recent caller asked about, so the next callers find theirs in it.
 */

/** Waits of one owner (sensor node) on one collection held by one instance (`holder`), or by none (null). */
export interface HolderCount {
  ownerId: string;
  collection: string;
  /** The instance holding a live lease (`<host>:<pid>:<8 hex>`); null: nobody holds them now. */
  holder: string | null;
  count: number;
}

export interface HolderCountsOptions {
  read(ownerIds: string[]): Promise<HolderCount[]>;
  /** How long an answer serves (from when its query started). */
  maxAgeMs?: number;
  now?: () => number;
}

export const HOLDER_COUNTS_MAX_AGE_MS = 3_000;

interface Read {
  startedAt: number;
  owners: ReadonlySet<string>;
  result: Promise<HolderCount[]>;
  settled: boolean;
}

export class HolderCounts {
  private readonly read: HolderCountsOptions['read'];
  private readonly maxAgeMs: number;
  private readonly now: () => number;
  private last: Read | null = null;
  /** Owners by when they were last asked about: a query reads all those asked about lately. */
  private readonly asked = new Map<string, number>();

  constructor(options: HolderCountsOptions) {
    this.read = options.read;
    this.maxAgeMs = options.maxAgeMs ?? HOLDER_COUNTS_MAX_AGE_MS;
    this.now = options.now ?? Date.now;
  }

  /** The counts of these owners: from an answer younger than maxAgeMs, the query in flight, or a new query. */
  async get(ownerIds: readonly string[]): Promise<HolderCount[]> {
    const now = this.now();
    for (const id of ownerIds) this.asked.set(id, now);
    const last = this.last;
    let read: Read;
    if (last && now - last.startedAt < this.maxAgeMs && ownerIds.every((id) => last.owners.has(id))) {
      read = last;
    } else if (last && !last.settled) {
      // One query at a time: wait for it, then look again (it may hold what we need).
      await last.result.catch(() => undefined);
      return this.get(ownerIds);
    } else {
      read = this.start(now);
    }
    const wanted = new Set(ownerIds);
    return (await read.result).filter((row) => wanted.has(row.ownerId));
  }

  private start(now: number): Read {
    // Owners nobody asked about for a while (a deleted node, a closed sidebar) are read no more.
    for (const [id, at] of this.asked) if (now - at > 4 * this.maxAgeMs) this.asked.delete(id);
    const owners = new Set(this.asked.keys());
    const read: Read = { startedAt: now, owners, result: this.read([...owners]), settled: false };
    const settle = (): void => {
      read.settled = true;
    };
    read.result.then(settle, settle); // also marks a failure as handled: each caller gets it
    this.last = read;
    return read;
  }
}

/** `<host>:<pid>:<8 hex>`, as nodes/shared/runtime.ts names an instance. */
const INSTANCE_NAME = /^(.+):(\d+):([0-9a-f]{8})$/;

/**
 * A short readable name of an instance: its host name ("host-b"); "host-b:1234"
 * when another of `among` runs on a host of the same name (two processes on one
 * machine); the whole name when even the process ids agree (containers whose
 * host names and pids are alike). A name of another form is shown as it is.
 */
export function shortHolder(name: string, among: Iterable<string | null> = []): string {
  const parts = INSTANCE_NAME.exec(name);
  if (!parts) return name;
  const [, host, pid] = parts;
  let sameHost = false;
  for (const other of among) {
    if (other === null || other === name) continue;
    const theirs = INSTANCE_NAME.exec(other);
    if (!theirs || theirs[1] !== host) continue;
    if (theirs[2] === pid) return name;
    sameHost = true;
  }
  return sameHost ? `${host}:${pid}` : host;
}
