// The "Failure handling" example in a real node-red: each of its three failures (a
// missing collection, a simulated indexing failure, a timeout) reaches its own Catch
// node once, with a message that says what happened. And credentials given to a
// vector-store stay out of the flow file and the admin API.
import should from 'should';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { cleanupAll, Collector, readFlowFile, repoRoot, startNodeRed, type FlowNode } from './harness';
import { checkTeaching } from './pipeline-checks';

const EXAMPLE = path.join(repoRoot, 'examples', 'Failure handling.json');

describe('e2e: example "Failure handling"', function () {
  this.timeout(90_000);
  after(cleanupAll);

  it('teaches: a comment saying what to watch, one-line errors on the console, answers beside their questions, 1,280 px wide', async () => {
    checkTeaching(await readFlowFile(EXAMPLE));
  });

  it('sends a missing collection, a failed indexing and a timeout to their Catch nodes, once each', async () => {
    const example = await readFlowFile(EXAMPLE);
    const collector = await Collector.start();
    const cases = ['missing', 'simulate', 'timeout'];
    const flows = collector.tap(
      example,
      cases.flatMap((c) => [
        { label: `caught:${c}`, from: `failure-${c}-catch` },
        { label: `ready:${c}`, from: `failure-${c}-sensor` },
      ]),
    );
    const nodeRed = await startNodeRed({ flows });
    for (const c of cases) await nodeRed.inject(`failure-${c}-inject`);

    const caught = await collector.waitFor(
      (all) => (cases.every((c) => all.some((m) => m.label === `caught:${c}`)) ? all : null),
      60_000,
      'a caught error from each of the three cases',
    );
    const only = (label: string) => caught.filter((m) => m.label === label);

    const [missing] = only('caught:missing');
    should(missing.msg.payload).match({ status: 'error', collection: 'no-such-collection' });
    should(missing.msg.error.message).match(/no-such-collection/).and.match(/does not exist/);
    should(missing.msg.payload.elapsedMs).be.below(5000); // at once, not after the 3600 s timeout

    const [failed] = only('caught:simulate');
    should(failed.msg.payload).match({ status: 'failed', collection: 'failing-docs' });
    should(failed.msg.error.message).match(/disk full \(simulated\)/);

    const [timedOut] = only('caught:timeout');
    should(timedOut.msg.payload).match({ status: 'timeout', collection: 'slow-docs' });
    should(timedOut.msg.payload.elapsedMs).be.aboveOrEqual(5000);
    should(timedOut.msg.error.message).match(/slow-docs/).and.match(/of 100 documents indexed/);

    // Once each, and nothing on the ready outputs.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    for (const c of cases) {
      should(collector.byLabel(`caught:${c}`)).have.length(1);
      should(collector.byLabel(`ready:${c}`)).have.length(0);
    }

    // Each failure is one line in the debug sidebar and on the console (the debug nodes print
    // msg.error.message, not the whole message with its stack).
    const errorDebugs = { missing: 'unknown collection error', simulate: 'indexing error', timeout: 'timeout error' };
    for (const [c, name] of Object.entries(errorDebugs)) {
      const lines = nodeRed.log.find(`[debug:${name}]`);
      should(lines).have.length(1, `the "${name}" debug node should log one line:\n${nodeRed.log.text()}`);
      should(lines[0]).endWith(`[debug:${name}] ${only(`caught:${c}`)[0].msg.error.message}`);
    }
  });

  it('keeps vector-store credentials out of flows.json and the admin API', async () => {
    const secret = 'sk-e2e-secret-do-not-leak';
    const flows: FlowNode[] = [
      { id: 'tab', type: 'tab', label: 'credentials' },
      {
        id: 'store',
        type: 'vector-store',
        backend: 'memory',
        embedder: 'openai',
        embedUrl: 'http://127.0.0.1:9/v1',
        embedModel: 'test',
        credentials: { embedApiKey: secret, apiKey: secret, password: secret },
      },
    ];
    const nodeRed = await startNodeRed();
    await nodeRed.deploy(flows, 'full');
    const onDisk = await fsp.readFile(path.join(nodeRed.userDir, 'flows.json'), 'utf8');
    should(onDisk).not.containEql(secret);
    should(JSON.stringify(await nodeRed.getFlows())).not.containEql(secret);
    const credFile = await fsp.readFile(path.join(nodeRed.userDir, 'flows_cred.json'), 'utf8');
    should(credFile).not.containEql(secret); // encrypted
  });
});
