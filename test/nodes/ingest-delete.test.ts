// vector-ingest with operation "delete" on a real Node-RED runtime (test helper) and the memory
// store: by id, by source document with its chunks (ids "<source>#<n>"), bad input, counts after.
// (The deleting node's id is not "delete": Node-RED 4.1 takes a node id equal to another node's
// string property for a config dependency.)
import should from 'should';
import { catchAll, helper, loadFlow, nextMessage, storeConfig, unloadFlow, type FlowNode } from './flow-helper';

function flow(): FlowNode[] {
  return [
    storeConfig(),
    { id: 'ingest', type: 'vector-ingest', store: 'store', collection: 'docs', wires: [['written']] },
    { id: 'remover', type: 'vector-ingest', store: 'store', collection: 'docs', operation: 'delete', wires: [['deleted']] },
    { id: 'query', type: 'sample-query', store: 'store', collection: 'docs', topK: 10, failOnEmpty: false, query: '', wires: [['answers']] },
    { id: 'written', type: 'helper' },
    { id: 'deleted', type: 'helper' },
    { id: 'answers', type: 'helper' },
    ...catchAll(),
  ];
}

const DOCS = [
  { id: 'a', text: 'the whole document a' },
  { id: 'a#0', text: 'chunk zero of a', metadata: { source: 'a', chunk: 0, of: 2 } },
  { id: 'a#1', text: 'chunk one of a', metadata: { source: 'a', chunk: 1, of: 2 } },
  { id: 'a2', text: 'another document a2' },
  { id: 'ab#0', text: 'a chunk of ab' },
  { id: 'b', text: 'document b' },
  { id: 'c', text: 'document c' },
];

describe('vector-ingest node, operation "delete" (memory store)', function () {
  afterEach(unloadFlow);

  async function send(nodeId: string, msg: Record<string, unknown>, out: string) {
    const next = nextMessage(out);
    helper.getNode(nodeId).receive(msg);
    return next;
  }

  it('removes documents by id, and a source document with its chunks only; counts after; queries no longer find them', async () => {
    await loadFlow(flow());
    should((await send('ingest', { payload: DOCS }, 'written')).payload.totalCount).equal(7);

    const byId = await send('remover', { payload: ['b', 'not-there'] }, 'deleted');
    should(byId.payload).match({ collection: 'docs', operation: 'delete', deleted: 1, totalCount: 6 });
    should(byId.expectedCount).equal(6);

    const bySource = await send('remover', { payload: { source: 'a' } }, 'deleted');
    should(bySource.payload).match({ deleted: 3, totalCount: 3 });

    const answers = await send('query', { payload: 'document' }, 'answers');
    should(answers.payload.map((h: { id: string }) => h.id).sort()).eql(['a2', 'ab#0', 'c']);
  });

  it('bad input deletes nothing and says what to send; naming nothing is an error', async () => {
    await loadFlow(flow());
    await send('ingest', { payload: DOCS }, 'written');
    const cases: Array<[unknown, RegExp]> = [
      [[], /names no document: give ids, a source or sources/],
      [{ ids: ['a', 3] }, /msg\.payload\.ids\[1\] must be a document id, a non-empty string \(got 3\)/],
      [{ id: 'a' }, /a field it does not know: "id"\. Use ids, source or sources/],
      [42, /must be a document id, an array of ids, or \{ids, source, sources\}/],
    ];
    for (const [payload, expected] of cases) {
      const error = nextMessage('errors');
      helper.getNode('remover').receive({ payload });
      should((await error).error.message).match(expected);
    }
    const answers = await send('query', { payload: 'document' }, 'answers');
    should(answers.payload).have.length(7);
  });

  it('a collection that does not exist is NOT_FOUND, not created', async () => {
    await loadFlow(flow());
    const error = nextMessage('errors');
    helper.getNode('remover').receive({ payload: ['a'], collection: 'never-made' });
    const err = await error;
    should(err.error.code).equal('NOT_FOUND');
  });
});
