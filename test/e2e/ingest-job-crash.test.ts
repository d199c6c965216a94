// A background ingest job on a real Node-RED process, with the package as users get it
// (npm pack, npm install), survives kill -9: restarted on the same user directory it
// resumes at its first unfinished batch, loses no document, embeds again at most the
// batch that was in flight, and sends one final message.
//
// Flow: inject -> function (20,000 documents, msg.ticket) -> vector-ingest (background
// "auto", batches of 100) on a persisted memory store whose embedder is an
// OpenAI-compatible stub (a stub: no embedding service runs here) in this test
// process, counting every text it embeds and answering 429 above 1 request at once.
import should from 'should';
import { cleanupAll, Collector, installPackedPackage, startNodeRed, type FlowNode, type NodeRed } from './harness';
import { startEmbeddingStub, type EmbeddingStub } from '../support/embedding-stub';

const DOCS = 20_000;
const BATCH = 100;
const TAB = 'job-tab';
const INGEST = 'job-ingest';

function flows(embedUrl: string): FlowNode[] {
  return [
    { id: TAB, type: 'tab', label: 'Ingest job', disabled: false, info: '' },
    { id: 'job-store', type: 'vector-store', name: 'store', backend: 'memory', embedder: 'openai', embedUrl, embedModel: 'stub', indexingRate: '100000', indexingDelay: '0', persist: true },
    { id: 'job-inject', type: 'inject', z: TAB, props: [{ p: 'ticket', v: 'T-9', vt: 'str' }], repeat: '', once: false, topic: '', x: 100, y: 80, wires: [['job-docs']] },
    {
      id: 'job-docs',
      type: 'function',
      z: TAB,
      func: `msg.payload = Array.from({ length: ${DOCS} }, (_, i) => ({ id: 'doc-' + i, text: 'document ' + i + ' about harbours and tides' })); return msg;`,
      outputs: 1,
      x: 260,
      y: 80,
      wires: [[INGEST]],
    },
    { id: INGEST, type: 'vector-ingest', z: TAB, store: 'job-store', collection: 'crash', batchSize: String(BATCH), createCollection: true, buildIndex: true, background: 'auto', x: 460, y: 80, wires: [[], []] },
    { id: 'job-catch', type: 'catch', z: TAB, scope: null, uncaught: false, x: 100, y: 200, wires: [[]] },
  ];
}

describe('e2e: a background ingest job survives kill -9', function () {
  this.timeout(180_000);
  let nodeRed: NodeRed;
  after(cleanupAll);

  it('resumes after kill -9: every document written once more at most for the batch in flight, one final message, progress with counts and ETA', async () => {
    const stub = await startEmbeddingStub({ latencyMs: 2, maxInFlight: 1, retryAfterSeconds: 0.02 });
    try {
      const collector = await Collector.start();
      const tapped = collector.tap(flows(stub.url), [
        { label: 'written', from: INGEST, output: 0 },
        { label: 'progress', from: INGEST, output: 1 },
        { label: 'caught', from: 'job-catch' },
      ]);
      const { userDir } = await installPackedPackage();
      nodeRed = await startNodeRed({ userDir, packageDir: null, flows: tapped });
      await nodeRed.inject('job-inject');
      const midway = await collector.waitFor(
        (all) => all.find((m) => m.label === 'progress' && m.msg.payload.written >= DOCS / 4),
        90_000,
        'a quarter of the job written',
      );
      await nodeRed.kill9();
      const jobId = midway.msg.jobId as string;
      should(collector.byLabel('written')).have.length(0);

      nodeRed = await startNodeRed({ userDir: nodeRed.userDir, packageDir: null });
      const final = await collector.waitFor((all) => all.find((m) => m.label === 'written'), 120_000, 'the final message of the resumed job');
      await new Promise((r) => setTimeout(r, 1500)); // room for a duplicate
      should(collector.byLabel('written')).have.length(1);
      should(collector.byLabel('caught')).have.length(0);
      should(final.msg.jobId).equal(jobId);
      should(final.msg.ticket).equal('T-9');
      should(final.msg.payload).containEql({ collection: 'crash', ingested: DOCS, totalCount: DOCS, documents: DOCS, resumed: 1 });
      // The service pushed back (429): the retries are counted, and told on output 2.
      should(stub.stats.rateLimited).be.above(0);
      should(final.msg.payload.retries).be.above(0);
      should(final.msg.payload.ids).have.length(DOCS);
      should(final.msg.expectedCount).equal(DOCS);

      // No document lost, none embedded twice beyond the batch in flight at the kill.
      should(stub.stats.textsSeen.size).equal(DOCS);
      const twice = [...stub.stats.textsSeen.values()].filter((n) => n > 1).length;
      should(twice).be.belowOrEqual(BATCH);

      // Progress: counts, a rate and an ETA, all of one job.
      const progress = collector.byLabel('progress').map((m) => m.msg);
      should(progress.every((m) => m.jobId === jobId)).be.true();
      const withEta = progress.filter((m) => m.payload.etaSeconds !== null && m.payload.written < DOCS);
      should(withEta.length).be.above(0);
      should(withEta[0].payload).have.properties(['documents', 'chunks', 'embedded', 'written', 'progress', 'docsPerSecond', 'retries', 'elapsedMs']);
      const afterRestart = progress.filter((m) => m.payload.written >= midway.msg.payload.written);
      should(afterRestart.length).be.above(1);
      should(nodeRed.log.errors()).eql([]);
    } finally {
      await stub.close();
    }
  });
});
