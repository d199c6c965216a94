/**
 * Benchmark 7 (issue 11): waits shared by three real `node-red` processes through one
 * PostgreSQL 15 table (test/support/postgres-server.ts: Debian's server, initdb in a
 * temporary directory, pg_stat_statements preloaded).
 *
 * Each instance starts a third of the waits (a function node fanning out messages into a
 * deferrable-sensor). The waits watch a memory-store collection that keeps indexing
 * slowly and never reaches the expected count: they stay pending, and their indexed count
 * moves at each poll, so every wait has progress to write (the worst case for the store).
 *
 * Figures:
 * - statements per second while the waits run, and while one instance's waits are taken
 *   over: calls counted by pg_stat_statements (BEGIN and COMMIT included), by kind;
 * - takeover time: the instance holding most waits is killed with kill -9 once every wait
 *   is saved; the table is read every 100 ms until none is leased to the dead instance;
 * - event-loop delay p99 of each instance, from a `-r` preload (bench/loop-delay-preload.js)
 *   that writes its histogram to a file in the user directory (no signals: Node-RED's
 *   start script stops on them).
 *
 * Bounded: one PostgreSQL server and three node-red processes, always stopped at the
 * end, also on failure (and the preload ends a node-red whose parent went away).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { cleanupAll, Collector, startNodeRed, type FlowNode, type NodeRed } from '../test/e2e/harness';
import { POSTGRES_MISSING, postgresBinaries, startPostgresServer, type PostgresServer } from '../test/support/postgres-server';
import { sleep } from './measure';

export interface SharedWaitsOptions {
  waits: number;
  instances: number;
  leaseSeconds: number;
  heartbeatSeconds: number;
  /** The sensors' poll interval (fixed: pollInterval = maxPollInterval). */
  pollSeconds: number;
  /** How long the steady state is measured, once every wait is saved and polled. */
  windowSeconds: number;
  /** Documents of the watched collection, indexed at `indexingRate` per second. */
  documents: number;
  indexingRate: number;
  /** Each instance starts its waits `feedChunk` at a time, the next chunk once at most one chunk per instance is unsaved. */
  feedChunk: number;
}

export interface StatementCounts {
  seconds: number;
  /** Every statement of the instances (BEGIN and COMMIT count), per second. */
  perSecond: number;
  total: number;
  /** Calls per kind (renew leases, write progress, claim, add, ...). */
  byKind: Record<string, { calls: number; rows: number; meanMs: number }>;
}

export interface InstanceLoopDelay {
  instance: number;
  waitsHeld: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  rssMB: number;
}

export interface SharedWaitsResult {
  waits: number;
  instances: number;
  leaseSeconds: number;
  heartbeatSeconds: number;
  pollSeconds: number;
  statementsSource: string;
  /** From the first start message to every wait in the table. */
  deferSeconds: number;
  savedPerSecond: number;
  defer: StatementCounts;
  waiting: StatementCounts;
  waitingLoopDelay: InstanceLoopDelay[];
  takeover: {
    killedInstance: number;
    waitsOfKilled: number;
    /** From kill -9 to no wait leased to the dead instance (read every 100 ms). */
    seconds: number;
    /** lease + heartbeat: what the design promises at most (plus a claim's own time). */
    boundSeconds: number;
    statements: StatementCounts;
    survivorsLoopDelay: InstanceLoopDelay[];
    /** After the takeover: rows in the table and how many are leased to a live instance. */
    rowsAfter: number;
    leasedAfter: number;
    heldAfter: Array<{ instance: number; waits: number }>;
  };
}

const TABLE = 'bench_shared_waits';
const TAB = 'bench-tab';
/** Marks the benchmark's own queries, left out of the counts. */
const MINE = '/* bench-shared-waits */';
const CALL_TIMEOUT_MS = 10_000;

function flows(options: SharedWaitsOptions, instance: number, waits: number): FlowNode[] {
  const poll = String(options.pollSeconds);
  return [
    { id: TAB, type: 'tab', label: 'Shared waits benchmark', disabled: false, info: '' },
    {
      id: 'bench-store',
      type: 'vector-store',
      name: 'store',
      backend: 'memory',
      embedder: 'hash',
      dimensions: '16',
      indexingRate: String(options.indexingRate),
      indexingDelay: '0',
      persist: false,
    },
    // On start, each instance writes the watched collection into its own memory store.
    { id: 'bench-seed', type: 'inject', z: TAB, props: [{ p: 'payload' }], payload: '', payloadType: 'date', repeat: '', once: true, onceDelay: 0.1, topic: '', x: 100, y: 40, wires: [['bench-documents']] },
    {
      id: 'bench-documents',
      type: 'function',
      z: TAB,
      func: `return { payload: Array.from({ length: ${options.documents} }, (_, i) => 'document ' + i) };`,
      outputs: 1,
      x: 260,
      y: 40,
      wires: [['bench-ingest']],
    },
    { id: 'bench-ingest', type: 'vector-ingest', z: TAB, store: 'bench-store', collection: 'docs', batchSize: '500', createCollection: true, buildIndex: false, x: 420, y: 40, wires: [[], []] },
    { id: 'bench-start', type: 'inject', z: TAB, props: [{ p: 'payload' }], payload: '', payloadType: 'date', repeat: '', once: false, topic: '', x: 100, y: 120, wires: [['bench-fan']] },
    {
      id: 'bench-fan',
      type: 'function',
      z: TAB,
      // One chunk per start message: the benchmark sends the next once most of the last is saved
      // (a burst of tens of thousands of waits at once outruns the job store's pool: see BENCHMARKS.md).
      func: [
        `const from = context.get('sent') || 0;`,
        `const end = Math.min(${waits}, from + ${options.feedChunk});`,
        `for (let i = from; i < end; i++) node.send({ ticket: 'I${instance}-' + i, payload: i });`,
        `context.set('sent', end);`,
        `return null;`,
      ].join('\n'),
      outputs: 1,
      x: 260,
      y: 120,
      wires: [['bench-sensor']],
    },
    {
      id: 'bench-sensor',
      type: 'deferrable-sensor',
      z: TAB,
      store: 'bench-store',
      collection: 'docs',
      expectedCount: String(options.documents * 1000),
      pollInterval: poll,
      maxPollInterval: poll,
      timeout: '3600',
      deferrable: true,
      x: 440,
      y: 120,
      wires: [[], []],
    },
  ];
}

/** Statement kinds, recognised by the text of the store's statements (lib/job-stores/postgres.ts). */
function kindOf(query: string): string {
  const q = query.replace(/\s+/g, ' ').trim();
  if (/^(BEGIN|COMMIT|ROLLBACK)/i.test(q)) return 'begin / commit';
  if (/^INSERT INTO/i.test(q)) return 'add';
  if (/SET spec =/.test(q)) return 'write progress';
  if (/^WITH picked/.test(q)) return 'claim';
  if (/SET lease_until = now\(\)/.test(q)) return 'renew leases';
  if (/state = 'delivering'/.test(q)) return 'commit final';
  if (/^DELETE/i.test(q)) return 'remove';
  if (/SET lease_holder = NULL/.test(q)) return 'release';
  if (/^SELECT id, lease_holder/.test(q)) return 'holders';
  return 'other';
}

class Database {
  private constructor(private readonly client: pg.Client) {}

  static async connect(url: string): Promise<Database> {
    const client = new pg.Client({ connectionString: url, statement_timeout: CALL_TIMEOUT_MS, query_timeout: CALL_TIMEOUT_MS + 500, connectionTimeoutMillis: CALL_TIMEOUT_MS });
    client.on('error', () => undefined);
    await client.connect();
    return new Database(client);
  }

  async query<R extends object>(text: string, values: unknown[] = []): Promise<R[]> {
    return (await this.client.query<R>(`${MINE} ${text}`, values)).rows;
  }

  async resetStatements(): Promise<number> {
    await this.query('SELECT pg_stat_statements_reset()');
    return performance.now();
  }

  /** What the instances ran since the last reset (the extension's own and this client's left out). */
  async statementsSince(resetAt: number): Promise<StatementCounts> {
    const seconds = (performance.now() - resetAt) / 1000;
    const rows = await this.query<{ query: string; calls: string; rows: string; total_exec_time: number }>(
      `SELECT query, calls, rows, total_exec_time FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    );
    const byKind: StatementCounts['byKind'] = {};
    let total = 0;
    for (const row of rows) {
      if (row.query.includes(MINE) || row.query.includes('pg_stat_statements')) continue;
      const kind = (byKind[kindOf(row.query)] ??= { calls: 0, rows: 0, meanMs: 0 });
      const calls = Number(row.calls);
      // meanMs accumulates total time first, divided below.
      kind.meanMs += row.total_exec_time;
      kind.calls += calls;
      kind.rows += Number(row.rows);
      total += calls;
    }
    for (const kind of Object.values(byKind)) kind.meanMs = kind.calls > 0 ? Math.round((kind.meanMs / kind.calls) * 100) / 100 : 0;
    return { seconds: Math.round(seconds * 10) / 10, perSecond: Math.round(total / seconds), total, byKind };
  }

  async count(): Promise<number> {
    const rows = await this.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.${TABLE}`).catch((err: { code?: string }) => {
      if (err.code === '42P01') return [{ n: 0 }]; // not created yet: none saved
      throw err;
    });
    return rows[0].n;
  }

  /** Live leases per holder. */
  async holders(): Promise<Map<string, number>> {
    const rows = await this.query<{ holder: string; n: number }>(
      `SELECT lease_holder AS holder, count(*)::int AS n FROM public.${TABLE} WHERE lease_holder IS NOT NULL AND lease_until >= now() GROUP BY 1`,
    );
    return new Map(rows.map((r) => [r.holder, r.n]));
  }

  async leasedTo(holder: string): Promise<number> {
    const rows = await this.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.${TABLE} WHERE lease_holder = $1`, [holder]);
    return rows[0].n;
  }

  end(): Promise<void> {
    return this.client.end();
  }
}

/** The instance a lease holder (`host:pid:random`, nodes/shared/runtime.ts) belongs to. */
function instanceOf(holder: string, instances: NodeRed[]): number {
  const pid = Number(holder.split(':').at(-2));
  return instances.findIndex((i) => i.pid === pid);
}

const loopFile = (instance: NodeRed) => path.join(instance.userDir, 'loop-delay.json');

/** Start a new event-loop histogram in each instance; resolves once each has. */
async function resetLoopDelay(instances: NodeRed[]): Promise<void> {
  const at = Date.now();
  await Promise.all(instances.map((i) => fs.writeFile(path.join(i.userDir, 'loop-delay.reset'), '')));
  for (const instance of instances) {
    for (const deadline = Date.now() + 10_000; ; ) {
      const reading = await readLoopDelay(instance);
      if (reading && reading.since >= at) break;
      if (Date.now() > deadline) throw new Error(`node-red ${instance.pid} did not reset its event-loop histogram within 10 s.`);
      await sleep(100);
    }
  }
}

async function readLoopDelay(instance: NodeRed): Promise<{ since: number; at: number; p50Ms: number; p99Ms: number; maxMs: number; rssBytes: number } | null> {
  try {
    return JSON.parse(await fs.readFile(loopFile(instance), 'utf8'));
  } catch {
    return null;
  }
}

/** Each instance's histogram since the reset, as written after `after` (ms since epoch). */
async function loopDelays(instances: NodeRed[], all: NodeRed[], after: number, held: Map<string, number>): Promise<InstanceLoopDelay[]> {
  const result: InstanceLoopDelay[] = [];
  for (const instance of instances) {
    for (const deadline = Date.now() + 10_000; ; ) {
      const r = await readLoopDelay(instance);
      if (r && r.at >= after) {
        const index = all.indexOf(instance);
        const waitsHeld = [...held].filter(([holder]) => instanceOf(holder, all) === index).reduce((sum, [, n]) => sum + n, 0);
        result.push({ instance: index + 1, waitsHeld, p50Ms: r.p50Ms, p99Ms: r.p99Ms, maxMs: r.maxMs, rssMB: Math.round(r.rssBytes / 2 ** 20) });
        break;
      }
      if (Date.now() > deadline) throw new Error(`node-red ${instance.pid} wrote no event-loop reading within 10 s.`);
      await sleep(100);
    }
  }
  return result;
}

function log(text: string): void {
  process.stderr.write(`[bench] shared-waits: ${text}\n`);
}

export async function run(options: SharedWaitsOptions): Promise<SharedWaitsResult> {
  if (!postgresBinaries()) throw new Error(POSTGRES_MISSING);
  let server: PostgresServer | null = null;
  let db: Database | null = null;
  const instances: NodeRed[] = [];
  const cleanup = async () => {
    await cleanupAll().catch((err: unknown) => log(`cleanup: ${String(err)}`));
    await db?.end().catch(() => undefined);
    await server?.stop();
  };
  // Stopped on its timeout (bench/child.ts): stop the node-red processes and the server first.
  const onTerm = () => void cleanup().finally(() => process.exit(1));
  process.once('SIGTERM', onTerm);
  try {
    server = await startPostgresServer({ settings: { shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.track_utility': 'on' } });
    db = await Database.connect(server.url);
    await db.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    return await measure(options, server, db, instances);
  } catch (err) {
    // What the instances said last: the figures cannot tell why a run failed.
    for (const [i, instance] of instances.entries()) log(`instance ${i + 1} (pid ${instance.pid}), last lines:\n${instance.log.lines.slice(-15).join('\n')}`);
    throw err;
  } finally {
    process.removeListener('SIGTERM', onTerm);
    await cleanup();
  }
}

async function measure(options: SharedWaitsOptions, server: PostgresServer, db: Database, instances: NodeRed[]): Promise<SharedWaitsResult> {
  const { waits, leaseSeconds, heartbeatSeconds } = options;
  const preload = path.join(__dirname, 'loop-delay-preload.js');
  const defines = {
    'vectorPipeline.jobStore.type': 'postgres',
    'vectorPipeline.jobStore.url': server.url,
    'vectorPipeline.jobStore.table': TABLE,
    'vectorPipeline.jobStore.leaseSeconds': String(leaseSeconds),
    'vectorPipeline.jobStore.heartbeatSeconds': String(heartbeatSeconds),
    // The default (10,000 per sensor) would refuse most of an instance's share.
    'vectorPipeline.maxPendingWaitsPerSensor': String(waits),
  };
  const collector = await Collector.start();
  const share = (i: number) => Math.floor(waits / options.instances) + (i < waits % options.instances ? 1 : 0);
  for (let i = 0; i < options.instances; i++) {
    const tapped = collector.tap(flows(options, i + 1, share(i)), [{ label: 'seeded', from: 'bench-ingest' }]);
    instances.push(await startNodeRed({ flows: tapped, defines, nodeArgs: ['-r', preload], startTimeoutMs: 60_000 }));
  }
  for (const instance of instances) await instance.log.waitForLine(/shared through PostgreSQL/, 30_000);
  await collector.waitFor((all) => all.filter((m) => m.label === 'seeded').length >= options.instances || null, 60_000, 'the instances to write their collection');
  log(`${options.instances} node-red instances up; starting ${waits.toLocaleString('en-US')} waits`);

  // Defer: each instance starts its share a chunk at a time, closed loop on what is saved.
  let resetAt = await db.resetStatements();
  const deferStarted = performance.now();
  const marks = instances.map((i) => i.log.mark());
  let sent = 0;
  for (let saved = 0, last = 0, movedAt = Date.now(), told = Date.now(); saved < waits; ) {
    if (sent < waits && sent - saved <= options.instances * options.feedChunk) {
      await Promise.all(instances.map((i) => i.inject('bench-start')));
      sent = Math.min(waits, sent + options.instances * options.feedChunk);
    }
    await sleep(100);
    saved = await db.count();
    const refused = instances.flatMap((i, n) => i.log.errors(marks[n]));
    if (refused.length > 0) throw new Error(`${refused.length} waits were refused after ${saved} were saved; the first: ${refused[0]}`);
    if (saved > last) [last, movedAt] = [saved, Date.now()];
    if (Date.now() - movedAt > 30_000) throw new Error(`No wait saved for 30 s: ${saved} of ${waits} (${sent} sent).`);
    if (Date.now() - told >= 10_000) {
      told = Date.now();
      log(`${saved.toLocaleString('en-US')} saved after ${Math.round((performance.now() - deferStarted) / 1000)} s`);
    }
  }
  const deferSeconds = (performance.now() - deferStarted) / 1000;
  const defer = await db.statementsSince(resetAt);
  log(`all saved in ${deferSeconds.toFixed(1)} s; measuring ${options.windowSeconds} s of waiting`);

  // Steady state: every wait polled a few times and its progress written at least once.
  await sleep(Math.max(options.pollSeconds, heartbeatSeconds) * 2000);
  await resetLoopDelay(instances);
  resetAt = await db.resetStatements();
  await sleep(options.windowSeconds * 1000);
  const waiting = await db.statementsSince(resetAt);
  const heldWhileWaiting = await db.holders();
  const waitingLoopDelay = await loopDelays(instances, instances, Date.now(), heldWhileWaiting);

  // Takeover: kill -9 the instance holding most waits.
  const [deadHolder, waitsOfKilled] = [...heldWhileWaiting].sort((a, b) => b[1] - a[1])[0];
  const killed = instances[instanceOf(deadHolder, instances)];
  if (!killed) throw new Error(`No instance has the pid of lease holder ${deadHolder}.`);
  const survivors = instances.filter((i) => i !== killed);
  log(`kill -9 of instance ${instances.indexOf(killed) + 1} (${waitsOfKilled.toLocaleString('en-US')} waits)`);
  await resetLoopDelay(survivors);
  resetAt = await db.resetStatements();
  const killedAt = performance.now();
  await killed.kill9();
  for (const deadline = Date.now() + (leaseSeconds + heartbeatSeconds) * 1000 + 120_000; ; ) {
    if ((await db.leasedTo(deadHolder)) === 0) break;
    if (Date.now() > deadline) throw new Error('The waits of the killed instance were not taken over within lease + heartbeat + 2 minutes.');
    await sleep(100);
  }
  const takeoverSeconds = (performance.now() - killedAt) / 1000;
  const takeoverStatements = await db.statementsSince(resetAt);
  const heldAfter = await db.holders();
  const survivorsLoopDelay = await loopDelays(survivors, instances, Date.now(), heldAfter);
  const rowsAfter = await db.count();
  log(`taken over in ${takeoverSeconds.toFixed(1)} s`);

  return {
    waits,
    instances: options.instances,
    leaseSeconds,
    heartbeatSeconds,
    pollSeconds: options.pollSeconds,
    statementsSource: 'pg_stat_statements (calls, BEGIN and COMMIT included; the benchmark\'s own queries left out)',
    deferSeconds: Math.round(deferSeconds * 10) / 10,
    savedPerSecond: Math.round(waits / deferSeconds),
    defer,
    waiting,
    waitingLoopDelay,
    takeover: {
      killedInstance: instances.indexOf(killed) + 1,
      waitsOfKilled,
      seconds: Math.round(takeoverSeconds * 10) / 10,
      boundSeconds: leaseSeconds + heartbeatSeconds,
      statements: takeoverStatements,
      survivorsLoopDelay,
      rowsAfter,
      leasedAfter: [...heldAfter.values()].reduce((a, b) => a + b, 0),
      heldAfter: [...heldAfter].map(([holder, n]) => ({ instance: instanceOf(holder, instances) + 1, waits: n })),
    },
  };
}
