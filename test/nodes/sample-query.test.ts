import should from 'should';
import { catchAll, helper, loadFlow, nextMessage, storeConfig, unloadFlow, type FlowNode } from './flow-helper';

const DOCS = [
  { id: 'sensor', text: 'The deferrable sensor waits for the vector index to finish building', metadata: { topic: 'sensor' } },
  { id: 'pasta', text: 'Boil the pasta in salted water for nine minutes', metadata: { topic: 'cooking' } },
  { id: 'train', text: 'The night train to Vienna leaves at ten', metadata: { topic: 'travel' } },
];

function flow(query: Record<string, unknown> = {}): FlowNode[] {
  return [
    storeConfig({ dimensions: 384 }), // wide enough that hash collisions do not blur the ranking
    { id: 'ingest', type: 'vector-ingest', store: 'store', collection: 'docs', wires: [['ingested']] },
    { id: 'ingested', type: 'helper' },
    { id: 'query', type: 'sample-query', store: 'store', collection: 'docs', query: '', topK: 3, failOnEmpty: true, wires: [['out']], ...query },
    { id: 'out', type: 'helper' },
    ...catchAll(),
  ];
}

async function loadWithDocs(query: Record<string, unknown> = {}): Promise<void> {
  await loadFlow(flow(query));
  const done = nextMessage('ingested');
  helper.getNode('ingest').receive({ payload: DOCS });
  await done;
}

describe('sample-query node', function () {
  afterEach(unloadFlow);

  it('answers a text query with hits best first', async function () {
    await loadWithDocs();
    const out = nextMessage('out');
    helper.getNode('query').receive({ payload: 'how long to boil pasta' });
    const msg = await out;
    should(msg.payload).be.an.Array().and.have.length(3);
    should(msg.payload[0]).match({ id: 'pasta', text: DOCS[1].text, metadata: { topic: 'cooking' } });
    for (let i = 1; i < msg.payload.length; i++) should(msg.payload[i - 1].score).be.aboveOrEqual(msg.payload[i].score);
  });

  it('answers an array of queries with an array of hit lists', async function () {
    await loadWithDocs();
    const out = nextMessage('out');
    helper.getNode('query').receive({ payload: ['night train to Vienna', 'what does the sensor wait for'] });
    const msg = await out;
    should(msg.payload).have.length(2);
    should(msg.payload[0][0].id).equal('train');
    should(msg.payload[1][0].id).equal('sensor');
  });

  it('takes {text, topK, filter} and the configured query', async function () {
    await loadWithDocs({ query: 'train' });
    const out = nextMessage('out');
    helper.getNode('query').receive({ payload: { text: 'anything at all', topK: 1, filter: { topic: 'travel' } } });
    const msg = await out;
    should(msg.payload.map((h: { id: string }) => h.id)).eql(['train']);

    const configured = nextMessage('out');
    helper.getNode('query').receive({});
    const msg2 = await configured;
    should(msg2.payload[0].id).equal('train');
  });

  it('fails on an empty answer unless told otherwise', async function () {
    await loadWithDocs();
    const errors = nextMessage('errors');
    helper.getNode('query').receive({ payload: { text: 'x', filter: { topic: 'nothing' } } });
    const err = await errors;
    should(err.error.message).match(/No results/);
  });

  it('lets an empty answer through with failOnEmpty off', async function () {
    await loadWithDocs({ failOnEmpty: false });
    const out = nextMessage('out');
    helper.getNode('query').receive({ payload: { text: 'x', filter: { topic: 'nothing' } } });
    const msg = await out;
    should(msg.payload).eql([]);
  });

  it('rejects a vector of the wrong dimension', async function () {
    await loadWithDocs();
    const errors = nextMessage('errors');
    helper.getNode('query').receive({ payload: { vector: [1, 2, 3] } });
    const err = await errors;
    should(err.error.message).match(/dimension/);
  });

  it('rejects a query for a missing collection', async function () {
    await loadWithDocs();
    const errors = nextMessage('errors');
    helper.getNode('query').receive({ payload: 'x', collection: 'missing' });
    const err = await errors;
    should(err.payload).match({ status: 'error', collection: 'missing', code: 'NOT_FOUND' });
  });

  it('rejects a bad payload', async function () {
    await loadWithDocs();
    const errors = nextMessage('errors');
    helper.getNode('query').receive({ payload: 17 });
    const err = await errors;
    should(err.error.message).match(/msg\.payload/);
  });

  const hostileQueries: Array<[string, () => unknown, RegExp]> = [
    ['a vector value beyond 32-bit float range', () => ({ vector: new Array(384).fill(1e39) }), /^(Error: )?msg\.payload\.vector\[0\] is 1e\+39, which does not fit in a 32-bit float/],
    ['a filter nested 100,000 levels deep', () => {
      let deep: Record<string, unknown> = {};
      for (let i = 0; i < 100_000; i++) deep = { next: deep };
      return { text: 'pasta', filter: { topic: deep } };
    }, /^(Error: )?msg\.payload\.filter is nested more than 100 levels deep/],
    ['a BigInt in the filter', () => ({ text: 'pasta', filter: { topic: 10n } }), /^(Error: )?msg\.payload\.filter\.topic is a BigInt \(10n\)/],
    ['a filter in the second query of an array', () => ['pasta', { text: 'train', filter: { when: new Map() } }], /^(Error: )?msg\.payload\[1\]\.filter\.when is a Map/],
  ];
  for (const [what, payload, message] of hostileQueries) {
    it(`rejects ${what} in our own words, naming the field`, async function () {
      await loadWithDocs();
      const errors = nextMessage('errors');
      helper.getNode('query').receive({ payload: payload() });
      const err = await errors;
      should(err.error.message).match(message);
      should(err.error.code).equal('INVALID_INPUT');
      should(err.error.message).not.match(/RangeError|Maximum call stack|serialize/);
    });
  }
});
