// The shipped example "LanceDB pipeline" on a real Node-RED with the real embedded
// LanceDB (@lancedb/lancedb) in a temporary directory: 40 documents (searched exactly,
// below the index threshold), then 300 more (the vector index is built), then a
// re-ingest whose rows stay unindexed until optimize() folds them in.
import should from 'should';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import {
  cleanupAll,
  Collector,
  makeTempDir,
  readFlowFile,
  repoRoot,
  startNodeRed,
  type CollectedMessage,
  type FlowNode,
  type NodeRed,
} from './harness';
import { analysePipeline, checkRunAnswers, runAnswered, type PipelineParts, checkTeaching } from './pipeline-checks';

const EXAMPLE = path.join(repoRoot, 'examples', 'LanceDB pipeline.json');
const BULK_INJECT = 'lancedb-example-bulk-inject';

function summarise(messages: CollectedMessage[]): string {
  return messages.map((m) => `  ${m.label} ${JSON.stringify(m.msg.payload).slice(0, 240)}`).join('\n');
}

/** The example with its vector-store on `dir`, and ingest's "build index" as given. */
function configured(example: FlowNode[], dir: string, buildIndex = true): FlowNode[] {
  const flows: FlowNode[] = JSON.parse(JSON.stringify(example));
  const store = flows.find((n) => n.type === 'vector-store');
  should.exist(store, 'the example has no vector-store node');
  should(store!.backend).equal('lancedb');
  store!.path = dir;
  for (const n of flows) if (n.type === 'vector-ingest') n.buildIndex = buildIndex;
  return flows;
}

describe('e2e: example "LanceDB pipeline"', function () {
  this.timeout(60_000);
  let example: FlowNode[];
  let parts: PipelineParts;
  let collector: Collector;
  let nodeRed: NodeRed;
  let dataDir: string;

  before(async () => {
    example = await readFlowFile(EXAMPLE);
    parts = analysePipeline(example);
    collector = await Collector.start();
    dataDir = path.join(await makeTempDir('lancedb-e2e'), 'tables');
  });
  after(cleanupAll);

  it('teaches: a comment saying what to watch, one-line errors on the console, answers beside their questions, 1,280 px wide', async () => {
    checkTeaching(await readFlowFile(EXAMPLE));
  });

  it('ingests 40 documents (exact search, no index yet), finds them healthy, and answers sensibly', async () => {
    // The example's inject fires once when the flows start.
    nodeRed = await startNodeRed({ flows: collector.tap(configured(example, dataDir), parts.taps) });
    const run = await waitForRun();
    should(only(run, 'ready').msg.payload).containEql({ status: 'success', collection: 'docs', expectedCount: 40, indexedCount: 40 });
    should(only(run, 'health').msg.payload).containEql({ healthy: true, documentCount: 40, indexType: 'none (flat)', dimensions: 384 });
    checkRun(run);
    // The tables are in the configured directory.
    should(await fsp.readdir(dataDir)).containEql('docs.lance');
  });

  it('builds the vector index once 300 more records arrive, then answers the same questions', async () => {
    collector.clear();
    await nodeRed.inject(BULK_INJECT);
    const run = await waitForRun();
    const ready = only(run, 'ready').msg.payload;
    should(ready).containEql({ status: 'success', expectedCount: 340, indexedCount: 340 });
    for (const m of run.filter((m) => m.label === 'progress')) {
      should(m.msg.payload).containEql({ status: 'indexing', collection: 'docs' });
      should(m.msg.payload.indexedCount).be.within(0, 340);
    }
    should(only(run, 'health').msg.payload).containEql({ healthy: true, documentCount: 340, indexedCount: 340, indexType: 'ivf_flat' });
    checkRun(run);
  });

  it('defers the wait while re-ingested rows are unindexed (a copy with "build index" off, so the sensor\'s status starts optimize())', async () => {
    // A full redeploy: the store reopens the same directory, and the example's inject fires
    // once again: the same 40 texts replace their 40 rows, which are then unindexed.
    collector.clear();
    await nodeRed.deploy(collector.tap(configured(example, dataDir, false), parts.taps), 'full');
    const run = await waitForRun();
    should(only(run, 'ready').msg.payload).containEql({ status: 'success', deferred: true, expectedCount: 340, indexedCount: 340 });
    for (const m of run.filter((m) => m.label === 'progress')) {
      should(m.msg.payload).containEql({ status: 'indexing', collection: 'docs' });
      should(m.msg.payload.indexedCount).be.within(300, 340);
      should(m.msg.payload.progress).be.within(0, 1);
    }
    should(only(run, 'health').msg.payload).containEql({ healthy: true, documentCount: 340, indexedCount: 340, indexType: 'ivf_flat' });
    checkRun(run);
    should(nodeRed.log.errors()).eql([]);
    await nodeRed.stop();
  });

  /** Wait for the answers of every sample-query node; a caught failure ends the wait with its message. */
  function waitForRun(): Promise<CollectedMessage[]> {
    return collector.waitFor(
      (all) => {
        const failed = all.find((m) => m.label === 'caught');
        if (failed) {
          throw new Error(`The pipeline failed: ${failed.msg.error?.message} (from ${failed.msg.error?.source?.type}).\n${summarise(all)}`);
        }
        return runAnswered(all, parts.queryIds.length) ? [...all] : null;
      },
      20_000,
      'the sample query answers',
    );
  }

  function only(run: CollectedMessage[], label: string): CollectedMessage {
    const found = run.filter((m) => m.label === label);
    should(found).have.length(1, `expected one "${label}" message:\n${summarise(run)}`);
    return found[0];
  }

  function checkRun(run: CollectedMessage[]): void {
    checkRunAnswers(example, run);
    should(run.filter((m) => m.label === 'caught')).eql([]);
  }
});
