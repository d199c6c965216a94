import should from 'should';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { VectorStoreError } from '../../lib/errors';
import { Scheduler, type Timers } from '../../lib/scheduler';
import { createTriggerSpec, type FailurePayload, type ProgressPayload, type SuccessPayload, type TriggerEvent } from '../../lib/trigger';
import { Triggerer, type TriggererOptions, type WaitOwner, type WaitRecord } from '../../lib/triggerer';
import type { Backend, CollectionStatus } from '../../lib/types';
import { WaitStore } from '../../lib/wait-store';

const T0 = 1_700_000_000_000;

/** Let queued slices, answers and file writes run. */
async function settle(rounds = 30): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** A clock whose timers fire only when the test moves time forward. */
class ManualClock implements Timers {
  time = T0;
  /** Extra work to await after each step (the triggerers' pending deliveries). */
  afterStep: () => Promise<void> = async () => undefined;
  private nextId = 1;
  private readonly pending = new Map<number, { at: number; callback: () => void }>();

  readonly now = (): number => this.time;

  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.pending.set(id, { at: this.time + ms, callback });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }

  get timers(): number {
    return this.pending.size;
  }

  /** Move time forward, firing each due timer at its own time, and let the work settle. */
  async advance(ms: number): Promise<void> {
    const target = this.time + ms;
    await settle();
    await this.afterStep();
    while (true) {
      let next: [number, { at: number; callback: () => void }] | null = null;
      for (const entry of this.pending) if (entry[1].at <= target && (!next || entry[1].at < next[1].at)) next = entry;
      if (!next) break;
      this.pending.delete(next[0]);
      this.time = Math.max(this.time, next[1].at);
      next[1].callback();
      await settle();
      await this.afterStep();
      await settle();
    }
    await this.afterStep();
    await settle();
    this.time = target;
  }
}

function indexing(indexedCount: number, documentCount = 100): CollectionStatus {
  return { state: 'indexing', documentCount, indexedCount, progress: null, etaSeconds: null };
}
function ready(count: number): CollectionStatus {
  return { state: 'ready', documentCount: count, indexedCount: count, progress: 1, etaSeconds: 0 };
}

/** A backend double that implements only `status`, answering what the test set per collection. */
function scriptedBackend(name = 'memory') {
  const answers = new Map<string, CollectionStatus | Error>();
  const calls: string[] = [];
  const backend = {
    name,
    async status(collection: string): Promise<CollectionStatus> {
      calls.push(collection);
      const answer = answers.get(collection) ?? indexing(0);
      if (answer instanceof Error) throw answer;
      return answer;
    },
  } as unknown as Backend;
  return { backend, calls, set: (collection: string, answer: CollectionStatus | Error) => answers.set(collection, answer) };
}

interface Seen {
  waitId: string;
  event: TriggerEvent;
  record: WaitRecord;
}

function recordingOwner(backend: Backend, storeKey = 'store-1'): { owner: WaitOwner; events: Seen[] } {
  const events: Seen[] = [];
  return { events, owner: { backend, storeKey, onEvent: (record, event) => events.push({ waitId: record.spec.waitId, event: event as TriggerEvent, record: record as WaitRecord }) } };
}

function waitRecord(waitId: string, options: { ownerId?: string; collection?: string; expectedCount?: number; now?: number; timeoutMs?: number; pollIntervalMs?: number; message?: Record<string, unknown> } = {}): WaitRecord {
  const spec = createTriggerSpec({
    waitId,
    collection: options.collection ?? 'docs',
    expectedCount: options.expectedCount ?? 100,
    pollIntervalMs: options.pollIntervalMs ?? 1000,
    maxPollIntervalMs: 10_000,
    timeoutMs: options.timeoutMs ?? 600_000,
    now: options.now ?? T0,
  });
  return { ownerId: options.ownerId ?? 'sensor-1', spec, message: options.message ?? { payload: `for ${waitId}`, topic: 'ingest' } };
}

const ofType = <K extends TriggerEvent['type']>(events: Seen[], type: K) => events.filter((e) => e.event.type === type);
const finalPayload = (seen: Seen) => (seen.event as Extract<TriggerEvent, { type: 'final' }>).payload;
const progressPayload = (seen: Seen) => (seen.event as Extract<TriggerEvent, { type: 'progress' }>).payload as ProgressPayload;

describe('Triggerer (scripted status double)', () => {
  let dir: string;
  let file: string;
  let clock: ManualClock;
  const toClose: Array<{ close(): Promise<void> }> = [];
  const warnings: string[] = [];

  function triggerer(options: Partial<TriggererOptions> = {}): Triggerer {
    const t = new Triggerer({ now: clock.now, timers: clock, random: () => 0.5, log: { warn: (m) => warnings.push(m) }, ...options });
    toClose.push(t);
    // Finals are recorded on disk before they are handed over: let that finish whenever the test moves time.
    clock.afterStep = () => Promise.all(toClose.filter((x): x is Triggerer => x instanceof Triggerer).map((x) => x.delivered())).then(() => undefined);
    return t;
  }

  function waitStore(at = file): WaitStore {
    const s = new WaitStore(at, { checkpointMs: 10 });
    toClose.push(s);
    return s;
  }

  async function fileLines(at = file): Promise<Array<{ op: string; w?: WaitRecord; id?: string }>> {
    const text = await fs.readFile(at, 'utf8').catch(() => '');
    return text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
  }

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'triggerer-'));
    file = path.join(dir, 'waits.jsonl');
    clock = new ManualClock();
    warnings.length = 0;
  });

  afterEach(async () => {
    for (const c of toClose.splice(0).reverse()) await c.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  describe('coalescing', () => {
    it('1,000 waits on 3 collections cost at most 3 status calls per tick', async () => {
      const store = scriptedBackend();
      const t = triggerer();
      const { owner, events } = recordingOwner(store.backend);
      t.attach('sensor-1', owner);
      await Promise.all(Array.from({ length: 1000 }, (_, i) => t.defer(waitRecord(`w${i}`, { collection: `c${i % 3}` }))));

      for (let round = 0; round < 6; round++) await clock.advance(round === 0 ? 0 : 10_000);
      const stats = t.stats();
      should(stats.ticks).be.aboveOrEqual(6);
      should(stats.statusCalls).equal(3 * stats.ticks); // no jitter here: every tick polls all 1,000
      should(ofType(events, 'progress')).have.length(1000 * stats.ticks);
      should(store.calls.filter((c) => c === 'c0').length).equal(stats.ticks);
    });

    it('stays within 3 calls per tick when jitter spreads the waits', async () => {
      const store = scriptedBackend();
      const t = triggerer({ random: Math.random });
      t.attach('sensor-1', recordingOwner(store.backend).owner);
      await Promise.all(Array.from({ length: 1000 }, (_, i) => t.defer(waitRecord(`w${i}`, { collection: `c${i % 3}` }))));
      for (let round = 0; round < 4; round++) await clock.advance(10_000);
      const stats = t.stats();
      should(stats.ticks).be.above(1);
      should(stats.statusCalls).be.belowOrEqual(3 * stats.ticks);
    });

    it('waits of one collection started at different moments fall into step: one call per interval, each wait polled no later than its backoff asks', async () => {
      const store = scriptedBackend();
      const t = triggerer({ random: Math.random });
      const polledAt = new Map<string, number[]>();
      const owner: WaitOwner = {
        backend: store.backend,
        storeKey: 'store-1',
        onEvent: (wait, event) => {
          if (event.type !== 'progress') return;
          const seen = polledAt.get(wait.spec.waitId) ?? [];
          seen.push(clock.now());
          polledAt.set(wait.spec.waitId, seen);
        },
      };
      t.attach('sensor-1', owner);
      // 100 waits, one every 97 ms over nearly 10 s, each checked on arrival (as the sensor does), polls from 1 s backing off to 10 s.
      for (let i = 0; i < 100; i++) {
        const record = waitRecord(`w${i}`, { now: clock.now() });
        record.spec.polls = 1;
        await t.defer(record);
        await clock.advance(97);
      }
      await clock.advance(60_000);
      // Without falling into step each wait keeps its own schedule: 118 calls, about two a second.
      should(store.calls.length).be.belowOrEqual(40);
      for (const [waitId, times] of polledAt) {
        // The backoff grows 1.5x per poll without progress, up to 10 s; aligned polls only come earlier.
        const gaps = times.slice(1).map((at, k) => at - times[k]);
        should(Math.max(...gaps)).be.belowOrEqual(10_000 * 1.1 + 1, waitId);
        should(times[0] - (T0 + Number(waitId.slice(1)) * 97)).be.belowOrEqual(1000 * 1.1 + 97, waitId);
      }
    });

    it('never answers a wait with a status read before the wait began', async () => {
      // A status answer cached for an earlier wait may predate the write the new
      // wait is about (ingest, then sensor): the new wait must ask again.
      const store = scriptedBackend();
      const t = triggerer();
      const { owner, events } = recordingOwner(store.backend);
      t.attach('sensor-1', owner);
      store.set('docs', ready(100));
      await t.defer(waitRecord('early', { expectedCount: 0 }));
      await clock.advance(0);
      should(store.calls).have.length(1);
      await clock.advance(100);
      store.set('docs', indexing(0)); // re-ingested: indexing again
      await t.defer(waitRecord('late', { expectedCount: 0, now: clock.now() }));
      await clock.advance(0);
      should(store.calls).have.length(2);
      should(ofType(events, 'final').map((e) => e.waitId)).eql(['early']);
      should(ofType(events, 'progress').map((e) => e.waitId)).eql(['late']);
    });

    it('does not share status calls between different stores', async () => {
      const one = scriptedBackend();
      const two = scriptedBackend();
      const t = triggerer();
      t.attach('sensor-1', recordingOwner(one.backend, 'store-1').owner);
      t.attach('sensor-2', recordingOwner(two.backend, 'store-2').owner);
      await t.defer(waitRecord('a', { ownerId: 'sensor-1' }));
      await t.defer(waitRecord('b', { ownerId: 'sensor-2' }));
      await t.defer(waitRecord('c', { ownerId: 'sensor-2' }));
      await clock.advance(0);
      should(one.calls).eql(['docs']);
      should(two.calls).eql(['docs']);
    });

    it('wakes a crowd of due waits in slices, letting other work run in between', async () => {
      const store = scriptedBackend();
      const t = triggerer({ sliceSize: 10 });
      const { owner, events } = recordingOwner(store.backend);
      t.attach('sensor-1', owner);
      await Promise.all(Array.from({ length: 100 }, (_, i) => t.defer(waitRecord(`w${i}`))));
      const seen: number[] = [];
      let probing = true;
      const probe = (): void => {
        seen.push(events.length);
        if (probing) setImmediate(probe);
      };
      setImmediate(probe);
      await clock.advance(0);
      probing = false;
      should(events).have.length(100);
      should(seen.some((n) => n > 0 && n < 100)).be.true();
    });
  });

  describe('durability', () => {
    it('defer resolves once the wait is on disk, before any event', async () => {
      const store = scriptedBackend();
      const t = triggerer({ waitStore: waitStore() });
      const { owner, events } = recordingOwner(store.backend);
      t.attach('sensor-1', owner);
      await t.start();
      await t.defer(waitRecord('w1', { message: { payload: 'hello', topic: 't' } }));
      should(events).have.length(0);
      const [line] = await fileLines();
      should(line).match({ op: 'put', w: { ownerId: 'sensor-1', spec: { waitId: 'w1', startedAt: T0 }, message: { payload: 'hello', topic: 't' } } });
      await clock.advance(0);
      should(ofType(events, 'progress')).have.length(1);
    });

    it('delivers the final event once, then removes the wait from the store', async () => {
      const store = scriptedBackend();
      const t = triggerer({ waitStore: waitStore() });
      const { owner, events } = recordingOwner(store.backend);
      t.attach('sensor-1', owner);
      await t.defer(waitRecord('w1'));
      await clock.advance(0);
      await clock.advance(1000);
      store.set('docs', ready(100));
      await clock.advance(10_000);
      await clock.advance(60_000);
      const finals = ofType(events, 'final');
      should(finals).have.length(1);
      // Polls at +0 and +1000 (indexing), then +2500 after a 1.5x backoff (ready).
      should(finalPayload(finals[0])).match({ status: 'success', polls: 3, elapsedMs: 2500, deferred: true });
      should(t.pending()).equal(0);
      should(store.calls).have.length(3);
      await t.close();
      const ops = (await fileLines()).map((r) => r.op);
      should(ops[ops.length - 1]).equal('del');
      should(await waitStore(file).load()).eql([]);
    });

    it('resumes after a crash with the original start time and ends with one final', async () => {
      const store = scriptedBackend();
      const firstStore = new WaitStore(file, { checkpointMs: 60_000 });
      const first = triggerer({ waitStore: firstStore });
      const a = recordingOwner(store.backend);
      first.attach('sensor-1', a.owner);
      await first.defer(waitRecord('w1', { message: { payload: 'original', _msgid: 'm1' } }));
      store.set('docs', indexing(30));
      await clock.advance(0);
      store.set('docs', indexing(60));
      await clock.advance(1000);
      await firstStore.flush(); // a checkpoint happened
      should(ofType(a.events, 'progress').map((e) => progressPayload(e).indexedCount)).eql([30, 60]);

      // kill -9: whatever is on disk now is all the next process gets.
      const crashed = path.join(dir, 'crashed.jsonl');
      await fs.copyFile(file, crashed);
      await first.close(); // (it writes to the original file, not to the crashed copy)

      const restartAt = clock.time + 5000;
      clock.time = restartAt;
      const second = triggerer({ waitStore: waitStore(crashed) });
      await second.start();
      should(second.pending('sensor-1')).equal(1);
      should(second.list('sensor-1')[0].spec.startedAt).equal(T0);
      const b = recordingOwner(store.backend);
      store.set('docs', ready(100));
      const callsBefore = store.calls.length;
      await clock.advance(10_000);
      should(store.calls.length).equal(callsBefore); // dormant until its node attaches
      second.attach('sensor-1', b.owner);
      await clock.advance(0);
      await clock.advance(60_000);

      const finals = ofType(b.events, 'final');
      should(finals).have.length(1);
      const final = finalPayload(finals[0]) as SuccessPayload;
      should(final.status).equal('success');
      should(final.polls).equal(3); // two before the crash, one after
      should(final.elapsedMs).equal(restartAt + 10_000 - T0);
      should(finals[0].record.message).eql({ payload: 'original', _msgid: 'm1' });
      await second.close();
      should(await waitStore(crashed).load()).eql([]);
    });

    it('a deadline that passed while the runtime was down ends in a timeout at once', async () => {
      const store = scriptedBackend();
      const first = triggerer({ waitStore: waitStore() });
      first.attach('sensor-1', recordingOwner(store.backend).owner);
      await first.defer(waitRecord('w1', { timeoutMs: 10_000 }));
      await clock.advance(0);
      await first.close();

      clock.time += 20_000;
      const second = triggerer({ waitStore: waitStore() });
      await second.start();
      const b = recordingOwner(store.backend);
      second.attach('sensor-1', b.owner);
      const callsBefore = store.calls.length;
      await clock.advance(0);
      const [final] = ofType(b.events, 'final');
      const payload = finalPayload(final) as FailurePayload;
      should(payload.status).equal('timeout');
      should(payload.elapsedMs).equal(clock.time - T0);
      should(payload.polls).equal(1);
      should(store.calls.length).equal(callsBefore);
    });

    it('close writes the latest poll count; a new triggerer continues from it', async () => {
      const store = scriptedBackend();
      const first = triggerer({ waitStore: waitStore() });
      first.attach('sensor-1', recordingOwner(store.backend).owner);
      await first.defer(waitRecord('w1'));
      await clock.advance(0);
      await clock.advance(1000);
      await clock.advance(1500);
      await first.close(); // redeploy or shutdown: no final, the wait stays on disk

      const second = triggerer({ waitStore: waitStore() });
      await second.start();
      should((second.list()[0] as WaitRecord).spec.polls).equal(3);
      const b = recordingOwner(store.backend);
      second.attach('sensor-1', b.owner);
      await clock.advance(0);
      should(progressPayload(ofType(b.events, 'progress')[0]).polls).equal(4);
    });
  });

  describe('owners', () => {
    it('detach stops a wait quietly; attach resumes it with its history', async () => {
      const store = scriptedBackend();
      const t = triggerer({ waitStore: waitStore() });
      const a = recordingOwner(store.backend);
      t.attach('sensor-1', a.owner);
      await t.defer(waitRecord('w1'));
      store.set('docs', indexing(10));
      await clock.advance(0);
      should(ofType(a.events, 'progress')).have.length(1);

      t.detach('sensor-1');
      const calls = store.calls.length;
      await clock.advance(30_000);
      should(store.calls.length).equal(calls);
      should(a.events).have.length(1);
      should(t.pending('sensor-1')).equal(1);

      const b = recordingOwner(store.backend);
      t.attach('sensor-1', b.owner); // the redeployed node
      store.set('docs', indexing(50));
      await clock.advance(0);
      const [progress] = ofType(b.events, 'progress').map(progressPayload);
      should(progress.polls).equal(2);
      should(progress.elapsedMs).equal(30_000);
      store.set('docs', ready(100));
      await clock.advance(1000);
      should(ofType(b.events, 'final')).have.length(1);
      should(a.events).have.length(1);
    });

    it('a wait deferred before its owner attaches waits for it', async () => {
      const store = scriptedBackend();
      const t = triggerer();
      await t.defer(waitRecord('w1'));
      await clock.advance(5000);
      should(store.calls).have.length(0);
      const { owner, events } = recordingOwner(store.backend);
      t.attach('sensor-1', owner);
      await clock.advance(0);
      should(events).have.length(1);
    });

    it('an owner whose handler throws is reported, and its wait goes on', async () => {
      const store = scriptedBackend();
      const t = triggerer();
      let seen = 0;
      t.attach('sensor-1', {
        backend: store.backend,
        storeKey: 's',
        onEvent: () => {
          seen += 1;
          throw new Error('boom');
        },
      });
      await t.defer(waitRecord('w1'));
      await clock.advance(0);
      await clock.advance(1000);
      should(seen).equal(2);
      should(warnings.some((w) => /handler of wait w1 \(collection "docs"\) threw on a progress event: boom/.test(w))).be.true();
    });
  });

  describe('cancel', () => {
    it('removes the matching waits: no more events, gone from the store', async () => {
      const store = scriptedBackend();
      const t = triggerer({ waitStore: waitStore() });
      const { owner, events } = recordingOwner(store.backend);
      t.attach('sensor-1', owner);
      await t.defer(waitRecord('a', { collection: 'c1' }));
      await t.defer(waitRecord('b', { collection: 'c2' }));
      await clock.advance(0);
      const cancelled = t.cancel((w) => w.spec.collection === 'c1');
      should(cancelled.map((w) => w.spec.waitId)).eql(['a']);
      should(t.pending()).equal(1);
      events.length = 0;
      await clock.advance(60_000);
      should(events.every((e) => e.waitId === 'b')).be.true();
      await t.close();
      should((await waitStore(file).load()).map((w) => w.spec.waitId)).eql(['b']);
    });

    it('a wait cancelled while it is being saved never runs', async () => {
      const store = scriptedBackend();
      const t = triggerer({ waitStore: waitStore() });
      const { owner, events } = recordingOwner(store.backend);
      t.attach('sensor-1', owner);
      await t.start();
      const deferred = t.defer(waitRecord('a'));
      should(t.cancel(() => true)).have.length(1);
      await deferred;
      await clock.advance(10_000);
      should(events).have.length(0);
      should(store.calls).have.length(0);
      await t.close();
      should(await waitStore(file).load()).eql([]);
    });

    it('dropOrphans removes the waits of owners that no longer exist', async () => {
      const t = triggerer();
      await t.defer(waitRecord('a', { ownerId: 'kept' }));
      await t.defer(waitRecord('b', { ownerId: 'deleted' }));
      await t.defer(waitRecord('c', { ownerId: 'deleted' }));
      should(t.dropOrphans(new Set(['kept'])).map((w) => w.spec.waitId)).eql(['b', 'c']);
      await t.defer(waitRecord('d', { ownerId: 'other' }));
      should(t.dropOrphans((id) => id === 'kept').map((w) => w.spec.waitId)).eql(['d']);
      should(t.list().map((w) => w.spec.waitId)).eql(['a']);
    });
  });

  describe('errors', () => {
    it('with a limit set by the owner, fails after that many transient errors in a row', async () => {
      const store = scriptedBackend('memory');
      store.set('docs', new VectorStoreError('UNAVAILABLE', 'The memory store is busy.'));
      const t = triggerer({ maxConsecutiveErrors: 3 });
      const { owner, events } = recordingOwner(store.backend);
      t.attach('sensor-1', owner);
      await t.defer(waitRecord('w1'));
      await clock.advance(0);
      await clock.advance(60_000);
      should(events.map((e) => e.event.type)).eql(['warning', 'warning', 'final']);
      should((events[0].event as { message: string }).message).match(/^Could not get the status of collection "docs" from the memory store \(error 1 of 3 allowed in a row\)/);
      // The log gets one line for the outage, not one per retry.
      should(warnings).have.length(1);
      const final = finalPayload(ofType(events, 'final')[0]) as FailurePayload;
      should(final.message).equal('Gave up on collection "docs" after 3 consecutive errors from the memory store (the sensor\'s limit): The memory store is busy.');
    });

    it('ends a wait at once on a permanent error', async () => {
      const store = scriptedBackend();
      store.set('docs', new VectorStoreError('AUTH', 'The store rejected the API key.'));
      const t = triggerer();
      const { owner, events } = recordingOwner(store.backend);
      t.attach('sensor-1', owner);
      await t.defer(waitRecord('w1'));
      await clock.advance(0);
      should(events).have.length(1);
      should(finalPayload(events[0]).status).equal('error');
    });

    it('rejects an invalid record or a duplicate wait id', async () => {
      const t = triggerer();
      await t.defer(waitRecord('w1'));
      await should(t.defer(waitRecord('w1'))).be.rejectedWith(/A wait with id w1 is already pending/);
      await should(t.defer({ ...waitRecord('w2'), ownerId: '' })).be.rejectedWith(/has no owner id/);
      await should(t.defer({ ...waitRecord('w3'), spec: { ...waitRecord('w3').spec, v: 7 as 1 } })).be.rejectedWith(/format version 7/);
    });
  });

  describe('deadlines hold whatever the store does', () => {
    /** A status that never answers (a blackholed connection, a lock held for ever). */
    function hungBackend(): { backend: Backend; calls: number } {
      const state = { calls: 0, backend: null as unknown as Backend };
      state.backend = { name: 'pgvector', status: () => (state.calls++, new Promise<CollectionStatus>(() => undefined)) } as unknown as Backend;
      return state;
    }

    it('a status call that never answers ends the wait at its deadline, saying the store did not answer', async () => {
      const hung = hungBackend();
      const t = triggerer();
      const { owner, events } = recordingOwner(hung.backend);
      t.attach('sensor-1', owner);
      await t.defer(waitRecord('w1', { timeoutMs: 20_000 }));
      await clock.advance(19_999);
      should(ofType(events, 'final')).have.length(0);
      await clock.advance(1);
      const finals = ofType(events, 'final');
      should(finals).have.length(1);
      const payload = finalPayload(finals[0]) as FailurePayload;
      should(payload).match({ status: 'timeout', code: 'STORE_NOT_ANSWERING', elapsedMs: 20_000 });
      should(payload.message).match(/the pgvector store did not answer/);
      should(t.pending()).equal(0);
    });

    it('a wait that joins a call already in flight still ends at its own deadline', async () => {
      const hung = hungBackend();
      const t = triggerer();
      const { owner, events } = recordingOwner(hung.backend);
      t.attach('sensor-1', owner);
      await t.defer(waitRecord('long', { timeoutMs: 60_000 }));
      await clock.advance(0);
      await t.defer(waitRecord('short', { timeoutMs: 5_000, now: clock.time }));
      await clock.advance(5_000);
      should(hung.calls).equal(1); // the second wait shared the hung call
      should(ofType(events, 'final').map((e) => e.waitId)).eql(['short']);
      await clock.advance(55_000);
      should(ofType(events, 'final').map((e) => e.waitId)).eql(['short', 'long']);
      for (const e of ofType(events, 'final')) should(finalPayload(e)).match({ status: 'timeout', code: 'STORE_NOT_ANSWERING' });
    });

    it('transient errors never end a wait before its deadline when no limit is set; identical waits end alike', async () => {
      const store = scriptedBackend('pgvector');
      store.set('docs', new VectorStoreError('UNAVAILABLE', 'connect ECONNREFUSED 127.0.0.1:5432'));
      const t = triggerer();
      const { owner, events } = recordingOwner(store.backend);
      t.attach('sensor-1', owner);
      for (let i = 0; i < 20; i++) await t.defer(waitRecord(`w${i}`, { timeoutMs: 120_000 }));
      await clock.advance(20_000); // an outage of 20 s, shorter than the timeout
      should(ofType(events, 'final')).have.length(0);
      store.set('docs', ready(100));
      await clock.advance(60_000);
      const finals = ofType(events, 'final');
      should(finals).have.length(20);
      for (const f of finals) should(finalPayload(f).status).equal('success');
    });

    it('logs one warning per collection per outage, and one when the store answers again, however many waits', async () => {
      const store = scriptedBackend('pgvector');
      store.set('docs', new VectorStoreError('UNAVAILABLE', 'connect ECONNREFUSED 127.0.0.1:5432'));
      const t = triggerer();
      const { owner, events } = recordingOwner(store.backend);
      t.attach('sensor-1', owner);
      for (let i = 0; i < 200; i++) await t.defer(waitRecord(`w${i}`, { timeoutMs: 120_000 }));
      await clock.advance(8_000);
      should(ofType(events, 'warning').length).be.above(200);
      should(warnings).have.length(1);
      should(warnings[0]).match(/collection "docs" from the pgvector store: connect ECONNREFUSED/).and.match(/200 pending waits/);
      store.set('docs', ready(100));
      await clock.advance(20_000);
      should(warnings).have.length(2);
      should(warnings[1]).match(/^The pgvector store answers again for collection "docs" after \d/);
    });

    it('a wait whose store is gone (config node deleted) still ends at its deadline, with that reason', async () => {
      const t = triggerer();
      const events: Seen[] = [];
      t.attach('sensor-1', {
        backend: null,
        unavailable: 'its vector-store configuration node "store-1" no longer exists',
        storeKey: 'store-1',
        onEvent: (record, event) => events.push({ waitId: record.spec.waitId, event: event as TriggerEvent, record: record as WaitRecord }),
      });
      await t.defer(waitRecord('w1', { timeoutMs: 30_000 }));
      await clock.advance(29_000);
      should(events).have.length(0);
      await clock.advance(1_000);
      should(events).have.length(1);
      const payload = finalPayload(events[0]) as FailurePayload;
      should(payload).match({ status: 'timeout', code: 'STORE_MISSING', elapsedMs: 30_000 });
      should(payload.message).match(/no longer exists/);
    });
  });

  describe('status hints', () => {
    it("passes the asking wait's expected count to the store, so it can count exactly when that decides the wait", async () => {
      const hints: unknown[] = [];
      const backend = { name: 'pgvector', status: async (_c: string, hint?: unknown) => (hints.push(hint), ready(100)) } as unknown as Backend;
      const t = triggerer();
      t.attach('sensor-1', recordingOwner(backend).owner);
      await t.defer(waitRecord('w1', { expectedCount: 100 }));
      await clock.advance(0);
      should(hints).eql([{ expectedCount: 100 }]);
    });
  });

  describe('exact delivery', () => {
    it('records that a final is being delivered before handing it over', async () => {
      const store = scriptedBackend();
      const t = triggerer({ waitStore: waitStore() });
      let onDiskWhenDelivered: string[] = [];
      t.attach('sensor-1', {
        backend: store.backend,
        storeKey: 'store-1',
        onEvent: (_record, event) => {
          if (event.type !== 'final') return;
          onDiskWhenDelivered = require('node:fs').readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l: string) => JSON.parse(l).op);
        },
      });
      await t.defer(waitRecord('w1'));
      store.set('docs', ready(100));
      await clock.advance(0);
      should(onDiskWhenDelivered).eql(['put', 'final']);
      // Kept a moment after delivery (Node-RED passes the message on asynchronously): a
      // crash now redelivers it flagged instead of losing it. Then removed.
      await new Promise((resolve) => setTimeout(resolve, 50));
      should((await fileLines()).map((r) => r.op)).eql(['put', 'final']);
      await clock.advance(1000);
      await t.close();
      should((await fileLines()).map((r) => r.op)).eql(['put', 'final', 'del']);
    });

    it('after a crash between recording and removing a final, delivers that final again, flagged, without polling', async () => {
      const record = waitRecord('w1', { message: { payload: 'original', _msgid: 'm1' } });
      const final = { status: 'success', collection: 'docs', documentCount: 100, indexedCount: 100, expectedCount: 100, elapsedMs: 4000, polls: 3, deferred: true };
      await fs.writeFile(file, `${JSON.stringify({ op: 'put', w: record })}\n${JSON.stringify({ op: 'final', id: 'w1', p: final })}\n`);
      const store = scriptedBackend();
      const t = triggerer({ waitStore: waitStore() });
      await t.start();
      const { owner, events } = recordingOwner(store.backend);
      t.attach('sensor-1', owner);
      await clock.advance(0);
      await clock.advance(60_000);
      should(events).have.length(1);
      should(events[0].event).match({ type: 'final', redelivered: true, payload: final });
      should(events[0].record.message).match({ payload: 'original' });
      should(store.calls).have.length(0);
      await t.close();
      should(await waitStore(file).load()).eql([]);
    });

    it('a redeploy while a final is being recorded hands it over only once it is on disk', async () => {
      const store = scriptedBackend();
      const ws = waitStore();
      let release: () => void = () => undefined;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const markFinal = ws.markFinal.bind(ws);
      ws.markFinal = async (...args) => {
        await gate; // a slow disk
        return markFinal(...args);
      };
      const t = triggerer({ waitStore: ws });
      t.attach('sensor-1', recordingOwner(store.backend).owner);
      await t.defer(waitRecord('w1'));
      await clock.advance(0);
      store.set('docs', ready(100));
      clock.afterStep = async () => undefined;
      await clock.advance(1000); // ended; its record is held by the slow disk
      const second = recordingOwner(store.backend);
      t.attach('sensor-1', second.owner); // the redeploy
      await clock.advance(0);
      should(ofType(second.events, 'final')).have.length(0);
      release();
      await t.delivered();
      await clock.advance(0);
      should(ofType(second.events, 'final')).have.length(1);
    });

    it('a disk that never confirms the final\'s record does not hold the final for ever', async () => {
      const store = scriptedBackend();
      const ws = waitStore();
      ws.markFinal = () => new Promise<boolean>(() => undefined); // a hung disk
      const t = triggerer({ waitStore: ws });
      const { owner, events } = recordingOwner(store.backend);
      t.attach('sensor-1', owner);
      await t.defer(waitRecord('w1'));
      store.set('docs', ready(100));
      clock.afterStep = async () => undefined;
      await clock.advance(0);
      should(ofType(events, 'final')).have.length(0);
      await clock.advance(10_000);
      await settle();
      should(ofType(events, 'final')).have.length(1);
      should(warnings.some((w) => /did not confirm the write within 10 s/.test(w))).be.true();
    });

    it('a final that ends while its owner is detached (a redeploy) is delivered once on the next attach, not flagged', async () => {
      const store = scriptedBackend();
      const ws = waitStore();
      // A slow disk: the final's record is held until the test lets it go.
      let release: () => void = () => undefined;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const markFinal = ws.markFinal.bind(ws);
      ws.markFinal = async (...args) => {
        await gate;
        return markFinal(...args);
      };
      const t = triggerer({ waitStore: ws });
      const first = recordingOwner(store.backend);
      t.attach('sensor-1', first.owner);
      await t.defer(waitRecord('w1'));
      await clock.advance(0);
      store.set('docs', ready(100));
      clock.afterStep = async () => undefined; // do not wait for the final to be recorded
      await clock.advance(1000); // the poll runs; its final is being recorded
      t.detach('sensor-1');
      release();
      await t.delivered();
      should(first.events.filter((e) => e.event.type === 'final')).have.length(0);
      const second = recordingOwner(store.backend);
      t.attach('sensor-1', second.owner);
      await clock.advance(60_000);
      const finals = [...ofType(first.events, 'final'), ...ofType(second.events, 'final')];
      should(finals).have.length(1);
      should((finals[0].event as { redelivered?: boolean }).redelivered).not.be.ok();
    });
  });

  describe('close', () => {
    it('releases the timer and refuses new waits', async () => {
      const store = scriptedBackend();
      const t = triggerer({ waitStore: waitStore() });
      t.attach('sensor-1', recordingOwner(store.backend).owner);
      await t.defer(waitRecord('w1'));
      await clock.advance(0);
      should(clock.timers).equal(1);
      await t.close();
      should(clock.timers).equal(0);
      should(t.stats().scheduled).equal(0);
      await should(t.defer(waitRecord('w2'))).be.rejectedWith(/triggerer is closed/);
    });

    it('with real timers, closing with pending waits leaves nothing running', async () => {
      const store = scriptedBackend();
      const t = new Triggerer({ waitStore: new WaitStore(file, { checkpointMs: 5 }) });
      const { owner, events } = recordingOwner(store.backend);
      t.attach('sensor-1', owner);
      await t.defer(waitRecord('w1', { now: Date.now(), pollIntervalMs: 2 }));
      while (events.length < 3) await new Promise((r) => setTimeout(r, 5));
      await t.close();
      const count = events.length;
      await new Promise((r) => setTimeout(r, 20));
      should(events.length).equal(count);
      // mocha exiting on its own after this file is the rest of the check.
    });
  });
});

describe('Scheduler', () => {
  it('wakes tasks in time order with a single timer, and skips cancelled ones', async () => {
    const clock = new ManualClock();
    const scheduler = new Scheduler({ now: clock.now, timers: clock });
    const woken: string[] = [];
    const task = (name: string) => ({ wake: () => woken.push(name) });
    scheduler.schedule(T0 + 300, task('c'));
    scheduler.schedule(T0 + 100, task('a'));
    const cancelled = scheduler.schedule(T0 + 200, task('x'));
    scheduler.schedule(T0 + 200, task('b'));
    for (let i = 0; i < 5000; i++) scheduler.schedule(T0 + 10_000 + i, task('later'));
    should(clock.timers).equal(1);
    cancelled.cancel();
    should(scheduler.size).equal(5003);
    await clock.advance(300);
    should(woken).eql(['a', 'b', 'c']);
    should(clock.timers).equal(1);
    scheduler.close();
    should(clock.timers).equal(0);
    should(scheduler.size).equal(0);
  });

  it('a task that throws is reported and the others still wake', async () => {
    const clock = new ManualClock();
    const errors: unknown[] = [];
    const scheduler = new Scheduler({ now: clock.now, timers: clock, onError: (err) => errors.push(err) });
    let woken = 0;
    scheduler.schedule(T0, { wake: () => { throw new Error('bug'); } });
    scheduler.schedule(T0, { wake: () => (woken += 1) });
    await clock.advance(0);
    should(woken).equal(1);
    should(errors).have.length(1);
    scheduler.close();
  });
});
