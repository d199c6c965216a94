/**
 * One LanceDB connection per directory, shared process-wide.
 *
 * Every `LanceDbBackend` on the same directory (two config nodes, or the old and
 * new instance around a redeploy) shares one `SharedDatabase`: one connection,
 * one `Table` object per collection, one write queue and one background
 * `IndexMaintenance` per table. That keeps writes and `optimize()` of a table
 * from racing each other within the process. Other processes on the same
 * directory are seen (the connection checks for their commits before every
 * read); their optimize() may collide with ours, which IndexMaintenance retries.
 *
 * A collection is a table `<name>.lance` in the directory with the schema
 * id (utf8), vector (fixed-size list of float32), text (utf8, nullable),
 * metadata (JSON text, nullable); its metric is kept in the schema metadata.
 * Any other table of the directory can be opened to be read only (`getOther`,
 * see ./foreign.ts).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type * as LanceDb from '@lancedb/lancedb';
import { VectorStoreError, messageOf } from '../../errors';
import type { Metric } from '../../types';
import { storeError } from './errors';
import { ForeignBacklog, METRIC_KEY } from './foreign';
import { KnownIds } from './known-ids';
import { type CatchUpSchedule, IndexMaintenance, SerialQueue, VECTOR_COLUMN } from './maintenance';
import { type LanceDbLoader, type LanceDbModules, loadLanceDb } from './modules';

/** Seconds between checks for other writers' commits: 0 = before every read (strong consistency). */
const READ_CONSISTENCY_SECONDS = 0;
const METRICS: readonly Metric[] = ['cosine', 'l2', 'dot'];

/** A collection's table and what goes with it. */
export interface CollectionTable {
  name: string;
  table: LanceDb.Table;
  dimensions: number;
  metric: Metric;
  /** Writes of this table, one at a time (so that a write's view of the ids holds until it commits). */
  writes: SerialQueue;
  /**
   * Held by background index work and by the writes that may touch stored rows (merges,
   * deletes), which would otherwise race an optimize() to a commit conflict. A write of new
   * ids (an append, which LanceDB commits beside a compaction or an index build) skips it.
   */
  queue: SerialQueue;
  maintenance: IndexMaintenance;
  /** The table's ids as this process last read or wrote them: tells a write of new ids from an update. */
  knownIds: KnownIds;
}

export interface DatabaseSettings {
  loader: LanceDbLoader;
  /** Rows a table needs before its vector index is created. */
  indexThreshold: number;
  now: () => number;
  /** When background index work runs. */
  catchUp: CatchUpSchedule;
}

/** A table of another tool, opened to be read (see ./foreign.ts). */
export interface OtherTable {
  name: string;
  table: LanceDb.Table;
  /** What status saw of its unindexed rows, for an ETA. */
  backlog: ForeignBacklog;
}

interface Connected {
  modules: LanceDbModules;
  connection: LanceDb.Connection;
}

export class SharedDatabase {
  users = 0;
  private connecting: Promise<Connected> | null = null;
  /** Tables opened or being opened/created; a name that turned out not to exist is not kept. */
  private readonly tables = new Map<string, Promise<CollectionTable | null>>();
  /** Tables of other tools opened to be read, by name; a name that turned out not to exist is not kept. */
  private readonly otherTables = new Map<string, Promise<OtherTable | null>>();

  constructor(
    readonly dir: string,
    private readonly settings: DatabaseSettings,
    /** The previous database on this directory, still finishing its background work. */
    private readonly previousClose: Promise<void>,
  ) {}

  /** Rows a table needs before its vector index is created (the first user's setting). */
  get indexThreshold(): number {
    return this.settings.indexThreshold;
  }

  /** Epoch ms (the first user's clock). */
  now(): number {
    return this.settings.now();
  }

  /** The collection's table, or null if it does not exist. */
  get(name: string): Promise<CollectionTable | null> {
    return this.tables.get(name) ?? this.track(name, this.open(name));
  }

  /** The collection's table, created if it does not exist (with these dimensions and metric). */
  async create(name: string, dimensions: number, metric: Metric): Promise<CollectionTable> {
    for (;;) {
      const existing = await this.get(name);
      if (existing) return existing;
      // Someone may have started creating it while we looked: then share their promise.
      if (this.tables.has(name)) continue;
      const created = await this.track(name, this.createNew(name, dimensions, metric));
      if (created) return created;
    }
  }

  /**
   * Any table of the directory, opened to be read only (a table another tool
   * made, or one of the package's named by an ExistingCollection), or null if
   * there is none of that name. `name` must already follow LanceDB's rule.
   */
  getOther(name: string): Promise<OtherTable | null> {
    let found = this.otherTables.get(name);
    if (!found) {
      const opening = this.openOther(name);
      found = opening;
      this.otherTables.set(name, opening);
      const forgetIfMissing = (t: OtherTable | null) => {
        if (!t && this.otherTables.get(name) === opening) this.otherTables.delete(name);
      };
      opening.then(forgetIfMissing, () => forgetIfMissing(null));
    }
    return found;
  }

  /** Close a table of another tool and forget it (it was dropped, say): the next call opens it again. */
  forgetOther(other: OtherTable): void {
    void this.otherTables.get(other.name)?.then((t) => {
      if (t !== other) return;
      this.otherTables.delete(other.name);
      try {
        other.table.close();
      } catch {
        // already closed
      }
    });
  }

  /** Wait for background work, then release every table and the connection. Never rejects. */
  async close(): Promise<void> {
    await this.previousClose;
    const settled = await Promise.allSettled([...this.tables.values()]);
    const opened = settled.flatMap((s) => (s.status === 'fulfilled' && s.value ? [s.value] : []));
    await Promise.allSettled(opened.map((t) => t.maintenance.stop()));
    const others = (await Promise.allSettled([...this.otherTables.values()])).flatMap((s) =>
      s.status === 'fulfilled' && s.value ? [s.value] : [],
    );
    this.otherTables.clear();
    for (const t of [...opened, ...others]) {
      try {
        t.table.close();
      } catch {
        // already closed
      }
    }
    const connected = await this.connecting?.catch(() => null);
    try {
      connected?.connection.close();
    } catch {
      // already closed
    }
  }

  private track(name: string, promise: Promise<CollectionTable | null>): Promise<CollectionTable | null> {
    this.tables.set(name, promise);
    const forgetIfMissing = (table: CollectionTable | null) => {
      if (!table && this.tables.get(name) === promise) this.tables.delete(name);
    };
    promise.then(forgetIfMissing, () => forgetIfMissing(null));
    return promise;
  }

  /** Load the package and connect, once; a failure is not kept, so a later call tries again. */
  private connect(): Promise<Connected> {
    if (!this.connecting) {
      this.connecting = (async () => {
        await this.previousClose;
        const modules = loadLanceDb(this.settings.loader);
        await this.makeDirectory();
        try {
          // 0: every read checks for versions committed by another process (another
          // Node-RED, a script) first - a cheap stat of the table's manifest locally.
          // Without it, a table only ever sees this process's own commits.
          const connection = await modules.lancedb.connect(this.dir, { readConsistencyInterval: READ_CONSISTENCY_SECONDS });
          return { modules, connection };
        } catch (err) {
          throw storeError(err, `open the directory ${this.dir}`, this.dir);
        }
      })();
      this.connecting.catch(() => {
        this.connecting = null;
      });
    }
    return this.connecting;
  }

  /** Create the directory if needed; a path that cannot be a directory is a configuration error. */
  private async makeDirectory(): Promise<void> {
    try {
      await fs.mkdir(this.dir, { recursive: true });
    } catch (err) {
      throw new VectorStoreError(
        'INVALID_INPUT',
        `The LanceDB store cannot use ${this.dir} as its directory (${messageOf(err)}). Make it a directory ` +
          'Node-RED may write to, or choose another Path in the vector-store configuration.',
        { cause: err },
      );
    }
  }

  private async open(name: string): Promise<CollectionTable | null> {
    const { modules, connection } = await this.connect();
    let table: LanceDb.Table;
    try {
      if (!(await connection.tableNames()).includes(name)) return null;
      table = await connection.openTable(name);
    } catch (err) {
      throw storeError(err, `open collection "${name}"`, this.dir);
    }
    return this.describe(modules, name, table);
  }

  private async openOther(name: string): Promise<OtherTable | null> {
    const { connection } = await this.connect();
    try {
      if (!(await connection.tableNames()).includes(name)) return null;
      return { name, table: await connection.openTable(name), backlog: new ForeignBacklog() };
    } catch (err) {
      throw storeError(err, `open table "${name}"`, this.dir);
    }
  }

  private async createNew(name: string, dimensions: number, metric: Metric): Promise<CollectionTable> {
    const { modules, connection } = await this.connect();
    const { arrow } = modules;
    const schema = new arrow.Schema(
      [
        new arrow.Field('id', new arrow.Utf8(), false),
        new arrow.Field(VECTOR_COLUMN, new arrow.FixedSizeList(dimensions, new arrow.Field('item', new arrow.Float32(), true)), false),
        new arrow.Field('text', new arrow.Utf8(), true),
        new arrow.Field('metadata', new arrow.Utf8(), true),
      ],
      new Map([[METRIC_KEY, metric]]),
    );
    let table: LanceDb.Table;
    try {
      table = await connection.createEmptyTable(name, schema, { mode: 'create' });
    } catch (err) {
      // Created meanwhile by another process: use it (its dimensions are checked by the caller).
      if (!/already exists/i.test(String(err))) throw storeError(err, `create collection "${name}"`, this.dir);
      table = await connection.openTable(name).catch((e: unknown) => {
        throw storeError(e, `open collection "${name}"`, this.dir);
      });
    }
    return this.describe(modules, name, table);
  }

  /** Read dimensions and metric from the table's schema, refusing tables this package did not create. */
  private async describe(modules: LanceDbModules, name: string, table: LanceDb.Table): Promise<CollectionTable> {
    const schema = await table.schema().catch((err: unknown) => {
      throw storeError(err, `read the schema of collection "${name}"`, this.dir);
    });
    const typeOf = (column: string) => String(schema.fields.find((f) => f.name === column)?.type ?? 'missing');
    const vectorType = /^FixedSizeList\[(\d+)\]<Float32>$/.exec(typeOf(VECTOR_COLUMN));
    if (typeOf('id') !== 'Utf8' || !vectorType || typeOf('text') !== 'Utf8' || typeOf('metadata') !== 'Utf8') {
      table.close();
      throw new VectorStoreError(
        'INVALID_INPUT',
        `The LanceDB table "${name}" in ${this.dir} was not created by this package: it needs the columns id (text), ` +
          'vector (float32 list), text and metadata (text). Use another collection name or another Path; to watch a table ' +
          `another tool made, name it as an object: {"name": "${name}"}.`,
      );
    }
    const storedMetric = schema.metadata.get(METRIC_KEY) as Metric | undefined;
    const metric = storedMetric && METRICS.includes(storedMetric) ? storedMetric : 'cosine';
    const queue = new SerialQueue();
    const knownIds = new KnownIds(table);
    const maintenance = new IndexMaintenance({
      knownIds,
      table,
      lancedb: modules.lancedb,
      metric,
      queue,
      threshold: this.settings.indexThreshold,
      now: this.settings.now,
      schedule: this.settings.catchUp,
    });
    return { name, table, dimensions: Number(vectorType[1]), metric, writes: new SerialQueue(), queue, maintenance, knownIds };
  }
}

// ---------------------------------------------------------------------------
// The process-wide registry
// ---------------------------------------------------------------------------

/** Databases in use, by absolute directory. */
const databases = new Map<string, SharedDatabase>();
/** Databases whose last user closed, still finishing: a reopen waits for them. */
const closingDatabases = new Map<string, Promise<void>>();

/** The shared database of a directory; the first user's settings apply to all. */
export function acquireDatabase(dir: string, settings: DatabaseSettings): SharedDatabase {
  const key = path.resolve(dir);
  let database = databases.get(key);
  if (!database) {
    database = new SharedDatabase(key, settings, closingDatabases.get(key) ?? Promise.resolve());
    databases.set(key, database);
  }
  database.users += 1;
  return database;
}

/** Release one use; the last user closes the database (after its background work). */
export async function releaseDatabase(database: SharedDatabase): Promise<void> {
  database.users -= 1;
  if (database.users > 0) return;
  const key = database.dir;
  if (databases.get(key) === database) databases.delete(key);
  const closing = database.close();
  closingDatabases.set(key, closing);
  await closing;
  if (closingDatabases.get(key) === closing) closingDatabases.delete(key);
}
