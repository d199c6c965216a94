/**
 * The sensor under the faults of issue 7, in a real Node-RED runtime: msg.reset
 * variants and the status after, disabled nodes and flows, a deleted config
 * node, closing with messages in flight, the pending-waits cap, and a message
 * that cannot be copied.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import should from 'should';
import { VectorStoreError } from '../../lib/errors';
import { backendOf, catchAll, collect, delay, helper, loadFlow, nextMessage, redeploy, silence, storeConfig, unloadFlow, type FlowNode, type Msg } from './flow-helper';
import { triggererFor, waitStoreFile } from '../../nodes/shared/runtime';
import { FaultProxy } from '../support/fault-proxy';
import { startPgliteServer } from '../support/pglite-server';
import { until } from '../support/until';

function flow(sensor: Record<string, unknown> = {}, store: Record<string, unknown> = {}, extra: FlowNode[] = []): FlowNode[] {
  return [
    storeConfig(store),
    { id: 'ingest', type: 'vector-ingest', store: 'store', collection: 'docs', wires: [['ingested']] },
    { id: 'ingested', type: 'helper' },
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
    ...extra,
  ];
}

const docs = (n: number, about = 'vectors'): string[] => Array.from({ length: n }, (_, i) => `document number ${i} about ${about}`);

async function ingest(payload: unknown, collection = 'docs'): Promise<void> {
  const ingested = nextMessage('ingested');
  helper.getNode('ingest').receive({ payload, collection });
  await ingested;
}

async function pendingOf(nodeId = 'sensor'): Promise<number> {
  const triggerer = await triggererFor({ settings: { userDir: helper.settings().userDir }, log: helper._RED.log } as never);
  return triggerer.pending(nodeId);
}

/** Every status the node shows from now on. */
function statuses(nodeId = 'sensor'): Array<{ fill?: string; text?: string }> {
  const seen: Array<{ fill?: string; text?: string }> = [];
  helper.getNode(nodeId).on('call:status', (call: { args: Array<{ fill?: string; text?: string }> }) => seen.push(call.args[0]));
  return seen;
}

describe('deferrable-sensor under faults', function () {
  this.timeout(30_000);
  afterEach(unloadFlow);

  describe('msg.reset', () => {
    /** Three pending waits (2 on "docs", 1 on "other") that would end within about 2 s. */
    async function threeWaits(): Promise<void> {
      await loadFlow(flow({}, { indexingRate: 20, indexingDelay: 0 }));
      await ingest(docs(40));
      await ingest(docs(40, 'other things'), 'other');
      const sensor = helper.getNode('sensor');
      const progress = nextMessage('progress');
      sensor.receive({ collection: 'docs', expectedCount: 40 });
      sensor.receive({ collection: 'docs', expectedCount: 40 });
      sensor.receive({ collection: 'other', expectedCount: 40 });
      await progress;
      await delay(100);
      should(await pendingOf()).equal(3);
    }

    it('cancels every pending wait: no final follows, the status and the log say how many', async function () {
      await threeWaits();
      const shown = statuses();
      const logged: string[] = [];
      helper.getNode('sensor').on('call:log', (call: { args: unknown[] }) => logged.push(String(call.args[0])));
      helper.getNode('sensor').receive({ reset: true });
      await Promise.all([silence('ready', 3000), silence('errors', 3000)]);
      should(await pendingOf()).equal(0);
      should(logged.some((l) => /cancelled 3 pending waits/.test(l))).be.true();
      // The test helper has no message catalog: the status shows its key (the e2e tests see the text).
      const last = shown[shown.length - 1];
      should(last.text).equal('deferrable-sensor.status.reset');
      should(last.fill).equal('green');
    });

    it('with a string msg.collection, cancels only that collection\'s waits', async function () {
      await threeWaits();
      const finals = collect('ready');
      helper.getNode('sensor').receive({ reset: true, collection: 'other' });
      await delay(100);
      should(await pendingOf()).equal(2);
      await delay(3000);
      should(finals.map((m: Msg) => m.payload.collection)).eql(['docs', 'docs']);
    });

    for (const [what, collection] of [
      ['a number', 123],
      ['an array', ['docs']],
    ] as Array<[string, unknown]>) {
      it(`with ${what} as msg.collection, cancels nothing and says why`, async function () {
        await threeWaits();
        const errors = nextMessage('errors');
        helper.getNode('sensor').receive({ reset: true, collection });
        const err = await errors;
        should(err.error.message).match(/msg\.collection must be a collection name/).and.match(/nothing was cancelled/);
        should(await pendingOf()).equal(3);
      });
    }

    for (const value of [null, false]) {
      it(`msg.reset = ${String(value)} is not a reset`, async function () {
        await threeWaits();
        helper.getNode('sensor').receive({ reset: value, collection: 'docs', expectedCount: 40 });
        // A new wait (once its quick check has answered: it may wait out the quick checks' gap), nothing cancelled.
        await until('the fourth wait', async () => (await pendingOf()) === 4, 5000);
      });
    }
  });

  it('a waits file that cannot be read (a directory) does not stop Node-RED: the sensor says what is wrong', async function () {
    await loadFlow(flow({}, { indexingRate: 2, indexingDelay: 0 }), {}, {
      prepare: async (userDir) => {
        await fs.mkdir(path.join(waitStoreFile(userDir), 'oops'), { recursive: true });
      },
    });
    await ingest(docs(20));
    const errors = nextMessage('errors');
    helper.getNode('sensor').receive({ collection: 'docs', expectedCount: 20 });
    const err = await errors;
    should(err.error.message).match(/waits\.jsonl/).and.match(/directory/);
    should(err.error.message).not.match(/stopped before/);
  });

  it('a message that arrives while the store refuses connections is deferred, not failed, and ends once the store is back', async function () {
    const server = await startPgliteServer({ maxConnections: 8 });
    const proxy = await FaultProxy.start({ port: server.port });
    try {
      await loadFlow(flow({ timeout: 20 }, { backend: 'pgvector', url: `postgres://postgres@127.0.0.1:${proxy.port}/postgres`, dimensions: 16 }));
      await ingest(docs(5));
      await proxy.setMode('refuse');
      const ready = nextMessage('ready', () => true, 15_000);
      const failed = collect('errors');
      helper.getNode('sensor').receive({ collection: 'docs', expectedCount: 5, ticket: 'T-8' });
      await delay(1500);
      should(failed).have.length(0);
      await proxy.setMode('pass');
      const msg = await ready;
      should(msg.payload).match({ status: 'success', deferred: true, indexedCount: 5 });
      should(msg.ticket).equal('T-8');
    } finally {
      await helper.unload();
      await proxy.stop();
      await server.stop();
    }
  });

  it('a disabled sensor keeps its waits dormant, and they resume when it is enabled again', async function () {
    const slow = flow({}, { indexingRate: 10, indexingDelay: 0 });
    await loadFlow(slow);
    await ingest(docs(20));
    const progress = nextMessage('progress');
    helper.getNode('sensor').receive({ collection: 'docs', expectedCount: 20, ticket: 'T-7' });
    const p = await progress;
    await redeploy(slow.map((n) => (n.id === 'sensor' ? { ...n, d: true } : n)));
    await delay(300); // flows:started has run: a deleted node would have lost its waits here
    should(await pendingOf()).equal(1);
    await redeploy(slow);
    const final = await nextMessage('ready');
    should(final.waitId).equal(p.waitId);
    should(final.ticket).equal('T-7');
  });

  it('a disabled flow (tab) keeps its waits too', async function () {
    const tab = (disabled: boolean): FlowNode => ({ id: 'tab', type: 'tab', label: 'waits', disabled });
    const slow = (disabled: boolean) => flow({}, { indexingRate: 10, indexingDelay: 0 }, [tab(disabled)]).map((n) => (n.type === 'tab' || n.type === 'vector-store' ? n : { ...n, z: 'tab' }));
    await loadFlow(slow(false));
    await ingest(docs(20));
    const progress = nextMessage('progress');
    helper.getNode('sensor').receive({ collection: 'docs', expectedCount: 20 });
    const p = await progress;
    await redeploy(slow(true));
    await delay(300);
    should(await pendingOf()).equal(1);
    await redeploy(slow(false));
    const final = await nextMessage('ready');
    should(final.waitId).equal(p.waitId);
  });

  it('a wait whose vector-store config node was deleted ends at its deadline, saying so', async function () {
    const slow = flow({ timeout: 2 }, { indexingRate: 2, indexingDelay: 0 });
    await loadFlow(slow);
    await ingest(docs(20));
    const progress = nextMessage('progress');
    helper.getNode('sensor').receive({ collection: 'docs', expectedCount: 20 });
    await progress;
    const started = Date.now();
    await redeploy(slow.filter((n) => n.id !== 'store' && n.id !== 'ingest'));
    const err = await nextMessage('errors', () => true, 10_000);
    should(err.payload).match({ status: 'timeout', code: 'STORE_MISSING', collection: 'docs' });
    should(err.error.message).match(/vector-store configuration \(store\) is missing/);
    should(Date.now() - started).be.below(5000);
  });

  it('closing with waits in flight completes their messages (done), and the waits stay pending', async function () {
    await loadFlow(flow({}, { indexingRate: 5, indexingDelay: 0 }, [{ id: 'on-done', type: 'complete', scope: ['sensor'], uncaught: false, wires: [['completed']] }, { id: 'completed', type: 'helper' }]));
    await ingest(docs(30));
    const completed = collect('completed');
    const progress = nextMessage('progress');
    helper.getNode('sensor').receive({ collection: 'docs', expectedCount: 30, ticket: 'T-5' });
    await progress;
    should(completed).have.length(0);
    await helper.getNode('sensor').close(false);
    await delay(100);
    should(completed).have.length(1);
    should(completed[0].ticket).equal('T-5');
    should(await pendingOf()).equal(1);
  });

  it('the in-node (deferrable: false) poller does not start once the node is closed', async function () {
    await loadFlow(flow({ deferrable: false }, { indexingRate: 5, indexingDelay: 0 }));
    await ingest(docs(30));
    const backend = backendOf();
    // Slow the existence check so that the node closes while the message is in it.
    const exists = backend.collectionExists.bind(backend);
    backend.collectionExists = async (c: string) => {
      await delay(300);
      return exists(c);
    };
    let statusCalls = 0;
    const status = backend.status.bind(backend);
    backend.status = (c: string) => {
      statusCalls += 1;
      return status(c);
    };
    helper.getNode('sensor').receive({ collection: 'docs', expectedCount: 30 });
    await delay(50);
    await helper.getNode('sensor').close(false);
    await delay(1500);
    should(statusCalls).equal(0);
  });

  it('the in-node poller logs each outage of the store once: a second outage after a recovery is logged again', async function () {
    await loadFlow(flow({ deferrable: false, timeout: 20 }, { indexingRate: 4, indexingDelay: 0 }));
    await ingest(docs(40));
    const backend = backendOf();
    const status = backend.status.bind(backend);
    let down = false;
    backend.status = (c: string, hint?: unknown) => (down ? Promise.reject(new VectorStoreError('UNAVAILABLE', 'the store is down (test double around the real store)')) : status(c, hint as never));
    const warned: string[] = [];
    helper.getNode('sensor').on('call:warn', (call: { args: unknown[] }) => warned.push(String(call.args[0])));
    const progress = nextMessage('progress');
    helper.getNode('sensor').receive({ collection: 'docs', expectedCount: 40 });
    await progress;
    for (let outage = 0; outage < 2; outage++) {
      down = true;
      await delay(700);
      down = false;
      await delay(700);
    }
    should(warned.filter((w) => /the store is down/.test(w))).have.length(2);
  });

  it('rejects waits beyond the pending-waits cap with a clear error (runtime setting)', async function () {
    process.env.VECTOR_PIPELINE_MAX_PENDING_WAITS = '3';
    try {
      await loadFlow(flow({}, { indexingRate: 2, indexingDelay: 0 }));
    } finally {
      delete process.env.VECTOR_PIPELINE_MAX_PENDING_WAITS;
    }
    await ingest(docs(20));
    const sensor = helper.getNode('sensor');
    const rejected = collect('errors');
    // A burst up to the limit is taken whole (each wait counted once, also while it is being saved).
    for (let i = 0; i < 3; i++) sensor.receive({ collection: 'docs', expectedCount: 20 });
    await delay(300);
    should(rejected).have.length(0);
    should(await pendingOf()).equal(3);
    const errors = nextMessage('errors');
    sensor.receive({ collection: 'docs', expectedCount: 20 });
    const err = await errors;
    should(err.payload).match({ status: 'error', code: 'LIMIT' });
    should(err.error.message).match(/already has 3 pending waits/).and.match(/maxPendingWaitsPerSensor/);
    should(await pendingOf()).equal(3);
  });

  it('a resumed wait whose message is nested 3,000 levels deep delivers its final with that field whole', async function () {
    const slow = flow({}, { indexingRate: 10, indexingDelay: 0 });
    await loadFlow(slow);
    await ingest(docs(15));
    let deep: Record<string, unknown> = { leaf: true };
    for (let i = 0; i < 3000; i++) deep = { deeper: deep };
    const progress = nextMessage('progress');
    helper.getNode('sensor').receive({ collection: 'docs', expectedCount: 15, deep, ticket: 'T-3' });
    await progress;
    await redeploy(slow);
    const warned: string[] = [];
    helper.getNode('sensor').on('call:warn', (call: { args: unknown[] }) => warned.push(String(call.args[0])));
    const final = await nextMessage('ready');
    should(final.ticket).equal('T-3');
    should(final.payload).match({ status: 'success' });
    let depth = 0;
    for (let at = final.deep; at?.deeper; at = at.deeper) depth += 1;
    should(depth).equal(3000);
    should(warned.filter((w) => /could not be copied/.test(w))).eql([]);
  });
});
