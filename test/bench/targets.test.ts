// What the targets table says about a run: a backend that could not start (or a
// benchmark that failed) shows its targets as not measured and not met, never
// leaves them out; every ratio target is judged by one rule against the
// repetitions' noise band ("within noise" when the target lies inside it).
import should from 'should';
import type { IngestGrowthResult } from '../../bench/ingest-growth';
import type { ResumeResult, ThroughputResult } from '../../bench/ingest-jobs';
import type { HnswDatasetResult } from '../../bench/hnsw';
import type { NaiveWaitsResult } from '../../bench/naive-waits';
import { generatedSection } from '../../bench/report';
import type { StoreResult } from '../../bench/store';
import { checkTargets, noiseBand, pairRatios, verdict, type BenchReport, type TargetCheck } from '../../bench/targets';

type Run = Omit<BenchReport, 'targets'>;

function run(mode: 'full' | 'quick', parts: Partial<Run>): Run {
  return {
    mode,
    command: 'npm run bench',
    startedAt: '2026-12-02T00:00:00.000Z',
    durationSeconds: 1,
    machine: { cpus: 2, cpuModel: 'test', memoryGiB: 1, os: 'test', node: 'v20', loadAverageBefore: 0, loadAverageAfter: 0 },
    waits: [],
    ingestQuery: [],
    ...parts,
  };
}

/** A store measured with these per-pair times (node, direct) on both ingest and query. */
function storeResult(backend: string, nodeRunsMs: number[], directRunsMs: number[]): StoreResult {
  const side = { nodeRunsMs, directRunsMs, ratio: 1 };
  return {
    backend,
    describe: 'test',
    ingest: { documents: 2_000, batchSize: 100, nodeMs: 1, directMs: 1, nodeDocsPerSecond: 1, directDocsPerSecond: 1, ...side },
    query: { documents: 10_000, queries: 20, topK: 10, nodeMsPerQuery: 1, directMsPerQuery: 1, collectionExistsMs: 0, ...side },
    hashEmbedderDocsPerSecond: 1,
  };
}

function growth(store: 'memory' | 'lancedb', documents: number): IngestGrowthResult {
  return { store, documents, batchSize: 100, batches: documents / 100, firstBatchesMs: 10, lastBatchesMs: 11, growth: 1.1, slowestBatchMs: 20, ingestMs: 1000, catchUpMs: 10, totalMs: 1010, diskBytes: documents * 3000, diskSettledBytes: documents * 3000 };
}

/** An ingest job resumed after kill -9 without loss (its own target is met). */
const RESUMED: ResumeResult = { documents: 100, batchSize: 10, batches: 10, batchesDoneAtKill: 3, embeddedFirst: 30, embeddedSecond: 70, embeddedTwice: 0, finalIngested: 100, finalResumed: 100, finals: 1, totalCount: 100, resumeToFinalMs: 1 };

const named = (checks: TargetCheck[], part: string) => checks.filter((c) => c.name.includes(part));
const notMeasuredRows = (checks: TargetCheck[]) => checks.filter((c) => c.measured.startsWith('not measured: '));

/** A naive-waits result of `waits`, 3 repetitions, the sensor at the given ratios of the function node's figures. */
function naive(waits: number, sensorHeap: number): NaiveWaitsResult {
  const runOf = (variant: 'sensor' | 'function', repetition: number) => ({
    variant,
    repetition,
    burstMs: 1,
    runMs: 1,
    cpuMs: variant === 'sensor' ? 1000 : 4000,
    heapPerWaitBytes: variant === 'sensor' ? sensorHeap : 1000,
    rssGrowthBytes: 0,
    storeCalls: { status: 1, collectionExists: 0, statsAndQuery: 0, total: variant === 'sensor' ? 10 : 10_000 },
    loopDelay: { p50Ms: 1, p99Ms: 5, maxMs: 9 },
    burstLoopDelay: { p50Ms: 1, p99Ms: 5, maxMs: 9 },
    finals: waits,
    repeatedFinals: 0,
    errors: 0,
  });
  return {
    waits,
    collections: 100,
    repetitions: 3,
    readyFromS: 25,
    readySpanS: 9,
    indexingRate: 1,
    runs: [0, 1, 2].flatMap((rep) => [runOf('sensor', rep), runOf('function', rep)]),
    controls: [],
    summary: [],
    ratios: null,
    killRestart: { waits, pendingAtKill: waits, finals: waits, repeatedFinals: 0, errors: 0, resumeMs: 100 },
    durationS: 1,
  };
}

describe('bench targets', () => {
  it('naive waits: the cost targets are judged from 10,000 waits (the issue\'s sizes); 1,000 is reported, its survival judged', () => {
    const checks = checkTargets(run('full', { naiveWaits: [naive(1_000, 2000), naive(10_000, 2000)] }));
    const small = named(checks, '(1,000 waits)');
    should(small.filter((c) => c.met === null).map((c) => c.name)).have.length(4);
    should(small.find((c) => c.name.includes('heap'))!.measured).match(/reported only: the targets are at 10,000 waits and more/);
    should(small.find((c) => c.name.includes('kill -9'))!.met).be.true();
    const large = named(checks, '(10,000 waits)');
    should(large.find((c) => c.name.includes('heap'))!.met).be.false(); // 2x the function node's
    should(large.find((c) => c.name.includes('CPU'))!.met).be.true();
  });

  describe('a backend that cannot start', () => {
    for (const mode of ['full', 'quick'] as const) {
      it(`keeps its store targets in the table as not measured, met NO (${mode} run)`, () => {
        const checks = checkTargets(run(mode, { ingestQuery: [storeResult('memory', [1], [1]), { backend: 'pgvector', skipped: 'cannot start here: no PGlite' }] }));
        const rows = named(checks, '(pgvector)');
        should(rows.map((r) => r.name)).eql(['Node overhead, ingest (pgvector)', 'Node overhead, query (pgvector)']);
        for (const row of rows) {
          should(row.met).be.false();
          should(row.withinNoise).be.undefined();
          should(row.measured).equal('not measured: cannot start here: no PGlite');
        }
      });
    }

    it('shows NO in the generated targets table, not a missing row', () => {
      const partial = run('quick', { ingestQuery: [{ backend: 'chroma', skipped: 'cannot start here: chroma not installed' }] });
      const text = generatedSection({ ...partial, targets: checkTargets(partial) });
      should(text).match(/\| Node overhead, ingest \(chroma\) \| <= 1\.10 \(node \/ direct\) \| not measured: cannot start here: chroma not installed \| \*\*NO\*\* \|/);
      should(text).match(/\| Node overhead, query \(chroma\) \|[^\n]*\| \*\*NO\*\* \|/);
    });

    it('HNSW without usearch: both data sets not measured, met NO', () => {
      const checks = checkTargets(run('quick', { hnsw: { vectors: 20_000, skipped: 'cannot start here: the usearch package is not installed' } }));
      const rows = named(checks, 'HNSW');
      should(rows).have.length(2);
      should(rows.every((r) => r.met === false && r.measured.includes('usearch package is not installed'))).be.true();
    });

    it('ingest growth: a store that failed at any size fails all its targets, LanceDB\'s own ones included, even in a quick run', () => {
      const checks = checkTargets(
        run('quick', {
          ingestGrowth: [growth('memory', 1_000), growth('memory', 10_000), { store: 'lancedb', documents: 1_000, skipped: 'cannot start here: no native binding' }, { store: 'lancedb', documents: 10_000, skipped: 'cannot start here: no native binding' }],
        }),
      );
      const lancedb = checks.filter((c) => /lancedb|LanceDB/.test(c.name));
      should(lancedb.map((c) => c.name)).eql([
        'Ingest growth, lancedb: last 10% / first 10% of the batches',
        'LanceDB: 100,000 documents ingested, index caught up (ready)',
        'LanceDB: disk bytes per document once old versions are removed, 100,000 / 10,000',
      ]);
      should(lancedb.every((c) => c.met === false)).be.true();
      // The memory store ran: its quick-run row is not checked, not failed.
      should(named(checks, 'Ingest growth, memory')[0].met).be.null();
    });

    it('every other benchmark that skips: a not-met row each', () => {
      const checks = checkTargets(
        run('full', {
          naiveWaits: [{ waits: 1_000, skipped: 'node-red did not start' }],
          embedding: { skipped: 'the stub did not start' },
          sharedWaits: { skipped: 'cannot start here: no PostgreSQL 15' },
          ingestJobs: {
            stores: ['memory', 'lancedb'],
            throughput: [{ store: 'lancedb', skipped: 'cannot start here: no native binding' }],
            memory: [],
            resume: RESUMED,
          },
        }),
      );
      const rows = notMeasuredRows(checks);
      should(rows.map((r) => r.name)).containDeep([
        'Embedding throughput against a rate-limited service',
        'Shared waits: takeover after kill -9 of the instance holding most waits',
        'Ingest job / direct calls (lancedb)',
      ]);
      should(named(rows, '1,000 waits')).have.length(5);
      should(rows.every((r) => r.met === false)).be.true();
    });
  });

  describe('the noise rule (verdict)', () => {
    it('takes every repetition when there are few, the middle half from 5 on', () => {
      should(noiseBand([3, 1, 2])).eql([1, 2, 3]);
      should(noiseBand([9, 1, 5, 4, 6, 2, 8, 3, 7])).eql([3, 4, 5, 6, 7]);
    });

    it('is not swayed by one repetition hit by the machine\'s load', () => {
      should(verdict([1.01, 1.02, 1.0, 1.03, 1.04, 0.99, 1.02, 1.6, 1.01], (x) => x <= 1.1)).eql({ met: true });
    });

    it('says within noise, not met, when the target lies inside the band', () => {
      should(verdict([1.05, 1.08, 1.12, 1.09, 1.14, 1.07, 1.11, 1.13, 1.06], (x) => x <= 1.1)).eql({ met: false, withinNoise: true });
    });

    it('a single figure is met or not; none is not met', () => {
      should(verdict([1.2], (x) => x <= 1.5)).eql({ met: true });
      should(verdict([1.6], (x) => x <= 1.5)).eql({ met: false });
      should(verdict([], (x) => x <= 1.5)).eql({ met: false });
    });

    it('pairs the interleaved runs in order', () => {
      should(pairRatios([2, 3, 4], [1, 2, 4])).eql([2, 1.5, 1]);
    });
  });

  describe('every ratio target uses it', () => {
    // Node / direct pairs straddling 1.10: the median (1.09) alone would say met.
    const node = [109, 105, 112, 108, 114, 107, 111, 113, 106];
    const direct = node.map(() => 100);

    it('node overhead, ingest and query', () => {
      const checks = named(checkTargets(run('full', { ingestQuery: [storeResult('memory', node, direct)] })), 'Node overhead');
      should(checks).have.length(2);
      for (const c of checks) should(c).containEql({ met: false, withinNoise: true });
      should(checks[0].measured).equal('1, noise band 1.07-1.12 over 9 pairs');
      should(checks[1].measured).startWith('1, noise band 1.07-1.12 over 9 pairs (');
    });

    it('ingest job / direct calls', () => {
      const throughput = { store: 'memory', describe: 'test', documents: 100_000, batchSize: 100, repetitions: 9, jobMs: 1, directMs: 1, ratio: 1.12, jobDocsPerSecond: 1, directDocsPerSecond: 1, phases: { spoolMs: 0, embedMs: 0, writeMs: 0 }, jobRunsMs: node.map((x) => x + 5), directRunsMs: direct } satisfies ThroughputResult;
      const checks = checkTargets(
        run('full', {
          ingestJobs: { stores: ['memory'], throughput: [throughput], memory: [], resume: RESUMED },
        }),
      );
      should(named(checks, 'Ingest job / direct calls (memory)')[0]).containEql({ met: false, withinNoise: true });
    });

    it('HNSW speedup (exact / hnsw per pair) and search share of the bandwidth (read / search per pair)', () => {
      const hnswRunsMs = [1, 1, 1, 1, 1, 1, 1];
      const dataset = (exactRunsMs: number[]): HnswDatasetResult => ({ data: 'clustered', recallAtK: 0.98, exactMsPerQuery: 10, hnswMsPerQuery: 1, speedup: 10, buildSeconds: 1, buildLoopDelay: { p50Ms: 0, p99Ms: 0, maxMs: 0 }, exactRunsMs, hnswRunsMs });
      const hnsw = (exactRunsMs: number[]) => named(checkTargets(run('full', { hnsw: { vectors: 100_000, dimensions: 384, topK: 10, minDocuments: 1, datasets: [dataset(exactRunsMs)] } })), 'HNSW')[0];
      should(hnsw([9.5, 9.8, 10.1, 10.4, 9.7, 10.2, 10.6])).containEql({ met: false, withinNoise: true });
      should(hnsw([11, 12, 11.5, 13, 12.5, 11.8, 4])).containEql({ met: true });

      const searchRunsMs = [10, 10, 10, 10, 10, 10, 10];
      const checks = checkTargets(
        run('full', {
          search: {
            vectors: 100_000,
            dimensions: 384,
            topK: 10,
            bytesPerQuery: 1,
            sliceBytes: 1,
            loopDelay: [],
            datasets: [{ data: 'uniform', msPerQuery: 10, gbPerSecond: 1, fractionOfBandwidth: 0.5, bandwidthGbPerSecond: 2, searchRunsMs, bandwidthRunsMs: [4.8, 5.1, 4.9, 5.2, 4.7, 5.3, 5.0] }],
          },
        }),
      );
      should(named(checks, 'search speed')[0]).containEql({ met: false, withinNoise: true });
    });
  });
});
