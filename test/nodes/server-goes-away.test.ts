/**
 * A real store that goes away in the middle of a wait: the sensor retries the
 * transient errors until the wait's timeout (never giving up early unless told
 * to), then ends the wait once, with status "timeout" and a message naming the
 * store and the collection.
 */
import should from 'should';
import { catchAll, collect, delay, helper, loadFlow, nextMessage, storeConfig, unloadFlow, type FlowNode } from './flow-helper';
import { startChromaServer } from '../support/chroma-server';
import { startPgliteServer } from '../support/pglite-server';

function flow(store: Record<string, unknown>): FlowNode[] {
  return [
    storeConfig({ dimensions: 16, ...store }),
    { id: 'ingest', type: 'vector-ingest', store: 'store', collection: 'going_away', wires: [['ingested']] },
    { id: 'ingested', type: 'helper' },
    // Expects more documents than will ever arrive, so it keeps polling.
    { id: 'sensor', type: 'deferrable-sensor', store: 'store', collection: 'going_away', expectedCount: 1000, pollInterval: 0.1, maxPollInterval: 0.2, timeout: 6, wires: [['ready'], ['progress']] },
    { id: 'ready', type: 'helper' },
    { id: 'progress', type: 'helper' },
    ...catchAll(),
  ];
}

const stores: Array<{ name: string; start(): Promise<{ store: Record<string, unknown>; stop(): Promise<void> }> }> = [
  {
    name: 'chroma',
    async start() {
      const server = await startChromaServer();
      return { store: { backend: 'chroma', url: server.url }, stop: () => server.stop() };
    },
  },
  {
    name: 'pgvector',
    async start() {
      const server = await startPgliteServer();
      return { store: { backend: 'pgvector', url: server.url }, stop: () => server.stop() };
    },
  },
];

describe('deferrable-sensor when the store goes away mid-wait', function () {
  this.timeout(60_000);
  afterEach(unloadFlow);

  for (const { name, start } of stores) {
    it(`${name}: retries until the timeout, then ends the wait once with status "timeout" saying the store did not answer`, async function () {
      const server = await start();
      try {
        await loadFlow(flow(server.store));
        const ingested = nextMessage('ingested');
        helper.getNode('ingest').receive({ payload: ['one document', 'two documents', 'three documents'] });
        await ingested;
        // Collectors first: Node-RED skips the next input listener when one removes itself.
        const allErrors = collect('errors');
        const allReady = collect('ready');
        const progress = nextMessage('progress');
        const errors = nextMessage('errors', () => true, 45_000);
        helper.getNode('sensor').receive({ collection: 'going_away', ticket: 'T-9' });
        await progress;
        const retrying = nextMessage('progress', (m) => typeof m.payload.detail === 'string' && /did not answer/.test(m.payload.detail), 20_000);
        await server.stop();
        // Output 2 says why there is no news while the store is gone.
        const retry = await retrying;
        should(retry.payload).match({ status: 'indexing', collection: 'going_away', etaSeconds: null });
        should(retry.ticket).equal('T-9');
        const err = await errors;
        should(err.payload).match({ status: 'timeout', code: 'STORE_NOT_ANSWERING', collection: 'going_away' });
        should(err.payload.polls).be.above(5);
        should(err.payload.elapsedMs).be.aboveOrEqual(6000);
        should(err.payload.message).match(/did not answer/);
        should(err.ticket).equal('T-9');
        should(err.error.message).match(/going_away/).and.match(new RegExp(name, 'i'));
        await delay(500);
        // Once: nothing else reached the Catch node or output 1.
        should(allErrors).have.length(1);
        should(allReady).have.length(0);
      } finally {
        await server.stop();
      }
    });
  }
});
