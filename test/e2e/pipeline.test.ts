// The shipped example "Vector store pipeline" on a real Node-RED: ingest, a deferred wait
// with visible progress, a healthy index, and sample queries that answer sensibly.
import should from 'should';
import path from 'node:path';
import {
  cleanupAll,
  Collector,
  readFlowFile,
  repoRoot,
  startNodeRed,
  type CollectedMessage,
  type FlowNode,
  type NodeRed,
} from './harness';
import { analysePipeline, checkRunAnswers, runAnswered, checkTeaching } from './pipeline-checks';

/** One line per collected message, for failure reports. */
function summarise(messages: CollectedMessage[]): string {
  return messages.map((m) => `  ${m.label} waitId=${m.msg.waitId} ${JSON.stringify(m.msg.payload).slice(0, 240)}`).join('\n');
}

describe('e2e: example "Vector store pipeline"', function () {
  this.timeout(90_000);
  let collector: Collector;
  let nodeRed: NodeRed;
  let example: FlowNode[];

  before(async () => {
    collector = await Collector.start();
    example = await readFlowFile(path.join(repoRoot, 'examples', 'Vector store pipeline.json'));
    nodeRed = await startNodeRed();
  });
  after(cleanupAll);

  it('teaches: a comment saying what to watch, one-line errors on the console, answers beside their questions, 1,280 px wide', async () => {
    checkTeaching(await readFlowFile(path.join(repoRoot, 'examples', 'Vector store pipeline.json')));
  });

  it('runs once on deploy and again when triggered: progress, one success, healthy, sensible answers', async () => {
    const parts = analysePipeline(example);
    const flows = collector.tap(example, parts.taps);

    // Run 1: the example's inject fires once when the flows start (here: on deploy).
    const deployedAt = Date.now();
    await nodeRed.deploy(flows, 'full');
    const run1 = await waitForRun(parts.queryIds.length, deployedAt);
    const ready1 = onlyFinal(collector.messages.filter((m) => m.at >= deployedAt));
    const progress = collector.byLabel('progress').filter((m) => m.msg.waitId === ready1.msg.waitId);
    should(progress.length).be.above(0, 'the sensor sent no progress message on output 2: the wait was not deferred');
    for (const m of progress) {
      should(m.msg.payload).containEql({ status: 'indexing', collection: ready1.msg.payload.collection });
    }
    should(ready1.msg.payload.deferred).be.true();
    checkRun(run1);

    // Run 2: triggered through the inject node's admin endpoint.
    const triggeredAt = Date.now();
    await nodeRed.inject(parts.startInjectId);
    const run2 = await waitForRun(parts.queryIds.length, triggeredAt);
    const ready2 = onlyFinal(collector.messages.filter((m) => m.at >= triggeredAt));
    should(ready2.msg.waitId).not.equal(ready1.msg.waitId);
    checkRun(run2);

    should(collector.byLabel('caught')).eql([]);
    should(nodeRed.log.errors()).eql([]);
  });

  /** Wait for the answers of every sample-query node of one run (messages since `since`). */
  async function waitForRun(queryNodes: number, since: number): Promise<CollectedMessage[]> {
    return collector.waitFor(
      (all) => {
        const failed = all.find((m) => m.label === 'caught' && m.at >= since);
        if (failed) {
          throw new Error(
            `The pipeline failed: ${failed.msg.error?.message} (from ${failed.msg.error?.source?.type}).\n` +
              `Messages of this run:\n${summarise(all.filter((m) => m.at >= since))}`,
          );
        }
        const run = all.filter((m) => m.at >= since);
        return runAnswered(run, queryNodes) ? run : null;
      },
      60_000,
      'the sample query answers',
    );
  }

  function onlyFinal(messages: CollectedMessage[]): CollectedMessage {
    const finals = messages.filter((m) => m.label === 'ready');
    should(finals).have.length(1);
    should(finals[0].msg.payload).containEql({ status: 'success' });
    should(finals[0].msg.payload.indexedCount).equal(finals[0].msg.payload.expectedCount);
    return finals[0];
  }

  function checkRun(run: CollectedMessage[]): void {
    const health = run.filter((m) => m.label === 'health');
    should(health.length).be.above(0, 'no index-health result');
    for (const m of health) should(m.msg.payload).containEql({ healthy: true });

    checkRunAnswers(example, run);
  }
});
