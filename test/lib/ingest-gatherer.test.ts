// The gatherer on the real memory backend and hash embedder: messages of one document
// join batches (by size, or after gatherMs), one ingestDocuments call per batch, each
// message its own share; a failed batch fails its messages; one write at a time per
// collection, in order; close writes what is gathered; backpressure past the cap.
// The store's writes are counted and held back through a wrapper on its upsert.
import should from 'should';
import { MemoryBackend } from '../../lib/backends/memory';
import { HashEmbedder } from '../../lib/embedders/hash';
import { VectorStoreError } from '../../lib/errors';
import { IngestGatherer, type GatherRequest, type GatherSettings, type GatheredResult } from '../../lib/ingest-gatherer';
import type { Store } from '../../lib/operations';
import type { IngestItem } from '../../lib/schemas';
import type { Embedder, UpsertOptions, UpsertResult, VectorDocument } from '../../lib/types';
import { rejectsWith } from '../support/errors';
import { until } from '../support/until';

const DIM = 8;

/** A memory store whose upserts and embedding calls are recorded, and whose upserts can be held back. */
function recordedStore() {
  const backend = new MemoryBackend({ dataDir: null, indexingRate: 100000, indexingDelay: 0 });
  const embedder = new HashEmbedder(DIM);
  const upserts: Array<{ collection: string; ids: string[] }> = [];
  const embedCalls: number[] = [];
  let gate: Promise<void> | null = null;
  let openGate: () => void = () => {};
  let inFlight = 0;
  let mostInFlight = 0;
  const upsert = backend.upsert.bind(backend);
  backend.upsert = async (collection: string, docs: VectorDocument[], options?: UpsertOptions): Promise<UpsertResult> => {
    upserts.push({ collection, ids: docs.map((d) => d.id) });
    inFlight += 1;
    mostInFlight = Math.max(mostInFlight, inFlight);
    try {
      if (gate && collection === 'docs') await gate;
      return await upsert(collection, docs, options);
    } finally {
      inFlight -= 1;
    }
  };
  const embed = embedder.embed.bind(embedder);
  embedder.embed = (texts: string[]) => {
    embedCalls.push(texts.length);
    return embed(texts);
  };
  return {
    store: { backend, embedder } as Store,
    backend,
    upserts,
    embedCalls,
    mostInFlight: () => mostInFlight,
    /** Writes to "docs" wait until release(). */
    hold() {
      gate = new Promise((resolve) => (openGate = resolve));
    },
    release() {
      gate = null;
      openGate();
    },
  };
}

function request(store: Store, items: IngestItem[], overrides: Partial<GatherRequest['options']> = {}): GatherRequest {
  return {
    store,
    items,
    options: { collection: 'docs', batchSize: 3, createCollection: true, buildIndex: false, ...overrides },
    fieldOf: () => 'msg.payload',
  };
}

/** A promise's outcome, without an unhandled rejection while the test looks elsewhere. */
function settle<T>(promise: Promise<T>): { done: () => boolean; value: () => T | undefined; error: () => unknown } {
  let state: 'pending' | 'ok' | 'failed' = 'pending';
  let value: T | undefined;
  let error: unknown;
  promise.then(
    (v) => ((state = 'ok'), (value = v)),
    (e) => ((state = 'failed'), (error = e)),
  );
  return { done: () => state !== 'pending', value: () => value, error: () => error };
}

describe('ingest gatherer', () => {
  const open: Array<{ gatherer: IngestGatherer; backend: MemoryBackend }> = [];

  function gathererFor(backend: MemoryBackend, settings: Partial<GatherSettings> = {}): IngestGatherer {
    const gatherer = new IngestGatherer({ gatherMs: 60_000, ...settings });
    open.push({ gatherer, backend });
    return gatherer;
  }

  afterEach(async () => {
    for (const { gatherer, backend } of open.splice(0)) {
      await gatherer.close();
      await backend.close();
    }
  });

  it('writes a batch once the gathered documents reach batchSize: one embedding call, one write, each message its own share', async () => {
    const s = recordedStore();
    const gatherer = gathererFor(s.backend);
    const results = await Promise.all(['alpha', 'beta', 'gamma'].map((text) => gatherer.add(request(s.store, [{ text }]))));
    should(s.embedCalls).eql([3]);
    should(s.upserts).have.length(1);
    for (const [i, result] of results.entries()) {
      should(result).match({ collection: 'docs', ingested: 1, totalCount: 3, batches: 1, gathered: 3 });
      should(result.ids).eql([s.upserts[0].ids[i]]);
      should(result.durationMs).be.a.Number();
    }
    should((await s.backend.stats('docs')).documentCount).equal(3);
  });

  it('writes nothing while a batch is neither full nor old; after gatherMs it writes what it has', async () => {
    const s = recordedStore();
    const patient = gathererFor(s.backend);
    const waiting = [patient.add(request(s.store, [{ text: 'one' }])), patient.add(request(s.store, [{ text: 'two' }]))].map(settle);
    await until('both messages gathered', async () => patient.counts().gathering === 2);
    should(s.upserts).have.length(0); // batchSize 3, gatherMs one minute: nothing is due
    should(waiting.some((w) => w.done())).be.false();

    const quick = gathererFor(s.backend, { gatherMs: 20 });
    const result = await quick.add(request(s.store, [{ text: 'alone' }], { collection: 'quick', batchSize: 100 }));
    should(result).match({ collection: 'quick', ingested: 1, totalCount: 1, gathered: 1 });
    should(quick.counts()).eql({ gathering: 0, held: 0, writing: 0 });
  });

  it('a repeated id across messages of one batch: the last wins in the store, each message still gets its id', async () => {
    const s = recordedStore();
    const gatherer = gathererFor(s.backend);
    const [first, second, third] = await Promise.all([
      gatherer.add(request(s.store, [{ id: 'x', text: 'first version' }], { batchSize: 4 })),
      gatherer.add(request(s.store, [{ id: 'x', text: 'second version' }], { batchSize: 4 })),
      gatherer.add(request(s.store, [{ text: 'another' }, { text: 'another' }], { batchSize: 4 })),
    ]);
    should(first.ids).eql(['x']);
    should(second.ids).eql(['x']);
    should(third).match({ ingested: 1 }); // the same text twice is one document, as ingestDocuments counts it
    should(first.totalCount).equal(2);
    should(s.upserts[0].ids).have.length(2);
    const [hit] = await s.backend.query('docs', { vector: await s.store.embedder.embed(['second version']).then((v) => v[0]), topK: 1 });
    should(hit).match({ id: 'x', text: 'second version' });
  });

  it('bad input fails its message alone and at once, while the batch keeps gathering', async () => {
    const s = recordedStore();
    const gatherer = gathererFor(s.backend);
    const good = settle(gatherer.add(request(s.store, [{ text: 'fine' }])));
    const err = await rejectsWith(gatherer.add(request(s.store, [{ id: 'a', vector: new Array(DIM).fill(1e39) }])), 'INVALID_INPUT');
    should(err.message).match(/^msg\.payload\.vector\[0\] is 1e\+39.*Nothing was written\.$/);
    const mixed = await rejectsWith(gatherer.add(request(s.store, [{ vector: [1, 2] }, { vector: [1, 2, 3] }])), 'DIMENSION_MISMATCH');
    should(mixed.message).match(/vectors of the same size/);
    should(gatherer.counts().gathering).equal(1);
    should(good.done()).be.false();
    await gatherer.close();
    should(good.value()).match({ ingested: 1, gathered: 1 });
  });

  it('a message of other vectors does not join (nor fail) a batch of texts', async () => {
    const s = recordedStore();
    const gatherer = gathererFor(s.backend);
    await Promise.all(['a text', 'b text', 'c text'].map((text) => gatherer.add(request(s.store, [{ text }]))));
    const smaller = settle(gatherer.add(request(s.store, [{ id: 'small', vector: [0.1, 0.2, 0.3] }])));
    await until('the vector message gathered', async () => gatherer.counts().gathering === 1);
    const text = settle(gatherer.add(request(s.store, [{ text: 'd text' }])));
    await gatherer.close();
    should(smaller.error()).be.instanceOf(VectorStoreError);
    should((smaller.error() as VectorStoreError).code).equal('DIMENSION_MISMATCH');
    should((smaller.error() as Error).message).match(/^A gathered batch of 1 message \(1 document\) for collection "docs" failed.*these documents have 3\./);
    should(text.value()).match({ ingested: 1, gathered: 1, totalCount: 4 });
  });

  it('a failed batch fails every message of it, saying so and what was written (embedder stub)', async () => {
    const s = recordedStore();
    const failing: Embedder = {
      name: 'failing stub',
      embed: () => Promise.reject(new VectorStoreError('UNAVAILABLE', 'The embedding service answered 503.')),
    } as unknown as Embedder;
    const gatherer = gathererFor(s.backend);
    const store = { backend: s.backend, embedder: failing } as Store;
    const outcomes = await Promise.allSettled(['a', 'b', 'c'].map((text) => gatherer.add(request(store, [{ text }]))));
    for (const outcome of outcomes) {
      should(outcome.status).equal('rejected');
      const reason = (outcome as PromiseRejectedResult).reason as VectorStoreError;
      should(reason.code).equal('UNAVAILABLE');
      should(reason.transient).be.true();
      should(reason.message).match(/^A gathered batch of 3 messages \(3 documents\) for collection "docs" failed, so this message failed with it: The embedding service answered 503\./);
    }
    should(await s.backend.collectionExists('docs')).be.false();

    // A failed write: the batch may be partly in the store, and sending again is safe.
    const upsert = s.backend.upsert.bind(s.backend);
    s.backend.upsert = () => Promise.reject(new VectorStoreError('UNAVAILABLE', 'disk full (stub)'));
    const writeFailed = await Promise.allSettled(['d', 'e', 'f'].map((text) => gatherer.add(request(s.store, [{ text }]))));
    s.backend.upsert = upsert;
    for (const outcome of writeFailed) {
      should(((outcome as PromiseRejectedResult).reason as Error).message).match(/disk full \(stub\) Some documents of the batch may have been written: sending the messages again is safe/);
    }
  });

  it('writes the batches of one collection one at a time and in order; another collection does not wait for them', async () => {
    const s = recordedStore();
    const gatherer = gathererFor(s.backend);
    s.hold();
    const docs = ['1', '2', '3', '4', '5', '6'].map((id) => settle(gatherer.add(request(s.store, [{ id, text: `text ${id}` }], { batchSize: 2 }))));
    await until('the first write started, the rest queued', async () => s.upserts.length === 1 && gatherer.counts().writing === 6);
    const other = await gatherer.add(request(s.store, [{ text: 'elsewhere' }], { collection: 'other', batchSize: 1 }));
    should(other).match({ collection: 'other', totalCount: 1 });
    should(docs.some((d) => d.done())).be.false();
    s.release();
    await until('all written', async () => docs.every((d) => d.done()));
    should(s.upserts.filter((u) => u.collection === 'docs').map((u) => u.ids)).eql([['1', '2'], ['3', '4'], ['5', '6']]);
    should(docs.map((d) => (d.value() as GatheredResult).totalCount)).eql([2, 2, 4, 4, 6, 6]);
  });

  it('close writes what is gathered and waits for it; after it, add rejects', async () => {
    const s = recordedStore();
    const gatherer = gathererFor(s.backend, { gatherMs: 60_000 });
    const pending = ['a', 'b'].map((text) => gatherer.add(request(s.store, [{ text }], { batchSize: 100 })));
    await gatherer.close();
    const results = await Promise.all(pending);
    should(results.map((r) => r.gathered)).eql([2, 2]);
    should((await s.backend.stats('docs')).documentCount).equal(2);
    should(gatherer.counts()).eql({ gathering: 0, held: 0, writing: 0 });
    const err = await rejectsWith(gatherer.add(request(s.store, [{ text: 'late' }])), 'UNAVAILABLE');
    should(err.message).match(/no longer gathers documents: it was closed/);
  });

  it('backpressure: past maxQueuedBatches, messages wait to join, in order; close lets the waiting ones in too', async () => {
    const s = recordedStore();
    const counts: number[] = [];
    const gatherer = gathererFor(s.backend, { maxQueuedBatches: 2, onChange: (c) => counts.push(c.held) });
    s.hold();
    const docs = ['1', '2', '3', '4', '5'].map((id) => settle(gatherer.add(request(s.store, [{ id, text: `text ${id}` }], { batchSize: 1 }))));
    await until('two batches queued, three messages held', async () => {
      const c = gatherer.counts();
      return c.writing === 2 && c.held === 3;
    });
    should(s.upserts).have.length(1);
    should(Math.max(...counts)).equal(3);
    s.release();
    await gatherer.close();
    should(docs.every((d) => d.done())).be.true();
    should(s.upserts.map((u) => u.ids[0])).eql(['1', '2', '3', '4', '5']);
    should(s.mostInFlight()).equal(1);
  });

  it('with chunking, each message gets the chunk ids of its own documents', async () => {
    const { store } = recordedStore();
    const gatherer = new IngestGatherer({ gatherMs: 10_000 });
    const chunking = { mode: 'text' as const, size: 20, overlap: 0, unit: 'characters' as const };
    const long = (word: string) => Array.from({ length: 6 }, () => word).join(' ');
    const a = gatherer.add(request(store, [{ id: 'a', text: long('alpha') }], { batchSize: 2, chunking }));
    const b = gatherer.add(request(store, [{ id: 'b', text: long('bravo') }], { batchSize: 2, chunking }));
    const [ra, rb] = await Promise.all([a, b]);
    should(ra.ids.length).be.above(1);
    should(ra.ids.every((id) => id.startsWith('a#'))).be.true();
    should(rb.ids.every((id) => id.startsWith('b#'))).be.true();
    should(ra).containEql({ documents: 1, chunks: ra.ids.length, ingested: ra.ids.length, gathered: 2 });
    await gatherer.close();
  });
});
