/**
 * The nodes against a store that accepts connections and never answers: each
 * message ends, through done(err) (a Catch node gets it), with the store's own
 * timeout sentence after the runtime setting storeTimeout (0.5 s here, from the
 * environment variable), instead of hanging. A real Node-RED runtime (test helper).
 */
import should from 'should';
import { catchAll, helper, loadFlow, nextMessage, storeConfig, unloadFlow, type FlowNode } from './flow-helper';
import { startBlackholeServer, type Blackhole } from '../support/blackhole';

const WELL_BEFORE_DEFAULT_MS = 5_000;

function flow(store: Record<string, unknown>): FlowNode[] {
  return [
    storeConfig({ dimensions: 16, ...store }),
    { id: 'health', type: 'index-health', store: 'store', collection: 'docs', expectedCount: 0, countMode: 'atLeast', dimensions: 0, wires: [['out']] },
    { id: 'query', type: 'sample-query', store: 'store', collection: 'docs', query: '', topK: 3, failOnEmpty: true, wires: [['out']] },
    { id: 'ingest', type: 'vector-ingest', store: 'store', collection: 'docs', wires: [['out']] },
    { id: 'out', type: 'helper' },
    ...catchAll(),
  ];
}

const stores: Array<{ name: string; store: (port: number) => Record<string, unknown>; says: RegExp }> = [
  { name: 'pgvector', store: (port) => ({ backend: 'pgvector', url: `postgres://postgres@127.0.0.1:${port}/postgres` }), says: /pgvector store at 127\.0\.0\.1:\d+\/postgres did not answer within 0\.5 s/ },
  { name: 'chroma', store: (port) => ({ backend: 'chroma', url: `http://127.0.0.1:${port}` }), says: /Chroma server at http:\/\/127\.0\.0\.1:\d+ did not answer within 0\.5 s/ },
];

describe('nodes against a blackholed store (connection accepted, no answer)', function () {
  this.timeout(30_000);
  let server: Blackhole;
  let savedTimeout: string | undefined;
  before(() => {
    savedTimeout = process.env.VECTOR_PIPELINE_STORE_TIMEOUT;
    process.env.VECTOR_PIPELINE_STORE_TIMEOUT = '0.5';
  });
  after(() => {
    if (savedTimeout === undefined) delete process.env.VECTOR_PIPELINE_STORE_TIMEOUT;
    else process.env.VECTOR_PIPELINE_STORE_TIMEOUT = savedTimeout;
  });
  beforeEach(async () => {
    server = await startBlackholeServer();
  });
  afterEach(async () => {
    await unloadFlow();
    await server.stop();
  });

  for (const { name, store, says } of stores) {
    for (const [nodeId, input] of [
      ['health', {}],
      ['query', { payload: 'anything at all' }],
      ['ingest', { payload: ['one document'] }],
    ] as const) {
      it(`${name}: ${nodeId} ends with done(err) and a timeout sentence naming the store and collection`, async () => {
        await loadFlow(flow(store(server.port)));
        const started = Date.now();
        const errors = nextMessage('errors', () => true, 15_000);
        helper.getNode(nodeId).receive({ ...input });
        const err = await errors;
        should(Date.now() - started).be.below(WELL_BEFORE_DEFAULT_MS);
        should(err.error.message).match(says).and.match(/collection "docs"/).and.match(/vectorPipeline\.storeTimeout/);
        should(err.error.source.id).equal(nodeId);
      });
    }
  }
});
