/**
 * `npm run bench`: every benchmark, each in a fresh child process, one after the
 * other (never two at once: they would measure each other). Prints one JSON
 * object on stdout; progress goes to stderr. The full run also rewrites the
 * generated part of BENCHMARKS.md.
 *
 *   npm run bench                  full run (about 45 minutes, 30 of them naive-waits), writes BENCHMARKS.md
 *   npm run bench -- --quick       about three minutes: 1,000 and 10,000 waits, smaller sets
 *   --write / --no-write           force or skip writing BENCHMARKS.md
 *   --backends=memory,lancedb      the stores for ingest and query, and for ingest jobs (default: all)
 *   --only=ingest-jobs,embedding   run only these benchmarks (waits, node-red, naive-waits, store,
 *                                  search, hnsw, ingest-jobs, ingest-growth, embedding, shared-waits); their
 *                                  figures go into a block of their own in BENCHMARKS.md, the last
 *                                  full run's stay
 *   --naive-sizes=1000,10000       the sizes of naive-waits (default 1,000, 10,000 and 100,000:
 *                                  about 5, 8 and 12 minutes on a 2-core machine)
 *   --only=shared-waits            100,000 waits over three node-red processes and PostgreSQL 15
 *                                  (about 5 minutes; --quick: 10,000 waits, under a minute). Not
 *                                  part of the default run.
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
import type { HnswOptions, HnswOutcome } from './hnsw';
import type { SearchOptions, SearchResult } from './search';
import type { SharedWaitsOptions, SharedWaitsResult } from './shared-waits';
import type { StoreOptions, StoreOutcome } from './store';
import type { EmbeddingOptions, EmbeddingResult } from './embedding';
import { GROWTH_STORES, type IngestGrowthOptions, type IngestGrowthResult } from './ingest-growth';
import type { IngestJobsOptions, JobStoreName, MemoryResult, ResumeResult as JobResumeResult, ThroughputResult } from './ingest-jobs';
import { checkTargets, type BenchReport, type IngestGrowthOutcome, type IngestJobsReport, type MachineInfo, type WaitsAtSize } from './targets';
import type { WaitsOptions, WaitsResult } from './waits';
import type { NaiveWaitsOptions, NaiveWaitsResult } from './naive-waits';

interface Plan {
  sizes: number[];
  waits: Omit<WaitsOptions, 'waits'>;
  nodeRed: NodeRedOptions;
  naiveWaits: { sizes: number[]; options: Omit<NaiveWaitsOptions, 'waits'> };
  store: Omit<StoreOptions, 'backend'>;
  search: SearchOptions;
  hnsw: HnswOptions;
  ingestJobs: {
    documents: number;
    batchSize: number;
    repetitions: Record<JobRunStore, number>;
    /** Sizes of the memory readings (the first and the last are compared). */
    memorySizes: number[];
    resumeDocuments: number;
  };
  /** Documents of each ingest-growth run (one collection per run), and the batch size. */
  ingestGrowth: { sizes: number[]; batchSize: number };
  embedding: EmbeddingOptions;
  sharedWaits: SharedWaitsOptions;
}

/** Every benchmark, by its --only name. */
/** Largest naive-waits size that runs the delay-node loop too. */
const NAIVE_DELAY_UP_TO = 10_000;

const BENCHMARKS = ['waits', 'node-red', 'naive-waits', 'store', 'search', 'hnsw', 'ingest-jobs', 'ingest-growth', 'embedding', 'shared-waits'] as const;
type Benchmark = (typeof BENCHMARKS)[number];
/** What a run without --only runs: shared-waits (three node-red processes and a database) only when named. */
const DEFAULT_BENCHMARKS: readonly Benchmark[] = BENCHMARKS.filter((name) => name !== 'shared-waits');

/** The stores ingest jobs run on (the discarding one is for memory readings only). */
type JobRunStore = Exclude<JobStoreName, 'discard'>;
const JOB_STORES: JobRunStore[] = ['memory', 'lancedb'];

const EMBEDDING_STUB = { ratePerSecond: 2_000, latencyMs: 20 };

const WAITS_COMMON = { collections: 100, owners: 10, pollIntervalMs: 1000, maxPollIntervalMs: 5000, prepareResume: true };

const FULL: Plan = {
  sizes: [1_000, 10_000, 100_000],
  waits: { ...WAITS_COMMON, readyFromMs: 10_000, readySpanMs: 20_000, indexingMs: 8_000 },
  nodeRed: { messages: 10_000, collections: 10, indexingDelaySeconds: 8, documentsStep: 200, quietMs: 2_000 },
  // The setting: waits of 25-34 s, 3 interleaved repetitions.
  naiveWaits: { sizes: [1_000, 10_000, 100_000], options: { collections: 100, repetitions: 3, readyFromS: 25, readySpanS: 9, killRestart: true } },
  store: { documents: 2_000, batchSize: 100, ingestRepetitions: 9, queryDocuments: 10_000, queries: 20, queryRepetitions: 9, topK: 10 },
  search: { vectors: 100_000, dimensions: 384, queries: 5, repetitions: 31, topK: 10, loopDelayQueries: 200 },
  hnsw: { vectors: 100_000, dimensions: 384, recallQueries: 200, repetitions: 31, topK: 10 },
  ingestJobs: { documents: 100_000, batchSize: 100, repetitions: { memory: 5, lancedb: 3 }, memorySizes: [10_000, 100_000], resumeDocuments: 20_000 },
  ingestGrowth: { sizes: [1_000, 10_000, 100_000], batchSize: 100 },
  embedding: { texts: 20_000, concurrency: 8, batchSize: 64, dimensions: 384, stub: EMBEDDING_STUB },
  sharedWaits: { waits: 100_000, instances: 3, leaseSeconds: 30, heartbeatSeconds: 10, pollSeconds: 10, windowSeconds: 30, documents: 400, indexingRate: 1, feedChunk: 100 },
};

const QUICK: Plan = {
  sizes: [1_000, 10_000],
  waits: { ...WAITS_COMMON, readyFromMs: 2_500, readySpanMs: 3_000, indexingMs: 1_500 },
  nodeRed: { messages: 2_000, collections: 10, indexingDelaySeconds: 2, documentsStep: 40, quietMs: 500 },
  // Shorter waits, one repetition: a check that it runs, its targets not checked.
  naiveWaits: { sizes: [1_000], options: { collections: 100, repetitions: 1, readyFromS: 5, readySpanS: 3, killRestart: true } },
  store: { documents: 500, batchSize: 100, ingestRepetitions: 5, queryDocuments: 2_000, queries: 10, queryRepetitions: 5, topK: 10 },
  search: { vectors: 20_000, dimensions: 384, queries: 5, repetitions: 15, topK: 10, loopDelayQueries: 100 },
  hnsw: { vectors: 20_000, dimensions: 384, recallQueries: 100, repetitions: 15, topK: 10 },
  ingestJobs: { documents: 10_000, batchSize: 100, repetitions: { memory: 3, lancedb: 3 }, memorySizes: [2_000, 10_000], resumeDocuments: 4_000 },
  ingestGrowth: { sizes: [1_000, 10_000], batchSize: 100 },
  embedding: { texts: 6_000, concurrency: 8, batchSize: 64, dimensions: 384, stub: EMBEDDING_STUB },
  sharedWaits: { waits: 10_000, instances: 3, leaseSeconds: 6, heartbeatSeconds: 2, pollSeconds: 2, windowSeconds: 10, documents: 100, indexingRate: 2, feedChunk: 100 },
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
  const backendsOption = option(args, 'backends')?.split(',');
  const backends = backendsOption ?? (quick ? ['memory'] : BACKENDS.map((b) => b.name));
  const onlyOption = option(args, 'only')?.split(',');
  const unknown = onlyOption?.filter((name) => !(BENCHMARKS as readonly string[]).includes(name)) ?? [];
  // In the order of BENCHMARKS: the same set always names the same block of BENCHMARKS.md.
  const only = onlyOption && BENCHMARKS.filter((name) => onlyOption.includes(name));
  if (unknown.length > 0) throw new Error(`--only names unknown benchmarks: ${unknown.join(', ')}; known: ${BENCHMARKS.join(', ')}.`);
  const runs = (name: Benchmark) => (only ? only.includes(name) : DEFAULT_BENCHMARKS.includes(name));
  assertBuilt();

  const loadAverageBefore = Math.round(os.loadavg()[0] * 100) / 100;
  const started = performance.now();
  const startedAt = new Date().toISOString();

  const waits: WaitsAtSize[] = [];
  for (const size of runs('waits') ? plan.sizes : []) {
    log(`waits: ${size.toLocaleString('en-US')} concurrent waits`);
    const result = await inChild<WaitsResult>('waits', { ...plan.waits, waits: size }, 5 * MINUTE);
    if (!result.resume) throw new Error('The waits benchmark left no file to resume from.');
    log(`waits: resuming ${size.toLocaleString('en-US')} waits after a restart`);
    const resume = await inChild<ResumeResult>('resume', result.resume, 3 * MINUTE);
    waits.push({ ...result, resume });
  }

  let nodeRed: NodeRedResult | undefined;
  if (runs('node-red')) {
    log(`node-red: ${plan.nodeRed.messages.toLocaleString('en-US')} messages into one deferrable-sensor`);
    nodeRed = await inChild<NodeRedResult>('node-red', plan.nodeRed, 5 * MINUTE);
  }

  const naiveWaits: BenchReport['naiveWaits'] = [];
  const naiveSizes = option(args, 'naive-sizes')?.split(',').map(Number) ?? plan.naiveWaits.sizes;
  if (naiveSizes.some((n) => !Number.isSafeInteger(n) || n < plan.naiveWaits.options.collections)) {
    throw new Error(`--naive-sizes must be whole numbers of waits, at least ${plan.naiveWaits.options.collections} (one per collection).`);
  }
  for (const size of runs('naive-waits') ? naiveSizes : []) {
    const o = plan.naiveWaits.options;
    log(`naive-waits: ${size.toLocaleString('en-US')} waits through Node-RED, sensor / function node / delay loop, ${o.repetitions} repetition(s)`);
    // A cap, not an estimate: four node-red runs per repetition, each waiting out the indexing.
    const capMs = ((o.repetitions * 4 + 2) * (o.readyFromS + o.readySpanS + 180) * 1000 + size * 20);
    // The delay loop cannot turn its 10,000 messages in its 1 s already (it turns about every 4 s): above
    // NAIVE_DELAY_UP_TO it would only take the run's time; the targets compare the sensor with the function node.
    const variants = size > NAIVE_DELAY_UP_TO ? (['sensor', 'function'] as const) : undefined;
    naiveWaits.push(
      await inChild<NaiveWaitsResult>('naive-waits', { ...o, waits: size, ...(variants ? { variants: [...variants] } : {}) }, capMs).catch((err: unknown) => {
        log(`naive-waits: ${size.toLocaleString('en-US')} waits failed: ${err instanceof Error ? err.message : String(err)}`);
        return { waits: size, skipped: firstLine(err) };
      }),
    );
  }

  const ingestQuery: StoreOutcome[] = [];
  for (const backend of runs('store') ? backends : []) {
    log(`ingest and query: ${backend}`);
    // A store that fails mid-run is recorded with why (its targets then show as not met), like one that cannot start.
    ingestQuery.push(await inChild<StoreOutcome>('store', { ...plan.store, backend }, 10 * MINUTE).catch((err: unknown) => ({ backend, skipped: firstLine(err) })));
  }

  let search: SearchResult | undefined;
  if (runs('search')) {
    log(`search: memory backend over ${plan.search.vectors.toLocaleString('en-US')} vectors against the memory bandwidth`);
    search = await inChild<SearchResult>('search', plan.search, 5 * MINUTE);
  }

  let hnsw: HnswOutcome | undefined;
  if (runs('hnsw')) {
    log(`hnsw: memory store's HNSW index against its exact search over ${plan.hnsw.vectors.toLocaleString('en-US')} vectors (building it takes minutes)`);
    hnsw = await inChild<HnswOutcome>('hnsw', plan.hnsw, 40 * MINUTE).catch((err: unknown) => ({ vectors: plan.hnsw.vectors, skipped: firstLine(err) }));
  }

  const ingestJobs = runs('ingest-jobs') ? await runIngestJobs(plan.ingestJobs, backendsOption) : undefined;

  const ingestGrowth: IngestGrowthOutcome[] = [];
  for (const store of runs('ingest-growth') ? GROWTH_STORES.filter((s) => backends.includes(s)) : []) {
    for (const documents of plan.ingestGrowth.sizes) {
      log(`ingest growth: ${documents.toLocaleString('en-US')} documents into ${store}, batches of ${plan.ingestGrowth.batchSize}, buildIndex on`);
      const options: IngestGrowthOptions = { store, documents, batchSize: plan.ingestGrowth.batchSize };
      ingestGrowth.push(
        await inChild<IngestGrowthResult>('ingest-growth', options, 20 * MINUTE).catch((err: unknown) => ({ store, documents, skipped: firstLine(err) })),
      );
    }
  }

  let embedding: EmbeddingResult | { skipped: string } | undefined;
  if (runs('embedding')) {
    const e = plan.embedding;
    log(`embedding: one embed() of ${e.texts.toLocaleString('en-US')} texts, concurrency ${e.concurrency}, against a stub of ${e.stub.ratePerSecond.toLocaleString('en-US')} texts/s`);
    embedding = await inChild<EmbeddingResult>('embedding', e, 3 * MINUTE).catch((err: unknown) => ({ skipped: firstLine(err) }));
  }

  let sharedWaits: SharedWaitsResult | { skipped: string } | undefined;
  if (runs('shared-waits')) {
    const s = plan.sharedWaits;
    log(`shared-waits: ${s.waits.toLocaleString('en-US')} waits over ${s.instances} node-red instances and PostgreSQL 15, then kill -9 of the one holding most`);
    sharedWaits = await inChild<SharedWaitsResult>('shared-waits', s, 15 * MINUTE).catch((err: unknown) => ({ skipped: firstLine(err) }));
  }

  const partial: Omit<BenchReport, 'targets'> = {
    mode: quick ? 'quick' : 'full',
    ...(only ? { only } : {}),
    command: ['npm run bench', ...(args.length > 0 ? ['--', ...args] : [])].join(' '),
    startedAt,
    durationSeconds: Math.round((performance.now() - started) / 100) / 10,
    machine: machine(loadAverageBefore),
    waits,
    nodeRed,
    naiveWaits,
    ingestQuery,
    search,
    hnsw,
    ingestJobs,
    ...(ingestGrowth.length > 0 ? { ingestGrowth } : {}),
    embedding,
    sharedWaits,
  };
  const report: BenchReport = { ...partial, targets: checkTargets(partial) };
  process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  if (write) {
    const file = await writeBenchmarksFile(path.join(__dirname, '..', 'BENCHMARKS.md'), report, only ?? DEFAULT_BENCHMARKS);
    log(`wrote ${path.relative(process.cwd(), file) || file}`);
  }
  const missed = report.targets.filter((t) => t.met === false && !t.withinNoise);
  const noisy = report.targets.filter((t) => t.withinNoise);
  if (noisy.length > 0) log(`within the run-to-run noise of their target (neither met nor missed): ${noisy.map((t) => t.name).join('; ')}`);
  const unchecked = report.targets.filter((t) => t.met === null).length;
  const note = unchecked > 0 ? ` (${unchecked} checked by the full run only)` : '';
  log(missed.length === 0 ? `every target checked is met${note}` : `targets missed: ${missed.map((t) => t.name).join('; ')}${note}`);
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0];
}

/**
 * Ingest jobs: throughput per store, memory at each size (job, then the direct
 * calls), resume after SIGKILL. A store that cannot run is recorded with why,
 * so that its targets show as not met.
 */
async function runIngestJobs(plan: Plan['ingestJobs'], backendsOption: string[] | undefined): Promise<IngestJobsReport> {
  const n = (x: number) => x.toLocaleString('en-US');
  const job = <T>(options: IngestJobsOptions, timeoutMs: number) => inChild<T>('ingest-jobs', options, timeoutMs);
  const stores = JOB_STORES.filter((s) => !backendsOption || backendsOption.includes(s));
  const throughput: IngestJobsReport['throughput'] = [];
  for (const store of stores) {
    log(`ingest jobs: ${n(plan.documents)} documents, job against direct calls, ${store} store`);
    throughput.push(
      await job<ThroughputResult>({ mode: 'throughput', store, documents: plan.documents, batchSize: plan.batchSize, repetitions: plan.repetitions[store] }, 20 * MINUTE).catch(
        (err: unknown) => ({ store, skipped: firstLine(err) }),
      ),
    );
  }
  const memory: MemoryResult[] = [];
  for (const documents of plan.memorySizes) {
    for (const path of ['job', 'direct'] as const) {
      log(`ingest jobs: memory while ${path === 'job' ? 'a job runs' : 'the direct calls run'}, ${n(documents)} documents`);
      memory.push(await job<MemoryResult>({ mode: 'memory', store: 'discard', documents, batchSize: plan.batchSize, path }, 5 * MINUTE));
    }
  }
  log(`ingest jobs: kill -9 after a quarter of a ${n(plan.resumeDocuments)}-document job, resume in a new process`);
  const resume = await job<JobResumeResult>({ mode: 'resume', documents: plan.resumeDocuments, batchSize: plan.batchSize }, 5 * MINUTE);
  return { stores, throughput, memory, resume };
}

main().catch((err) => {
  process.stderr.write(`[bench] ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
