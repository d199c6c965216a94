// The package as users get it: `npm pack`, `npm install <tarball>` into a fresh Node-RED
// user directory (production dependencies only), then Node-RED loads all five node types
// and runs both shipped examples.
import should from 'should';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import {
  cleanupAll,
  Collector,
  installPackedPackage,
  packageName,
  readFlowFile,
  startNodeRed,
  type FlowNode,
} from './harness';
import { analysePipeline, checkAnswers, questionsOf } from './pipeline-checks';

const NODE_TYPES = ['vector-store', 'vector-ingest', 'deferrable-sensor', 'index-health', 'sample-query'];

/**
 * Give every node id of `flows` that is already taken in `taken` a new id (as the editor
 * does when importing a copy), rewriting references (wires, config node ids, z).
 */
function importCopy(flows: FlowNode[], taken: Set<string>): FlowNode[] {
  let text = JSON.stringify(flows);
  for (const node of flows) {
    if (taken.has(node.id)) text = text.split(JSON.stringify(node.id)).join(JSON.stringify(`${node.id}-copy`));
  }
  return JSON.parse(text);
}

describe('e2e: packed and installed package', function () {
  this.timeout(120_000);
  after(cleanupAll);

  it('installs from the npm tarball, loads all five node types and runs both examples', async () => {
    // npm pack, then npm install into a fresh user dir, as the palette manager would.
    const { userDir, installed } = await installPackedPackage();
    should((await fsp.lstat(installed)).isSymbolicLink()).be.false();

    const nodeRed = await startNodeRed({ userDir, packageDir: null });
    const sets = (await nodeRed.getNodes()).filter((set) => set.module === packageName);
    should(sets.flatMap((set) => set.types).sort()).eql([...NODE_TYPES].sort());
    for (const set of sets) {
      should(set.enabled).be.true();
      should(set.err ?? null).equal(null, `node set ${set.id} failed to load: ${set.err}`);
    }

    // Import both examples from the installed package and deploy them together.
    const pipeline = await readFlowFile(path.join(installed, 'examples', 'Vector store pipeline.json'));
    const failure = await readFlowFile(path.join(installed, 'examples', 'Failure handling.json'));
    const failureCopy = importCopy(failure, new Set(pipeline.map((n) => n.id)));
    const collector = await Collector.start();
    const parts = analysePipeline(pipeline);
    const flows = collector.tap([...pipeline, ...failureCopy], parts.taps);

    const from = nodeRed.log.mark();
    const deployedAt = Date.now();
    await nodeRed.deploy(flows, 'full');
    // The pipeline runs once on start: wait for its answers.
    const answers = await collector.waitFor(
      (all) => {
        const got = all.filter((m) => m.label.startsWith('answers') && m.at >= deployedAt);
        return got.length >= parts.queryIds.length ? got : null;
      },
      60_000,
      'the pipeline example to answer its sample queries',
    );
    for (const answer of answers) {
      const queryNode = pipeline.find((n) => n.id === answer.label.slice('answers:'.length))!;
      const asked = collector.byLabel(`questions:${queryNode.id}`);
      checkAnswers(questionsOf(queryNode, asked[asked.length - 1]?.msg), answer.msg.payload);
    }
    should(nodeRed.log.find(/Waiting for missing types/, from)).eql([]);
    should(nodeRed.log.errors(from)).eql([]);
  });
});
