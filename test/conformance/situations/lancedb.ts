/**
 * LanceDB and the failure situations (the real embedded @lancedb/lancedb in a
 * temporary directory; the other writer is a second Node.js process on the same
 * directory, test/support/lancedb-other-process.js).
 * - No cancelled build: LanceDB cancels nothing. Indexing is the backend's own
 *   optimize() in this process; a failed optimize (which needs a test double to
 *   happen here) stays in test/lib/lancedb-processes.test.ts.
 * - No connection limit: an embedded store opens files, not connections.
 * - A blocked build: LanceDB has no locks; what holds an optimize up is another
 *   process committing to the same table first (a "Retryable commit conflict"). The
 *   other process appends and optimizes in a loop while our side indexes its rows.
 * - A second writer: the other process appends rows.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LanceDbBackend } from '../../../lib/backends/lancedb';
import type { CollectionStatus } from '../../../lib/types';
import { lancedbOtherProcess } from '../../support/lancedb-second-process';
import { DIM, rowsFrom, type StoreSituations } from './situation';

let dir = '';

/** The table's index is created past 100 rows, so a few thousand rows exercise optimize(). */
function backend(): LanceDbBackend {
  return new LanceDbBackend({ path: dir, indexThreshold: 100 });
}

export const situations: StoreSituations = {
  store: 'lancedb',
  runsOn: 'real LanceDB and a second process',
  budgetSeconds: 60,
  async start() {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'situations-lancedb-'));
  },
  async stop() {
    await fs.rm(dir, { recursive: true, force: true });
  },
  blockedBuild: {
    how: 'another process optimizing the same table (commit conflicts)',
    waitsFor: /another process is optimizing this table; retrying$/,
    async arrange(collection) {
      const b = backend();
      return {
        backend: b,
        async blockWhile(poll: () => Promise<CollectionStatus>, seen: () => boolean) {
          let total = (await b.status(collection)).documentCount;
          // Each round: rows of ours to index, while the other process appends and optimizes 30
          // times. About one optimize in three collides here; at most 6 rounds.
          for (let round = 0; round < 6 && !seen(); round++) {
            await b.upsert(collection, rowsFrom(total, 500), { buildIndex: false });
            total += 500;
            let otherDone = false;
            const other = lancedbOtherProcess('optimize', dir, collection, 30, 200, DIM, 1_000_000 + round * 10_000).finally(
              () => (otherDone = true),
            );
            while (!otherDone) {
              await poll();
              await new Promise((resolve) => setTimeout(resolve, 10));
            }
            await other;
            total += 30 * 200;
          }
          return total;
        },
        close: () => b.close(),
      };
    },
  },
  secondWriter: {
    how: 'a second process appending to the same directory',
    indexesOnWrite: false,
    async arrange() {
      const b = backend();
      return {
        backend: b,
        async write(collection, from, count) {
          const result = await lancedbOtherProcess('append', dir, collection, from, count, DIM);
          if (result.appended !== count) throw new Error(`the other process appended ${String(result.appended)} rows, not ${count}`);
        },
        close: () => b.close(),
      };
    },
  },
};
