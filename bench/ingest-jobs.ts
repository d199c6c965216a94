/**
 * Background ingest jobs (issue 10), without Node-RED: the engine's job runner
 * as vector-ingest uses it (`spoolIngestJob`, then `Triggerer.defer` of the
 * job with its owner attached, until the final), against what a program would
 * do directly with the same store and embedder.
 *
 * Modes, each run in a fresh child process (bench/child.ts):
 * - `throughput`: N documents through the job against the direct calls (embed a
 *   batch, `Backend.upsert` it; batches of 100), on one store, interleaved
 *   repetitions (A B, B A, ...), medians. `buildIndex` is off on both sides: the
 *   index build is the store's own work, so the runner's overhead is what is
 *   compared. Every repetition gets a fresh store directory, set up and removed
 *   outside the timed part.
 * - `memory`: one job (or the direct calls) over N documents; resident memory
 *   before the input exists, with it, and sampled while the work runs.
 * - `resume`: a worker process runs a job and is killed with SIGKILL after a
 *   quarter of its batches; a second process resumes it from the same waits
 *   file and jobs directory. The embedder counts every text it answers in a
 *   file appended synchronously, so the killed process's counts survive it.
 */
import { fork } from 'node:child_process';
import { appendFileSync, promises as fs, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { LanceDbBackend } from '../lib/backends/lancedb';
import { MemoryBackend } from '../lib/backends/memory';
import { HashEmbedder } from '../lib/embedders/hash';
import { stableId } from '../lib/ids';
import { spoolIngestJob } from '../lib/ingest-job/prepare';
import type { JobFinalPayload, JobSuccessPayload } from '../lib/ingest-job/spec';
import type { JobEvent } from '../lib/ingest-job/run';
import { Triggerer, type JobRecord } from '../lib/triggerer';
import type { Backend, CollectionRef, CollectionStats, CollectionStatus, DeleteResult, Embedder, QueryHit, UpsertResult, VectorDocument } from '../lib/types';
import { WaitStore } from '../lib/wait-store';
import { compareInterleaved, median, memoryAfterGc, ms } from './measure';
import { documentText } from './store';

/** `discard`: keeps nothing (counts the writes), so that memory readings show the runner's own growth, not the store's. */
export type JobStoreName = 'memory' | 'lancedb' | 'discard';

export type IngestJobsOptions =
  | ({ mode: 'throughput' } & ThroughputOptions)
  | ({ mode: 'memory' } & MemoryOptions)
  | ({ mode: 'resume' } & ResumeOptions)
  | ({ mode: 'resume-worker' } & WorkerOptions);

export interface ThroughputOptions {
  store: JobStoreName;
  documents: number;
  batchSize: number;
  repetitions: number;
}

export interface MemoryOptions {
  store: JobStoreName;
  documents: number;
  batchSize: number;
  /** The job runner, or the direct calls (what the store and embedder take by themselves). */
  path: 'job' | 'direct';
}

export interface ResumeOptions {
  documents: number;
  batchSize: number;
}

interface WorkerOptions extends ResumeOptions {
  dir: string;
  /** First process: create the job, tell the parent after each batch. Second: resume it. */
  role: 'first' | 'second';
}

export interface ThroughputResult {
  store: JobStoreName;
  describe: string;
  documents: number;
  batchSize: number;
  repetitions: number;
  jobMs: number;
  directMs: number;
  /** Median of the pairs' ratios job / direct. */
  ratio: number;
  jobDocsPerSecond: number;
  directDocsPerSecond: number;
  /** The job's own phases (medians over its repetitions). */
  phases: { spoolMs: number; embedMs: number; writeMs: number };
  jobRunsMs: number[];
  directRunsMs: number[];
}

export interface MemoryResult {
  store: JobStoreName;
  path: 'job' | 'direct';
  documents: number;
  /** RSS after GC before the input array exists. */
  baselineRss: number;
  /** What the input array added (RSS, and V8 heap), after GC. */
  inputRss: number;
  inputHeap: number;
  /** Highest RSS sampled (every 10 ms) while spooling, and while the batches ran, minus the RSS with the input in memory. */
  spoolPeakGrowth: number;
  runPeakGrowth: number;
  /** RSS after GC when the spool is written (the batches not yet run), minus the RSS with the input: what the spooling left behind. */
  retainedAfterSpool: number;
  /** Highest RSS while the batches ran, minus that reading: the run's own growth. */
  runGrowthFromItsStart: number;
  /** The larger of the two: the work's own growth (peak minus baseline minus the input). */
  peakGrowth: number;
  /** Highest V8 heap sampled, minus the heap with the input in memory. */
  heapPeakGrowth: number;
  /** The process's peak RSS (getrusage maxrss) minus the RSS with the input in memory: a check on the sampling. */
  maxRssGrowth: number;
  /** Bytes of the spool file (job only). */
  spoolBytes: number;
  durationMs: number;
}

export interface ResumeResult {
  documents: number;
  batchSize: number;
  batches: number;
  /** Batches the first process had saved when it was killed (read from the waits file's last checkpoint). */
  batchesDoneAtKill: number;
  /** Texts the embedder answered in the first process, in the second, and more than once over both. */
  embeddedFirst: number;
  embeddedSecond: number;
  embeddedTwice: number;
  /** Every document written, no final lost or repeated. */
  finalIngested: number;
  finalResumed: number;
  finals: number;
  totalCount: number;
  /** From the second process's start (loading the waits file included) to the final. */
  resumeToFinalMs: number;
}

export type IngestJobsResult = ThroughputResult | MemoryResult | ResumeResult;

const DIMENSIONS = 384;
const OWNER = 'bench-ingest';

const DESCRIBE: Record<JobStoreName, string> = {
  memory: 'memory store persisted in a temporary directory',
  lancedb: 'embedded @lancedb/lancedb in a temporary directory',
  discard: 'a store that keeps nothing (counts the documents written)',
};

/**
 * A store that keeps nothing but counts: the memory and LanceDB stores hold or
 * cache what they are given (LanceDB grows by 4 to 6 KB of resident memory per
 * document written, job or not), which would hide the runner's own memory.
 */
class DiscardingBackend implements Backend {
  readonly name = 'discard';
  private readonly counts = new Map<string, number>();

  async ensureCollection(collection: string): Promise<void> {
    if (!this.counts.has(collection)) this.counts.set(collection, 0);
  }
  async collectionExists(collection: CollectionRef): Promise<boolean> {
    return this.counts.has(collection as string);
  }
  async upsert(collection: string, docs: VectorDocument[]): Promise<UpsertResult> {
    const total = (this.counts.get(collection) ?? 0) + docs.length;
    this.counts.set(collection, total);
    return { written: docs.length, totalCount: total };
  }
  async delete(): Promise<DeleteResult> {
    throw new Error('The discarding store deletes nothing.');
  }
  async status(): Promise<CollectionStatus> {
    throw new Error('The discarding store has no status.');
  }
  async stats(collection: CollectionRef): Promise<CollectionStats> {
    return { documentCount: this.counts.get(collection as string) ?? 0, indexedCount: 0, dimensions: DIMENSIONS, metric: 'cosine', indexType: 'none' };
  }
  async query(): Promise<QueryHit[]> {
    return [];
  }
  async close(): Promise<void> {
    this.counts.clear();
  }
}

async function tempDir(prefix: string): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

function openBackend(store: JobStoreName, dir: string): Backend {
  if (store === 'memory') return new MemoryBackend({ dataDir: dir, indexingRate: 1_000_000, indexingDelay: 0 });
  if (store === 'lancedb') return new LanceDbBackend({ path: dir });
  return new DiscardingBackend();
}

function inputOf(documents: number): Array<{ text: string }> {
  return Array.from({ length: documents }, (_, i) => ({ text: documentText(i) }));
}

/** Jobs, start to final, in a triggerer of their own on a waits file in `dir`. */
class JobSide {
  private finalSeen: ((payload: JobFinalPayload) => void) | null = null;
  /** Finals received, to see that none is repeated. */
  finals = 0;
  readonly triggerer: Triggerer;
  readonly jobsDir: string;

  constructor(
    readonly dir: string,
    private readonly backend: Backend,
    private readonly embedder: Embedder,
  ) {
    this.jobsDir = path.join(dir, 'jobs');
    this.triggerer = new Triggerer({ waitStore: new WaitStore(path.join(dir, 'waits.jsonl')), jobsDir: this.jobsDir });
  }

  /** Attach the jobs' owner, as a vector-ingest node does when its flow starts. */
  attach(): this {
    this.triggerer.attach(OWNER, {
      backend: this.backend,
      embedder: this.embedder,
      storeKey: 'bench-store',
      onEvent: (_record, event) => {
        const e = event as JobEvent;
        if (e.type !== 'final') return;
        this.finals += 1;
        this.finalSeen?.(e.payload);
      },
    });
    return this;
  }

  /** The next final, as a success (a failure rejects). */
  nextFinal(): Promise<JobSuccessPayload> {
    return new Promise<JobSuccessPayload>((resolve, reject) => {
      this.finalSeen = (payload) => {
        if (payload.status === 'success') resolve(payload);
        else reject(new Error(`The ingest job failed: ${payload.message}`));
      };
    });
  }

  /** Spool and defer a job; resolves with its final. `onSpooled` gets the spool file once it is written. */
  async run(input: Array<{ text: string }>, collection: string, batchSize: number, onSpooled?: (spool: string) => Promise<void> | void): Promise<JobSuccessPayload> {
    const final = this.nextFinal();
    const { spec, batches } = await spoolIngestJob({ backend: this.backend, embedder: this.embedder }, input, this.jobsDir, {
      jobId: `job-${collection}`,
      collection,
      batchSize,
      createCollection: true,
      buildIndex: false,
    });
    await onSpooled?.(path.join(this.jobsDir, spec.spool));
    const record: JobRecord = { ownerId: OWNER, spec, message: { topic: 'bench' } };
    await this.triggerer.defer(record, { batches });
    const payload = await final;
    if (payload.ingested !== input.length) throw new Error(`The ingest job wrote ${payload.ingested} of ${input.length} documents.`);
    return payload;
  }

  close(): Promise<void> {
    return this.triggerer.close();
  }
}

/** What a program would do: embed a batch, write it, next batch. */
async function direct(backend: Backend, embedder: Embedder, input: Array<{ text: string }>, collection: string, batchSize: number): Promise<void> {
  await backend.ensureCollection(collection, { dimensions: DIMENSIONS, metric: 'cosine' });
  for (let start = 0; start < input.length; start += batchSize) {
    const texts = input.slice(start, start + batchSize).map((d) => d.text);
    const vectors = await embedder.embed(texts);
    const docs: VectorDocument[] = texts.map((text, i) => ({ id: stableId(text), vector: vectors[i], text }));
    await backend.upsert(collection, docs, { buildIndex: false });
  }
}

async function throughput(options: ThroughputOptions): Promise<ThroughputResult> {
  const embedder = new HashEmbedder(DIMENSIONS);
  const input = inputOf(options.documents);
  const phases: Array<{ spoolMs: number; embedMs: number; writeMs: number }> = [];
  // Each timed run gets a fresh store (and, for the job, a fresh triggerer), made before the clock starts.
  let backend: Backend | null = null;
  let job: JobSide | null = null;
  let dir = '';
  const setUp = async (side: 'job' | 'direct') => {
    dir = await tempDir(`bench-jobs-${options.store}-`);
    backend = openBackend(options.store, path.join(dir, 'store'));
    if (side === 'job') job = new JobSide(dir, backend, embedder).attach();
  };
  const tearDown = async () => {
    await job?.close();
    await backend?.close();
    job = null;
    backend = null;
    await fs.rm(dir, { recursive: true, force: true });
  };
  const jobRun = async (rep: number) => {
    const final = await (job as unknown as JobSide).run(input, `job_${rep}`, options.batchSize);
    phases.push(final.durations);
  };
  const directRun = (rep: number) => direct(backend as unknown as Backend, embedder, input, `direct_${rep}`, options.batchSize);

  // Warm-up of both paths (code, the store's native module), not timed.
  const warm = inputOf(Math.min(2_000, options.documents));
  await setUp('job');
  await (job as unknown as JobSide).run(warm, 'warmup', options.batchSize);
  await tearDown();
  await setUp('direct');
  await direct(backend as unknown as Backend, embedder, warm, 'warmup', options.batchSize);
  await tearDown();

  const result = await compareInterleaved(options.repetitions, jobRun, directRun, {
    before: (side) => setUp(side === 'a' ? 'job' : 'direct'),
    after: () => tearDown(),
  });
  const perSecond = (msTaken: number) => Math.round(options.documents / (msTaken / 1000));
  return {
    store: options.store,
    describe: DESCRIBE[options.store],
    documents: options.documents,
    batchSize: options.batchSize,
    repetitions: options.repetitions,
    jobMs: result.aMs,
    directMs: result.bMs,
    ratio: result.ratio,
    jobDocsPerSecond: perSecond(result.aMs),
    directDocsPerSecond: perSecond(result.bMs),
    phases: {
      spoolMs: ms(median(phases.map((p) => p.spoolMs))),
      embedMs: ms(median(phases.map((p) => p.embedMs))),
      writeMs: ms(median(phases.map((p) => p.writeMs))),
    },
    jobRunsMs: result.aRuns,
    directRunsMs: result.bRuns,
  };
}

/** The highest RSS and heap seen, sampled every 10 ms, per phase. */
class PeakSampler {
  phase: 'spool' | 'run' = 'spool';
  readonly rss = { spool: 0, run: 0 };
  heap = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor() {
    this.resume();
  }

  pause(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  resume(): void {
    this.timer ??= setInterval(() => this.sample(), 10);
  }

  sample(): void {
    const { rss, heapUsed } = process.memoryUsage();
    this.rss[this.phase] = Math.max(this.rss[this.phase], rss);
    this.heap = Math.max(this.heap, heapUsed);
  }

  stop(): void {
    this.sample();
    this.pause();
  }
}

async function memory(options: MemoryOptions): Promise<MemoryResult> {
  const embedder = new HashEmbedder(DIMENSIONS);
  const dir = await tempDir(`bench-jobs-memory-`);
  const backend = openBackend(options.store, path.join(dir, 'store'));
  const job = options.path === 'job' ? new JobSide(dir, backend, embedder).attach() : null;
  try {
    // Warm up the code paths and the store (a small, separate collection), then read the baseline.
    const warm = inputOf(500);
    if (job) await job.run(warm, 'warmup', options.batchSize);
    else await direct(backend, embedder, warm, 'warmup', options.batchSize);
    const baseline = memoryAfterGc();
    const input = inputOf(options.documents);
    const withInput = memoryAfterGc();
    const sampler = new PeakSampler();
    const started = performance.now();
    let spoolBytes = 0;
    let atRunStart = withInput;
    if (job) {
      await job.run(input, 'measured', options.batchSize, async (spool) => {
        sampler.sample();
        spoolBytes = (await fs.stat(spool)).size;
        sampler.pause();
        atRunStart = memoryAfterGc();
        sampler.phase = 'run';
        sampler.resume();
      });
    } else {
      sampler.phase = 'run';
      await direct(backend, embedder, input, 'measured', options.batchSize);
    }
    const durationMs = performance.now() - started;
    sampler.stop();
    const maxRss = process.resourceUsage().maxRSS * 1024;
    const growth = (peak: number) => Math.max(0, peak - withInput.rss);
    return {
      store: options.store,
      path: options.path,
      documents: options.documents,
      baselineRss: baseline.rss,
      inputRss: withInput.rss - baseline.rss,
      inputHeap: withInput.heapUsed - baseline.heapUsed,
      spoolPeakGrowth: growth(sampler.rss.spool),
      runPeakGrowth: growth(sampler.rss.run),
      retainedAfterSpool: atRunStart.rss - withInput.rss,
      runGrowthFromItsStart: Math.max(0, sampler.rss.run - atRunStart.rss),
      peakGrowth: growth(Math.max(sampler.rss.spool, sampler.rss.run)),
      heapPeakGrowth: Math.max(0, sampler.heap - withInput.heapUsed),
      maxRssGrowth: growth(maxRss),
      spoolBytes,
      durationMs: ms(durationMs),
    };
  } finally {
    await job?.close();
    await backend.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** Counts every text answered, in a file appended synchronously: a SIGKILL cannot take back a line written. */
class LoggingEmbedder implements Embedder {
  readonly name = 'hash';
  readonly dimensions = DIMENSIONS;
  private readonly inner = new HashEmbedder(DIMENSIONS);
  onBatch: () => void = () => undefined;

  constructor(private readonly log: string) {}

  async embed(texts: string[], signal?: AbortSignal): Promise<Float32Array[]> {
    const vectors = await this.inner.embed(texts, signal);
    appendFileSync(this.log, JSON.stringify(texts) + '\n');
    this.onBatch();
    return vectors;
  }
}

function readEmbedded(log: string): string[] {
  let text = '';
  try {
    text = readFileSync(log, 'utf8');
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      out.push(...(JSON.parse(line) as string[]));
    } catch {
      // A line cut by the kill: its texts were not all answered before it.
    }
  }
  return out;
}

type WorkerMessage = { kind: 'batch'; calls: number } | { kind: 'result'; result: Omit<ResumeResult, 'embeddedFirst' | 'embeddedSecond' | 'embeddedTwice' | 'batchesDoneAtKill'> };

/** A worker process (this module in bench/child.ts, role first or second), with its messages. */
function startWorker(options: WorkerOptions, onMessage: (message: WorkerMessage) => void): { done: Promise<number | null>; kill(): void } {
  const child = fork(path.join(__dirname, 'child.ts'), ['ingest-jobs'], {
    execArgv: ['--expose-gc', '--import', 'tsx'],
    stdio: ['ignore', process.stderr, process.stderr, 'ipc'],
  });
  child.on('message', (m: WorkerMessage | { ok: boolean; error?: string }) => {
    if ('kind' in m) onMessage(m);
    else if (!m.ok) process.stderr.write(`[bench] resume worker failed: ${m.error}\n`);
  });
  const done = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => resolve(code));
  });
  child.send({ options: { ...options, mode: 'resume-worker' } });
  return { done, kill: () => child.kill('SIGKILL') };
}

async function resume(options: ResumeOptions): Promise<ResumeResult> {
  const dir = await tempDir('bench-jobs-resume-');
  // Only what a worker needs (never this mode: a worker must not start workers).
  const worker = { documents: options.documents, batchSize: options.batchSize, dir };
  try {
    const batches = Math.ceil(options.documents / options.batchSize);
    const quarter = Math.ceil(batches / 4);
    const first = startWorker({ ...worker, role: 'first' }, (m) => {
      if (m.kind === 'batch' && m.calls >= quarter) first.kill();
    });
    const code = await first.done;
    if (code !== null) throw new Error(`The first process ended (code ${code}) before it was killed: nothing to resume.`);
    const embeddedFirst = readEmbedded(path.join(dir, 'embedded-first.jsonl'));
    const batchesDoneAtKill = lastCheckpoint(path.join(dir, 'waits.jsonl'));
    let result: Extract<WorkerMessage, { kind: 'result' }>['result'] | null = null;
    const second = startWorker({ ...worker, role: 'second' }, (m) => {
      if (m.kind === 'result') result = m.result;
    });
    await second.done;
    if (!result) throw new Error('The resuming process ended without a result.');
    const embeddedSecond = readEmbedded(path.join(dir, 'embedded-second.jsonl'));
    const seen = new Map<string, number>();
    for (const text of [...embeddedFirst, ...embeddedSecond]) seen.set(text, (seen.get(text) ?? 0) + 1);
    let twice = 0;
    for (const count of seen.values()) if (count > 1) twice += 1;
    return { ...(result as ResumeResult), batchesDoneAtKill, embeddedFirst: embeddedFirst.length, embeddedSecond: embeddedSecond.length, embeddedTwice: twice };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** batchesDone of the job's last record in the waits file (the checkpoint the second process resumes from). */
function lastCheckpoint(file: string): number {
  let done = 0;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const match = /"batchesDone":(\d+)/.exec(line);
    if (match) done = Number(match[1]);
  }
  return done;
}

async function resumeWorker(options: WorkerOptions): Promise<void> {
  const send = (message: WorkerMessage) => process.send?.(message);
  const embedder = new LoggingEmbedder(path.join(options.dir, `embedded-${options.role}.jsonl`));
  const backend = openBackend('memory', path.join(options.dir, 'store'));
  const started = performance.now();
  const side = new JobSide(options.dir, backend, embedder);
  if (options.role === 'first') {
    let calls = 0;
    embedder.onBatch = () => send({ kind: 'batch', calls: ++calls });
    side.attach();
    await side.run(inputOf(options.documents), 'resumed', options.batchSize);
    throw new Error('The first process finished its job before it was killed: give it more documents.');
  }
  // Second process: the job is on disk. Load the waits file, then attach the owner: the job resumes.
  const final = side.nextFinal();
  await side.triggerer.start();
  side.attach();
  const payload = await final;
  const resumeToFinalMs = ms(performance.now() - started);
  // A repeated final would come right after the first: give it a moment.
  await new Promise((resolve) => setTimeout(resolve, 200));
  const totalCount = (await backend.stats('resumed')).documentCount;
  const finals = side.finals;
  await side.close();
  await backend.close();
  send({
    kind: 'result',
    result: {
      documents: options.documents,
      batchSize: options.batchSize,
      batches: payload.batches,
      finalIngested: payload.ingested,
      finalResumed: payload.resumed,
      finals,
      totalCount,
      resumeToFinalMs,
    },
  });
}

export async function run(options: IngestJobsOptions): Promise<IngestJobsResult | null> {
  switch (options.mode) {
    case 'throughput':
      return throughput(options);
    case 'memory':
      return memory(options);
    case 'resume':
      return resume(options);
    case 'resume-worker':
      await resumeWorker(options);
      return null;
  }
}
