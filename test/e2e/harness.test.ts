// Proves the e2e harness itself with core nodes only: a real Node-RED starts on a temp
// user dir, deploys, injects, and the collector records what the flow sends, including
// errors seen by a catch node.
import should from 'should';
import { cleanupAll, Collector, startNodeRed, type FlowNode, type NodeRed } from './harness';

describe('e2e: harness (core nodes only)', function () {
  this.timeout(60_000);
  let nodeRed: NodeRed;
  let collector: Collector;

  before(async () => {
    collector = await Collector.start();
    nodeRed = await startNodeRed({ packageDir: null });
  });
  after(cleanupAll);

  it('deploys a flow, injects, and collects normal and caught messages', async () => {
    const flows: FlowNode[] = [
      { id: 'tab', type: 'tab', label: 'harness' },
      {
        id: 'inj', type: 'inject', z: 'tab', props: [{ p: 'payload' }, { p: 'topic', vt: 'str' }, { p: 'ticket', v: 'T-1', vt: 'str' }],
        x: 100, y: 40, repeat: '', crontab: '', once: false, onceDelay: 0.1, topic: 'hello', payload: '42', payloadType: 'num', wires: [['fn']],
      },
      {
        id: 'fn', type: 'function', z: 'tab', x: 300, y: 40, outputs: 1,
        func: "if (msg.payload === 42) { node.error('boom: the answer', msg); return null; }\nreturn msg;",
        wires: [[]],
      },
      { id: 'catch', type: 'catch', z: 'tab', scope: null, uncaught: false, x: 100, y: 120, wires: [[]] },
    ];
    const tapped = collector.tap(flows, [
      { label: 'injected', from: 'inj' },
      { label: 'caught', from: 'catch' },
    ]);
    await nodeRed.deploy(tapped);
    const deployed = await nodeRed.getFlows();
    should(deployed.map((n) => n.id)).containDeep(['inj', 'fn', 'catch']);

    await nodeRed.inject('inj');
    const caught = await collector.waitFor((all) => all.find((m) => m.label === 'caught'), 10_000, 'the caught error');
    should(caught.msg.error.message).equal('boom: the answer');
    should(caught.msg.ticket).equal('T-1');
    const injected = await collector.waitFor(() => (collector.byLabel('injected').length > 0 ? collector.byLabel('injected') : null), 10_000);
    should(injected).have.length(1);
    should(injected[0].msg).containEql({ payload: 42, topic: 'hello', ticket: 'T-1' });
    should(injected[0].msg).not.have.property('req');

    const nodes = await nodeRed.getNodes();
    should(nodes.some((set) => set.types.includes('inject'))).be.true();
    should(nodeRed.log.find('Started flows').length).be.above(0);
    should(nodeRed.log.errors().filter((line) => !line.includes('boom: the answer'))).eql([]);
  });

  it('stops with SIGTERM and restarts on the same user dir with the saved flows', async () => {
    await nodeRed.stop();
    const restarted = await startNodeRed({ userDir: nodeRed.userDir, packageDir: null });
    const flows = await restarted.getFlows();
    should(flows.map((n) => n.id)).containDeep(['inj', 'fn', 'catch']);
    await restarted.kill9();
    should((await restarted.exited).signal).equal('SIGKILL');
  });
});
