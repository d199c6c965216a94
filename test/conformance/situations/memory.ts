/**
 * The memory backend and the failure situations: it has none of them.
 * - No cancelled or blocked build, no connection limit: its indexing is a simulation,
 *   an exact function of time and of the acknowledged writes, in this process; nothing
 *   can cancel it, lock it or refuse it a connection.
 * - No second writer: a collection's data file belongs to the one process that writes
 *   it (another process's writes are never read back; two instances in one process
 *   share one store, which is one writer).
 */
import type { StoreSituations } from './situation';

export const situations: StoreSituations = {
  store: 'memory',
  runsOn: 'the embedded store',
  budgetSeconds: 5,
  async start() {},
  async stop() {},
};
