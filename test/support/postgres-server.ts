/**
 * A real, multi-connection PostgreSQL server for the tests: Debian's PostgreSQL 15
 * (`apt-get install -y postgresql-15`), initialised in a temporary directory and
 * listening on 127.0.0.1 and a free port, with trust authentication.
 *
 * It has no pgvector: use it for what PGlite cannot show (PGlite is one session:
 * it ignores per-connection settings such as statement_timeout, and a second
 * connection simply queues behind the first one's transaction): locks held by
 * another session, statement_timeout and lock_timeout, several connections.
 *
 * Postgres refuses to run as root, so as root it runs as the `postgres` system
 * user (runuser). `postgresBinaries()` is null when the server is not installed:
 * tests skip with a message saying what to install.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { promises as fs, existsSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports';
import type { PostgresJobStoreOptions } from '../../lib/job-stores/postgres';

const run = promisify(execFile);
const BIN_DIR = '/usr/lib/postgresql/15/bin';
export const POSTGRES_MISSING = `PostgreSQL 15 server not installed (${BIN_DIR}): apt-get install -y postgresql-15`;

export interface PostgresServer {
  /** postgres://postgres@127.0.0.1:<port>/postgres (trust authentication: no password). */
  url: string;
  port: number;
  /** Stop the server (as a crash would: immediate) and keep its data directory, for resume(). */
  halt(): Promise<void>;
  /** Start it again on the same data directory and port. */
  resume(): Promise<void>;
  stop(): Promise<void>;
}

/** The directory of initdb and postgres, or null when the server is not installed. */
export function postgresBinaries(): string | null {
  return existsSync(path.join(BIN_DIR, 'initdb')) && existsSync(path.join(BIN_DIR, 'postgres')) ? BIN_DIR : null;
}

const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** The command line, run as the postgres user when we are root. */
function command(binary: string, args: string[]): [string, string[]] {
  const file = path.join(BIN_DIR, binary);
  return asRoot ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args];
}

export interface PostgresServerOptions {
  /** Extra server settings (`-c name=value`), e.g. shared_preload_libraries for the benchmark's pg_stat_statements. */
  settings?: Record<string, string>;
}

export async function startPostgresServer(options: PostgresServerOptions = {}): Promise<PostgresServer> {
  if (!postgresBinaries()) throw new Error(POSTGRES_MISSING);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vp-postgres-'));
  if (asRoot) await run('chown', ['postgres:postgres', dir]);
  const dataDir = path.join(dir, 'data');
  const [initFile, initArgs] = command('initdb', ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8']);
  await run(initFile, initArgs);

  const port = await freePort();
  const settings = options.settings ?? {};
  let server = await launch(dataDir, dir, port, settings).catch(async (err) => {
    await fs.rm(dir, { recursive: true, force: true });
    throw err;
  });
  let stopped = false;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    async halt() {
      await server.stop();
    },
    async resume() {
      server = await launch(dataDir, dir, port, settings);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.stop();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

/** Start the postmaster on the data directory and port; stop() ends it and keeps the data. */
async function launch(dataDir: string, dir: string, port: number, settings: Record<string, string>): Promise<{ stop(): Promise<void> }> {
  const [file, args] = command('postgres', [
    '-D', dataDir, '-p', String(port), '-k', dir,
    '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'max_connections=30',
    ...Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`]),
  ]);
  const child: ChildProcess = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr?.on('data', (chunk: Buffer) => (log = (log + chunk.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  try {
    await waitUntilReady(port, exited, () => log);
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    throw err;
  }

  let stopping: Promise<void> | null = null;
  return {
    stop() {
      // pg_ctl stops the postmaster itself (runuser's child), whatever runuser does with signals.
      stopping ??= (async () => {
        const [ctl, ctlArgs] = command('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', 'stop']);
        await run(ctl, ctlArgs).catch(() => child.kill('SIGKILL'));
        await exited;
      })();
      return stopping;
    },
  };
}

/** Poll with pg_isready until the server accepts connections (a few seconds at most). */
async function waitUntilReady(port: number, exited: Promise<void>, log: () => string): Promise<void> {
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (gone) throw new Error(`PostgreSQL exited while starting: ${log()}`);
    try {
      await run(path.join(BIN_DIR, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(port), '-q']);
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(`PostgreSQL did not start within 30 s: ${log()}`);
}

/** The job store's connection settings for `table` (and `schema`) on a test server. */
export function jobStoreSettingsOn(server: Pick<PostgresServer, 'port'>, table: string, schema = 'public'): PostgresJobStoreOptions['settings'] {
  return { host: '127.0.0.1', port: server.port, user: 'postgres', database: 'postgres', password: undefined, schema, table, where: `127.0.0.1:${server.port}/postgres` };
}
