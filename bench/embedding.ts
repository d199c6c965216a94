/**
 * Embedding throughput against a rate-limited service: the OpenAI-compatible
 * embedder (lib/embedders/openai.ts, `concurrency` requests at once with AIMD
 * back-off) against the embedding stub (test/support/embedding-stub.ts) run as
 * a process of its own, so that the stub's work does not share the embedder's
 * event loop. The stub answers after a set latency and embeds at most
 * `ratePerSecond` texts per second (a token bucket holding one second of
 * budget); a request over the budget gets a 429 with Retry-After.
 *
 * One `embed()` call of N texts, timed. The bucket starts full, so a warm-up
 * call first spends more than that second of budget: the timed call then meets
 * the limit from its start, and texts per second are compared with the limit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { OpenAIEmbedder } from '../lib/embedders/openai';
import { ms } from './measure';
import { documentText } from './store';

export interface EmbeddingOptions {
  texts: number;
  concurrency: number;
  /** Texts per request (the embedder's batchSize). */
  batchSize: number;
  dimensions: number;
  stub: { ratePerSecond: number; latencyMs: number };
}

/** One timed embed() call. */
export interface EmbedRun {
  /** The embedder's maxRateLimitRetries: its default, or raised to see the throughput past a failure of the default. */
  maxRateLimitRetries: number | 'default';
  /** Why the call failed, or absent. */
  failed?: string;
  durationMs: number;
  /** Of the texts embedded (all of them, unless the call failed). */
  textsPerSecond: number;
  /** textsPerSecond / the stub's limit. */
  ofLimit: number;
  /** Requests sent, retries (all of them 429s here), and the limit of requests at once at the end. */
  requests: number;
  retries: number;
  rateLimited: number;
  finalConcurrency: number;
  /** Lowest limit of requests at once reported with a retry during the call. */
  lowestConcurrency: number;
  /** The most retries one batch needed (each after a 429). */
  mostRetriesOfOneBatch: number;
}

export interface EmbeddingResult {
  texts: number;
  concurrency: number;
  batchSize: number;
  dimensions: number;
  stub: { ratePerSecond: number; latencyMs: number };
  /** With the embedder's defaults; then, if that failed, with maxRateLimitRetries raised. */
  runs: EmbedRun[];
  /** Texts the stub answered more than once within one call. */
  stubDuplicates: number;
}

interface RunningStub {
  url: string;
  statsUrl: string;
  stop(): Promise<void>;
}

/** The warm-up embeds this many seconds of the stub's budget: more than its bucket holds. */
const WARMUP_SECONDS_OF_BUDGET = 1.5;

const STUB_CLI = path.join(__dirname, '..', 'test', 'support', 'embedding-stub-cli.ts');

async function startStub(options: Record<string, unknown>): Promise<RunningStub> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', STUB_CLI, JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const first = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', (line) => {
      lines.close();
      resolve(line);
    });
    child.once('exit', (code) => reject(new Error(`The embedding stub exited (code ${code}) before it listened.`)));
  });
  const { url, stats } = JSON.parse(first) as { url: string; stats: string };
  return {
    url,
    statsUrl: stats,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

async function stubStats(statsUrl: string): Promise<{ texts: number; duplicates: number }> {
  const res = await fetch(statsUrl);
  return (await res.json()) as { texts: number; duplicates: number };
}

/** Raised retry budget of the second call, when the first (the defaults) fails. */
const RAISED_RATE_LIMIT_RETRIES = 1_000;

async function timedCall(url: string, options: EmbeddingOptions, maxRateLimitRetries: number | 'default', tag: string): Promise<EmbedRun> {
  const embedder = new OpenAIEmbedder({
    baseUrl: url,
    model: 'stub',
    batchSize: options.batchSize,
    concurrency: options.concurrency,
    ...(maxRateLimitRetries === 'default' ? {} : { maxRateLimitRetries }),
  });
  try {
    // Spend the bucket's first second of budget and then some, so that the warm-up ends
    // waiting for budget and the timed call starts on an empty bucket (see the header).
    const warmup = Math.round(options.stub.ratePerSecond * WARMUP_SECONDS_OF_BUDGET);
    await embedder.embed(Array.from({ length: warmup }, (_, i) => documentText(i, `warmup-${tag}`)));
    const before = embedder.stats;
    const texts = Array.from({ length: options.texts }, (_, i) => documentText(i, tag));
    let lowestConcurrency = before.concurrency;
    let mostRetries = 0;
    let embedded = 0;
    let failed: string | undefined;
    const started = performance.now();
    try {
      const vectors = await embedder.embed(texts, undefined, {
        onRetry: (retry) => {
          lowestConcurrency = Math.min(lowestConcurrency, retry.concurrency);
          mostRetries = Math.max(mostRetries, retry.attempt);
        },
      });
      if (vectors.length !== texts.length) throw new Error(`embed() returned ${vectors.length} vectors for ${texts.length} texts.`);
      embedded = vectors.length;
    } catch (err) {
      failed = err instanceof Error ? err.message : String(err);
    }
    const durationMs = performance.now() - started;
    const after = embedder.stats;
    // A failed call's texts per second count what the stub had answered by then.
    if (failed) embedded = (after.requests - before.requests - (after.rateLimited - before.rateLimited)) * options.batchSize;
    const textsPerSecond = embedded / (durationMs / 1000);
    return {
      maxRateLimitRetries,
      ...(failed ? { failed } : {}),
      durationMs: ms(durationMs),
      textsPerSecond: Math.round(textsPerSecond),
      ofLimit: Math.round((textsPerSecond / options.stub.ratePerSecond) * 1000) / 1000,
      requests: after.requests - before.requests,
      retries: after.retries - before.retries,
      rateLimited: after.rateLimited - before.rateLimited,
      finalConcurrency: after.concurrency,
      lowestConcurrency,
      mostRetriesOfOneBatch: mostRetries,
    };
  } finally {
    await embedder.close?.();
  }
}

export async function run(options: EmbeddingOptions): Promise<EmbeddingResult> {
  const stub = await startStub({ ...options.stub, dimensions: options.dimensions });
  try {
    const runs = [await timedCall(stub.url, options, 'default', 'defaults')];
    if (runs[0].failed) runs.push(await timedCall(stub.url, options, RAISED_RATE_LIMIT_RETRIES, 'raised'));
    const seen = await stubStats(stub.statsUrl);
    return {
      texts: options.texts,
      concurrency: options.concurrency,
      batchSize: options.batchSize,
      dimensions: options.dimensions,
      stub: options.stub,
      runs,
      stubDuplicates: seen.duplicates,
    };
  } finally {
    await stub.stop();
  }
}
