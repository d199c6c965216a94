// The shipped example "Chroma pipeline" on a real Node-RED against a real local Chroma
// server (`chroma run`): ingest, the sensor's wait, a healthy index, sensible answers.
// A local Chroma indexes as it writes, so the sensor finds the collection ready at once;
// the second test puts a recording proxy in front of the server that reports unindexed
// operations for a few polls (a test double for servers that index in the background,
// such as Chroma Cloud), to show the deferred wait with progress.
import should from 'should';
import net from 'node:net';
import path from 'node:path';
import { cleanupAll, Collector, freePort, readFlowFile, repoRoot, startNodeRed, type CollectedMessage, type FlowNode } from './harness';
import { analysePipeline, checkRunAnswers, runAnswered, checkTeaching } from './pipeline-checks';
import { startChromaServer, startRecordingProxy, type ChromaServer } from '../support/chroma-server';

const EXAMPLE = path.join(repoRoot, 'examples', 'Chroma pipeline.json');

function summarise(messages: CollectedMessage[]): string {
  return messages.map((m) => `  ${m.label} ${JSON.stringify(m.msg.payload).slice(0, 240)}`).join('\n');
}

/** The example with its vector-store pointed at `url` (and, optionally, another collection). */
function pointedAt(example: FlowNode[], url: string, collection?: string): FlowNode[] {
  const flows: FlowNode[] = JSON.parse(JSON.stringify(example));
  const store = flows.find((n) => n.type === 'vector-store');
  should.exist(store, 'the example has no vector-store node');
  should(store!.backend).equal('chroma');
  store!.url = url;
  if (collection) {
    for (const n of flows) if (typeof n.collection === 'string' && n.collection !== '') n.collection = collection;
  }
  return flows;
}

describe('e2e: example "Chroma pipeline"', function () {
  this.timeout(60_000);
  let chroma: ChromaServer;
  let example: FlowNode[];

  before(async () => {
    example = await readFlowFile(EXAMPLE);
    chroma = await startChromaServer();
  });
  after(async () => {
    await cleanupAll();
    await chroma?.stop();
  });

  it('teaches: a comment saying what to watch, one-line errors on the console, answers beside their questions, 1,280 px wide', async () => {
    checkTeaching(await readFlowFile(EXAMPLE));
  });

  it('ingests into a real Chroma, waits, finds the index healthy, and answers sensibly', async () => {
    const collector = await Collector.start();
    const parts = analysePipeline(example);
    const flows = collector.tap(pointedAt(example, chroma.url), parts.taps);
    // The example's inject fires once when the flows start.
    const nodeRed = await startNodeRed({ flows });
    const run = await waitForRun(collector, parts.queryIds.length);

    const [ready] = only(run, 'ready');
    should(ready.msg.payload).containEql({ status: 'success', collection: 'docs', expectedCount: 40, indexedCount: 40 });
    checkRun(run, example);

    // Again through the inject node: the same texts replace themselves, the count stays 40.
    collector.clear();
    await nodeRed.inject(parts.startInjectId);
    const again = await waitForRun(collector, parts.queryIds.length);
    should(only(again, 'ready')[0].msg.payload).containEql({ status: 'success', indexedCount: 40 });
    checkRun(again, example);
    const count = await fetchJson(`${chroma.url}/api/v2/tenants/default_tenant/databases/default_database/collections/docs`);
    should(await fetchJson(`${chroma.url}/api/v2/tenants/default_tenant/databases/default_database/collections/${count.id}/count`)).equal(40);

    should(nodeRed.log.errors()).eql([]);
    await nodeRed.stop();
  });

  it('defers the wait and reports progress while the server reports unindexed operations (indexing_status from a proxy: test double)', async () => {
    let statusPolls = 0;
    const proxy = await startRecordingProxy(chroma.url, (r) => {
      if (!r.path.endsWith('/indexing_status')) return null;
      statusPolls += 1;
      const unindexed = statusPolls <= 3 ? 40 - 10 * statusPolls : 0;
      return { status: 200, body: { num_indexed_ops: 40 - unindexed, num_unindexed_ops: unindexed, total_ops: 40, op_indexing_progress: (40 - unindexed) / 40 } };
    });
    try {
      const collector = await Collector.start();
      const parts = analysePipeline(example);
      const flows = collector.tap(pointedAt(example, proxy.url, 'docs-deferred'), parts.taps);
      const nodeRed = await startNodeRed({ flows });
      const run = await waitForRun(collector, parts.queryIds.length);

      const [ready] = only(run, 'ready');
      should(ready.msg.payload).containEql({ status: 'success', collection: 'docs-deferred', deferred: true, indexedCount: 40 });
      const progress = run.filter((m) => m.label === 'progress');
      should(progress.length).be.above(0, 'no progress message on output 2');
      for (const m of progress) {
        should(m.msg.payload).containEql({ status: 'indexing', collection: 'docs-deferred' });
        should(m.msg.payload.indexedCount).be.within(0, 40);
      }
      checkRun(run, example);
      should(nodeRed.log.errors()).eql([]);
      await nodeRed.stop();
    } finally {
      await proxy.close();
    }
  });

  it('retries a failed ingest with its documents 3 times, then gives up in one clear line (nothing listens on the URL)', async () => {
    const collector = await Collector.start();
    const flows = withFastRetries(pointedAt(example, `http://127.0.0.1:${await freePort()}`));
    const documents = JSON.parse(flows.find((n) => n.id === 'chroma-example-inject')!.payload as string);
    const tapped = collector.tap(flows, [
      { label: 'ingest-failed', from: 'chroma-example-ingest-catch' },
      { label: 'gave-up', from: 'chroma-example-retry', output: 1 },
    ]);
    const nodeRed = await startNodeRed({ flows: tapped }); // the inject fires once on start
    const [gaveUp] = await collector.waitFor((all) => {
      const found = all.filter((m) => m.label === 'gave-up');
      return found.length > 0 ? found : null;
    }, 30_000, 'the retry loop to give up');

    // The first attempt and 3 retries failed, each time with the 40 documents still in msg.payload.
    const failures = collector.byLabel('ingest-failed');
    should(failures.map((m) => m.msg.retries ?? 0)).eql([0, 1, 2, 3]);
    for (const m of failures) {
      should(m.msg.payload).eql(documents);
      // (Node-RED's Catch puts err.toString() there, hence the "Error: " before the sentence.)
      should(m.msg.error.message).match(/^(Error: )?Cannot reach the Chroma server at http:\/\/127\.0\.0\.1:\d+/);
    }
    should(gaveUp.msg.payload).eql(documents);
    should(gaveUp.msg.error.message).match(/^Gave up after 3 retries: (Error: )?Cannot reach the Chroma server/);
    // One line in the sidebar and on the console.
    const lines = nodeRed.log.find('[debug:errors]');
    should(lines).have.length(1);
    should(lines[0]).endWith(`[debug:errors] ${gaveUp.msg.error.message}`);
    await nodeRed.stop();
  });

  it('goes on with the same documents once Chroma can be reached (a relay to the real server opens on the URL after the first failure)', async () => {
    const collector = await Collector.start();
    const port = await freePort();
    const parts = analysePipeline(example);
    const flows = withFastRetries(pointedAt(example, `http://127.0.0.1:${port}`, 'docs-retried'));
    // The pipeline's taps, but the ingest's own failures are expected here: tapped apart.
    const taps = parts.taps.filter((t) => t.label !== 'caught');
    taps.push({ label: 'ingest-failed', from: 'chroma-example-ingest-catch' }, { label: 'caught', from: 'chroma-example-catch' });
    const nodeRed = await startNodeRed({ flows: collector.tap(flows, taps) });
    await collector.waitFor((all) => all.some((m) => m.label === 'ingest-failed'), 20_000, 'the first failed ingest');
    const relay = await startRelay(port, chroma.port);
    try {
      const run = await waitForRun(collector, parts.queryIds.length);
      should(only(run, 'ready')[0].msg.payload).containEql({ status: 'success', collection: 'docs-retried', indexedCount: 40 });
      should(only(run, 'ready')[0].msg.retries).be.within(1, 3);
      should(only(run, 'ready')[0].msg).not.have.property('error');
      checkRunAnswers(example, run);
      should(collector.byLabel('gave-up')).eql([]);
      await nodeRed.stop();
    } finally {
      await relay.close();
    }
  });
});

/** The example with its retry delay cut from 5 s to 0.3 s, to keep the test short. */
function withFastRetries(flows: FlowNode[]): FlowNode[] {
  const delay = flows.find((n) => n.id === 'chroma-example-retry-delay');
  should.exist(delay, 'the example has no retry delay');
  should(delay!.timeout).equal('5');
  delay!.timeout = '0.3';
  return flows;
}

/** A plain TCP relay from 127.0.0.1:`port` to 127.0.0.1:`target`: the server "comes up" on `port`. */
async function startRelay(port: number, target: number): Promise<{ close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => s.destroy());
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', () => resolve()));
  return {
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

async function fetchJson(url: string): Promise<any> {
  const res = await fetch(url);
  should(res.status).equal(200, `GET ${url}`);
  return res.json();
}

function only(run: CollectedMessage[], label: string): CollectedMessage[] {
  const found = run.filter((m) => m.label === label);
  should(found).have.length(1, `expected one "${label}" message:\n${summarise(run)}`);
  return found;
}

/** Wait for the answers of every sample-query node; a caught failure ends the wait with its message. */
function waitForRun(collector: Collector, queryNodes: number): Promise<CollectedMessage[]> {
  return collector.waitFor(
    (all) => {
      const failed = all.find((m) => m.label === 'caught');
      if (failed) {
        throw new Error(`The pipeline failed: ${failed.msg.error?.message} (from ${failed.msg.error?.source?.type}).\n${summarise(all)}`);
      }
      return runAnswered(all, queryNodes) ? [...all] : null;
    },
    30_000,
    'the sample query answers',
  );
}

function checkRun(run: CollectedMessage[], example: FlowNode[]): void {
  const health = run.filter((m) => m.label === 'health');
  should(health.length).be.above(0, 'no index-health result');
  for (const m of health) should(m.msg.payload).containEql({ healthy: true });
  checkRunAnswers(example, run);
  should(run.filter((m) => m.label === 'caught')).eql([]);
}
