// The sensor's quick checks, each call shared per store and collection (real memory
// backend, its calls counted): a burst shares two calls of each kind; a message never takes
// an answer older than itself; errors reach every message that shared the call.
import should from 'should';
import { MemoryBackend } from '../../lib/backends/memory';
import { QuickChecks, REUSE_MS } from '../../lib/quick-checks';
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

describe('quick checks shared per collection', () => {
  let backend: MemoryBackend;
  beforeEach(async () => {
    backend = new MemoryBackend({ dataDir: null, indexingRate: 1e9, indexingDelay: 0 });
    await backend.ensureCollection('docs', { dimensions: 2 });
    await backend.upsert('docs', [{ id: 'a', vector: [1, 0] }]);
  });
  afterEach(() => backend.close());

  it('a burst of 1,000 messages on one collection costs two calls of each kind, and each message gets a status', async () => {
    const checks = new QuickChecks();
    const calls = counted(backend);
    const answers = await Promise.all(Array.from({ length: 1000 }, () => quickCheck(checks, backend, 'store-1', 'docs', checks.arrive())));
    should(answers.every((a) => a?.documentCount === 1)).be.true();
    should(calls.exists).be.belowOrEqual(2);
    should(calls.status).be.belowOrEqual(2);
    should(checks.started).equal(calls.exists + calls.status);
    should(checks.joined).equal(2000 - checks.started);
  });

  it('a message that arrives while a call is in flight waits for one started after it: it sees the write before it', async () => {
    const checks = new QuickChecks();
    const calls = counted(backend);
    const first = checks.status(backend, 'store-1', 'docs', checks.arrive());
    // Written after the first call started, then a message about that write arrives.
    await backend.upsert('docs', [{ id: 'b', vector: [0, 1] }]);
    const second = checks.status(backend, 'store-1', 'docs', checks.arrive());
    const [, b] = await Promise.all([first, second]);
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
    const checks = new QuickChecks();
    const missing = await Promise.all([1, 2, 3].map(() => quickCheck(checks, backend, 'store-1', 'nope', checks.arrive())));
    should(missing).eql([null, null, null]);
    backend.status = () => Promise.reject(new VectorStoreError('UNAVAILABLE', 'the store is away', { transient: true }));
    const failed = await Promise.all([1, 2, 3].map(() => checks.status(backend, 'store-1', 'docs', checks.arrive()).then(() => null, (e: Error) => e.message)));
    should(failed).eql(['the store is away', 'the store is away', 'the store is away']);
    backend.status = MemoryBackend.prototype.status.bind(backend);
    const again = await checks.status(backend, 'store-1', 'docs', checks.arrive());
    should(again.documentCount).equal(1);
  });

  it('messages one after another: "exists" is reused for a second; a status, and "missing", never', async () => {
    let clock = 1_000_000;
    const checks = new QuickChecks(() => clock);
    const calls = counted(backend);
    for (let i = 0; i < 5; i++) should((await quickCheck(checks, backend, 'store-1', 'docs', checks.arrive()))?.state).equal('ready');
    should(calls).eql({ exists: 1, status: 5 });
    clock += REUSE_MS + 1;
    await quickCheck(checks, backend, 'store-1', 'docs', checks.arrive());
    should(calls).eql({ exists: 2, status: 6 });
    for (let i = 0; i < 3; i++) should(await quickCheck(checks, backend, 'store-1', 'nope', checks.arrive())).be.null();
    should(calls.exists).equal(2 + 3);
  });
});
