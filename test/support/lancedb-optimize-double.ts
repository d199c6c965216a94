// A test double around the real @lancedb/lancedb: every table's optimize() goes
// through a function of the test's (which may fail it, hold it, move an injected
// clock, or just run it), and so may createIndex(). Everything else is the real package.
import type { LanceDbModules } from '../../lib/backends/lancedb';
import { requireLanceDb } from '../../lib/backends/lancedb/modules';

export type Optimize = () => Promise<unknown>;
/** createIndex as the test sees it: the indexed column, and the real call. */
export type CreateIndex = (column: string, create: () => Promise<void>) => Promise<void>;

export function optimizeThrough(wrap: (optimize: Optimize) => Promise<unknown>, wrapCreateIndex?: CreateIndex): LanceDbModules {
  const real = requireLanceDb();
  type Connection = InstanceType<typeof real.lancedb.Connection>;
  type Table = Awaited<ReturnType<Connection['openTable']>>;
  const patched = (table: Table): Table => {
    const optimize = table.optimize.bind(table);
    table.optimize = ((options?: Parameters<Table['optimize']>[0]) => wrap(() => optimize(options))) as Table['optimize'];
    if (wrapCreateIndex) {
      const createIndex = table.createIndex.bind(table);
      table.createIndex = ((column: string, options?: Parameters<Table['createIndex']>[1]) =>
        wrapCreateIndex(column, () => createIndex(column, options))) as Table['createIndex'];
    }
    return table;
  };
  const connect = (async (...args: unknown[]) => {
    const connection = await (real.lancedb.connect as (...a: unknown[]) => Promise<Connection>)(...args);
    const openTable = connection.openTable.bind(connection);
    const createEmptyTable = connection.createEmptyTable.bind(connection);
    connection.openTable = (async (...a: Parameters<typeof openTable>) => patched(await openTable(...a))) as typeof openTable;
    connection.createEmptyTable = (async (...a: Parameters<typeof createEmptyTable>) =>
      patched(await createEmptyTable(...a))) as typeof createEmptyTable;
    return connection;
  }) as typeof real.lancedb.connect;
  return { arrow: real.arrow, lancedb: { ...real.lancedb, connect } };
}

/** The real package, counting the background index work: optimize() runs, and createIndex() calls by column. */
export function countingIndexWork(): { modules: LanceDbModules; counts: { optimize: number; createIndex: Record<string, number> } } {
  const counts = { optimize: 0, createIndex: {} as Record<string, number> };
  const modules = optimizeThrough(
    (optimize) => {
      counts.optimize += 1;
      return optimize();
    },
    (column, create) => {
      counts.createIndex[column] = (counts.createIndex[column] ?? 0) + 1;
      return create();
    },
  );
  return { modules, counts };
}

/** A gate an optimize() can wait at: `entered` resolves when one arrives, `open()` lets it (and later ones) through. */
export class Gate {
  closed = false;
  private waiting: (() => void)[] = [];
  private arrived: (() => void)[] = [];

  /** Resolves when the next optimize() reaches the closed gate. */
  entered(): Promise<void> {
    return new Promise((resolve) => this.arrived.push(resolve));
  }

  async pass(): Promise<void> {
    if (!this.closed) return;
    for (const resolve of this.arrived.splice(0)) resolve();
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  open(): void {
    this.closed = false;
    for (const resolve of this.waiting.splice(0)) resolve();
  }
}
