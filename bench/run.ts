/**
 * `npm run bench`: every benchmark, each in a fresh child process, one after the
 * other (never two at once: they would measure each other). Prints one JSON
 * object on stdout; progress goes to stderr. The full run also rewrites the
 * generated part of BENCHMARKS.md.
 *
 *   npm run bench                  full run (a few minutes), writes BENCHMARKS.md
 *   npm run bench -- --quick       under a minute: 1,000 and 10,000 waits, smaller sets
 *   --write / --no-write           force or skip writing BENCHMARKS.md
 *   --backends=memory,lancedb      the stores for ingest and query (default: all)
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { BACKENDS } from './backends';
import { inChild } from './child';
import type { NodeRedOptions, NodeRedResult } from './node-red';
import { writeBenchmarksFile } from './report';
import type { ResumeResult } from './resume';
import { assertBuilt } from './runtime';
import type { SearchOptions, SearchResult } from './search';
import type { StoreOptions, StoreOutcome } from './store';
import { checkTargets, type BenchReport, type MachineInfo, type WaitsAtSize } from './targets';
import type { WaitsOptions, WaitsResult } from './waits';

interface Plan {
  sizes: number[];
  waits: Omit<WaitsOptions, 'waits'>;
  nodeRed: NodeRedOptions;
  store: Omit<StoreOptions, 'backend'>;
  search: SearchOptions;
}

const WAITS_COMMON = { collections: 100, owners: 10, pollIntervalMs: 1000, maxPollIntervalMs: 5000, prepareResume: true };

const FULL: Plan = {
  sizes: [1_000, 10_000, 100_000],
  waits: { ...WAITS_COMMON, readyFromMs: 10_000, readySpanMs: 20_000, indexingMs: 8_000 },
  nodeRed: { messages: 10_000, collections: 10, indexingDelaySeconds: 8, documentsStep: 200, quietMs: 2_000 },
  store: { documents: 2_000, batchSize: 100, ingestRepetitions: 9, queryDocuments: 10_000, queries: 20, queryRepetitions: 9, topK: 10 },
  search: { vectors: 100_000, dimensions: 384, queries: 5, repetitions: 31, topK: 10 },
};

const QUICK: Plan = {
  sizes: [1_000, 10_000],
  waits: { ...WAITS_COMMON, readyFromMs: 2_500, readySpanMs: 3_000, indexingMs: 1_500 },
  nodeRed: { messages: 2_000, collections: 10, indexingDelaySeconds: 2, documentsStep: 40, quietMs: 500 },
  store: { documents: 500, batchSize: 100, ingestRepetitions: 5, queryDocuments: 2_000, queries: 10, queryRepetitions: 5, topK: 10 },
  search: { vectors: 20_000, dimensions: 384, queries: 5, repetitions: 15, topK: 10 },
};

const MINUTE = 60_000;

function log(text: string): void {
  process.stderr.write(`[bench] ${text}\n`);
}

function machine(loadAverageBefore: number): MachineInfo {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} (${os.arch()})`,
    node: process.version,
    loadAverageBefore,
    loadAverageAfter: Math.round(os.loadavg()[0] * 100) / 100,
  };
}

function option(args: string[], name: string): string | undefined {
  return args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const write = args.includes('--write') || (!quick && !args.includes('--no-write'));
  const plan = quick ? QUICK : FULL;
  const backends = option(args, 'backends')?.split(',') ?? (quick ? ['memory'] : BACKENDS.map((b) => b.name));
  assertBuilt();

  const loadAverageBefore = Math.round(os.loadavg()[0] * 100) / 100;
  const started = performance.now();
  const startedAt = new Date().toISOString();

  const waits: WaitsAtSize[] = [];
  for (const size of plan.sizes) {
    log(`waits: ${size.toLocaleString('en-US')} concurrent waits`);
    const result = await inChild<WaitsResult>('waits', { ...plan.waits, waits: size }, 5 * MINUTE);
    if (!result.resume) throw new Error('The waits benchmark left no file to resume from.');
    log(`waits: resuming ${size.toLocaleString('en-US')} waits after a restart`);
    const resume = await inChild<ResumeResult>('resume', result.resume, 3 * MINUTE);
    waits.push({ ...result, resume });
  }

  log(`node-red: ${plan.nodeRed.messages.toLocaleString('en-US')} messages into one deferrable-sensor`);
  const nodeRed = await inChild<NodeRedResult>('node-red', plan.nodeRed, 5 * MINUTE);

  const ingestQuery: StoreOutcome[] = [];
  for (const backend of backends) {
    log(`ingest and query: ${backend}`);
    ingestQuery.push(await inChild<StoreOutcome>('store', { ...plan.store, backend }, 10 * MINUTE));
  }

  log(`search: memory backend over ${plan.search.vectors.toLocaleString('en-US')} vectors against the dot-product floor`);
  const search = await inChild<SearchResult>('search', plan.search, 5 * MINUTE);

  const partial: Omit<BenchReport, 'targets'> = {
    mode: quick ? 'quick' : 'full',
    command: ['npm run bench', ...(args.length > 0 ? ['--', ...args] : [])].join(' '),
    startedAt,
    durationSeconds: Math.round((performance.now() - started) / 100) / 10,
    machine: machine(loadAverageBefore),
    waits,
    nodeRed,
    ingestQuery,
    search,
  };
  const report: BenchReport = { ...partial, targets: checkTargets(partial) };
  process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  if (write) {
    const file = await writeBenchmarksFile(path.join(__dirname, '..', 'BENCHMARKS.md'), report);
    log(`wrote ${path.relative(process.cwd(), file) || file}`);
  }
  const missed = report.targets.filter((t) => t.met === false);
  const unchecked = report.targets.filter((t) => t.met === null).length;
  const note = unchecked > 0 ? ` (${unchecked} checked by the full run only)` : '';
  log(missed.length === 0 ? `every target checked is met${note}` : `targets missed: ${missed.map((t) => t.name).join('; ')}${note}`);
}

main().catch((err) => {
  process.stderr.write(`[bench] ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
