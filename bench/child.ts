/**
 * Runs one benchmark in a fresh process, so that its memory readings start from
 * a clean heap and one benchmark's garbage or warm code does not flatter another.
 *
 * Parent side: `inChild(name, options)` starts `node --expose-gc --import tsx
 * bench/child.ts <name>`, sends the options over IPC and resolves with what the
 * benchmark returned. Child side (this file as the entry point): loads
 * `bench/<name>.ts`, calls its `run(options)` and sends the result back.
 *
 * The child's stdout goes to the parent's stderr: stdout of `npm run bench` carries
 * only the final JSON object.
 */
import { fork } from 'node:child_process';
import * as path from 'node:path';

/** Benchmarks that can run in a child: each module exports `run(options)`. */
export type BenchmarkName = 'waits' | 'resume' | 'node-red' | 'naive-waits' | 'store' | 'search' | 'hnsw' | 'ingest-jobs' | 'ingest-growth' | 'embedding' | 'shared-waits';

/** How long a benchmark stopped on its timeout has to stop what it started. */
const STOP_GRACE_MS = 20_000;

type Reply = { ok: true; result: unknown } | { ok: false; error: string };

export function inChild<T>(name: BenchmarkName, options: unknown, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const child = fork(__filename, [name], {
      execArgv: ['--expose-gc', '--import', 'tsx'],
      stdio: ['ignore', process.stderr, process.stderr, 'ipc'],
    });
    let reply: Reply | null = null;
    let killTimer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      // SIGTERM first: a benchmark that started processes (shared-waits) stops them; then SIGKILL.
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      reject(new Error(`The ${name} benchmark did not finish within ${Math.round(timeoutMs / 1000)} s; it was stopped.`));
    }, timeoutMs);
    child.on('message', (message: Reply) => {
      reply = message;
    });
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      if (reply?.ok) resolve(reply.result as T);
      else if (reply) reject(new Error(`The ${name} benchmark failed: ${reply.error}`));
      else reject(new Error(`The ${name} benchmark exited (code ${code}, signal ${signal}) without a result.`));
    });
    child.send({ options });
  });
}

async function runAsChild(name: string): Promise<void> {
  const options = await new Promise<unknown>((resolve) => process.once('message', (m: { options: unknown }) => resolve(m.options)));
  let reply: Reply;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const benchmark = require(path.join(__dirname, `${name}.ts`)) as { run(options: unknown): Promise<unknown> };
    reply = { ok: true, result: await benchmark.run(options) };
  } catch (err) {
    reply = { ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) };
  }
  process.send?.(reply, () => {
    // Anything the benchmark left behind (a server socket, a timer) must not keep the child alive.
    process.disconnect?.();
    process.exit(0);
  });
}

if (require.main === module) {
  void runAsChild(process.argv[2]);
}
