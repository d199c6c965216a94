// vector-ingest with chunking on a real Node-RED runtime (test helper) and the memory store:
// a long Markdown document becomes chunks <id>#<n>, queryable with their metadata (source,
// chunk, of, headings); the same document edited to be shorter and ingested again leaves no
// stale chunk (index-health counts exactly) and its changed chunks have the new text.
// Chunking is off by default; a bad chunk config names the dialog labels.
import should from 'should';
import { until } from '../support/until';
import { catchAll, helper, loadFlow, nextMessage, storeConfig, unloadFlow, type FlowNode, type Msg } from './flow-helper';

function flow(ingest: Record<string, unknown> = {}): FlowNode[] {
  return [
    storeConfig(),
    {
      id: 'ingest',
      type: 'vector-ingest',
      store: 'store',
      collection: 'docs',
      batchSize: 4, // a document's chunks span batches
      chunking: 'markdown',
      chunkSize: 200,
      chunkOverlap: 40,
      chunkUnit: 'characters',
      ...ingest,
      wires: [['written']],
    },
    { id: 'health', type: 'index-health', store: 'store', collection: 'docs', countMode: 'exact', wires: [['healthy']] },
    { id: 'query', type: 'sample-query', store: 'store', collection: 'docs', topK: 100, failOnEmpty: false, query: '', wires: [['answers']] },
    { id: 'written', type: 'helper' },
    { id: 'healthy', type: 'helper' },
    { id: 'answers', type: 'helper' },
    ...catchAll(),
  ];
}

/** A Markdown manual with `steps` sections under "Install"; `version` appears in every section. */
function manual(steps: number, version: string): string {
  const lines = ['# Manual', '', `This is version ${version} of the manual.`, '', '## Install', ''];
  for (let s = 0; s < steps; s++) {
    lines.push(`### Step ${s}`, '', `Step ${s} of version ${version}: run the command, read what it says, and check the result before the next step.`, '');
  }
  lines.push('```sh', '# not a heading: a comment in a code block', 'npm install it', '```');
  return lines.join('\n');
}

async function send(nodeId: string, msg: Msg, out: string): Promise<Msg> {
  const next = nextMessage(out);
  helper.getNode(nodeId).receive(msg);
  return next;
}

type Hit = { id: string; text: string; metadata: Record<string, unknown> };

async function everything(): Promise<Map<string, Hit>> {
  const answers = await send('query', { payload: 'manual' }, 'answers');
  return new Map((answers.payload as Hit[]).map((hit) => [hit.id, hit]));
}

describe('vector-ingest node, chunking (memory store)', function () {
  afterEach(unloadFlow);

  it('a long Markdown document becomes chunks with ids <id>#<n> and metadata; re-ingested shorter, no stale chunk is left', async () => {
    await loadFlow(flow());
    const first = await send('ingest', { payload: { id: 'manual', text: manual(12, 'one'), metadata: { lang: 'en' } } }, 'written');
    const chunks = first.payload.chunks as number;
    should(first.payload).match({ collection: 'docs', documents: 1, ingested: chunks, totalCount: chunks });
    should(chunks).be.above(10);
    should(first.payload.ids).eql(Array.from({ length: chunks }, (_, n) => `manual#${n}`));
    should(first.expectedCount).equal(chunks);

    const stored = await everything();
    should(stored.size).equal(chunks);
    should(stored.get('manual#0')).match({
      text: /^# Manual\n\nThis is version one/,
      metadata: { lang: 'en', source: 'manual', chunk: 0, of: chunks, headings: ['Manual'] },
    });
    const step3 = [...stored.values()].find((hit) => /^### Step 3\n/.test(hit.text));
    should(step3?.metadata.headings).eql(['Manual', 'Install', 'Step 3']);
    const code = [...stored.values()].find((hit) => hit.text.includes('npm install it'));
    should(code?.metadata.headings).eql(['Manual', 'Install', `Step 11`]); // "# not a heading" is code
    for (const hit of stored.values()) should(hit.text.length).be.belowOrEqual(200);

    // Edited to be shorter: fewer chunks, the old ones beyond them gone, the rest rewritten.
    const edited = await send('ingest', { payload: [{ id: 'manual', text: manual(4, 'two') }] }, 'written');
    const fewer = edited.payload.chunks as number;
    should(fewer).be.below(chunks);
    should(edited.payload).match({ documents: 1, ingested: fewer, totalCount: fewer });

    // The memory store's simulated indexing takes a few ms (10,000 documents/s): let it finish.
    await until('the chunks to be indexed', async () => {
      const status = await helper.getNode('store').getStore().backend.status('docs');
      return status.state === 'ready' && status.indexedCount >= fewer;
    });
    const health = await send('health', { expectedCount: fewer }, 'healthy');
    should(health.payload).match({ healthy: true, documentCount: fewer });
    const now = await everything();
    should([...now.keys()].sort()).eql(Array.from({ length: fewer }, (_, n) => `manual#${n}`).sort());
    for (const hit of now.values()) {
      should(hit.text).not.match(/version one/);
      should(hit.metadata).match({ source: 'manual', of: fewer });
    }
    should(now.get('manual#0')?.text).match(/This is version two/);
  });

  it('token unit: chunks up to 4 characters a token', async () => {
    await loadFlow(flow({ chunking: 'text', chunkSize: 30, chunkOverlap: 5, chunkUnit: 'tokens' }));
    const written = await send('ingest', { payload: { id: 'manual', text: manual(6, 'one') } }, 'written');
    const stored = await everything();
    should(stored.size).equal(written.payload.chunks);
    const lengths = [...stored.values()].map((hit) => hit.text.length);
    should(Math.max(...lengths)).be.within(31, 120); // more than 30 characters, at most 30 tokens
    for (const hit of stored.values()) should(hit.metadata.headings).be.undefined(); // text mode
  });

  it('chunking is off by default: a flow saved before it writes documents whole, with the output of before', async () => {
    await loadFlow(flow({ chunking: undefined, chunkSize: undefined, chunkOverlap: undefined, chunkUnit: undefined }));
    const written = await send('ingest', { payload: { id: 'manual', text: manual(12, 'one') } }, 'written');
    should(Object.keys(written.payload).sort()).eql(['batches', 'collection', 'durationMs', 'ids', 'ingested', 'totalCount']);
    should(written.payload).match({ ingested: 1, ids: ['manual'], totalCount: 1 });
  });

  it('a vector given with a text of several chunks fails naming the document; an overlap not below the size names both fields', async () => {
    await loadFlow(flow());
    const error = nextMessage('errors');
    helper.getNode('ingest').receive({ payload: [{ id: 'a', text: 'short' }, { id: 'b', text: manual(5, 'x'), vector: [1, 2, 3] }] });
    const err = (await error).error;
    should(err.message).match(/^Error: msg\.payload\[1\] has a vector and a text that makes \d+ chunks: .*Nothing was written\.$/);
    const notCreated = nextMessage('errors');
    helper.getNode('query').receive({ payload: 'manual' });
    should((await notCreated).error.code).equal('NOT_FOUND'); // nothing written, no collection made
    await unloadFlow();

    await loadFlow(flow({ chunkSize: 100, chunkOverlap: 100 }));
    const configError = nextMessage('errors');
    helper.getNode('ingest').receive({ payload: 'some text' });
    should((await configError).error.message).equal('Error: "Overlap" must be less than "Chunk size" (100) (got 100): lower it, or raise "Chunk size"');
  });
});
