/**
 * The figures of one benchmark run, and the issue's targets checked against them.
 */
import type { EmbeddingResult } from './embedding';
import type { IngestGrowthResult } from './ingest-growth';
import type { JobStoreName, MemoryResult, ResumeResult as JobResumeResult, ThroughputResult } from './ingest-jobs';
import type { NaiveWaitsResult } from './naive-waits';
import type { NodeRedResult } from './node-red';
import type { ResumeResult } from './resume';
import type { SearchResult } from './search';
import type { SharedWaitsResult } from './shared-waits';
import { HNSW_DATASETS, HNSW_TARGETS, type HnswOutcome } from './hnsw';
import { percentile } from './measure';
import type { StoreOutcome, StoreResult } from './store';
import type { WaitsResult } from './waits';

export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  os: string;
  node: string;
  /** 1-minute load average before and after the run: others' work on the machine shows here. */
  loadAverageBefore: number;
  loadAverageAfter: number;
}

export interface WaitsAtSize extends Omit<WaitsResult, 'resume'> {
  resume: ResumeResult;
}

export interface IngestJobsReport {
  /** The stores the throughput was measured on (a store that could not run is in `throughput` with why). */
  stores: JobStoreName[];
  throughput: Array<ThroughputResult | { store: JobStoreName; skipped: string }>;
  /** Job, then direct, at each size, on the discarding store. */
  memory: MemoryResult[];
  resume: JobResumeResult;
}

export interface BenchReport {
  mode: 'full' | 'quick';
  /** The benchmarks run (--only); absent: all of them. */
  only?: string[];
  command: string;
  startedAt: string;
  durationSeconds: number;
  machine: MachineInfo;
  /** Empty, and the others absent, when --only left them out. */
  waits: WaitsAtSize[];
  nodeRed?: NodeRedResult;
  /** The three-way comparison through Node-RED, one entry per size (or why a size could not run). */
  /** Empty when not run. */
  naiveWaits?: Array<NaiveWaitsResult | { waits: number; skipped: string }>;
  ingestQuery: StoreOutcome[];
  search?: SearchResult;
  hnsw?: HnswOutcome;
  ingestJobs?: IngestJobsReport;
  /** Per store and size; absent when not run. */
  ingestGrowth?: IngestGrowthOutcome[];
  embedding?: EmbeddingResult | { skipped: string };
  sharedWaits?: SharedWaitsResult | { skipped: string };
  targets: TargetCheck[];
}

export type IngestGrowthOutcome = IngestGrowthResult | { store: string; documents: number; skipped: string };

export interface TargetCheck {
  name: string;
  target: string;
  measured: string;
  /** null: not checked by this run (a quick run has no 100,000 waits). */
  met: boolean | null;
  /**
   * The target lies within the run-to-run spread of the figure (some repetitions
   * meet it, some do not): reported as "within noise", not as met (`met` is false).
   */
  withinNoise?: boolean;
}

/** From this many repetitions on, the run-to-run noise is their middle half, not all of them. */
const QUARTILES_FROM = 5;

/**
 * The repetitions' figures that make the run-to-run noise: all of them when there
 * are few (a quartile of 3 figures means nothing), else those from the 25th to the
 * 75th percentile (nearest rank), so that one repetition hit by the machine's load
 * does not decide.
 */
export function noiseBand(values: number[]): number[] {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length < QUARTILES_FROM) return sorted;
  const low = percentile(sorted, 25);
  const high = percentile(sorted, 75);
  return sorted.filter((v) => v >= low && v <= high);
}

/**
 * The one rule for every target checked on repeated figures (the ratio targets):
 * met when the whole noise band meets it, not met when none of it does, and
 * "within noise" (not met) when the target lies inside the band. A single figure
 * has no band: met or not. No figure at all: not met.
 */
export function verdict(values: number[], ok: (value: number) => boolean): Pick<TargetCheck, 'met' | 'withinNoise'> {
  const band = noiseBand(values);
  const meeting = band.filter(ok).length;
  if (band.length > 0 && meeting === band.length) return { met: true };
  if (meeting === 0) return { met: false };
  return { met: false, withinNoise: true };
}

/** Each interleaved pair's ratio a / b (the figures `compareInterleaved` takes the median of). */
export function pairRatios(a: number[], b: number[]): number[] {
  return a.slice(0, b.length).map((x, i) => x / b[i]);
}

/** The noise band as text, after the figure in the measured column: ", noise band 0.98-1.12 over 9 pairs". */
function bandText(values: number[], digits = 2, unit = ''): string {
  const band = noiseBand(values);
  if (band.length < 2) return '';
  const f = (x: number) => String(Math.round(x * 10 ** digits) / 10 ** digits);
  return `, noise band ${f(band[0])}${unit}-${f(band[band.length - 1])}${unit} over ${values.length} pairs`;
}

/** A target whose figures could not be taken (the backend could not start, the run failed): not met, never left out. */
export function notMeasured(name: string, target: string, why: string): TargetCheck {
  return { name, target, measured: `not measured: ${why}`, met: false };
}

/** A check that the quick run makes but does not judge (its sizes are smaller than the targets'). */
function notChecked(check: TargetCheck): TargetCheck {
  return { name: check.name, target: check.target, measured: check.measured, met: null };
}

const TARGET_WAITS = 100_000;
/** Documents of the ingest-job targets; the quick run's smaller jobs are not checked against them. */
export const TARGET_JOB_DOCUMENTS = 100_000;
export const JOB_MEMORY_SIZES = [10_000, 100_000];
const JOB_RATIO = 1.15;
/** The job's own memory is flat when its growth at 100,000 documents is at most this times its growth at 10,000. */
export const JOB_MEMORY_FLAT = 1.5;
/** The embedder's throughput is within 10% of the stub's limit. */
const EMBEDDING_WITHIN = 0.1;
/** Texts of the embedding target (the quick run embeds fewer). */
const TARGET_EMBEDDING_TEXTS = 20_000;

function isStoreResult(outcome: StoreOutcome): outcome is StoreResult {
  return !('skipped' in outcome);
}

export function checkTargets(report: Omit<BenchReport, 'targets'>): TargetCheck[] {
  const checks = [...waitsTargets(report), ...naiveWaitsTargets(report), ...storeTargets(report)];
  if (report.search) checks.push(...searchTargets(report.search));
  if (report.hnsw) checks.push(...hnswTargets(report.hnsw));
  if (report.ingestJobs) checks.push(...ingestJobTargets(report.ingestJobs));
  if (report.ingestGrowth) checks.push(...ingestGrowthTargets(report.ingestGrowth));
  if (report.embedding) checks.push(embeddingTarget(report.embedding));
  if (report.sharedWaits) checks.push(...sharedWaitsTargets(report.sharedWaits));
  return checks;
}

/** Documents of the ingest-growth targets (the quick run stops at 10,000: not checked). */
const TARGET_GROWTH_DOCUMENTS = 100_000;
/** A batch at the end of the ingest costs at most this times one at its start. */
const GROWTH_FLAT = 1.5;
const TARGET_LANCEDB_100K_SECONDS = 100;

/**
 * Issue 12: per-batch time flat from the first to the last batch of a 100,000-document
 * ingest, on every store measured; LanceDB's 100,000 documents, to ready, well under
 * 100 s; its disk use proportional to the data (bytes per document at 100,000 at most
 * 1.5 times those at 10,000).
 */
/** Issue 12, part 3b: recall and speed of the memory store's HNSW index, per data set. */
function hnswTargets(outcome: HnswOutcome): TargetCheck[] {
  const name = (data: string) => `Memory-store HNSW index, ${data}`;
  const full = outcome.vectors >= HNSW_TARGETS.vectors;
  if ('skipped' in outcome) {
    const target = `recall@10 >= ${HNSW_TARGETS.recall} at >= ${HNSW_TARGETS.speedup}x the exact speed`;
    return HNSW_DATASETS.map((data) => notMeasured(name(data), target, outcome.skipped));
  }
  const size = `${outcome.vectors.toLocaleString('en-US')} x ${outcome.dimensions}${full ? '' : ' (quick run: not checked)'}`;
  return outcome.datasets.map((d) => {
    const speedups = pairRatios(d.exactRunsMs, d.hnswRunsMs);
    const check: TargetCheck = {
      name: name(d.data),
      target: `recall@${outcome.topK} >= ${HNSW_TARGETS.recall} at >= ${HNSW_TARGETS.speedup}x the exact speed`,
      measured: `recall ${d.recallAtK}, ${d.speedup}x${bandText(speedups, 1)} (${d.hnswMsPerQuery} against ${d.exactMsPerQuery} ms per query at ${size})`,
      // The recall is one figure (all queries): below the target, noise in the speed cannot help.
      ...(d.recallAtK >= HNSW_TARGETS.recall ? verdict(speedups, (x) => x >= HNSW_TARGETS.speedup) : { met: false }),
    };
    return full ? check : notChecked(check);
  });
}

function ingestGrowthTargets(outcomes: IngestGrowthOutcome[]): TargetCheck[] {
  const n = (x: number) => x.toLocaleString('en-US');
  const at = (store: string, documents: number) => outcomes.find((o) => o.store === store && o.documents === documents);
  const checks: TargetCheck[] = [];
  for (const store of [...new Set(outcomes.map((o) => o.store))]) {
    const names = {
      growth: `Ingest growth, ${store}: last 10% / first 10% of the batches`,
      seconds: 'LanceDB: 100,000 documents ingested, index caught up (ready)',
      disk: 'LanceDB: disk bytes per document once old versions are removed, 100,000 / 10,000',
    };
    const goals = { growth: `<= ${GROWTH_FLAT} at 100,000`, seconds: `< ${TARGET_LANCEDB_100K_SECONDS} s`, disk: `<= ${GROWTH_FLAT}` };
    const keys = (store === 'lancedb' ? ['growth', 'seconds', 'disk'] : ['growth']) as Array<keyof typeof names>;
    const largest = at(store, TARGET_GROWTH_DOCUMENTS);
    // A store that could not run at some size fails its targets, quick run or not.
    const failed = largest && 'skipped' in largest ? largest : outcomes.find((o): o is Extract<IngestGrowthOutcome, { skipped: string }> => o.store === store && 'skipped' in o);
    if (failed) {
      for (const key of keys) checks.push(notMeasured(names[key], goals[key], `${failed.skipped} (${n(failed.documents)} documents)`));
      continue;
    }
    if (!largest || 'skipped' in largest) {
      for (const key of keys) checks.push({ name: names[key], target: goals[key], measured: 'not run (quick run)', met: null });
      continue;
    }
    checks.push({
      name: names.growth,
      target: goals.growth,
      measured: `${largest.growth} (${largest.firstBatchesMs} ms -> ${largest.lastBatchesMs} ms per batch of ${largest.batchSize})`,
      ...verdict([largest.growth], (x) => x <= GROWTH_FLAT),
    });
    if (store !== 'lancedb') continue;
    checks.push({
      name: names.seconds,
      target: goals.seconds,
      measured: `${(largest.totalMs / 1000).toFixed(1)} s (${(largest.ingestMs / 1000).toFixed(1)} s ingest + ${(largest.catchUpMs / 1000).toFixed(1)} s catch-up)`,
      met: largest.totalMs < TARGET_LANCEDB_100K_SECONDS * 1000,
    });
    const smaller = at(store, TARGET_GROWTH_DOCUMENTS / 10);
    if (!smaller || 'skipped' in smaller) {
      checks.push(notMeasured(names.disk, goals.disk, `no run at ${n(TARGET_GROWTH_DOCUMENTS / 10)} documents to compare with`));
      continue;
    }
    const per = (o: IngestGrowthResult) => o.diskSettledBytes / o.documents;
    checks.push({
      name: names.disk,
      target: goals.disk,
      measured: `${(per(largest) / per(smaller)).toFixed(2)} (${n(Math.round(per(smaller)))} -> ${n(Math.round(per(largest)))} bytes per document)`,
      ...verdict([per(largest) / per(smaller)], (x) => x <= GROWTH_FLAT),
    });
  }
  return checks;
}

/**
 * Issue 12: at least half the memory bandwidth at 100k x 384, and queries never hold the event loop for long:
 * p99 10 ms in a process doing nothing else, 20 ms (the waits' own target) with 10,000 sensor waits pending.
 */
export const SEARCH_TARGETS = { vectors: 100_000, fractionOfBandwidth: 0.5, loopDelayP99Ms: 10, withWaitsLoopDelayP99Ms: 20 };

function searchTargets(search: SearchResult): TargetCheck[] {
  const full = search.vectors >= SEARCH_TARGETS.vectors;
  const size = `${search.vectors.toLocaleString('en-US')} x ${search.dimensions}${full ? '' : ' (quick run: not checked)'}`;
  const checks: TargetCheck[] = search.datasets.map((d) => {
    // Of the bandwidth, per pair: read time / search time.
    const fractions = pairRatios(d.bandwidthRunsMs, d.searchRunsMs);
    const check: TargetCheck = {
      name: `Memory-backend search speed, ${d.data} vectors`,
      target: `>= ${SEARCH_TARGETS.fractionOfBandwidth * 100}% of the memory bandwidth measured in the same run`,
      measured: `${Math.round(d.fractionOfBandwidth * 1000) / 10}%${bandText(fractions.map((x) => x * 100), 1, '%')} (${d.gbPerSecond} GB/s scanned, bandwidth ${d.bandwidthGbPerSecond} GB/s; ${d.msPerQuery} ms per query at ${size})`,
      ...verdict(fractions, (x) => x >= SEARCH_TARGETS.fractionOfBandwidth),
    };
    return full ? check : notChecked(check);
  });
  const idle = search.loopDelay.find((d) => d.concurrency === 0 && d.busyTurnMs === undefined);
  const busy = search.loopDelay.find((d) => d.busyTurnMs !== undefined);
  for (const delay of search.loopDelay.filter((d) => d.concurrency > 0)) {
    checks.push({
      name: `Event-loop delay p99 while queries run, ${delay.concurrency} at a time`,
      target: `<= ${SEARCH_TARGETS.loopDelayP99Ms} ms`,
      measured: `${delay.p99Ms} ms (max ${delay.maxMs} ms; ${delay.queries} queries at ${size}${idle ? `; no query, the loop idle: p99 ${idle.p99Ms} ms` : ''}${busy ? `, busy in turns of one slice: p99 ${busy.p99Ms} ms` : ''})`,
      met: full ? delay.p99Ms <= SEARCH_TARGETS.loopDelayP99Ms : null,
    });
  }
  const waits = search.withWaits;
  if (waits) {
    const baseline = (busyTurns: boolean) => waits.rows.find((d) => d.concurrency === 0 && (d.busyTurnMs !== undefined) === busyTurns);
    const [waitsIdle, waitsBusy] = [baseline(false), baseline(true)];
    for (const delay of waits.rows.filter((d) => d.concurrency > 0)) {
      checks.push({
        name: `Event-loop delay p99 while queries run with ${waits.waits.toLocaleString('en-US')} sensor waits pending, ${delay.concurrency} at a time`,
        target: `<= ${SEARCH_TARGETS.withWaitsLoopDelayP99Ms} ms`,
        measured:
          `${delay.p99Ms} ms (max ${delay.maxMs} ms; ${delay.queries} queries at ${size}, the waits polling ${waits.pollsPerSecond.toLocaleString('en-US')} times/s` +
          `${waitsIdle ? `; no query: p99 ${waitsIdle.p99Ms} ms` : ''}${waitsBusy ? `, busy in turns of one slice: p99 ${waitsBusy.p99Ms} ms` : ''})`,
        met: full ? delay.p99Ms <= SEARCH_TARGETS.withWaitsLoopDelayP99Ms : null,
      });
    }
  }
  return checks;
}

function waitsTargets(report: Omit<BenchReport, 'targets'>): TargetCheck[] {
  if (report.waits.length === 0) return [];
  const largest = report.waits[report.waits.length - 1];
  const full = largest.waits >= TARGET_WAITS;
  const at = full ? 'at 100,000' : `at ${largest.waits.toLocaleString('en-US')} (quick run: not checked)`;
  const checks: TargetCheck[] = [];
  const add = (name: string, target: string, measured: string, met: boolean) => checks.push({ name, target, measured, met });
  /** Checked by the full run only: about 100,000 waits, or sizes the quick run scales down. */
  const addOnFullRun = (name: string, target: string, measured: string, met: boolean) => checks.push({ name, target, measured, met: full ? met : null });

  const allEnded = largest.finals === largest.waits && largest.duplicateFinals === 0 && largest.failedFinals === 0;
  addOnFullRun(
    'Concurrent waits in one process',
    '100,000',
    `${largest.waits.toLocaleString('en-US')} waits, ${largest.finals.toLocaleString('en-US')} ended once each${allEnded ? '' : ' (NOT all)'}`,
    largest.waits >= TARGET_WAITS && allEnded,
  );
  addOnFullRun('Event-loop delay p99 with 100,000 waits', '<= 50 ms', `${largest.loopDelay.p99Ms} ms ${at}`, largest.loopDelay.p99Ms <= 50);
  addOnFullRun('Resident memory per wait at 100,000', '<= 2 KB (2,048 B)', `${largest.memoryPerWait.rssBytes} B ${at}`, largest.memoryPerWait.rssBytes <= 2048);
  const worstTick = report.waits.map((w) => `${w.statusCalls.perTickMax} of ${w.collections}`).join(', ');
  add(
    'Status calls per tick',
    '<= distinct collections waited on',
    `max per tick ${worstTick} (1k, 10k${report.waits.length > 2 ? ', 100k' : ''})`,
    report.waits.every((w) => w.statusCalls.perTickMax <= w.collections),
  );
  add(
    'Detection latency p99',
    '<= current poll interval + 100 ms',
    `latency beyond the wait's current interval, p99: ${report.waits.map((w) => `${w.latencyOverIntervalMs.p99} ms`).join(', ')} (absolute p99 ${largest.detectionLatencyMs.p99} ms ${at}, poll interval ${largest.pollIntervalMs} ms)`,
    report.waits.every((w) => w.latencyOverIntervalMs.p99 <= 100),
  );
  addOnFullRun('Resume 100,000 waits after a restart', '<= 2 s', `${largest.resume.resumeMs} ms ${at}`, largest.resume.resumeMs <= 2000);
  return checks;
}

/** Store calls: the sensor's at least this many times fewer than the function node's. */
export const NAIVE_CALLS_RATIO = 100;
/** CPU: the sensor's at least this many times less than the function node's. */
export const NAIVE_CPU_RATIO = 3;
/** Event-loop delay p99 with the sensor's waits pending. */
export const NAIVE_LOOP_P99_MS = 20;
/** Resume of the sensor's waits after kill -9 and a restart. */
export const NAIVE_RESUME_MS = 2000;
/** The setting of the issue's figures: 3 repetitions of waits of 25-34 s. */
const NAIVE_REPETITIONS = 3;
/** The smallest size at which the cost targets are judged (the issue's: 10,000 and 100,000 waits). */
export const NAIVE_JUDGED_FROM = 10_000;
const NAIVE_READY_FROM_S = 25;

/**
 * The issue's targets for the sensor against the function-node poller, at every size
 * run. Each is checked against every repetition (see `verdict`); a size that could
 * not run fails its targets.
 */
function naiveWaitsTargets(report: Omit<BenchReport, 'targets'>): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const per = (values: number[], digits = 2) => values.map((v) => (Math.round(v * 10 ** digits) / 10 ** digits).toLocaleString('en-US')).join(', ');
  for (const result of report.naiveWaits ?? []) {
    const at = `${result.waits.toLocaleString('en-US')} waits`;
    const names = {
      heap: `Sensor heap per pending wait <= function node's (${at})`,
      cpu: `Function node CPU / sensor CPU (${at})`,
      calls: `Function node store calls / sensor store calls (${at})`,
      loop: `Event-loop delay p99 while the sensor's waits are pending (${at})`,
      kill: `Sensor waits surviving kill -9, resumed (${at})`,
    };
    const goals = {
      heap: 'sensor / function <= 1',
      cpu: `>= ${NAIVE_CPU_RATIO}`,
      calls: `>= ${NAIVE_CALLS_RATIO} (every read of the store: status, collectionExists, stats, query)`,
      loop: `<= ${NAIVE_LOOP_P99_MS} ms`,
      kill: `all end once; every wait running again within ${NAIVE_RESUME_MS / 1000} s of the flows starting`,
    };
    const ran = (v: string) => 'runs' in result && result.runs.some((r) => r.variant === v);
    if ('skipped' in result || !ran('sensor') || !ran('function')) {
      const why = 'skipped' in result ? result.skipped : 'the sensor or the function node was not run (variants option)';
      for (const key of Object.keys(names) as Array<keyof typeof names>) checks.push(notMeasured(names[key], goals[key], why));
      continue;
    }
    // The quick run's single repetition of short waits shows that it runs, not what it costs.
    const setting = result.repetitions >= NAIVE_REPETITIONS && result.readyFromS >= NAIVE_READY_FROM_S;
    // The issue sets its cost targets at 10,000 and 100,000 waits; smaller runs are reported, not judged
    // (a few timers over 30 s cost little next to a durable wait's fixed cost). Survival is judged at every size.
    const judged = (check: TargetCheck) => check.name === names.kill || result.waits >= NAIVE_JUDGED_FROM;
    const push = (check: TargetCheck) =>
      checks.push(
        !setting
          ? { name: check.name, target: check.target, measured: `${check.measured}; quick run: not checked`, met: null }
          : !judged(check)
            ? { name: check.name, target: check.target, measured: `${check.measured}; reported only: the targets are at ${NAIVE_JUDGED_FROM.toLocaleString('en-US')} waits and more`, met: null }
            : check,
      );
    const pairs = Array.from({ length: result.repetitions }, (_, rep) => ({
      sensor: result.runs.find((r) => r.variant === 'sensor' && r.repetition === rep)!,
      fn: result.runs.find((r) => r.variant === 'function' && r.repetition === rep)!,
    }));
    const heap = pairs.map(({ sensor, fn }) => sensor.heapPerWaitBytes / Math.max(1, fn.heapPerWaitBytes));
    push({
      name: names.heap,
      target: goals.heap,
      measured: `${per(heap)} per repetition (sensor ${per(pairs.map((p) => p.sensor.heapPerWaitBytes), 0)} B, function node ${per(pairs.map((p) => p.fn.heapPerWaitBytes), 0)} B)`,
      ...verdict(heap, (x) => x <= 1),
    });
    const cpu = pairs.map(({ sensor, fn }) => fn.cpuMs / Math.max(1, sensor.cpuMs));
    push({
      name: names.cpu,
      target: goals.cpu,
      measured: `${per(cpu)} per repetition (function node ${per(pairs.map((p) => p.fn.cpuMs / 1000), 2)} s, sensor ${per(pairs.map((p) => p.sensor.cpuMs / 1000), 2)} s)`,
      ...verdict(cpu, (x) => x >= NAIVE_CPU_RATIO),
    });
    const calls = pairs.map(({ sensor, fn }) => fn.storeCalls.total / Math.max(1, sensor.storeCalls.total));
    const sensorCalls = pairs[0].sensor.storeCalls;
    push({
      name: names.calls,
      target: goals.calls,
      measured: `${per(calls)} per repetition (function node ${per(pairs.map((p) => p.fn.storeCalls.total), 0)}; sensor ${per(pairs.map((p) => p.sensor.storeCalls.total), 0)}, of which ${sensorCalls.collectionExists.toLocaleString('en-US')} collectionExists in the first repetition)`,
      ...verdict(calls, (x) => x >= NAIVE_CALLS_RATIO),
    });
    const loop = pairs.map(({ sensor }) => sensor.loopDelay.p99Ms);
    push({ name: names.loop, target: goals.loop, measured: `${per(loop, 1)} ms per repetition`, ...verdict(loop, (x) => x <= NAIVE_LOOP_P99_MS) });
    const k = result.killRestart;
    if (k) {
      const survived = k.finals === k.waits && k.repeatedFinals === 0 && k.errors === 0;
      push({
        name: names.kill,
        target: goals.kill,
        measured: `${k.finals.toLocaleString('en-US')} of ${k.waits.toLocaleString('en-US')} ended (${k.repeatedFinals} repeated, ${k.errors} errors); running again in ${k.resumeMs === null ? 'never' : `${k.resumeMs} ms`}`,
        met: survived && k.resumeMs !== null && k.resumeMs <= NAIVE_RESUME_MS,
      });
    }
  }
  return checks;
}

function storeTargets(report: Omit<BenchReport, 'targets'>): TargetCheck[] {
  const full = report.mode === 'full';
  const target = '<= 1.10 (node / direct)';
  const checks: TargetCheck[] = [];
  for (const outcome of report.ingestQuery) {
    const name = (what: string) => `Node overhead, ${what} (${outcome.backend})`;
    if (!isStoreResult(outcome)) {
      // A store that could not run fails its targets: it is never left out.
      checks.push(notMeasured(name('ingest'), target, outcome.skipped), notMeasured(name('query'), target, outcome.skipped));
      continue;
    }
    const ingest = pairRatios(outcome.ingest.nodeRunsMs, outcome.ingest.directRunsMs);
    const query = pairRatios(outcome.query.nodeRunsMs, outcome.query.directRunsMs);
    const q = outcome.query;
    const found = [
      { name: name('ingest'), target, measured: `${outcome.ingest.ratio}${bandText(ingest)}`, ...verdict(ingest, (x) => x <= 1.1) },
      {
        name: name('query'),
        target,
        measured: `${q.ratio}${bandText(query)} (${q.nodeMsPerQuery} vs ${q.directMsPerQuery} ms per query; one collectionExists: ${q.collectionExistsMs} ms)`,
        ...verdict(query, (x) => x <= 1.1),
      },
    ];
    // The node's cost is fixed per message: the quick run's small sets overstate the ratio.
    checks.push(...(full ? found : found.map(notChecked)));
  }
  return checks;
}

const int = (n: number) => n.toLocaleString('en-US');
const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`;

function ingestJobTargets(jobs: IngestJobsReport): TargetCheck[] {
  const checks: TargetCheck[] = [];
  for (const outcome of jobs.throughput) {
    const name = `Ingest job / direct calls (${outcome.store})`;
    const target = `<= ${JOB_RATIO} (job time / direct time, ${int(TARGET_JOB_DOCUMENTS)} documents)`;
    if ('skipped' in outcome) {
      // A store that cannot run here fails its target: it is never left out.
      checks.push(notMeasured(name, target, outcome.skipped));
      continue;
    }
    const atSize = outcome.documents >= TARGET_JOB_DOCUMENTS;
    const ratios = pairRatios(outcome.jobRunsMs, outcome.directRunsMs);
    const check: TargetCheck = {
      name,
      target,
      measured: `${outcome.ratio}${bandText(ratios)} (${outcome.jobMs} vs ${outcome.directMs} ms for ${int(outcome.documents)} documents${atSize ? '' : '; quick run: not checked'})`,
      ...verdict(ratios, (x) => x <= JOB_RATIO),
    };
    checks.push(atSize ? check : notChecked(check));
  }
  const jobAt = (documents: number) => jobs.memory.find((m) => m.path === 'job' && m.documents === documents);
  const sizes = [...new Set(jobs.memory.filter((m) => m.path === 'job').map((m) => m.documents))].sort((a, b) => a - b);
  const small = jobAt(sizes[0]);
  const large = jobAt(sizes[sizes.length - 1]);
  if (small && large && small !== large) {
    const atTarget = small.documents === JOB_MEMORY_SIZES[0] && large.documents === JOB_MEMORY_SIZES[1];
    const growth = large.peakGrowth / Math.max(1, small.peakGrowth);
    checks.push({
      name: `Ingest job memory, ${int(JOB_MEMORY_SIZES[0])} to ${int(JOB_MEMORY_SIZES[1])} documents`,
      target: `flat: the job's own peak growth (peak RSS minus RSS before, minus the input) at most ${JOB_MEMORY_FLAT}x from the smaller size to the larger`,
      measured: `${mb(small.peakGrowth)} at ${int(small.documents)}, ${mb(large.peakGrowth)} at ${int(large.documents)} (${Math.round(growth * 100) / 100}x; input ${mb(large.inputRss)} at ${int(large.documents)})${atTarget ? '' : '; quick run: not checked'}`,
      ...(atTarget ? verdict([growth], (x) => x <= JOB_MEMORY_FLAT) : { met: null }),
    });
  }
  const r = jobs.resume;
  const intact = r.finalIngested === r.documents && r.totalCount === r.documents && r.finals === 1;
  checks.push({
    name: 'Ingest job resumed after kill -9: texts embedded twice',
    target: `<= one batch (${r.batchSize}), nothing lost, one final`,
    measured: `${int(r.embeddedTwice)} (killed after ${r.batchesDoneAtKill} of ${r.batches} batches saved; ${int(r.totalCount)} of ${int(r.documents)} documents in the store, ${r.finals} final${r.finals === 1 ? '' : 's'})`,
    met: r.embeddedTwice <= r.batchSize && intact,
  });
  return checks;
}

function embeddingTarget(e: EmbeddingResult | { skipped: string }): TargetCheck {
  const name = 'Embedding throughput against a rate-limited service';
  const target = `within ${EMBEDDING_WITHIN * 100}% of the service's limit (texts per second of one embed() call, concurrency 8)`;
  if ('skipped' in e) return notMeasured(name, target, e.skipped);
  const atSize = e.texts >= TARGET_EMBEDDING_TEXTS;
  const [defaults, raised] = e.runs;
  const figures = (r: typeof defaults) => `${int(r.textsPerSecond)} texts/s of ${int(e.stub.ratePerSecond)} (${r.ofLimit}x; ${int(r.retries)} retries, at most ${r.mostRetriesOfOneBatch} for one batch, concurrency ${e.concurrency} -> ${r.finalConcurrency} at the end)`;
  const measured = defaults.failed
    ? `with the defaults the call FAILED (${/failed \d+ times in a row/.exec(defaults.failed)?.[0] ?? defaults.failed.split('\n')[0]}: ${defaults.mostRetriesOfOneBatch} retries of one batch, all 429s)${raised ? `; with maxRateLimitRetries ${int(raised.maxRateLimitRetries as number)}: ${raised.failed ? 'failed too' : figures(raised)}` : ''}`
    : figures(defaults);
  return {
    name,
    target,
    measured: `${measured}${atSize ? '' : '; quick run: not checked'}`,
    // The defaults are what users get: a call that fails does not meet the target.
    ...(atSize ? (defaults.failed ? { met: false } : verdict([defaults.ofLimit], (x) => Math.abs(x - 1) <= EMBEDDING_WITHIN)) : { met: null }),
  };
}

/**
 * Shared waits (issue 11): a dead instance's waits are taken over within lease +
 * heartbeat, and none is lost on the way. The quick run's smaller table is checked too:
 * the bound does not depend on the number of waits.
 */
function sharedWaitsTargets(s: SharedWaitsResult | { skipped: string }): TargetCheck[] {
  const name = 'Shared waits: takeover after kill -9 of the instance holding most waits';
  const target = 'within lease + heartbeat, every wait leased again';
  if ('skipped' in s) return [notMeasured(name, target, s.skipped)];
  const t = s.takeover;
  const measured = `${t.seconds} s (lease + heartbeat ${t.boundSeconds} s) for ${int(t.waitsOfKilled)} of ${int(s.waits)} waits; ${int(t.leasedAfter)} of ${int(t.rowsAfter)} leased after`;
  return [{ name, target, measured, met: t.seconds <= t.boundSeconds && t.leasedAfter === s.waits && t.rowsAfter === s.waits }];
}
