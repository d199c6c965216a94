import should from 'should';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import readline from 'node:readline';
import { OpenAIEmbedder, type OpenAIEmbedderOptions } from '../../lib/embedders/openai';
import { AdaptiveLimit, PROBE_SLOWDOWN, type Permit } from '../../lib/embedders/adaptive-limit';
import { VectorStoreError } from '../../lib/errors';
import type { EmbedRetry } from '../../lib/types';
import { startEmbeddingStub, stubVector, type EmbeddingStub } from '../support/embedding-stub';
import { until } from '../support/until';

const SECRET = 'sk-test-CONCURRENCY-0123456789';

const texts = (n: number, prefix = 't') => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

async function rejection(promise: Promise<unknown>): Promise<VectorStoreError> {
  try {
    await promise;
  } catch (err) {
    should(err).be.instanceOf(VectorStoreError);
    return err as VectorStoreError;
  }
  throw new Error('expected a rejection');
}

function checkVectors(input: string[], vectors: Float32Array[], dimensions = 8): void {
  should(vectors.length).equal(input.length);
  vectors.forEach((vector, i) => {
    should(Array.from(vector)).eql(Array.from(Float32Array.from(stubVector(input[i], dimensions))), `vector ${i} (${input[i]})`);
  });
}

describe('OpenAIEmbedder: concurrent requests and rate limits (embedding stub)', function () {
  let stub: EmbeddingStub;
  const embedders: OpenAIEmbedder[] = [];

  afterEach(async () => {
    await Promise.all(embedders.splice(0).map((e) => e.close()));
    await stub?.close();
  });

  function embedder(options: Partial<OpenAIEmbedderOptions> = {}): OpenAIEmbedder {
    const e = new OpenAIEmbedder({ baseUrl: stub.url, model: 'stub-model', apiKey: SECRET, ...options });
    embedders.push(e);
    return e;
  }

  it('keeps the input order when later batches answer first', async () => {
    // The first batch is the slowest: answers come back in reverse.
    stub = await startEmbeddingStub({ latencyMs: (input) => 40 - Number(input[0].split('-')[1]) / 3 });
    const input = texts(100);
    const e = embedder({ batchSize: 5, concurrency: 4 });
    checkVectors(input, await e.embed(input));
    should(stub.stats.requests).equal(20);
    should(e.stats).eql({ requests: 20, retries: 0, rateLimited: 0, concurrency: 4 });
    should(e.dimensions).equal(8);
  });

  it('never has more requests in flight than `concurrency`, over all its calls together', async () => {
    stub = await startEmbeddingStub({ hold: true });
    const e = embedder({ batchSize: 2, concurrency: 3 });
    const first = texts(20, 'a');
    const second = texts(20, 'b');
    const calls = Promise.all([e.embed(first), e.embed(second)]);
    await until('3 requests in flight', async () => stub.stats.inFlight === 3);
    stub.setOptions({ hold: false });
    const [a, b] = await calls;
    checkVectors(first, a);
    checkVectors(second, b);
    // maxInFlight is the most the stub ever saw at once: it reached the setting, never more.
    should(stub.stats.maxInFlight).equal(3);
    should(stub.stats.requests).equal(20);
  });

  it('runs many requests at once without a MaxListenersExceededWarning', async () => {
    stub = await startEmbeddingStub({ hold: true });
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.name);
    process.on('warning', onWarning);
    try {
      const e = embedder({ batchSize: 1, concurrency: 16 });
      const call = e.embed(texts(32));
      await until('16 requests in flight', async () => stub.stats.inFlight === 16);
      stub.setOptions({ hold: false });
      await call;
      await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on a later tick
    } finally {
      process.off('warning', onWarning);
    }
    should(warnings).not.containEql('MaxListenersExceededWarning');
  });

  it('shrinks when the service answers 429 above 2 in flight, reports each retry, and embeds every text once', async () => {
    stub = await startEmbeddingStub({ maxInFlight: 2, retryAfterSeconds: 0.05, hold: true });
    const e = embedder({ batchSize: 4, concurrency: 4 });
    const retries: EmbedRetry[] = [];
    const input = texts(40);
    const call = e.embed(input, undefined, { onRetry: (retry) => retries.push(retry) });
    // Two requests held, the other two refused: the limit halves once for the burst.
    await until('two 429s read', async () => e.stats.rateLimited === 2);
    should(e.stats.concurrency).equal(2);
    stub.setOptions({ hold: false });
    checkVectors(input, await call);

    should(retries.length).be.aboveOrEqual(2);
    should(retries[0]).eql({ reason: 'HTTP 429: "too many requests at once (more than 2)"', delayMs: 50, attempt: 1, concurrency: 2 });
    for (const retry of retries) should(retry.concurrency).be.below(4);
    should(e.stats.rateLimited).equal(stub.stats.rateLimited);
    should(e.stats.retries).equal(retries.length);
    should(e.stats.requests).equal(10 + retries.length);
    // A refused request embedded nothing: each text was embedded exactly once.
    should([...stub.stats.textsSeen.values()].every((count) => count === 1)).be.true();
    should(stub.stats.textsSeen.size).equal(40);
  });

  it('grows back to `concurrency` after a run of successes', async () => {
    stub = await startEmbeddingStub({ maxInFlight: 1, retryAfterSeconds: 0.01, hold: true });
    const e = embedder({ batchSize: 1, concurrency: 4 });
    const shrinking = e.embed(texts(8, 'x'));
    await until('a 429 read', async () => e.stats.rateLimited > 0);
    should(e.stats.concurrency).be.below(4);
    stub.setOptions({ hold: false });
    await shrinking;

    stub.setOptions({ maxInFlight: undefined });
    stub.resetStats();
    const input = texts(60, 'y');
    checkVectors(input, await e.embed(input));
    should(e.stats.concurrency).equal(4);
    should(stub.stats.rateLimited).equal(0);
    should(stub.stats.maxInFlight).be.belowOrEqual(4);
  });

  it('keeps to a budget of texts per second: refused requests wait as told, every text embedded once', async () => {
    // The bucket holds one second of budget: the first 4 requests of 50 empty it, the next ones must wait.
    stub = await startEmbeddingStub({ ratePerSecond: 200 });
    const retries: EmbedRetry[] = [];
    const e = embedder({ batchSize: 50, concurrency: 4 });
    const input = texts(400);
    checkVectors(input, await e.embed(input, undefined, { onRetry: (retry) => retries.push(retry) }));
    should(stub.stats.rateLimited).be.above(0);
    should(retries[0].reason).equal('HTTP 429: "rate limit of 200 texts per second reached"');
    for (const retry of retries) should(retry.delayMs).be.within(1, 1000); // the time until the budget holds 50 texts
    should(stub.stats.textsSeen.size).equal(400);
    should([...stub.stats.textsSeen.values()].every((count) => count === 1)).be.true();
  });

  for (const form of ['seconds', 'date'] as const) {
    it(`waits as Retry-After says (${form} form) before sending the request again`, async () => {
      stub = await startEmbeddingStub({ maxInFlight: 1, retryAfterSeconds: 3, retryAfterForm: form, hold: true });
      const sleeps: number[] = [];
      const retries: EmbedRetry[] = [];
      const e = embedder({
        batchSize: 1,
        concurrency: 2,
        // Recorded, not waited: the held request goes on once the other was told to wait.
        sleep: async (ms) => {
          sleeps.push(ms);
          stub.setOptions({ hold: false });
        },
      });
      checkVectors(['p', 'q'], await e.embed(['p', 'q'], undefined, { onRetry: (retry) => retries.push(retry) }));
      should(sleeps.length).equal(1);
      if (form === 'seconds') should(sleeps[0]).equal(3000);
      else should(sleeps[0]).be.within(2500, 4000); // an HTTP date has whole seconds
      should(retries.map((r) => r.delayMs)).eql(sleeps);
      should(retries[0].reason).startWith('HTTP 429');
    });
  }

  it('keeps its limit on other retryable errors (500), and reports them', async () => {
    stub = await startEmbeddingStub({ fail: { text: 'bad', status: 500, message: 'boom' } });
    const retries: EmbedRetry[] = [];
    const e = embedder({ concurrency: 4, maxRetries: 2, sleep: async () => {} });
    const err = await rejection(e.embed(['bad'], undefined, { onRetry: (retry) => retries.push(retry) }));
    should(err.code).equal('UNAVAILABLE');
    should(err.message).containEql('failed 3 times');
    should(retries.map((r) => [r.reason, r.attempt, r.concurrency])).eql([
      ['HTTP 500: "boom"', 1, 4],
      ['HTTP 500: "boom"', 2, 4],
    ]);
    should(e.stats).eql({ requests: 3, retries: 2, rateLimited: 0, concurrency: 4 });
  });

  it('never shows the key in a retry reason, and survives a listener that throws', async () => {
    stub = await startEmbeddingStub({ fail: { text: 'echo', status: 503, message: `overloaded for key ${SECRET}` } });
    const reasons: string[] = [];
    const e = embedder({ maxRetries: 1, sleep: async () => {} });
    const err = await rejection(
      e.embed(['echo'], undefined, {
        onRetry: (retry) => {
          reasons.push(retry.reason);
          throw new Error('a broken listener');
        },
      }),
    );
    should(err.code).equal('UNAVAILABLE');
    should(reasons).eql(['HTTP 503: "overloaded for key ***"']);
    should(err.message).not.containEql(SECRET);
  });

  it('a batch that keeps losing the race for the budget does not fail while the service serves the others', async () => {
    // 8 requests at once against 400 texts per second in batches of 10: most retries of one
    // batch are lost to the other batches taking the tokens first; the call goes on at the limit.
    stub = await startEmbeddingStub({ ratePerSecond: 400 });
    const e = embedder({ batchSize: 10, concurrency: 8, maxRateLimitRetries: 3 });
    const input = texts(1200);
    checkVectors(input, await e.embed(input));
    should(stub.stats.rateLimited).be.above(8);
    should(stub.stats.textsSeen.size).equal(1200);
  });

  it('gives 429s a retry budget of their own (maxRateLimitRetries), then fails as UNAVAILABLE', async () => {
    stub = await startEmbeddingStub({ fail: { text: 'busy', status: 429, message: 'slow down' } });
    const e = embedder({ maxRetries: 0, maxRateLimitRetries: 3, sleep: async () => {} });
    const err = await rejection(e.embed(['busy']));
    should(err.code).equal('UNAVAILABLE');
    should(err.transient).be.true();
    should(err.message).containEql('failed 4 times');
    should(err.message).containEql('HTTP 429: "slow down"');
    should(e.stats).eql({ requests: 4, retries: 3, rateLimited: 4, concurrency: 1 });
  });

  it('close() during a concurrent call rejects it and leaves no request running', async () => {
    stub = await startEmbeddingStub({ hold: true });
    const e = embedder({ batchSize: 1, concurrency: 4 });
    const call = e.embed(texts(10));
    await until('4 requests in flight', async () => stub.stats.inFlight === 4);
    const rejected = rejection(call);
    await e.close();
    should((await rejected).message).containEql('closed');
    await until('no request left at the stub', async () => stub.stats.inFlight === 0);
    should(e.stats.requests).equal(4);
    should((await rejection(e.embed(['more']))).message).containEql('closed');
  });

  it('a permanent error (401) in one request fails the call at once and aborts the others', async () => {
    // Every other request is held unanswered: the call can only end through the 401.
    stub = await startEmbeddingStub({ hold: true, fail: { text: 't-2', status: 401, message: `bad key ${SECRET}` } });
    const e = embedder({ batchSize: 1, concurrency: 4 });
    const err = await rejection(e.embed(texts(10)));
    should(err.code).equal('AUTH');
    should(err.transient).be.false();
    should(err.message).not.containEql(SECRET);
    await until('the other requests aborted', async () => stub.stats.inFlight === 0);
    should(e.stats.requests).equal(4);
    should(stub.stats.texts).equal(0);
  });

  it('a caller abort during a concurrent call stops every request', async () => {
    stub = await startEmbeddingStub({ hold: true });
    const e = embedder({ batchSize: 1, concurrency: 3 });
    const controller = new AbortController();
    const call = e.embed(texts(6), controller.signal);
    await until('3 requests in flight', async () => stub.stats.inFlight === 3);
    controller.abort();
    should((await rejection(call)).message).containEql('cancelled');
    await until('no request left at the stub', async () => stub.stats.inFlight === 0);
    // The embedder stays usable.
    stub.setOptions({ hold: false });
    checkVectors(['after'], await e.embed(['after']));
  });

  it('validates concurrency', () => {
    for (const concurrency of [0, 65, 1.5, Number.NaN]) {
      should(() => new OpenAIEmbedder({ baseUrl: 'http://127.0.0.1:1/v1', model: 'm', concurrency })).throw(
        /concurrency of the openai embedder must be an integer between 1 and 64/,
      );
    }
  });
});

describe('embedding stub as a process of its own (embedding-stub-cli.ts)', function () {
  this.timeout(30_000); // tsx compiles it on start

  it('prints its URL as one JSON line, embeds, answers GET /stats with per-text counts, and ends on SIGTERM', async () => {
    const cli = path.join(__dirname, '..', 'support', 'embedding-stub-cli.ts');
    const child = spawn(process.execPath, ['--import', 'tsx', cli, JSON.stringify({ dimensions: 3, maxInFlight: 8 })], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = once(child, 'exit');
    try {
      const [line] = (await once(readline.createInterface({ input: child.stdout! }), 'line')) as [string];
      const { url, stats } = JSON.parse(line) as { url: string; stats: string };
      should(url).match(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);
      const e = new OpenAIEmbedder({ baseUrl: url, model: 'stub-model', batchSize: 2 });
      const input = ['a', 'b', 'c', 'a'];
      checkVectors(input, await e.embed(input), 3);
      await e.close();
      const counts = (await (await fetch(stats)).json()) as Record<string, unknown>;
      should(counts).match({ requests: 2, texts: 4, rateLimited: 0, distinctTexts: 3, duplicates: 1, textsSeen: { a: 2, b: 1, c: 1 } });
    } finally {
      child.kill('SIGTERM');
      const [code] = await exited;
      should(code).equal(0);
    }
  });
});

describe('AdaptiveLimit (AIMD)', function () {
  const signal = new AbortController().signal;

  async function take(limit: AdaptiveLimit, n: number): Promise<Permit[]> {
    const permits: Permit[] = [];
    for (let i = 0; i < n; i++) permits.push(await limit.acquire(signal));
    return permits;
  }

  it('halves once for a burst of rate limits sent together, never below 1', async () => {
    const limit = new AdaptiveLimit(8);
    const burst = await take(limit, 8);
    for (const permit of burst) limit.release(permit, 'rateLimited');
    should(limit.limit).equal(4);
    await run(limit, 5, 'rateLimited');
    should(limit.limit).equal(1);
  });

  /** `n` requests one after the other, each ending with `outcome`. */
  async function run(limit: AdaptiveLimit, n: number, outcome: 'success' | 'rateLimited' | 'other'): Promise<void> {
    for (let i = 0; i < n; i++) limit.release(await limit.acquire(signal), outcome);
  }

  it('grows by one after as many successes in a row as the limit, up to the maximum', async () => {
    const limit = new AdaptiveLimit(16);
    const burst = await take(limit, 16);
    for (const permit of burst) limit.release(permit, 'rateLimited');
    should(limit.limit).equal(8);
    await run(limit, 7, 'success');
    should(limit.limit).equal(8);
    await run(limit, 1, 'success');
    should(limit.limit).equal(9);
    await run(limit, 9 + 10 + 11 + 12 + 13, 'success');
    should(limit.limit).equal(14);
    // Other failures change nothing.
    await run(limit, 1, 'other');
    should(limit.limit).equal(14);
  });

  it(`just below the level of the last rate limit, waits ${PROBE_SLOWDOWN} times longer before trying it again`, async () => {
    const limit = new AdaptiveLimit(8);
    await run(limit, 1, 'success');
    limit.release((await take(limit, 1))[0], 'rateLimited'); // met at 8
    should(limit.limit).equal(4);
    await run(limit, 4 + 5 + 6, 'success');
    should(limit.limit).equal(7);
    await run(limit, 7 * PROBE_SLOWDOWN - 1, 'success');
    should(limit.limit).equal(7);
    await run(limit, 1, 'success');
    should(limit.limit).equal(8);
    await run(limit, 100, 'success');
    should(limit.limit).equal(8); // the configured maximum
  });

  it('grows at the usual pace again once past the level of the last rate limit', async () => {
    const limit = new AdaptiveLimit(8);
    await run(limit, 1, 'rateLimited'); // met at 8: 4
    await run(limit, 1, 'rateLimited'); // met at 4: 2
    await run(limit, 2, 'success');
    should(limit.limit).equal(3);
    await run(limit, 3 * PROBE_SLOWDOWN, 'success');
    should(limit.limit).equal(4); // the service copes at 4 now
    await run(limit, 4, 'success');
    should(limit.limit).equal(5);
  });

  it('makes requests wait for a slot, retries ahead of new ones; an abort takes a waiter out', async () => {
    const limit = new AdaptiveLimit(1);
    const [held] = await take(limit, 1);
    const order: string[] = [];
    const fresh = limit.acquire(signal).then((p) => (order.push('new'), p));
    const leaving = new AbortController();
    const gone = limit.acquire(leaving.signal).catch(() => order.push('aborted'));
    const retry = limit.acquire(signal, true).then((p) => (order.push('retry'), p));
    leaving.abort();
    await gone;
    limit.release(held, 'success');
    limit.release(await retry, 'success');
    limit.release(await fresh, 'success');
    should(order).eql(['aborted', 'retry', 'new']);
    should(limit.active).equal(0);
  });
});
