/**
 * The collections of one data directory (or volatile key), shared in the process:
 * several backend instances on the same directory share one in-memory state and
 * one writer per file.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { VectorStoreError } from '../../errors';
import { AppendLog, tempFileTarget } from '../../storage/append-log';
import type { Metric } from '../../types';
import { COLLECTION_NAME_MAX_LENGTH, COLLECTION_NAME_PATTERN } from '../collection-name';
import { MemoryCollection } from './collection';
import { loadCollection, storageError, type LogRecord } from './storage';

/** Where a store is kept: a data directory, or a volatile key (in-process only), or neither (private). */
export interface StoreLocation {
  dataDir: string | null;
  volatileKey?: string;
}

const COLLECTION_FILE_SUFFIX = '.jsonl';

function collectionNameOf(fileName: string): string | null {
  if (!fileName.endsWith(COLLECTION_FILE_SUFFIX)) return null;
  const name = fileName.slice(0, -COLLECTION_FILE_SUFFIX.length);
  return name.length <= COLLECTION_NAME_MAX_LENGTH && COLLECTION_NAME_PATTERN.test(name) ? name : null;
}

export class CollectionStore {
  /** Backend instances using this store. */
  users = 0;
  private readonly collections = new Map<string, MemoryCollection>();
  /** Loads and creations in progress: concurrent first uses share one promise. */
  private readonly opening = new Map<string, Promise<MemoryCollection | null>>();
  private namesOnDisk: Promise<Set<string>> | null = null;
  /**
   * Files that cannot be loaded until someone fixes them (a directory in their
   * place, a lost create record): not read again (nor their damage copied aside
   * again) at every status poll. Transient errors are not kept.
   */
  private readonly unloadable = new Map<string, Error>();
  /** Where damaged files are reported: the log of the latest backend that gave one. */
  warn: (message: string) => void = () => undefined;

  constructor(
    readonly dataDir: string | null,
    /** The previous store on this directory, still flushing its logs. */
    private readonly previousClose: Promise<void>,
  ) {}

  describe(): string {
    return this.dataDir ? `memory store (saved in ${this.dataDir})` : 'memory store (kept in memory, not persisted)';
  }

  /** The collection, loading it from disk on first use; null if it does not exist. */
  get(name: string, now: () => number): Promise<MemoryCollection | null> {
    const known = this.collections.get(name);
    if (known) return Promise.resolve(known);
    const opening = this.opening.get(name);
    if (opening) return opening;
    const unloadable = this.unloadable.get(name);
    if (unloadable) return Promise.reject(unloadable);
    if (!this.dataDir) return Promise.resolve(null);
    return this.track(name, this.load(name, now));
  }

  /** The collection, created (and its create record made durable) if it does not exist. */
  async create(name: string, dimensions: number, metric: Metric, now: () => number): Promise<MemoryCollection> {
    for (;;) {
      const existing = await this.get(name, now);
      if (existing) return existing;
      // Another caller may have started creating it while we waited: then share its promise.
      if (this.collections.has(name) || this.opening.has(name)) continue;
      const created = await this.track(name, this.createNew(name, dimensions, metric, now()));
      if (created) return created;
    }
  }

  /** Stop building HNSW indexes: with no user left, nothing searches them. A search later goes on. */
  pauseIndexing(): void {
    for (const collection of this.collections.values()) collection.pauseIndexing();
  }

  /** Wait for loads in progress, then flush and release every file. Never rejects. */
  async close(): Promise<void> {
    this.pauseIndexing();
    await this.previousClose; // so a chain of quick reopen/close still ends after the first flush
    await Promise.allSettled([...this.opening.values()]);
    this.pauseIndexing(); // collections loaded meanwhile
    await Promise.allSettled([...this.collections.values()].map((c) => c.log?.close()));
  }

  private track(name: string, promise: Promise<MemoryCollection | null>): Promise<MemoryCollection | null> {
    this.opening.set(name, promise);
    const forget = () => {
      if (this.opening.get(name) === promise) this.opening.delete(name);
    };
    promise.then(forget, forget);
    return promise;
  }

  private fileOf(name: string): string {
    return path.join(this.dataDir as string, `${name}.jsonl`);
  }

  private async load(name: string, now: () => number): Promise<MemoryCollection | null> {
    const names = await this.listNamesOnDisk();
    if (!names.has(name)) return null;
    let collection: MemoryCollection | null;
    try {
      collection = await loadCollection(name, this.fileOf(name), now(), this.warn);
    } catch (err) {
      if (err instanceof VectorStoreError && !err.transient) this.unloadable.set(name, err);
      throw err;
    }
    if (collection) this.collections.set(name, collection);
    return collection;
  }

  private async createNew(name: string, dimensions: number, metric: Metric, createdAt: number): Promise<MemoryCollection> {
    const log = this.dataDir ? new AppendLog<LogRecord>(this.fileOf(name)) : null;
    const collection = new MemoryCollection(name, dimensions, metric, createdAt, log);
    if (log) {
      try {
        await log.append({ type: 'create', dimensions, metric, createdAt });
      } catch (err) {
        await log.close().catch(() => undefined);
        throw storageError(err, `create collection "${name}" in ${log.file}`);
      }
    }
    this.collections.set(name, collection);
    return collection;
  }

  /** Collections are discovered once per store by listing the directory. */
  private listNamesOnDisk(): Promise<Set<string>> {
    if (!this.namesOnDisk) {
      this.namesOnDisk = this.readNames();
      this.namesOnDisk.catch(() => {
        this.namesOnDisk = null; // let the next use try again
      });
    }
    return this.namesOnDisk;
  }

  /**
   * Runs before this store loads or writes anything: the temp files of
   * collection files found now were left by a compaction killed mid-way.
   */
  private async readNames(): Promise<Set<string>> {
    await this.previousClose;
    const dir = this.dataDir as string;
    let entries: string[];
    try {
      entries = await fs.readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Set();
      throw storageError(err, `list the collections in ${dir}`);
    }
    const names = new Set<string>();
    for (const entry of entries) {
      const name = collectionNameOf(entry);
      if (name !== null) {
        names.add(name);
        continue;
      }
      const target = tempFileTarget(entry);
      if (target !== null && collectionNameOf(target) !== null) await fs.rm(path.join(dir, entry), { force: true }).catch(() => undefined);
    }
    return names;
  }
}

/** Stores in use, by "dir:<absolute path>" or "volatile:<key>". */
const stores = new Map<string, CollectionStore>();
/** Persisted stores whose last user closed, still flushing: a reopen waits for them. */
const closingStores = new Map<string, Promise<void>>();

export function storeKey(options: StoreLocation): { key: string | null; dataDir: string | null } {
  if (options.dataDir !== null) {
    const dataDir = path.resolve(options.dataDir);
    return { key: `dir:${dataDir}`, dataDir };
  }
  return { key: options.volatileKey === undefined ? null : `volatile:${options.volatileKey}`, dataDir: null };
}

export function acquireStore(key: string | null, dataDir: string | null): CollectionStore {
  let store = key === null ? undefined : stores.get(key);
  if (!store) {
    store = new CollectionStore(dataDir, (key !== null && closingStores.get(key)) || Promise.resolve());
    if (key !== null) stores.set(key, store);
  }
  store.users += 1;
  return store;
}

export async function releaseStore(key: string | null, store: CollectionStore): Promise<void> {
  store.users -= 1;
  if (store.users > 0) return;
  // Volatile collections outlive their users: a redeploy must still find them.
  // `forgetVolatileCollections` drops them when the config node is deleted.
  if (store.dataDir === null && key !== null) {
    store.pauseIndexing();
    return;
  }
  if (key !== null && stores.get(key) === store) stores.delete(key);
  const closing = store.close();
  if (key !== null) closingStores.set(key, closing);
  await closing;
  if (key !== null && closingStores.get(key) === closing) closingStores.delete(key);
}

/**
 * Drop the in-process collections kept under `volatileKey` (call it when the config
 * node is deleted, not merely redeployed). Does nothing while a backend still uses them.
 */
export function forgetVolatileCollections(volatileKey: string): void {
  const key = `volatile:${volatileKey}`;
  const store = stores.get(key);
  if (store && store.users === 0) {
    store.pauseIndexing();
    stores.delete(key);
  }
}
