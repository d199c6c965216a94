/**
 * pgvector and the failure situations, on Postgres 18 + pgvector in PGlite (WebAssembly,
 * served over the wire protocol by its socket server, test/support/pglite-server.ts).
 *
 * - A cancelled build: PGlite cannot cancel a running statement (one WebAssembly session
 *   without signals or timers: statement_timeout and pg_cancel_backend have no effect
 *   there, checked). What reproduces there is the server ending the build with the error
 *   a cancel gives: an event trigger on CREATE INDEX raises SQLSTATE 57014 "canceling
 *   statement due to statement timeout". The real cancels (statement_timeout,
 *   pg_cancel_backend, pg_terminate_backend) are tested on PostgreSQL 15 through the build
 *   runner in test/lib/pgvector-builds.test.ts (PostgreSQL 15 has no pgvector, so not
 *   through the backend).
 * - No blocked build here: PGlite is one session, and its socket server runs the queries
 *   of the other clients only once a client's open transaction ends, so a lock held by
 *   another client holds every query (status polls too), not the build alone. A build
 *   waiting for a lock is tested on PostgreSQL 15 (build runner) in
 *   test/lib/pgvector-builds.test.ts.
 * - A connection limit: a PGlite server with maxConnections 1 behind a fault proxy
 *   (test/support/fault-proxy.ts). After the ingest, the proxy drops the backend's
 *   connections for a moment and another client takes the one slot, so the build (and
 *   the status polls) find no connection free; the backend's bounded wait
 *   (buildConnectWaitMs) is set to 3 s.
 * - A second writer: another client INSERTs rows into the collection's table, as
 *   another tool would.
 */
import pg from 'pg';
import { PgVectorBackend } from '../../../lib/backends/pgvector';
import { namesOf } from '../../../lib/backends/pgvector/sql';
import { FaultProxy } from '../../support/fault-proxy';
import { startPgliteServer, type PgliteServer } from '../../support/pglite-server';
import { rowsFrom, type StoreSituations } from './situation';

const SCHEMA = 'vector_pipeline';
/** The backend's bounded wait for a build's connection, short for the test. */
const CONNECT_WAIT_MS = 3000;
let server: PgliteServer | null = null;

function running(): PgliteServer {
  if (!server) throw new Error('the pgvector situations were not started');
  return server;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A client on `url` once the server accepts one (the socket server frees a slot a moment after a close). */
async function clientOnceAccepted(url: string, timeoutMs = 10_000): Promise<pg.Client> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const client = new pg.Client({ connectionString: url });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.query('SELECT 1');
      return client;
    } catch (err) {
      await client.end().catch(() => undefined);
      if (Date.now() > deadline) throw err;
      await sleep(20);
    }
  }
}

/** A collection name as an SQL string literal ('' doubled). */
function literal(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

export const situations: StoreSituations = {
  store: 'pgvector',
  runsOn: 'PGlite with pgvector',
  budgetSeconds: 30,
  async start() {
    server = await startPgliteServer();
  },
  async stop() {
    await server?.stop();
    server = null;
  },

  cancelledBuild: {
    how: 'an event trigger raising SQLSTATE 57014 at CREATE INDEX, as a statement_timeout would (PGlite cannot cancel a statement)',
    code: '57014',
    reason: /cancelled by the server \(SQLSTATE 57014: canceling statement due to statement timeout\)/,
    async arrange(collection) {
      const db = running();
      const trigger = `cancel_${collection}`;
      // The sequence counts the builds started: nextval is not rolled back with the failed statement.
      await db.exec(
        `CREATE SEQUENCE "${trigger}_builds";
         CREATE FUNCTION "${trigger}"() RETURNS event_trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF current_query() LIKE '%' || ${literal(namesOf(SCHEMA, collection).indexName)} || '%' THEN
             PERFORM nextval('"${trigger}_builds"');
             RAISE EXCEPTION 'canceling statement due to statement timeout' USING ERRCODE = 'query_canceled';
           END IF;
         END $$;
         CREATE EVENT TRIGGER "${trigger}" ON ddl_command_start WHEN TAG IN ('CREATE INDEX') EXECUTE FUNCTION "${trigger}"();`,
      );
      const backend = new PgVectorBackend({ connectionString: db.url });
      let removed = false;
      const removeCause = async () => {
        if (removed) return;
        removed = true;
        await db.exec(`DROP EVENT TRIGGER "${trigger}"; DROP FUNCTION "${trigger}"()`);
      };
      return {
        backend,
        async buildsStarted() {
          const client = await clientOnceAccepted(db.url);
          try {
            const { rows } = await client.query(`SELECT last_value, is_called FROM "${trigger}_builds"`);
            return rows[0].is_called ? Number(rows[0].last_value) : 0;
          } finally {
            await client.end();
          }
        },
        removeCause,
        async close() {
          await backend.close();
          await removeCause();
        },
      };
    },
  },

  connectionLimit: {
    how: 'maxConnections 1, held by another client',
    waitMs: CONNECT_WAIT_MS,
    waiting: /waiting for a free connection to start the index build/,
    reason: /no connection could be opened for the index build of "[^"]+\$hnsw" within 3 s/,
    async arrange(collection) {
      const single = await startPgliteServer({ maxConnections: 1 });
      const proxy = await FaultProxy.start({ port: single.port });
      const backend = new PgVectorBackend({
        connectionString: `postgres://postgres@127.0.0.1:${proxy.port}/postgres`,
        buildConnectWaitMs: CONNECT_WAIT_MS,
        buildRetryDelayMs: 200,
        callTimeoutMs: 2000,
      });
      let holder: pg.Client | null = null;
      const release = async () => {
        await holder?.end().catch(() => undefined);
        holder = null;
      };
      return {
        backend,
        async ingestAndHold(docs) {
          await backend.upsert(collection, docs, { buildIndex: true });
          // Before the build's first connection attempt reaches the server (no I/O has run
          // since the ingest returned): the backend's connections go, another client takes the slot.
          await proxy.setMode('drop');
          holder = await clientOnceAccepted(single.url);
          await proxy.setMode('pass');
        },
        release,
        async close() {
          await release();
          await backend.close();
          await proxy.stop();
          await single.stop();
        },
      };
    },
  },

  secondWriter: {
    how: 'another client INSERTing rows, as another tool would',
    indexesOnWrite: true,
    async arrange() {
      const db = running();
      const backend = new PgVectorBackend({ connectionString: db.url });
      return {
        backend,
        async write(collection, from, count) {
          const rows = rowsFrom(from, count);
          const client = await clientOnceAccepted(db.url);
          try {
            await client.query(
              `INSERT INTO ${namesOf(SCHEMA, collection).table} (id, embedding, text, metadata) ` +
                `SELECT * FROM unnest($1::text[], $2::vector[], $3::text[], $4::jsonb[])`,
              [
                rows.map((r) => r.id),
                rows.map((r) => `[${r.vector.join(',')}]`),
                rows.map((r) => r.text),
                rows.map((r) => JSON.stringify({ ...r.metadata, writer: 'other client' })),
              ],
            );
          } finally {
            await client.end();
          }
        },
        close: () => backend.close(),
      };
    },
  },
};
