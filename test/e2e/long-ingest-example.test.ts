// The shipped example "Long ingest" on a real Node-RED: a 5,000-document background job
// with progress and a sensor after it, a Markdown guide chunked and re-ingested after an
// edit (its stale chunks removed), and 200 one-document messages gathered into batches.
import should from 'should';
import path from 'node:path';
import { cleanupAll, Collector, readFlowFile, repoRoot, startNodeRed, type FlowNode, type NodeRed } from './harness';
import { checkTeaching } from './pipeline-checks';

const FILE = path.join(repoRoot, 'examples', 'Long ingest.json');

describe('e2e: example "Long ingest"', function () {
  this.timeout(120_000);
  let collector: Collector;
  let nodeRed: NodeRed;
  let example: FlowNode[];

  before(async () => {
    collector = await Collector.start();
    example = await readFlowFile(FILE);
    const flows = collector.tap(example, [
      { label: 'job', from: 'long-job-ingest', output: 0 },
      { label: 'job-progress', from: 'long-job-ingest', output: 1 },
      { label: 'indexed', from: 'long-sensor', output: 0 },
      { label: 'chunks', from: 'long-chunk-ingest', output: 0 },
      { label: 'gathered', from: 'long-gather-ingest', output: 0 },
      { label: 'errors', from: 'long-catch' },
    ]);
    nodeRed = await startNodeRed({ flows });
  });
  after(cleanupAll);

  it('teaches: a comment saying what to watch, one-line errors, 1,280 px wide', () => {
    checkTeaching(example);
  });

  it('5,000 documents run as a background job: progress with counts and ETA, one final, then the sensor sees them indexed', async () => {
    await nodeRed.inject('long-inject-docs');
    const indexed = await collector.waitFor((all) => all.find((m) => m.label === 'indexed'), 90_000, 'the sensor to see the job indexed');
    const job = collector.byLabel('job');
    should(job).have.length(1);
    should(job[0].msg.payload).containEql({ collection: 'notes', ingested: 5000, totalCount: 5000, documents: 5000 });
    const progress = collector.byLabel('job-progress');
    should(progress.length).be.above(0);
    should(progress.every((m) => m.msg.jobId === job[0].msg.jobId)).be.true();
    should(progress[progress.length - 1].msg.payload).containEql({ status: 'ingesting', written: 5000, progress: 1 });
    should(indexed.msg.payload).containEql({ status: 'success', collection: 'notes', indexedCount: 5000 });
    should(collector.byLabel('errors')).have.length(0);
  });

  it('the Markdown guide is chunked on its headings; the edited guide replaces its chunks, none left stale', async () => {
    await nodeRed.inject('long-inject-guide');
    const first = await collector.waitFor((all) => all.find((m) => m.label === 'chunks'), 20_000, 'the guide to be written');
    should(first.msg.payload.ids[0]).equal('guide.md#0');
    should(first.msg.payload.chunks).be.above(3);
    await nodeRed.inject('long-inject-edited');
    const second = await collector.waitFor((all) => all.filter((m) => m.label === 'chunks')[1], 20_000, 'the edited guide to be written');
    should(second.msg.payload.chunks).be.below(first.msg.payload.chunks);
    should(second.msg.payload.totalCount).equal(second.msg.payload.chunks);
    should(collector.byLabel('errors')).have.length(0);
  });

  it('200 one-document messages are gathered into batches: each message out once, after its batch', async () => {
    await nodeRed.inject('long-inject-stream');
    await collector.waitFor((all) => all.filter((m) => m.label === 'gathered').length >= 200, 30_000, '200 gathered messages');
    const gathered = collector.byLabel('gathered');
    should(gathered).have.length(200);
    should(new Set(gathered.map((m) => m.msg.payload.ids[0])).size).equal(200);
    should(Math.max(...gathered.map((m) => m.msg.payload.gathered))).be.above(1);
    should(gathered[gathered.length - 1].msg.payload.totalCount).equal(200);
    should(collector.byLabel('errors')).have.length(0);
  });
});
