// A test double around the real @lancedb/lancedb: every table's optimize() goes
// through a function of the test's (which may fail it, hold it, move an injected
// clock, or just run it). Everything else is the real package.
import type { LanceDbModules } from '../../lib/backends/lancedb';
import { requireLanceDb } from '../../lib/backends/lancedb/modules';

export type Optimize = () => Promise<unknown>;

export function optimizeThrough(wrap: (optimize: Optimize) => Promise<unknown>): LanceDbModules {
  const real = requireLanceDb();
  type Connection = InstanceType<typeof real.lancedb.Connection>;
  type Table = Awaited<ReturnType<Connection['openTable']>>;
  const patched = (table: Table): Table => {
    const optimize = table.optimize.bind(table);
    table.optimize = ((options?: Parameters<Table['optimize']>[0]) => wrap(() => optimize(options))) as Table['optimize'];
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
