/**
 * Chroma and the failure situations (a real `chroma run` server, started here).
 * - No cancelled or blocked build: Chroma indexes a write as part of it (a local
 *   server answers the write once its records are indexed), so there is no build to
 *   cancel or to hold up.
 * - No connection limit: the server speaks HTTP and sets no limit on clients.
 * - A second writer: another client (a second backend instance, as another Node-RED
 *   would be) adds rows to the same collection.
 */
import { ChromaBackend } from '../../../lib/backends/chroma';
import type { Backend } from '../../../lib/types';
import { startChromaServer, type ChromaServer } from '../../support/chroma-server';
import { rowsFrom, type StoreSituations } from './situation';

let server: ChromaServer | null = null;

function url(): string {
  if (!server) throw new Error('the Chroma situations were not started');
  return server.url;
}

export const situations: StoreSituations = {
  store: 'chroma',
  runsOn: 'a real Chroma server',
  budgetSeconds: 10,
  async start() {
    server = await startChromaServer();
  },
  async stop() {
    await server?.stop();
    server = null;
  },
  secondWriter: {
    how: 'another client of the same server',
    indexesOnWrite: true,
    async arrange() {
      const backend: Backend = new ChromaBackend({ url: url() });
      const other = new ChromaBackend({ url: url() });
      return {
        backend,
        async write(collection, from, count) {
          for (let done = 0; done < count; done += 1000) {
            await other.upsert(collection, rowsFrom(from + done, Math.min(1000, count - done)));
          }
        },
        async close() {
          await other.close();
          await backend.close();
        },
      };
    },
  },
};
