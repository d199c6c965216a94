/**
 * vector-ingest background jobs on a real Node-RED runtime (test helper) and the
 * memory store: progress on output 2, one final on output 1 with every id, done
 * once; the size threshold of "auto"; msg.reset; a redeploy mid-job resumes it.
 * The slow cases embed through an OpenAI-compatible stub server (a stub: no
 * embedding service runs here) that answers after a delay.
 */
import should from 'should';
import { startEmbeddingStub, type EmbeddingStub } from '../support/embedding-stub';
import { backendOf, catchAll, collect, delay, helper, loadFlow, nextMessage, redeploy, storeConfig, unloadFlow, type FlowNode } from './flow-helper';

const docs = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `d${i}`, text: `document number ${i}` }));

function flow(ingest: Record<string, unknown> = {}, store: Record<string, unknown> = {}): FlowNode[] {
  return [
    storeConfig(store),
    { id: 'ingest', type: 'vector-ingest', store: 'store', collection: 'docs', batchSize: 50, background: 'always', wires: [['written'], ['progress']], ...ingest },
    { id: 'written', type: 'helper' },
    { id: 'progress', type: 'helper' },
    { id: 'on-done', type: 'complete', scope: ['ingest'], uncaught: false, wires: [['completed']] },
    { id: 'completed', type: 'helper' },
    ...catchAll(),
  ];
}

describe('vector-ingest background jobs (memory store)', function () {
  this.timeout(30_000);
  afterEach(unloadFlow);

  it('runs a job: progress on output 2, one final on output 1 with every id and the counts, the message done once', async () => {
    await loadFlow(flow());
    const progress = collect('progress');
    const completed = collect('completed');
    const written = nextMessage('written');
    helper.getNode('ingest').receive({ payload: docs(260), topic: 'kept' });
    const out = await written;
    should(out.payload).match({ collection: 'docs', ingested: 260, totalCount: 260, batches: 6, documents: 260, chunks: 260, resumed: 0 });
    should(out.payload.ids).have.length(260);
    should(out.payload.ids[0]).equal('d0');
    should(out.payload.durations).have.properties(['spoolMs', 'embedMs', 'writeMs', 'activeMs']);
    should(out.expectedCount).equal(260);
    should(out.topic).equal('kept');
    should(typeof out.jobId).equal('string');
    should(progress.length).be.above(0);
    for (const p of progress) {
      should(p.jobId).equal(out.jobId);
      should(p.payload).have.properties(['status', 'collection', 'jobId', 'documents', 'chunks', 'embedded', 'written', 'progress', 'etaSeconds', 'docsPerSecond', 'retries', 'elapsedMs']);
      should(p.payload.status).equal('ingesting');
    }
    should(progress[progress.length - 1].payload).match({ written: 260, progress: 1 });
    await delay(50);
    should(completed).have.length(1);
    should((await backendOf().stats('docs')).documentCount).equal(260);
  });

  it('"auto" runs 1,000 documents or more as a job, fewer in the message handler, as before', async () => {
    await loadFlow(flow({ background: 'auto', batchSize: 500 }));
    const small = nextMessage('written');
    helper.getNode('ingest').receive({ payload: docs(999) });
    should((await small).jobId).be.undefined();
    const large = nextMessage('written');
    helper.getNode('ingest').receive({ payload: docs(1000) });
    should(typeof (await large).jobId).equal('string');
  });

  it('a job chunks too: a long Markdown document re-ingested after an edit leaves no stale chunk', async () => {
    await loadFlow(flow({ batchSize: 5, chunking: 'markdown', chunkSize: 120, chunkOverlap: 20 }));
    const section = (n: number, words: number) => `## Part ${n}\n\n` + Array.from({ length: words }, (_, i) => `word${n}x${i}`).join(' ') + '.\n\n';
    const long = '# Guide\n\n' + Array.from({ length: 12 }, (_, n) => section(n, 40)).join('');
    const first = nextMessage('written');
    helper.getNode('ingest').receive({ payload: { id: 'guide.md', text: long } });
    const one = (await first).payload;
    should(one.documents).equal(1);
    should(one.chunks).be.above(20);
    should(one.ids[0]).equal('guide.md#0');
    const edited = '# Guide\n\n' + section(0, 10);
    const second = nextMessage('written');
    helper.getNode('ingest').receive({ payload: { id: 'guide.md', text: edited } });
    const two = (await second).payload;
    should(two.chunks).be.below(one.chunks);
    should(two.totalCount).equal(two.chunks); // the old chunks beyond the new ones are gone
    should((await backendOf().stats('docs')).documentCount).equal(two.chunks);
    const hits = await backendOf().query('docs', { vector: new Float32Array(64).fill(0.1), topK: 100 });
    should(hits.every((h: { metadata: { source: string; of: number } }) => h.metadata.source === 'guide.md' && h.metadata.of === two.chunks)).be.true();
  });

  it('bad input fails at once, naming the document, and starts no job', async () => {
    await loadFlow(flow());
    const failed = nextMessage('errors');
    helper.getNode('ingest').receive({ payload: [{ id: 'a', text: 'fine' }, { id: 'b', text: '' }] });
    const err = await failed;
    should(err.error.message).match(/msg\.payload\[1\]\.text/);
    should(Array.isArray(err.payload)).be.true(); // the documents stay in msg.payload
  });

  describe('with a slow embedding service (stub)', function () {
    let stub: EmbeddingStub;
    beforeEach(async () => {
      stub = await startEmbeddingStub({ latencyMs: 40 });
    });
    afterEach(async () => {
      await unloadFlow();
      await stub.close();
    });
    const slowStore = () => ({ embedder: 'openai', embedUrl: stub.url, embedModel: 'stub' });

    it('an embedding service that answers 429: the job slows down, every retry is counted and told on output 2, nothing is lost', async () => {
      stub.setOptions({ maxInFlight: 1, retryAfterSeconds: 0.05, latencyMs: 5 });
      await loadFlow(flow({ batchSize: 100 }, { ...slowStore(), embedBatchSize: 10, embedConcurrency: 4 }));
      const progress = collect('progress');
      const written = nextMessage('written', () => true, 25_000);
      helper.getNode('ingest').receive({ payload: docs(300) });
      const out = await written;
      should(out.payload).match({ ingested: 300, totalCount: 300 });
      should(stub.stats.rateLimited).be.above(0);
      should(out.payload.retries).be.above(0);
      should(out.payload.retries).equal(stub.stats.rateLimited);
      const told = progress.filter((m) => /retrying in .*HTTP 429/.test(m.payload.detail ?? ''));
      should(told.length).be.above(0);
      should(told[told.length - 1].payload.retries).be.above(0);
      should(stub.stats.textsSeen.size).equal(300);
      should(Math.max(...stub.stats.textsSeen.values())).equal(1);
    });

    it('msg.reset cancels the running job: no final, the message is done, the status says so', async () => {
      await loadFlow(flow({ batchSize: 10 }, slowStore()));
      const completed = collect('completed');
      const written = collect('written');
      helper.getNode('ingest').receive({ payload: docs(400) });
      await nextMessage('progress', (m) => m.payload.written >= 20);
      helper.getNode('ingest').receive({ reset: true });
      await delay(300);
      const before = stub.stats.textsSeen.size;
      await delay(300);
      should(stub.stats.textsSeen.size).equal(before); // nothing more embedded
      should(written).be.empty();
      should(completed).have.length(2); // the job's message and the reset
    });

    it('a redeploy mid-job resumes it at the first unfinished batch: one final, every document, at most one batch embedded twice', async () => {
      const theFlow = flow({ batchSize: 10 }, slowStore());
      await loadFlow(theFlow);
      // Progress comes once a second: 400 documents in batches of 10 at 40 ms a batch run well past it.
      helper.getNode('ingest').receive({ payload: docs(400), topic: 'resume me' });
      await nextMessage('progress', (m) => m.payload.written >= 50 && m.payload.written < 400);
      await redeploy(theFlow);
      const written = collect('written');
      await nextMessage('written', () => true, 20_000).catch(() => null);
      await delay(100);
      should(written).have.length(1);
      const out = written[0];
      should(out.payload).match({ ingested: 400, totalCount: 400, resumed: 1 });
      should(out.payload.ids).have.length(400);
      should(out.topic).equal('resume me');
      should(out.payload).not.have.property('status');
      should(stub.stats.textsSeen.size).equal(400);
      const twice = [...stub.stats.textsSeen.values()].filter((n) => n > 1).length;
      should(twice).be.belowOrEqual(10);
    });
  });
});
