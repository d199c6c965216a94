import should from 'should';
import { VectorStoreError } from '../../lib/errors';
import {
  CollectionReadyTrigger,
  checkOnce,
  createTriggerSpec,
  formatDuration,
  longestPollDelay,
  madeProgress,
  parseTriggerSpec,
  pollDelay,
  adoptTriggerSpec,
  watchedCollection,
  progressOf,
  runToCompletion,
  timerContext,
  type FailurePayload,
  type ProgressPayload,
  type SuccessPayload,
  type TriggerContext,
  type TriggerEvent,
  type TriggerSpec,
} from '../../lib/trigger';
import type { CollectionStatus } from '../../lib/types';

const T0 = 1_700_000_000_000;

function indexing(indexedCount: number, documentCount = 500, extra: Partial<CollectionStatus> = {}): CollectionStatus {
  return { state: 'indexing', documentCount, indexedCount, progress: null, etaSeconds: null, ...extra };
}
function ready(count: number): CollectionStatus {
  return { state: 'ready', documentCount: count, indexedCount: count, progress: 1, etaSeconds: 0 };
}
function failed(detail: string): CollectionStatus {
  return { state: 'failed', documentCount: 10, indexedCount: 3, progress: null, etaSeconds: null, detail };
}
const unavailable = (text = 'connection refused') => new VectorStoreError('UNAVAILABLE', text);
const notFound = () => new VectorStoreError('NOT_FOUND', 'Collection "docs" does not exist in the memory store.');

function spec(overrides: Partial<Parameters<typeof createTriggerSpec>[0]> = {}): TriggerSpec {
  return createTriggerSpec({
    waitId: 'w1',
    collection: 'docs',
    expectedCount: 500,
    pollIntervalMs: 1000,
    maxPollIntervalMs: 5000,
    timeoutMs: 60_000,
    now: T0,
    ...overrides,
  });
}

/**
 * A scripted status double and a fake clock: each status call takes the next
 * answer (the last one repeats); sleeps advance the clock at once.
 */
function scripted(answers: Array<CollectionStatus | Error>, options: { random?: () => number; maxErrors?: number; stopAfterSleeps?: number } = {}) {
  const state = { now: T0, calls: 0, sleeps: [] as number[] };
  const ctx: TriggerContext = {
    now: () => state.now,
    random: options.random ?? (() => 0.5),
    maxConsecutiveErrors: options.maxErrors ?? 5,
    storeName: 'memory',
    async status() {
      const answer = answers[Math.min(state.calls, answers.length - 1)];
      state.calls += 1;
      if (answer instanceof Error) throw answer;
      return answer;
    },
    async sleep(ms) {
      if (options.stopAfterSleeps !== undefined && state.sleeps.length >= options.stopAfterSleeps) return false;
      state.sleeps.push(ms);
      state.now += ms;
      return true;
    },
  };
  return { state, ctx };
}

async function collect(trigger: CollectionReadyTrigger, ctx: TriggerContext): Promise<TriggerEvent[]> {
  const events: TriggerEvent[] = [];
  for await (const event of trigger.run(ctx)) events.push(event);
  return events;
}

function finalOf(events: TriggerEvent[]): SuccessPayload | FailurePayload {
  const finals = events.filter((e) => e.type === 'final');
  should(finals).have.length(1);
  should(events[events.length - 1].type).equal('final');
  return (finals[0] as Extract<TriggerEvent, { type: 'final' }>).payload;
}

function progressEvents(events: TriggerEvent[]): ProgressPayload[] {
  return events.filter((e) => e.type === 'progress').map((e) => (e as Extract<TriggerEvent, { type: 'progress' }>).payload);
}

describe('CollectionReadyTrigger (scripted status double)', () => {
  describe('readiness', () => {
    it('ends with success on the first poll when the collection is ready', async () => {
      const { ctx } = scripted([ready(500)]);
      const events = await collect(new CollectionReadyTrigger(spec()), ctx);
      should(events).have.length(1);
      should(finalOf(events)).eql({
        status: 'success',
        collection: 'docs',
        documentCount: 500,
        indexedCount: 500,
        expectedCount: 500,
        elapsedMs: 0,
        polls: 1,
        deferred: true,
      });
    });

    it('with expectedCount 0, waits for "ready" alone', async () => {
      const { ctx, state } = scripted([indexing(5, 10), indexing(9, 10), ready(10)]);
      const events = await collect(new CollectionReadyTrigger(spec({ expectedCount: 0 })), ctx);
      const final = finalOf(events) as SuccessPayload;
      should(final.status).equal('success');
      should(final.polls).equal(3);
      should(final.expectedCount).equal(0);
      should(final.elapsedMs).equal(state.now - T0);
      should(progressEvents(events)).have.length(2);
    });

    it('keeps waiting while the store is ready with fewer documents than expected', async () => {
      const { ctx } = scripted([ready(300), ready(499), ready(500)]);
      const events = await collect(new CollectionReadyTrigger(spec()), ctx);
      const progress = progressEvents(events);
      should(progress.map((p) => p.indexedCount)).eql([300, 499]);
      // The store says progress 1 (ready), but 300 of 500 expected is 0.6.
      should(progress[0].progress).equal(0.6);
      should(progress[0].expectedCount).equal(500);
      should(finalOf(events).status).equal('success');
    });

    it('fails at once when the store reports that indexing failed', async () => {
      const { ctx } = scripted([indexing(10), failed('disk full.')]);
      const final = finalOf(await collect(new CollectionReadyTrigger(spec()), ctx)) as FailurePayload;
      should(final.status).equal('failed');
      should(final.message).equal('Indexing of collection "docs" failed: disk full.');
      should(final.polls).equal(2);
      should(final.lastProgress?.indexedCount).equal(10);
    });
  });

  describe('progress', () => {
    it('uses the store progress and ETA while indexing', async () => {
      const { ctx } = scripted([indexing(100, 500, { progress: 0.25, etaSeconds: 12 }), ready(500)]);
      const [first] = progressEvents(await collect(new CollectionReadyTrigger(spec()), ctx));
      should(first).eql({
        status: 'indexing',
        collection: 'docs',
        indexedCount: 100,
        expectedCount: 500,
        progress: 0.25,
        etaSeconds: 12,
        elapsedMs: 0,
        polls: 1,
        phase: null,
        detail: null,
      });
    });

    it("carries the store's phase and detail on progress, and into the timeout message", async () => {
      const phase = 'waiting for old snapshots';
      const { ctx, state } = scripted([indexing(98, 100, { progress: 0.98, phase, detail: 'another transaction holds an old snapshot' })]);
      const events = await collect(new CollectionReadyTrigger(spec({ expectedCount: 100, timeoutMs: 3000 })), ctx);
      const [first] = progressEvents(events);
      should(first).match({ phase, detail: 'another transaction holds an old snapshot' });
      const final = events[events.length - 1] as { type: 'final'; payload: FailurePayload };
      should(final.payload.status).equal('timeout');
      should(final.payload.message).match(/98 of 100 documents indexed \(98%, phase "waiting for old snapshots"\); the store said: another transaction holds an old snapshot/);
      should(state.calls).be.above(1);
    });

    it("a failure keeps the store's code in the message", () => {
      const trigger = new CollectionReadyTrigger(spec());
      const step = trigger.onStatus({ ...failed('the index build was cancelled by the server'), code: '57014' }, scripted([]).ctx);
      should((step.event as { payload: FailurePayload }).payload.message).equal('Indexing of collection "docs" failed: the index build was cancelled by the server (code 57014).');
    });

    it('smooths the estimated ETA over polls and never says 0 while not ready', async () => {
      // 100 per s, then a quick poll (300 in 1 s), then 100 per s: the estimate moves, but not by 3x.
      const { ctx } = scripted([indexing(100), indexing(200), indexing(500), indexing(600), indexing(499 * 0 + 999, 1000), ready(1000)]);
      const progress = progressEvents(await collect(new CollectionReadyTrigger(spec({ expectedCount: 1000 })), ctx));
      const etas = progress.map((p) => p.etaSeconds);
      should(etas[0]).be.null();
      should(etas[1]).equal(8); // 100/s, 800 to go
      // Instant rate 300/s would say 2 s; the smoothed one (160/s) says 4 s.
      should(etas[2]).equal(4);
      for (const eta of etas.slice(1)) should(eta).be.aboveOrEqual(1);
      // The store's own estimate of 0 while still indexing is shown as 1 s.
      const { ctx: zero } = scripted([indexing(10, 100, { progress: 0.99, etaSeconds: 0 }), ready(100)]);
      const [p] = progressEvents(await collect(new CollectionReadyTrigger(spec({ expectedCount: 100 })), zero));
      should(p.etaSeconds).equal(1);
    });

    it('while the store fails, a warning carries the last progress with the retry reason as detail', async () => {
      const { ctx } = scripted([indexing(40, 100), unavailable('connect ECONNREFUSED 127.0.0.1:5432'), ready(100)]);
      const events = await collect(new CollectionReadyTrigger(spec({ expectedCount: 100 })), ctx);
      const warning = events.find((e) => e.type === 'warning') as { payload: ProgressPayload };
      should(warning.payload).match({ status: 'indexing', indexedCount: 40, progress: 0.4, etaSeconds: null });
      should(warning.payload.detail).match(/^The memory store did not answer \(connect ECONNREFUSED 127\.0\.0\.1:5432\); retrying in /);
    });

    it('computes indexed/expected when the store gives no progress, and estimates the ETA from the rate', async () => {
      const { ctx } = scripted([indexing(100), indexing(200), ready(500)]);
      const progress = progressEvents(await collect(new CollectionReadyTrigger(spec()), ctx));
      should(progress[0].progress).equal(0.2);
      should(progress[0].etaSeconds).be.null(); // no rate known yet
      should(progress[1].progress).equal(0.4);
      // 100 documents in 1 s, 300 to go: 3 s.
      should(progress[1].etaSeconds).equal(3);
    });

    it('reports null progress when neither the store nor an expected count tells', () => {
      should(progressOf(indexing(10), 0)).be.null();
      should(progressOf(indexing(10, 20, { progress: 0.5 }), 0)).equal(0.5);
      should(progressOf(indexing(600), 500)).equal(1);
    });
  });

  describe('backoff', () => {
    it('grows by 1.5x per poll without progress, up to maxPollInterval', async () => {
      const { ctx, state } = scripted([indexing(10)], { stopAfterSleeps: 6 });
      await collect(new CollectionReadyTrigger(spec()), ctx);
      should(state.sleeps).eql([1000, 1500, 2250, 3375, 5000, 5000]);
    });

    it('goes back to the poll interval when the indexed count advances', async () => {
      const { ctx, state } = scripted([indexing(10), indexing(10), indexing(10), indexing(20), indexing(20)], { stopAfterSleeps: 5 });
      await collect(new CollectionReadyTrigger(spec()), ctx);
      should(state.sleeps).eql([1000, 1500, 2250, 1000, 1500]);
    });

    it('jitters by at most 10% and stays within [pollInterval, maxPollInterval]', async () => {
      for (const r of [0, 0.1, 0.37, 0.5, 0.81, 0.999999]) {
        const { ctx, state } = scripted([indexing(10)], { random: () => r, stopAfterSleeps: 8 });
        await collect(new CollectionReadyTrigger(spec()), ctx);
        // pollInterval * 1.5^k, capped at maxPollInterval before the jitter.
        const bases = [1000, 1500, 2250, 3375, 5000, 5000, 5000, 5000];
        should(state.sleeps).have.length(8);
        state.sleeps.forEach((sleep, i) => {
          should(sleep).be.within(1000, 5000);
          should(Math.abs(sleep - bases[i]) / bases[i]).be.belowOrEqual(0.1 + 1e-9);
          const expected = Math.min(5000, Math.max(1000, bases[i] * (1 + (r * 2 - 1) * 0.1)));
          should(sleep).be.approximately(expected, 1e-6);
        });
      }
    });

    // The benchmarks' latency bounds call these: they must be the schedule the trigger follows.
    it('sleeps exactly pollDelay of its polls in a row without progress, and never longer than longestPollDelay', async () => {
      const limits = { pollIntervalMs: 1000, maxPollIntervalMs: 5000 };
      for (const r of [0, 0.37, 0.999999]) {
        const { ctx, state } = scripted([indexing(10), indexing(10), indexing(10), indexing(20), indexing(20), indexing(20)], { random: () => r, stopAfterSleeps: 8 });
        await collect(new CollectionReadyTrigger(spec()), ctx);
        // The first poll counts as progress; the fourth moves the count again.
        const stalled = [0, 1, 2, 0, 1, 2, 3, 4];
        should(state.sleeps).eql(stalled.map((k) => pollDelay(k, limits, r)));
        state.sleeps.forEach((sleep, i) => should(sleep).be.belowOrEqual(longestPollDelay(stalled[i], limits)));
      }
      [1100, 1650, 2475, 3712.5, 5000].forEach((longest, k) => should(longestPollDelay(k, limits)).be.approximately(longest, 1e-6));
    });

    it('counts a poll as progress when more is indexed or the store reports more progress', () => {
      const at = (indexedCount: number, progress: number | null) => ({ indexedCount, progress }) as ProgressPayload;
      should(madeProgress(null, at(0, null))).be.true();
      should(madeProgress(at(10, null), at(11, null))).be.true();
      should(madeProgress(at(10, 0.2), at(10, 0.3))).be.true();
      should(madeProgress(at(10, 0.2), at(10, 0.2))).be.false();
      should(madeProgress(at(10, null), at(10, 0.3))).be.false();
    });
  });

  describe('deadline', () => {
    it('times out exactly at the deadline, not a poll interval later', async () => {
      const { ctx, state } = scripted([indexing(120)]);
      const events = await collect(new CollectionReadyTrigger(spec({ timeoutMs: 2200 })), ctx);
      // Polls at 0 and 1000; the second sleep is cut from 1500 to 1200 ms.
      should(state.sleeps).eql([1000, 1200]);
      const final = finalOf(events) as FailurePayload;
      should(final.status).equal('timeout');
      should(final.elapsedMs).equal(2200);
      should(final.polls).equal(2);
      should(final.lastProgress?.indexedCount).equal(120);
      should(final.message).equal(
        'Timed out after 2.2 s waiting for collection "docs" to be indexed: 120 of 500 documents indexed (24%). Increase the timeout or check the store.',
      );
    });

    it('times out before polling when resumed after its deadline', async () => {
      const { ctx, state } = scripted([ready(500)]);
      state.now = T0 + 61_000;
      const final = finalOf(await collect(new CollectionReadyTrigger(spec()), ctx));
      should(final.status).equal('timeout');
      should(state.calls).equal(0);
      should((final as FailurePayload).message).match(/Timed out after 1 min 1 s waiting for collection "docs" to be indexed: it was never checked/);
    });
  });

  describe('errors', () => {
    it('ends at once on a permanent error', async () => {
      const { ctx, state } = scripted([notFound()]);
      const events = await collect(new CollectionReadyTrigger(spec()), ctx);
      should(events).have.length(1);
      const final = finalOf(events) as FailurePayload;
      should(final.status).equal('error');
      should(final.polls).equal(1);
      should(state.calls).equal(1);
      should(final.message).equal(
        'Stopped waiting for collection "docs" after 0 ms: the memory store reported an error that retrying will not fix: Collection "docs" does not exist in the memory store.',
      );
    });

    it('warns on a transient error and goes on; a success resets the error count', async () => {
      const { ctx } = scripted([unavailable(), unavailable(), indexing(10), unavailable(), ready(500)]);
      const trigger = new CollectionReadyTrigger(spec());
      const events = await collect(trigger, ctx);
      should(events.map((e) => e.type)).eql(['warning', 'warning', 'progress', 'warning', 'final']);
      const warning = events[1] as Extract<TriggerEvent, { type: 'warning' }>;
      should(warning.message).equal(
        'Could not get the status of collection "docs" from the memory store (error 2 of 5 allowed in a row); retrying in 2.3 s: connection refused.',
      );
      should(warning.error).be.instanceOf(VectorStoreError);
      should(finalOf(events).status).equal('success');
      should(trigger.serialize().consecutiveErrors).equal(0);
    });

    it('gives up after maxConsecutiveErrors transient errors in a row', async () => {
      const { ctx, state } = scripted([unavailable('the server answered 503')], { maxErrors: 5 });
      const events = await collect(new CollectionReadyTrigger(spec()), ctx);
      should(events.filter((e) => e.type === 'warning')).have.length(4);
      should(state.calls).equal(5);
      const final = finalOf(events) as FailurePayload;
      should(final.status).equal('error');
      should(final.polls).equal(5);
      should(final.message).equal('Gave up on collection "docs" after 5 consecutive errors from the memory store (the sensor\'s limit): the server answered 503.');
    });

    it('treats an unknown thrown value as transient', async () => {
      const { ctx } = scripted([new Error('socket hang up'), ready(500)]);
      const events = await collect(new CollectionReadyTrigger(spec()), ctx);
      should(events.map((e) => e.type)).eql(['warning', 'final']);
    });
  });

  describe('serialize and resume', () => {
    it('resumes with the original start, deadline, poll count and last progress', async () => {
      const first = scripted([indexing(100), indexing(200), indexing(300)], { stopAfterSleeps: 2 });
      const trigger = new CollectionReadyTrigger(spec());
      const events = await collect(trigger, first.ctx);
      should(events.filter((e) => e.type === 'final')).have.length(0); // cancelled: no final
      const saved = JSON.parse(JSON.stringify(trigger.serialize())) as TriggerSpec;
      should(saved.startedAt).equal(T0);
      should(saved.deadline).equal(T0 + 60_000);
      should(saved.polls).equal(3);
      should(saved.lastProgress?.indexedCount).equal(300);

      // Another process, 10 s later.
      const second = scripted([indexing(400), ready(500)]);
      second.state.now = first.state.now + 10_000;
      const resumed = await collect(new CollectionReadyTrigger(parseTriggerSpec(saved)), second.ctx);
      const progress = progressEvents(resumed);
      should(progress[0].polls).equal(4);
      should(progress[0].elapsedMs).equal(second.state.now - 1000 - T0);
      const final = finalOf(resumed) as SuccessPayload;
      should(final.polls).equal(5);
      should(final.elapsedMs).equal(second.state.now - T0);
    });

    it('serialize returns a copy that later polls do not change', async () => {
      const { ctx } = scripted([indexing(10), ready(500)]);
      const trigger = new CollectionReadyTrigger(spec());
      const before = trigger.serialize();
      await collect(trigger, ctx);
      should(before.polls).equal(0);
      should(trigger.serialize().polls).equal(2);
    });
  });

  describe('checkOnce (the sensor quick check)', () => {
    it('returns a success payload with deferred false when ready', () => {
      should(checkOnce(spec(), ready(500), T0 + 5)).eql({
        status: 'success',
        collection: 'docs',
        documentCount: 500,
        indexedCount: 500,
        expectedCount: 500,
        elapsedMs: 5,
        polls: 1,
        deferred: false,
      });
    });

    it('returns null when not ready yet, and a failed payload when indexing failed', () => {
      should(checkOnce(spec(), ready(499))).be.null();
      should(checkOnce(spec(), indexing(500))).be.null();
      const result = checkOnce(spec(), failed('out of memory'), T0) as FailurePayload;
      should(result.status).equal('failed');
      should(result.polls).equal(1);
      should(result.message).equal('Indexing of collection "docs" failed: out of memory.');
    });
  });

  describe('specs', () => {
    it('createTriggerSpec builds a version 1 spec from the start time and timeout', () => {
      const s = spec({ expectedCount: undefined });
      should(s).eql({
        v: 1,
        waitId: 'w1',
        collection: 'docs',
        expectedCount: 0,
        pollIntervalMs: 1000,
        maxPollIntervalMs: 5000,
        startedAt: T0,
        deadline: T0 + 60_000,
        polls: 0,
        consecutiveErrors: 0,
        lastProgress: null,
      });
      should(createTriggerSpec({ collection: 'c', pollIntervalMs: 1, maxPollIntervalMs: 1, timeoutMs: 1 }).waitId).match(/^[0-9a-f-]{36}$/);
    });

    it('createTriggerSpec names the bad field', () => {
      should(() => spec({ collection: '' })).throw(/collection to wait for is empty/);
      should(() => spec({ expectedCount: -1 })).throw(/expected count for collection "docs" must be a whole number/);
      should(() => spec({ pollIntervalMs: 0 })).throw(/poll interval for collection "docs" must be a positive duration/);
      should(() => spec({ maxPollIntervalMs: 500 })).throw(/maximum poll interval .* must be at least the poll interval/);
      should(() => spec({ timeoutMs: Number.NaN })).throw(/timeout for collection "docs" must be a positive duration/);
      try {
        spec({ timeoutMs: -1 });
      } catch (err) {
        should((err as VectorStoreError).code).equal('INVALID_INPUT');
      }
    });

    it('parseTriggerSpec rejects unknown versions and damaged specs with an explanation', () => {
      should(parseTriggerSpec(JSON.parse(JSON.stringify(spec())))).eql(spec());
      should(() => parseTriggerSpec({ ...spec(), v: 2 })).throw(/format version 2, which this version of the package does not know/);
      should(() => new CollectionReadyTrigger({ ...spec(), v: 2 } as unknown as TriggerSpec)).throw(/format version 2/);
      should(() => parseTriggerSpec({ ...spec(), polls: -3 })).throw(/^This saved wait is damaged: polls must be at least 0 \(got -3\)/);
      // Our words, not the schema library's.
      let message = '';
      try {
        parseTriggerSpec({ ...spec(), expectedCount: 1e300 });
      } catch (err) {
        message = (err as Error).message;
      }
      should(message).match(/^This saved wait is damaged: expectedCount/).and.not.match(/Too big|expected int|Invalid input/);
      should(() => parseTriggerSpec(null)).throw(/format version undefined/);
    });

    it('a wait on another tool\'s collection keeps it in `source`, across a save and a load; the status is asked about it, not the label', async () => {
      const source = { name: 'langchain_pg_embedding', schema: 'public', index: 'docs_idx' };
      const s = spec({ collection: 'public.langchain_pg_embedding', source });
      should(s.source).eql(source);
      const saved = JSON.parse(JSON.stringify(s));
      should(parseTriggerSpec(saved)).eql(s);
      should(adoptTriggerSpec(JSON.parse(JSON.stringify(s)))).eql(s);
      // Waits saved before `source` existed load unchanged, without one.
      should(parseTriggerSpec(JSON.parse(JSON.stringify(spec())))).not.have.property('source');
      const asked: unknown[] = [];
      const { ctx } = scripted([ready(500)]);
      ctx.status = async (collection) => {
        asked.push(collection);
        return ready(500);
      };
      const final = finalOf(await collect(new CollectionReadyTrigger(parseTriggerSpec(saved)), ctx));
      should(final.collection).equal('public.langchain_pg_embedding');
      should(asked).eql([source]);
      should(watchedCollection(s)).eql(source);
      should(watchedCollection(spec())).equal('docs');
    });

    it('a damaged `source` is named in our words; a bad one is refused when the wait is made', () => {
      should(() => parseTriggerSpec({ ...spec(), source: { name: '' } })).throw(/^This saved wait is damaged: source\.name/);
      should(() => parseTriggerSpec({ ...spec(), source: { name: 'items', preset: 'haystack' } })).throw(/^This saved wait is damaged: source\.preset/);
      should(() => spec({ source: { name: 'items', colum: 'vec' } as never })).throw(/does not know: "colum"/);
    });

    it('formatDuration speaks like a person', () => {
      should(formatDuration(850)).equal('850 ms');
      should(formatDuration(2500)).equal('2.5 s');
      should(formatDuration(10_000)).equal('10 s');
      should(formatDuration(200_000)).equal('3 min 20 s');
      should(formatDuration(3600_000)).equal('1 h');
      should(formatDuration(7_500_000)).equal('2 h 5 min');
    });
  });

  describe('running with plain timers (deferrable: false)', () => {
    it('runToCompletion polls with setTimeout until ready', async () => {
      const answers = [indexing(1, 3), indexing(2, 3), ready(3)];
      let calls = 0;
      const events: string[] = [];
      const ctx = timerContext({ status: async () => answers[Math.min(calls++, 2)], storeName: 'memory' });
      const trigger = new CollectionReadyTrigger(createTriggerSpec({ collection: 'docs', expectedCount: 3, pollIntervalMs: 2, maxPollIntervalMs: 4, timeoutMs: 10_000 }));
      const final = (await runToCompletion(trigger, ctx, (e) => events.push(e.type))) as SuccessPayload;
      should(final.status).equal('success');
      should(final.deferred).be.false();
      should(events).eql(['progress', 'progress', 'final']);
    });

    it('stops quietly, without a final event, when aborted', async () => {
      const controller = new AbortController();
      const events: string[] = [];
      const ctx = timerContext({ status: async () => indexing(1), signal: controller.signal });
      const trigger = new CollectionReadyTrigger(createTriggerSpec({ collection: 'docs', pollIntervalMs: 60_000, maxPollIntervalMs: 60_000, timeoutMs: 600_000 }));
      const running = runToCompletion(trigger, ctx, (e) => {
        events.push(e.type);
        controller.abort(); // during the 60 s sleep: must clear its timer
      });
      should(await running).be.null();
      should(events).eql(['progress']);
    });

    it('a status call that never answers ends the wait at its deadline, saying the store did not answer', async () => {
      const ctx = timerContext({ status: () => new Promise<CollectionStatus>(() => undefined), storeName: 'pgvector' });
      const trigger = new CollectionReadyTrigger(createTriggerSpec({ collection: 'docs', pollIntervalMs: 10, maxPollIntervalMs: 20, timeoutMs: 300 }));
      const started = Date.now();
      const final = (await runToCompletion(trigger, ctx)) as FailurePayload;
      should(final).match({ status: 'timeout', code: 'STORE_NOT_ANSWERING' });
      should(final.message).match(/the pgvector store did not answer/);
      should(Date.now() - started).be.below(5000);
    });

    it('retries transient errors until the deadline when no limit is set, then says the store kept failing', async () => {
      let calls = 0;
      const ctx = timerContext({
        status: async () => {
          calls += 1;
          throw new VectorStoreError('UNAVAILABLE', 'connect ECONNREFUSED 127.0.0.1:5432');
        },
        storeName: 'pgvector',
      });
      const trigger = new CollectionReadyTrigger(createTriggerSpec({ collection: 'docs', pollIntervalMs: 5, maxPollIntervalMs: 10, timeoutMs: 300 }));
      const final = (await runToCompletion(trigger, ctx)) as FailurePayload;
      should(calls).be.above(5);
      should(final).match({ status: 'timeout', code: 'STORE_NOT_ANSWERING' });
      should(final.message).match(/did not answer the last \d+ status requests \(last error: connect ECONNREFUSED/);
    });
  });
});
