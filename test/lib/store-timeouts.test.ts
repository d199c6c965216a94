// Every store call has a deadline (the runtime setting storeTimeout), whatever the
// store does: a server that accepts connections and never answers (pgvector,
// Chroma), a table locked by another session (a real PostgreSQL 15 server), an
// embedded store slower than the deadline (LanceDB), and, for the wrapper itself,
// a stand-in backend that never answers.
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import should from 'should';
import pg from 'pg';
import { createBackend } from '../../lib/backends';
import { ChromaBackend } from '../../lib/backends/chroma';
import { PgVectorBackend } from '../../lib/backends/pgvector';
import { connectionConfig, parseConnectionString } from '../../lib/backends/pgvector/connection';
import { withCallTimeouts } from '../../lib/backends/timeouts';
import { parseStoreConfig } from '../../lib/schemas';
import type { Backend } from '../../lib/types';
import { startBlackholeProxy, startBlackholeServer, type Blackhole } from '../support/blackhole';
import { rejectsWith } from '../support/errors';
import { startPgliteServer } from '../support/pglite-server';
import { POSTGRES_MISSING, postgresBinaries, startPostgresServer, type PostgresServer } from '../support/postgres-server';

const TIMEOUT_MS = 500;
/** Far below the default of 10 s, far above 500 ms: no tight timing assertion. */
const WELL_BEFORE_DEFAULT_MS = 5_000;

const doc = (id: string) => ({ id, vector: [0.1, 0.2, 0.3, 0.4], text: id, metadata: {} });

/** Run the call; expect TIMEOUT (transient) well before the default of 10 s; returns the message. */
async function timesOut(call: () => Promise<unknown>): Promise<string> {
  const started = Date.now();
  const err = await rejectsWith(call(), 'TIMEOUT', true);
  should(Date.now() - started).be.below(WELL_BEFORE_DEFAULT_MS);
  return err.message;
}

function pgBackendAt(port: number, options: Partial<ConstructorParameters<typeof PgVectorBackend>[0]> = {}): PgVectorBackend {
  return new PgVectorBackend({ connectionString: `postgres://postgres@127.0.0.1:${port}/postgres`, callTimeoutMs: TIMEOUT_MS, ...options });
}

describe('store call timeouts', function () {
  this.timeout(30_000);
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    // Bounded: when a test failed because a call hung, its clean-up may hang too; report, do not stall.
    for (const cleanup of cleanups.splice(0).reverse()) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([cleanup().catch(() => undefined), new Promise((resolve) => (timer = setTimeout(resolve, 5_000)))]);
      clearTimeout(timer);
    }
  });
  const blackhole = async (): Promise<Blackhole> => {
    const server = await startBlackholeServer();
    cleanups.push(() => server.stop());
    return server;
  };
  const closing = <B extends Backend>(backend: B): B => {
    cleanups.push(() => backend.close());
    return backend;
  };

  describe('pgvector against a blackholed server (connection accepted, no answer)', () => {
    it('status, stats, query, upsert and collectionExists reject with TIMEOUT naming the store, the collection and what timed out', async () => {
      const server = await blackhole();
      const backend = closing(pgBackendAt(server.port));
      const status = await timesOut(() => backend.status('docs'));
      should(status).match(/pgvector store at 127\.0\.0\.1:\d+\/postgres did not answer within 0\.5 s/);
      should(status).match(/reading the status of collection "docs"/).and.match(/vectorPipeline\.storeTimeout/);
      should(await timesOut(() => backend.stats('docs'))).match(/statistics of collection "docs"/);
      should(await timesOut(() => backend.query('docs', { vector: [1, 0, 0, 0], topK: 1 }))).match(/querying collection "docs"/);
      should(await timesOut(() => backend.upsert('docs', [doc('a')]))).match(/collection "docs"/);
      should(await timesOut(() => backend.delete('docs', { sources: ['a'] }))).match(/collection "docs"/);
      should(await timesOut(() => backend.collectionExists('docs'))).match(/collection "docs"/);
      should(server.accepted()).be.above(0);
    });

    it('through createBackend too (the deadline of the runtime setting reaches the pool)', async () => {
      const server = await blackhole();
      const config = parseStoreConfig({ backend: 'pgvector', url: `postgres://postgres@127.0.0.1:${server.port}/postgres` });
      const backend = closing(createBackend(config, { userDir: null, storeKey: 'k', credentials: {}, callTimeoutMs: TIMEOUT_MS }));
      should(await timesOut(() => backend.status('docs'))).match(/did not answer within 0\.5 s while reading the status of collection "docs"/);
    });

    it('a server that stops answering mid-session does not poison the pool: once it answers again, calls succeed', async () => {
      const real = await startPgliteServer();
      cleanups.push(() => real.stop());
      const proxy = await startBlackholeProxy(real.port);
      cleanups.push(() => proxy.stop());
      // Two pooled connections: if timed-out connections went back to the pool, it would stay stuck.
      const backend = closing(pgBackendAt(proxy.port, { maxConnections: 2 }));
      await backend.ensureCollection('docs', { dimensions: 4, metric: 'cosine' });
      await backend.upsert('docs', [doc('a')]);

      proxy.blackhole(true);
      for (let i = 0; i < 4; i++) await timesOut(() => backend.status('docs'));
      await timesOut(() => backend.query('docs', { vector: [1, 0, 0, 0], topK: 1 }));
      proxy.blackhole(false);

      should((await backend.status('docs')).documentCount).equal(1);
      should(await backend.query('docs', { vector: [0.1, 0.2, 0.3, 0.4], topK: 1 })).have.length(1);
    });
  });

  describe('pgvector on a real PostgreSQL 15 server (several sessions)', function () {
    let postgres: PostgresServer | null = null;
    before(async function () {
      if (!postgresBinaries()) {
        // eslint-disable-next-line no-console
        console.log(`      skipped: ${POSTGRES_MISSING}`);
        this.skip();
      }
      this.timeout(60_000);
      postgres = await startPostgresServer();
    });
    after(async () => {
      await postgres?.stop();
    });

    it('the server applies statement_timeout and lock_timeout on pooled connections, and none on an index build connection', async () => {
      const settings = parseConnectionString(postgres!.url, false);
      const base = { password: undefined, callTimeoutMs: 750, connectionTimeoutMs: 2000 };
      const show = async (purpose: 'pool' | 'index build') => {
        const client = new pg.Client(connectionConfig(settings, { ...base, purpose }));
        await client.connect();
        try {
          const rows = (await client.query('SELECT current_setting($1) AS s, current_setting($2) AS l', ['statement_timeout', 'lock_timeout'])).rows;
          return rows[0];
        } finally {
          await client.end();
        }
      };
      // A timeout set on the database must not reach the build either.
      const admin = new pg.Client({ connectionString: postgres!.url });
      await admin.connect();
      await admin.query(`ALTER DATABASE postgres SET statement_timeout = '1h'`);
      try {
        should(await show('pool')).eql({ s: '750ms', l: '750ms' });
        should(await show('index build')).eql({ s: '0', l: '0' });
      } finally {
        await admin.query('ALTER DATABASE postgres RESET statement_timeout');
        await admin.end();
      }
    });

    it('a table locked by another session: status rejects with TIMEOUT within the deadline, then succeeds once the lock is gone', async () => {
      // No pgvector on this server: an ordinary table where the collection's table would be.
      const admin = new pg.Client({ connectionString: postgres!.url });
      await admin.connect();
      cleanups.push(() => admin.end());
      await admin.query('CREATE SCHEMA IF NOT EXISTS vector_pipeline');
      await admin.query('CREATE TABLE IF NOT EXISTS vector_pipeline.locked (id text PRIMARY KEY)');
      await admin.query('BEGIN');
      await admin.query('LOCK TABLE vector_pipeline.locked IN ACCESS EXCLUSIVE MODE');

      const backend = closing(new PgVectorBackend({ connectionString: postgres!.url, callTimeoutMs: TIMEOUT_MS }));
      let message: string;
      try {
        message = await timesOut(() => backend.status('locked'));
      } finally {
        await admin.query('ROLLBACK');
      }
      should(message).match(/did not answer within 0\.5 s while reading the status of collection "locked"/);
      should(message).match(/lock/);
      should((await backend.status('locked')).documentCount).equal(0);
    });

    it('a statement that runs too long is cancelled by the server (statement_timeout) as TIMEOUT', async () => {
      const admin = new pg.Client({ connectionString: postgres!.url });
      await admin.connect();
      cleanups.push(() => admin.end());
      await admin.query('CREATE SCHEMA IF NOT EXISTS vector_pipeline');
      // A view whose count(*) takes a second: a stand-in for a huge table.
      await admin.query('CREATE OR REPLACE VIEW vector_pipeline.slow AS SELECT 1 AS id FROM pg_sleep(3)');
      const backend = closing(new PgVectorBackend({ connectionString: postgres!.url, callTimeoutMs: TIMEOUT_MS }));
      const message = await timesOut(() => backend.status('slow'));
      should(message).match(/statement_timeout/).and.match(/collection "slow"/);
      // The server cancelled it: the connection is fine and the next call gets an answer (not a timeout).
      await admin.query('CREATE OR REPLACE VIEW vector_pipeline.slow AS SELECT 1 AS id');
      should((await backend.status('slow')).documentCount).equal(1);
    });
  });

  describe('chroma against a blackholed server', () => {
    it('status, stats, query, upsert and ensureCollection reject with TIMEOUT naming the server and the collection', async () => {
      const server = await blackhole();
      const backend = closing(new ChromaBackend({ url: `http://127.0.0.1:${server.port}`, timeoutMs: TIMEOUT_MS }));
      const status = await timesOut(() => backend.status('docs'));
      should(status).match(/Chroma server at http:\/\/127\.0\.0\.1:\d+ did not answer within 0\.5 s/).and.match(/"docs"/);
      should(status).match(/vectorPipeline\.storeTimeout/);
      should(await timesOut(() => backend.stats('docs'))).match(/"docs"/);
      should(await timesOut(() => backend.query('docs', { vector: [1, 0, 0, 0], topK: 1 }))).match(/"docs"/);
      should(await timesOut(() => backend.upsert('docs', [doc('a')]))).match(/"docs"/);
      should(await timesOut(() => backend.delete('docs', { ids: ['a'] }))).match(/"docs"/);
      should(await timesOut(() => backend.ensureCollection('docs', { dimensions: 4, metric: 'cosine' }))).match(/"docs"/);
    });

    it('through createBackend, with the call timeout as the request timeout', async () => {
      const server = await blackhole();
      const config = parseStoreConfig({ backend: 'chroma', url: `http://127.0.0.1:${server.port}` });
      const backend = closing(createBackend(config, { userDir: null, storeKey: 'k', credentials: {}, callTimeoutMs: TIMEOUT_MS }));
      should(await timesOut(() => backend.status('docs'))).match(/within 0\.5 s/);
    });
  });

  describe('LanceDB (embedded: no client timeout of its own)', () => {
    it('createBackend gives every call the deadline: a write slower than 1 ms fails with TIMEOUT naming LanceDB, then the store still works', async () => {
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vp-lance-timeout-'));
      cleanups.push(() => fs.rm(dir, { recursive: true, force: true }));
      const config = parseStoreConfig({ backend: 'lancedb', path: dir });
      const patient = closing(createBackend(config, { userDir: null, storeKey: 'k', credentials: {}, callTimeoutMs: 10_000 }));
      await patient.ensureCollection('docs', { dimensions: 128, metric: 'cosine' });
      const hurried = closing(createBackend(config, { userDir: null, storeKey: 'k', credentials: {}, callTimeoutMs: 1 }));
      // Checking and writing 20,000 vectors of 128 values takes far longer than 1 ms (+ the 20 ms grace).
      const many = Array.from({ length: 20_000 }, (_, i) => ({ id: `d${i}`, vector: Array.from({ length: 128 }, (_, k) => ((i * 7 + k) % 13) / 13 + 0.01) }));
      const message = await timesOut(() => hurried.upsert('docs', many));
      should(message).match(/^The LanceDB store did not answer within 0\.001 s while writing to collection "docs"\./);
      should(message).match(/may or may not have completed/).and.match(/vectorPipeline\.storeTimeout/);
      // The write went on in the background; the patient instance sees the collection and can write.
      await patient.upsert('docs', [{ id: 'a', vector: many[0].vector }]);
      should((await patient.stats('docs')).documentCount).be.aboveOrEqual(1);
    });
  });

  describe('withCallTimeouts (on a stand-in backend that never answers, or answers late)', () => {
    /** A TEST DOUBLE: each call settles after `delayMs` (never when null) with `outcome`. */
    function standIn(delayMs: number | null, outcome: 'resolve' | 'reject' = 'resolve'): Backend & { closed: boolean } {
      const timers = new Set<NodeJS.Timeout>();
      const answer = <T>(value: T) =>
        new Promise<T>((resolve, reject) => {
          if (delayMs === null) return;
          const timer = setTimeout(() => {
            timers.delete(timer);
            if (outcome === 'resolve') resolve(value);
            else reject(new Error('late failure'));
          }, delayMs);
          timers.add(timer);
        });
      const backend = {
        name: 'memory',
        closed: false,
        ensureCollection: () => answer(undefined),
        collectionExists: () => answer(true),
        upsert: (_c: string, docs: unknown[]) => answer({ written: docs.length, totalCount: docs.length }),
        delete: () => answer({ deleted: 0, totalCount: 0 }),
        status: () => answer({ state: 'ready', documentCount: 0, indexedCount: 0, progress: 1, etaSeconds: 0 } as never),
        stats: () => answer({} as never),
        query: () => answer([]),
        close: async () => {
          backend.closed = true;
          for (const timer of timers) clearTimeout(timer);
        },
      };
      return backend;
    }

    it('rejects each call with TIMEOUT naming the store, the operation, the collection and the setting', async () => {
      const raw = standIn(null);
      const backend = withCallTimeouts(raw, 50);
      should(await timesOut(() => backend.status('c1'))).match(
        /^The memory store did not answer within 0\.05 s while reading the status of collection "c1"\. .*vectorPipeline\.storeTimeout/,
      );
      should(await timesOut(() => backend.stats('c1'))).match(/reading the statistics of collection "c1"/);
      should(await timesOut(() => backend.query('c1', { vector: [1], topK: 1 }))).match(/querying collection "c1"/);
      should(await timesOut(() => backend.collectionExists('c1'))).match(/checking whether collection "c1" exists/);
      // Another tool's collection is named by its label.
      should(await timesOut(() => backend.status({ name: 'langchain_pg_embedding', schema: 'rag' }))).match(/status of collection "rag\.langchain_pg_embedding"/);
      should(await timesOut(() => backend.ensureCollection('c1', { dimensions: 1, metric: 'cosine' }))).match(/collection "c1"/);
      const upsert = await timesOut(() => backend.upsert('c1', [doc('a')]));
      should(upsert).match(/writing to collection "c1"/).and.match(/may or may not have completed/).and.match(/again is safe/);
      const removal = await timesOut(() => backend.delete('c1', { ids: ['a'] }));
      should(removal).match(/while deleting from collection "c1"/).and.match(/may or may not have completed/).and.match(/again is safe/);
      should(backend.name).equal('memory');
      await backend.close();
      should(raw.closed).be.true();
    });

    it('passes results and errors through, and clears its timer as soon as the call settled', async () => {
      // Watch the timers the wrapper starts (its limit: 60 s + 1 s grace) and see them cleared.
      const started: NodeJS.Timeout[] = [];
      const realSetTimeout = global.setTimeout;
      global.setTimeout = ((fn: () => void, ms?: number, ...rest: unknown[]) => {
        const timer = realSetTimeout(fn, ms, ...rest);
        if (ms === 61_000) started.push(timer as unknown as NodeJS.Timeout);
        return timer;
      }) as typeof setTimeout;
      try {
        const backend = withCallTimeouts(standIn(1), 60_000);
        should(await backend.collectionExists('c')).be.true();
        should(await backend.upsert('c', [doc('a')])).eql({ written: 1, totalCount: 1 });
        await should(withCallTimeouts(standIn(1, 'reject'), 60_000).status('c')).be.rejectedWith('late failure');
      } finally {
        global.setTimeout = realSetTimeout;
      }
      should(started).have.length(3);
      for (const timer of started) should((timer as unknown as { _destroyed: boolean })._destroyed).be.true();
    });

    it('swallows a late rejection (no unhandled rejection) after the timeout', async () => {
      const unhandled: unknown[] = [];
      const listener = (reason: unknown) => unhandled.push(reason);
      process.on('unhandledRejection', listener);
      try {
        const backend = withCallTimeouts(standIn(150, 'reject'), 20);
        await timesOut(() => backend.status('c'));
        await new Promise((resolve) => setTimeout(resolve, 300));
        should(unhandled).eql([]);
      } finally {
        process.removeListener('unhandledRejection', listener);
      }
    });
  });
});
