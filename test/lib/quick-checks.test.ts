// The sensor's quick checks, each call shared per store and collection (real memory
// backend, its calls counted): a burst shares two calls of each kind; a message never takes
// an answer older than itself; errors reach every message that shared the call.
import should from 'should';
import { MemoryBackend } from '../../lib/backends/memory';
import { GAP_MS, QuickChecks, REUSE_MS } from '../../lib/quick-checks';
import { VectorStoreError } from '../../lib/errors';

function counted(backend: MemoryBackend) {
  const calls = { exists: 0, status: 0 };
  const exists = backend.collectionExists.bind(backend);
  const status = backend.status.bind(backend);
  backend.collectionExists = (c) => ((calls.exists += 1), exists(c));
  backend.status = (c) => ((calls.status += 1), status(c));
  return calls;
}

/** Both steps, as the sensor runs them. */
async function quickCheck(checks: QuickChecks, backend: MemoryBackend, storeKey: string, collection: string, arrival: number, expectedCount = 0) {
  if (!(await checks.exists(backend, storeKey, collection, arrival))) return null;
  return checks.status(backend, storeKey, collection, arrival, expectedCount ? { expectedCount } : undefined);
}

/** A clock and timers moved by hand: the gap between calls is waited out without real time passing. */
class HandClock {
  time = 1_000_000;
  private pending: Array<{ at: number; callback: () => void }> = [];
  readonly now = (): number => this.time;
  readonly timers = { setTimeout: (callback: () => void, ms: number): unknown => this.pending.push({ at: this.time + ms, callback }) };

  /** Move time on, firing what falls due, letting promises settle after each. */
  async advance(ms: number): Promise<void> {
    const target = this.time + ms;
    for (;;) {
      await settle();
      this.pending.sort((a, b) => a.at - b.at);
      const next = this.pending[0];
      if (!next || next.at > target) break;
      this.pending.shift();
      this.time = Math.max(this.time, next.at);
      next.callback();
    }
    this.time = target;
    await settle();
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** Checks on a hand clock, with the gaps waited out. */
function handChecks() {
  const clock = new HandClock();
  return { clock, checks: new QuickChecks(clock.now, clock.timers) };
}

/** Resolve `promise` while moving the hand clock on by whole gaps. */
async function withGaps<T>(clock: HandClock, promise: Promise<T>): Promise<T> {
  let done = false;
  const result = promise.finally(() => (done = true));
  for (let i = 0; i < 100 && !done; i++) await clock.advance(GAP_MS);
  return result;
}

describe('quick checks shared per collection', () => {
  let backend: MemoryBackend;
  beforeEach(async () => {
    backend = new MemoryBackend({ dataDir: null, indexingRate: 1e9, indexingDelay: 0 });
    await backend.ensureCollection('docs', { dimensions: 2 });
    await backend.upsert('docs', [{ id: 'a', vector: [1, 0] }]);
  });
  afterEach(() => backend.close());

  it('a burst of 1,000 messages on one collection costs two calls of each kind, and each message gets a status', async () => {
    const { clock, checks } = handChecks();
    const calls = counted(backend);
    const answers = await withGaps(clock, Promise.all(Array.from({ length: 1000 }, () => quickCheck(checks, backend, 'store-1', 'docs', checks.arrive()))));
    should(answers.every((a) => a?.documentCount === 1)).be.true();
    should(calls.exists).be.belowOrEqual(2);
    should(calls.status).be.belowOrEqual(2);
    should(checks.started).equal(calls.exists + calls.status);
    should(checks.joined).equal(2000 - checks.started);
  });

  it('a message that arrives while a call is in flight waits for one started after it: it sees the write before it', async () => {
    const { clock, checks } = handChecks();
    const calls = counted(backend);
    const first = checks.status(backend, 'store-1', 'docs', checks.arrive());
    // Written after the first call started, then a message about that write arrives.
    await backend.upsert('docs', [{ id: 'b', vector: [0, 1] }]);
    const second = checks.status(backend, 'store-1', 'docs', checks.arrive());
    const [, b] = await withGaps(clock, Promise.all([first, second]));
    should(b.documentCount).equal(2);
    should(calls.status).equal(2);
  });

  it('other collections, stores and counted calls are not shared; nothing is kept once calls settle', async () => {
    const checks = new QuickChecks();
    await backend.ensureCollection('other', { dimensions: 2 });
    const calls = counted(backend);
    await Promise.all([
      quickCheck(checks, backend, 'store-1', 'docs', checks.arrive()),
      quickCheck(checks, backend, 'store-1', 'other', checks.arrive()),
      quickCheck(checks, backend, 'store-2', 'docs', checks.arrive()),
      quickCheck(checks, backend, 'store-1', 'docs', checks.arrive(), 1),
    ]);
    should(calls.status).equal(4);
    should((checks as unknown as { byKey: Map<string, unknown> }).byKey.size).equal(0);
  });

  it('a missing collection, and a store error, reach every message that shared the call; the next message starts afresh', async () => {
    const { clock, checks } = handChecks();
    const missing = await withGaps(clock, Promise.all([1, 2, 3].map(() => quickCheck(checks, backend, 'store-1', 'nope', checks.arrive()))));
    should(missing).eql([null, null, null]);
    backend.status = () => Promise.reject(new VectorStoreError('UNAVAILABLE', 'the store is away', { transient: true }));
    const failed = await withGaps(clock, Promise.all([1, 2, 3].map(() => checks.status(backend, 'store-1', 'docs', checks.arrive()).then(() => null, (e: Error) => e.message))));
    should(failed).eql(['the store is away', 'the store is away', 'the store is away']);
    backend.status = MemoryBackend.prototype.status.bind(backend);
    const again = await withGaps(clock, checks.status(backend, 'store-1', 'docs', checks.arrive()));
    should(again.documentCount).equal(1);
  });

  it('messages one after another: "exists" is reused for a second; a status, and "missing", never', async () => {
    const { clock, checks } = handChecks();
    const calls = counted(backend);
    for (let i = 0; i < 5; i++) {
      should(await checks.exists(backend, 'store-1', 'docs', checks.arrive())).be.true();
      clock.time += REUSE_MS / 10;
    }
    should(calls.exists).equal(1);
    clock.time = 1_000_000 + REUSE_MS + 1;
    should(await checks.exists(backend, 'store-1', 'docs', checks.arrive())).be.true();
    should(calls.exists).equal(2);
    for (let i = 0; i < 5; i++) should((await withGaps(clock, checks.status(backend, 'store-1', 'docs', checks.arrive()))).state).equal('ready');
    should(calls.status).equal(5);
    for (let i = 0; i < 3; i++) should(await withGaps(clock, checks.exists(backend, 'store-1', 'nope', checks.arrive()))).be.false();
    should(calls.exists).equal(2 + 3);
  });

  it('calls for one collection start at most once per gap: messages arriving one after another share the next call; a quiet collection is checked at once', async () => {
    const { clock, checks } = handChecks();
    const calls = counted(backend);
    // The first message on a quiet collection: answered without waiting.
    should((await checks.status(backend, 'store-1', 'docs', checks.arrive())).state).equal('ready');
    should(calls.status).equal(1);
    // 100 messages over the next second, each after its own write, each a tenth of the gap apart.
    const answers: Array<Promise<number>> = [];
    for (let i = 0; i < 100; i++) {
      await backend.upsert('docs', [{ id: `w${i}`, vector: [1, 1] }]);
      answers.push(checks.status(backend, 'store-1', 'docs', checks.arrive()).then((s) => s.documentCount));
      await clock.advance(GAP_MS / 100);
    }
    const counts = await withGaps(clock, Promise.all(answers));
    // Each saw its own write (a call started after it arrived), and the calls came a gap apart.
    counts.forEach((count, i) => should(count).be.aboveOrEqual(i + 2));
    should(calls.status).be.belowOrEqual(3);
    // Once the gap has passed, a message is checked at once again.
    await clock.advance(GAP_MS);
    const before = calls.status;
    should((await checks.status(backend, 'store-1', 'docs', checks.arrive())).documentCount).equal(101);
    should(calls.status).equal(before + 1);
  });
});
