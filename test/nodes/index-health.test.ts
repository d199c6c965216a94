import should from 'should';
import { catchAll, delay, helper, loadFlow, nextMessage, storeConfig, unloadFlow, type FlowNode } from './flow-helper';

function flow(health: Record<string, unknown> = {}, store: Record<string, unknown> = {}): FlowNode[] {
  return [
    storeConfig(store),
    { id: 'ingest', type: 'vector-ingest', store: 'store', collection: 'docs', wires: [['ingested']] },
    { id: 'ingested', type: 'helper' },
    { id: 'health', type: 'index-health', store: 'store', collection: 'docs', expectedCount: 0, countMode: 'atLeast', dimensions: 0, wires: [['out']], ...health },
    { id: 'out', type: 'helper' },
    ...catchAll(),
  ];
}

async function ingest(texts: string[]): Promise<void> {
  const done = nextMessage('ingested');
  helper.getNode('ingest').receive({ payload: texts });
  await done;
  // The memory store's simulated indexing counts whole milliseconds: a check in the very
  // millisecond of the write (a busy machine) could still see the last document indexing.
  await delay(20);
}

describe('index-health node', function () {
  afterEach(unloadFlow);

  it('reports a healthy collection with its statistics and checks', async function () {
    await loadFlow(flow({ dimensions: 64 }));
    await ingest(['alpha document', 'beta document', 'gamma document']);
    const out = nextMessage('out');
    helper.getNode('health').receive({ expectedCount: 3 });
    const msg = await out;
    should(msg.payload).match({
      collection: 'docs',
      healthy: true,
      documentCount: 3,
      indexedCount: 3,
      dimensions: 64,
      metric: 'cosine',
      // The memory store's default: every vector scanned.
      search: 'exact',
      queryable: true,
    });
    should(msg.payload.indexType).be.a.String();
    should(msg.payload.queryLatencyMs).be.a.Number();
    const names = msg.payload.checks.map((c: { name: string }) => c.name);
    should(names).containDeep(['exists', 'indexed', 'count', 'dimensions', 'queryable']);
    for (const check of msg.payload.checks) should(check.ok).be.true();
  });

  it('fails through done(err) with healthy: false when the exact count differs', async function () {
    await loadFlow(flow({ expectedCount: 5, countMode: 'exact' }));
    await ingest(['one doc', 'two doc']);
    const errors = nextMessage('errors');
    helper.getNode('health').receive({});
    const err = await errors;
    should(err.payload).match({ healthy: false, documentCount: 2 });
    should(err.error.message).match(/count/).and.match(/docs/);
  });

  it('flags a dimension mismatch', async function () {
    await loadFlow(flow({ dimensions: 384 }));
    await ingest(['one doc']);
    const errors = nextMessage('errors');
    helper.getNode('health').receive({});
    const err = await errors;
    should(err.payload.healthy).be.false();
    should(err.error.message).match(/384/);
  });

  it('flags a collection still indexing', async function () {
    await loadFlow(flow({}, { indexingRate: 1, indexingDelay: 5 }));
    await ingest(['slow doc']);
    const errors = nextMessage('errors');
    helper.getNode('health').receive({});
    const err = await errors;
    should(err.payload.healthy).be.false();
    should(err.error.message).match(/indexed/);
  });

  it('reports a missing collection as unhealthy', async function () {
    await loadFlow(flow());
    const errors = nextMessage('errors');
    helper.getNode('health').receive({ collection: 'missing' });
    const err = await errors;
    should(err.payload).match({ collection: 'missing', healthy: false });
    should(err.error.message).match(/does not exist/);
  });
});
