import { promises as fs } from 'node:fs';
import should from 'should';
import { backendOf, catchAll, collect, delay, helper, loadFlow, nextMessage, redeploy, silence, storeConfig, unloadFlow, type FlowNode, type Msg } from './flow-helper';
import { triggererFor, waitStoreFile } from '../../nodes/shared/runtime';
import { until } from '../support/until';

/** ingest -> sensor, with the sensor's outputs on helper nodes `ready` and `progress`. */
function flow(sensor: Record<string, unknown> = {}, store: Record<string, unknown> = {}): FlowNode[] {
  return [
    storeConfig(store),
    { id: 'ingest', type: 'vector-ingest', store: 'store', collection: 'docs', wires: [['sensor']] },
    {
      id: 'sensor',
      type: 'deferrable-sensor',
      store: 'store',
      collection: 'docs',
      expectedCount: 0,
      pollInterval: 0.1,
      maxPollInterval: 0.2,
      timeout: 20,
      deferrable: true,
      wires: [['ready'], ['progress']],
      ...sensor,
    },
    { id: 'ready', type: 'helper' },
    { id: 'progress', type: 'helper' },
    ...catchAll(),
  ];
}

function docs(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `document number ${i} about vectors`);
}

describe('deferrable-sensor node', function () {
  afterEach(unloadFlow);

  it('answers at once, not deferred, when the collection is already indexed', async function () {
    await loadFlow(flow());
    // Written first, then asked a moment later: the memory store's simulated indexing
    // counts whole milliseconds, so a check in the very millisecond of the write could
    // still see it indexing.
    const firstReady = nextMessage('ready');
    helper.getNode('ingest').receive({ payload: docs(3) });
    await firstReady;
    await delay(20);
    const ready = nextMessage('ready');
    helper.getNode('sensor').receive({ collection: 'docs', expectedCount: 3 });
    const msg = await ready;
    should(msg.payload).match({ status: 'success', collection: 'docs', documentCount: 3, indexedCount: 3, expectedCount: 3, deferred: false, polls: 1 });
    should(msg.waitId).be.a.String();
  });

  it('500 messages at once on one collection share their quick checks: a few store calls, each message answered once', async function () {
    await loadFlow(flow());
    const firstReady = nextMessage('ready');
    helper.getNode('ingest').receive({ payload: docs(3) });
    await firstReady;
    await delay(20);
    const backend = backendOf();
    const calls = { exists: 0, status: 0 };
    const exists = backend.collectionExists.bind(backend);
    const status = backend.status.bind(backend);
    backend.collectionExists = (c: never) => ((calls.exists += 1), exists(c));
    backend.status = (c: never, h: never) => ((calls.status += 1), status(c, h));
    const ready = collect('ready');
    for (let i = 0; i < 500; i++) helper.getNode('sensor').receive({ collection: 'docs', expectedCount: 3, seq: i });
    await until('every message to be answered', async () => (ready.length >= 500 ? true : null), 10_000);
    should(new Set(ready.map((m) => m.seq)).size).equal(500);
    should(ready.every((m) => m.payload.status === 'success' && m.payload.deferred === false)).be.true();
    should(calls.status).be.belowOrEqual(3);
    should(calls.exists).be.belowOrEqual(3);
  });

  it('does not save the incoming payload with the wait: its messages all carry the sensor\'s own payload', async function () {
    const userDir = await loadFlow(flow({}, { indexingRate: 20, indexingDelay: 0 }));
    const firstProgress = nextMessage('progress');
    const ready = nextMessage('ready');
    helper.getNode('ingest').receive({ payload: docs(10), ticket: 'T-3' });
    const p = await firstProgress;
    const onDisk = await fs.readFile(waitStoreFile(userDir), 'utf8');
    should(onDisk).containEql(p.waitId).and.containEql('T-3');
    should(onDisk).not.containEql('"ingested"');
    should(p.payload.status).equal('indexing');
    should((await ready).payload.status).equal('success');
  });

  it('builds no progress messages when output 2 is wired to nothing (the wait still ends with its one final)', async function () {
    const unwired = flow({ wires: [['ready'], []] }, { indexingRate: 20, indexingDelay: 0 });
    await loadFlow(unwired);
    const sensor = helper.getNode('sensor');
    let sent = 0;
    const send = sensor.send.bind(sensor);
    // Output 2 messages only (the final goes out through node.send too).
    sensor.send = (msg: unknown) => (Array.isArray(msg) && msg[1] ? (sent += 1) : 0, send(msg));
    const ready = nextMessage('ready');
    helper.getNode('ingest').receive({ payload: docs(10) });
    should((await ready).payload).match({ status: 'success', deferred: true, polls: (n: number) => n > 1 });
    should(sent).equal(0);
  });

  it('defers, sends progress on output 2, then one success on output 1, all with one waitId', async function () {
    const userDir = await loadFlow(flow({}, { indexingRate: 40, indexingDelay: 0 }));
    const progress = collect('progress');
    const ready = nextMessage('ready');
    const firstProgress = nextMessage('progress');
    helper.getNode('ingest').receive({ payload: docs(20), ticket: 'T-1' });

    // Durable before the first progress message: the wait is already on disk.
    const p = await firstProgress;
    const onDisk = await fs.readFile(waitStoreFile(userDir), 'utf8');
    should(onDisk).containEql(p.waitId);

    const msg = await ready;
    should(msg.payload).match({ status: 'success', collection: 'docs', documentCount: 20, indexedCount: 20, expectedCount: 20, deferred: true });
    should(msg.payload.elapsedMs).be.above(0);
    should(msg.ticket).equal('T-1');
    should(progress.length).be.above(0);
    for (const m of progress) {
      should(m.waitId).equal(msg.waitId);
      should(m.payload).have.properties(['status', 'collection', 'indexedCount', 'expectedCount', 'progress', 'etaSeconds', 'elapsedMs', 'polls']);
      should(m.payload.status).equal('indexing');
      should(m.ticket).equal('T-1');
    }
  });

  it('resumes a pending wait after a redeploy: one final message, original start time', async function () {
    const slow = flow({}, { indexingRate: 10, indexingDelay: 0 });
    await loadFlow(slow);
    const firstProgress = nextMessage('progress');
    const startedAt = Date.now();
    helper.getNode('ingest').receive({ payload: docs(15), ticket: 'T-2' });
    const p = await firstProgress;
    await redeploy(slow);
    const finals = collect('ready');
    const ready = nextMessage('ready');
    const msg = await ready;
    await delay(300);
    should(finals).have.length(1);
    should(msg.waitId).equal(p.waitId);
    should(msg.ticket).equal('T-2');
    should(msg.payload).match({ status: 'success', deferred: true, documentCount: 15 });
    should(msg.payload.elapsedMs).be.aboveOrEqual(Date.now() - startedAt - 400);
  });

  it('drops the waits of a deleted sensor node', async function () {
    const slow = flow({}, { indexingRate: 10, indexingDelay: 0 });
    const userDir = await loadFlow(slow);
    const firstProgress = nextMessage('progress');
    helper.getNode('ingest').receive({ payload: docs(10) });
    await firstProgress;
    await redeploy(slow.filter((n) => n.id !== 'sensor'));
    // The same runtime-wide triggerer the sensor used (keyed by user directory).
    const triggerer = await triggererFor({ settings: { userDir }, log: helper._RED.log } as never);
    await delay(100); // flows:started has run by now
    should(triggerer.pending('sensor')).equal(0);
  });

  it('fails at once, without waiting, for an unknown collection', async function () {
    await loadFlow(flow({ timeout: 3600 }));
    const errors = nextMessage('errors');
    helper.getNode('sensor').receive({ collection: 'no-such-collection', payload: 'x' });
    const err: Msg = await errors;
    should(err.payload).match({ status: 'error', collection: 'no-such-collection' });
    should(err.error.message).match(/no-such-collection/).and.match(/does not exist/);
  });

  it('times out with status "timeout" and says how far indexing got', async function () {
    await loadFlow(flow({ timeout: 0.6 }, { indexingRate: 5, indexingDelay: 0 }));
    const errors = nextMessage('errors');
    helper.getNode('ingest').receive({ payload: docs(50) });
    const err = await errors;
    should(err.payload).match({ status: 'timeout', collection: 'docs' });
    should(err.payload.elapsedMs).be.aboveOrEqual(600);
    should(err.payload.message).match(/docs/);
    should(err.error.message).equal(`Error: ${err.payload.message}`);
    should(err.payload).have.property('lastProgress');
  });

  it('reports a failed indexing with its reason (msg.simulate)', async function () {
    await loadFlow(flow({}, { indexingRate: 20, indexingDelay: 0.2 }));
    const errors = nextMessage('errors');
    helper.getNode('ingest').receive({ payload: docs(10), simulate: { fail: 'disk full (simulated)' } });
    const err = await errors;
    should(err.payload).match({ status: 'failed', collection: 'docs' });
    should(err.error.message).match(/disk full \(simulated\)/);
  });

  it('waits for msg.expectedCount, not just "ready"', async function () {
    await loadFlow(flow({ timeout: 0.5 }));
    const ingest = nextMessage('errors');
    // The store holds 2 documents, the message expects 5: never satisfied.
    helper.getNode('ingest').receive({ payload: docs(2) });
    await delay(50);
    helper.getNode('sensor').receive({ collection: 'docs', expectedCount: 5 });
    const err = await ingest;
    should(err.payload).match({ status: 'timeout' });
  });

  it('msg.reset cancels pending waits with no output', async function () {
    await loadFlow(flow({}, { indexingRate: 2, indexingDelay: 0 }));
    const firstProgress = nextMessage('progress');
    helper.getNode('ingest').receive({ payload: docs(20) });
    await firstProgress;
    helper.getNode('sensor').receive({ reset: true });
    await Promise.all([silence('ready', 500), silence('errors', 500)]);
  });

  it('polls in-node without persisting when deferrable is off', async function () {
    const userDir = await loadFlow(flow({ deferrable: false }, { indexingRate: 50, indexingDelay: 0 }));
    const ready = nextMessage('ready');
    helper.getNode('ingest').receive({ payload: docs(10) });
    const msg = await ready;
    // Not handed to the triggerer: deferred is false, and nothing is on disk.
    should(msg.payload).match({ status: 'success', deferred: false });
    should(msg.payload.polls).be.above(1);
    const file = await fs.readFile(waitStoreFile(userDir), 'utf8').catch(() => '');
    should(file).not.containEql(msg.waitId);
  });

  const badConfigs: Array<[string, Record<string, unknown>, RegExp]> = [
    ['a negative timeout', { timeout: -1 }, /"Timeout" must be/],
    ['maxPollInterval below pollInterval', { pollInterval: 10, maxPollInterval: 1 }, /"Back off to" must be at least "Poll every"/],
  ];
  for (const [what, props, message] of badConfigs) {
    it(`rejects ${what} with a clear error`, async function () {
      await loadFlow(flow(props));
      const errors = nextMessage('errors');
      helper.getNode('sensor').receive({ payload: 'x' });
      const err = await errors;
      should(err.error.message).match(message);
    });
  }

  it('rejects a bad msg.expectedCount', async function () {
    await loadFlow(flow());
    const errors = nextMessage('errors');
    helper.getNode('sensor').receive({ collection: 'docs', expectedCount: 'lots' });
    const err = await errors;
    should(err.error.message).match(/msg\.expectedCount/);
  });
});
