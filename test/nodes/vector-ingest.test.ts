import should from 'should';
import fc from 'fast-check';
import { backendOf, catchAll, collect, delay, helper, loadFlow, nextMessage, storeConfig, unloadFlow, type FlowNode } from './flow-helper';

function flow(ingest: Record<string, unknown> = {}): FlowNode[] {
  return [
    storeConfig(),
    { id: 'ingest', type: 'vector-ingest', store: 'store', collection: 'docs', batchSize: 100, createCollection: true, buildIndex: true, wires: [['out']], ...ingest },
    { id: 'out', type: 'helper' },
    ...catchAll(),
  ];
}

describe('vector-ingest node', function () {
  afterEach(unloadFlow);

  it('writes an array of documents and reports the write', async function () {
    await loadFlow(flow());
    const out = nextMessage('out');
    helper.getNode('ingest').receive({
      payload: ['the sensor waits for indexing', { text: 'lancedb is embedded', metadata: { topic: 'stores' } }, { id: 'v1', vector: new Array(64).fill(0.5) }],
    });
    const msg = await out;
    should(msg.payload).match({ collection: 'docs', ingested: 3, totalCount: 3, batches: 1 });
    should(msg.payload.ids).have.length(3);
    should(msg.payload.ids[2]).equal('v1');
    should(msg.payload.durationMs).be.a.Number();
    should(msg.collection).equal('docs');
    should(msg.expectedCount).equal(3);
  });

  it('takes documents built in a function node (objects from another VM context)', async function () {
    await loadFlow([
      ...flow(),
      {
        id: 'build',
        type: 'function',
        func: 'msg.payload = [{ text: "made in a function node", metadata: { source: "fn", tags: ["x"] } }];\nreturn msg;',
        outputs: 1,
        wires: [['ingest']],
      },
    ]);
    const out = nextMessage('out');
    helper.getNode('build').receive({});
    const msg = await out;
    should(msg.payload).match({ ingested: 1 });
    const [hit] = await backendOf().query('docs', { vector: new Array(64).fill(0.1), topK: 1 });
    should(hit.metadata).eql({ source: 'fn', tags: ['x'] });
  });

  it('gives a missing id a stable hash of the text, so re-ingesting is an upsert', async function () {
    await loadFlow(flow());
    const ingest = helper.getNode('ingest');
    const first = nextMessage('out');
    ingest.receive({ payload: 'same text' });
    const a = await first;
    const second = nextMessage('out');
    ingest.receive({ payload: ['same text'] });
    const b = await second;
    should(b.payload.ids).eql(a.payload.ids);
    should(b.payload.totalCount).equal(1);
  });

  it('writes in batches of batchSize and takes msg.collection over the property', async function () {
    await loadFlow(flow({ batchSize: 2 }));
    const out = nextMessage('out');
    helper.getNode('ingest').receive({ collection: 'other', payload: ['a one', 'b two', 'c three', 'd four', 'e five'] });
    const msg = await out;
    should(msg.payload).match({ collection: 'other', ingested: 5, batches: 3, totalCount: 5 });
    should(await backendOf().collectionExists('docs')).be.false();
  });

  const badInputs: Array<[string, unknown, RegExp]> = [
    ['a number', 42, /msg\.payload/],
    ['an empty array', [], /empty/],
    ['an object without text or vector', [{ metadata: {} }], /msg\.payload\[0\]/],
    ['NaN in a vector', [{ vector: [1, Number.NaN, 3] }], /msg\.payload\[0\]\.vector\[1\]/],
    ['a non-string text', [{ text: 12 }], /msg\.payload\[0\]\.text/],
  ];
  for (const [what, payload, message] of badInputs) {
    it(`rejects ${what} through done(err) and writes nothing`, async function () {
      await loadFlow(flow());
      const errors = nextMessage('errors');
      helper.getNode('ingest').receive({ payload });
      const err = await errors;
      should(err.error.message).match(message);
      should(err.error.code).equal('INVALID_INPUT');
      // DESIGN.md, contract additions: a failed ingest leaves the documents in msg.payload.
      should(err.payload).eql(payload);
      should(await backendOf().collectionExists('docs')).be.false();
    });
  }

  it('checks the whole input before the first write: with batchSize 1, a bad second document writes nothing', async function () {
    await loadFlow(flow({ batchSize: 1 }));
    const errors = nextMessage('errors');
    const payload = [
      { id: 'a', vector: new Array(64).fill(0.1) },
      { id: 'b', vector: new Array(64).fill(1e39) },
    ];
    helper.getNode('ingest').receive({ payload });
    const err = await errors;
    should(err.error.message).match(/^(Error: )?msg\.payload\[1\]\.vector\[0\] is 1e\+39, which does not fit in a 32-bit float.*Nothing was written\.$/);
    should(err.error.code).equal('INVALID_INPUT');
    should(err.payload).have.length(2);
    should(err.payload[1].id).equal('b');
    should(await backendOf().collectionExists('docs')).be.false();
  });

  it('names a single document as msg.payload, and rejects metadata no store can hold', async function () {
    await loadFlow(flow());
    const errors = nextMessage('errors');
    const deep: Record<string, unknown> = {};
    let node = deep;
    for (let i = 0; i < 100_000; i++) node = (node.next = {}) as Record<string, unknown>;
    helper.getNode('ingest').receive({ payload: { text: 'deep', metadata: { deep } } });
    const err = await errors;
    should(err.error.message).match(/^(Error: )?msg\.payload\.metadata is nested more than 100 levels deep/);
    should(await backendOf().collectionExists('docs')).be.false();
  });

  it('rejects a whole message when one vector has the wrong dimension, writing nothing', async function () {
    await loadFlow(flow());
    const ingest = helper.getNode('ingest');
    const ok = nextMessage('out');
    ingest.receive({ payload: ['first document'] });
    await ok;
    const errors = nextMessage('errors');
    ingest.receive({ payload: [{ text: 'fine' }, { id: 'bad', vector: [1, 2, 3] }] });
    const err = await errors;
    should(err.error.message).match(/dimensions/);
    should((await backendOf().stats('docs')).documentCount).equal(1);
  });

  it('refuses an embedApiKey with a line break, naming the field and never showing the key (msg, payload, log)', async function () {
    const key = 'sk-node-SECRET-987654321\n';
    const ingestFlow = flow();
    ingestFlow[0] = storeConfig({ embedder: 'openai', embedUrl: 'http://127.0.0.1:9/v1', embedModel: 'test-model' });
    await loadFlow(ingestFlow, { store: { embedApiKey: key } });
    const errors = nextMessage('errors');
    helper.getNode('ingest').receive({ payload: ['some text'] });
    const err = await errors;
    should(err.error.message).match(/embedApiKey/);
    should(err.error.code).equal('INVALID_INPUT');
    const seen = JSON.stringify(err) + JSON.stringify(helper.log().args);
    should(seen).not.containEql('sk-node-SECRET');
    should(await backendOf().collectionExists('docs')).be.false();
  });

  it('rejects a malformed msg.simulate before writing', async function () {
    await loadFlow(flow());
    const errors = nextMessage('errors');
    helper.getNode('ingest').receive({ payload: ['text'], simulate: 'fail please' });
    const err = await errors;
    should(err.error.message).match(/msg\.simulate/);
    should(await backendOf().collectionExists('docs')).be.false();
  });

  it('rejects a bad collection name', async function () {
    await loadFlow(flow());
    const errors = nextMessage('errors');
    helper.getNode('ingest').receive({ payload: ['text'], collection: '../etc/passwd' });
    const err = await errors;
    should(err.error.message).match(/collection/);
  });

  it('fails clearly when no store is configured', async function () {
    await loadFlow([{ id: 'ingest', type: 'vector-ingest', collection: 'docs', wires: [['out']] }, { id: 'out', type: 'helper' }, ...catchAll()]);
    const errors = nextMessage('errors');
    helper.getNode('ingest').receive({ payload: ['text'] });
    const err = await errors;
    should(err.error.message).match(/vector-store/);
  });

  it('does not send anything for a rejected message', async function () {
    await loadFlow(flow());
    const seen = collect('out');
    helper.getNode('ingest').receive({ payload: null });
    await delay(200);
    should(seen).have.length(0);
  });

  it('hostile payloads (fast-check), batchSize 1: each ends in one output or one error in our words, and a rejected one writes nothing', async function () {
    this.timeout(120_000);
    await loadFlow(flow({ batchSize: 1 }));
    const ingest = helper.getNode('ingest');
    const outcomes = new Map<string, { ok: boolean; message?: string }>();
    helper.getNode('out').on('input', (msg: { collection: string }) => outcomes.set(msg.collection, { ok: true }));
    helper.getNode('errors').on('input', (msg: { collection: string; error: { message: string } }) =>
      outcomes.set(msg.collection, { ok: false, message: msg.error.message }),
    );
    const value = fc.anything({ withBigInt: true, withDate: true, withMap: true, withSet: true, withNullPrototype: true, withTypedArray: true, withSparseArray: true, maxDepth: 3 });
    const document = fc.oneof(
      value,
      fc.record({ id: fc.oneof(fc.string(), value), text: fc.string({ minLength: 1 }) }, { requiredKeys: ['text'] }),
      fc.record({ text: fc.string({ minLength: 1 }), metadata: value }),
      fc.record({ vector: fc.array(fc.oneof(fc.double(), fc.constant(1e39)), { minLength: 64, maxLength: 64 }) }),
    );
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(document, { minLength: 1, maxLength: 3 }), async (payload) => {
        const collection = `hostile${++n}`;
        ingest.receive({ payload, collection });
        const deadline = Date.now() + 10_000;
        while (!outcomes.has(collection) && Date.now() < deadline) await delay(2);
        const outcome = outcomes.get(collection);
        should(outcome).not.be.undefined();
        if (!outcome?.ok) {
          should(outcome?.message).not.match(/\bexpected\b|Invalid input|\breceived\b|Maximum call stack|serialize|RangeError|TypeError/);
          should(await backendOf().collectionExists(collection)).be.false();
        }
      }),
      { numRuns: 60 },
    );
  });
});
