// The shipped example "pgvector pipeline" on a real Node-RED against Postgres with
// pgvector (PGlite served over the Postgres wire protocol, started by this test):
// ingest, a wait for the HNSW index build, a healthy index, sensible answers; then a
// second run, ready at once since the index then indexes every write as it happens.
import should from 'should';
import path from 'node:path';
import pg from 'pg';
import { cleanupAll, Collector, readFlowFile, repoRoot, startNodeRed, type CollectedMessage, type FlowNode } from './harness';
import { analysePipeline, checkRunAnswers, runAnswered, checkTeaching } from './pipeline-checks';
import { startPgliteServer, type PgliteServer } from '../support/pglite-server';

const EXAMPLE = path.join(repoRoot, 'examples', 'pgvector pipeline.json');

describe('e2e: example "pgvector pipeline"', function () {
  this.timeout(90_000);
  let server: PgliteServer | null = null;

  after(async () => {
    await cleanupAll(); // Node-RED first: its connections close before the server stops
    await server?.stop();
  });

  it('teaches: a comment saying what to watch, one-line errors on the console, answers beside their questions, 1,280 px wide', async () => {
    checkTeaching(await readFlowFile(EXAMPLE));
  });

  it('ingests, waits for the index build, finds the index healthy and answers sensibly, twice', async () => {
    server = await startPgliteServer();
    const example = await readFlowFile(EXAMPLE);
    const store = example.find((n) => n.type === 'vector-store') as FlowNode;
    should(store).match({ backend: 'pgvector', ssl: false });
    should(String(store.url)).match(/^postgres:\/\/postgres@127\.0\.0\.1:5432\/postgres$/);
    store.url = server.url; // the same server, on the port the test got

    const collector = await Collector.start();
    const parts = analysePipeline(example);
    const flows = collector.tap(example, parts.taps);
    const startedAt = Date.now();
    const nodeRed = await startNodeRed({ flows }); // the inject fires once on start

    // Run 1: the index is built after the write; the sensor waits for it.
    const run1 = await waitForRun(collector, parts.queryIds.length, startedAt);
    const ready1 = onlyFinal(run1);
    should(ready1.msg.payload).match({ collection: 'docs', documentCount: 40, indexedCount: 40, expectedCount: 40 });
    for (const m of run1.filter((x) => x.label === 'progress')) {
      should(m.msg.payload).match({ status: 'indexing', collection: 'docs' });
      should(m.msg.waitId).equal(ready1.msg.waitId);
    }
    checkRun(example, run1);
    should(await indexValid(server.url)).be.true();

    // Run 2: the same texts again (an upsert: still 40), already indexed as written.
    const triggeredAt = Date.now();
    await nodeRed.inject(parts.startInjectId);
    const run2 = await waitForRun(collector, parts.queryIds.length, triggeredAt);
    const ready2 = onlyFinal(run2);
    should(ready2.msg.payload).match({ documentCount: 40, indexedCount: 40, deferred: false });
    checkRun(example, run2);

    should(collector.byLabel('caught')).eql([]);
    should(nodeRed.log.errors()).eql([]);
  });
});

async function indexValid(url: string): Promise<boolean | null> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query(`SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('"vector_pipeline"."docs$hnsw"')`);
    return rows[0]?.indisvalid ?? null;
  } finally {
    await client.end();
  }
}

function summarise(messages: CollectedMessage[]): string {
  return messages.map((m) => `  ${m.label} ${JSON.stringify(m.msg.payload).slice(0, 240)}`).join('\n');
}

/** Every message of one run, once each sample-query node answered; throws on a caught failure. */
function waitForRun(collector: Collector, queryNodes: number, since: number): Promise<CollectedMessage[]> {
  return collector.waitFor(
    (all) => {
      const run = all.filter((m) => m.at >= since);
      const failed = run.find((m) => m.label === 'caught');
      if (failed) {
        throw new Error(`The pipeline failed: ${failed.msg.error?.message}.\nMessages of this run:\n${summarise(run)}`);
      }
      return runAnswered(run, queryNodes) ? run : null;
    },
    45_000,
    'the sample query answers',
  );
}

function onlyFinal(run: CollectedMessage[]): CollectedMessage {
  const finals = run.filter((m) => m.label === 'ready');
  should(finals).have.length(1);
  should(finals[0].msg.payload).match({ status: 'success' });
  return finals[0];
}

function checkRun(example: FlowNode[], run: CollectedMessage[]): void {
  const health = run.filter((m) => m.label === 'health');
  should(health).have.length(1);
  should(health[0].msg.payload).match({ healthy: true, documentCount: 40, indexedCount: 40, dimensions: 384, metric: 'cosine', indexType: 'hnsw' });
  checkRunAnswers(example, run);
}
