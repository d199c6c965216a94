import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import should from 'should';
import { catchAll, helper, loadFlow, nextMessage, redeploy, storeConfig, unloadFlow, type FlowNode } from './flow-helper';
import { startEmbeddingStub } from '../support/embedding-stub';
import { until } from '../support/until';

const SECRET = 'sk-test-never-show-me';

/** A local OpenAI-compatible /embeddings endpoint that records the auth header. */
function startEmbeddingServer(status = 200): Promise<{ url: string; headers: string[]; close(): Promise<void> }> {
  const headers: string[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      headers.push(String(req.headers.authorization));
      if (status !== 200) {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: 'Incorrect API key provided' } }));
        return;
      }
      const { input } = JSON.parse(body) as { input: string[] };
      const data = input.map((text, index) => ({ index, embedding: [text.length, 1, 0, 0] }));
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ data, model: 'test' }));
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${port}/v1`,
        headers,
        close: () => new Promise((r) => server.close(() => r())),
      });
    });
  });
}

function flow(store: Record<string, unknown>): FlowNode[] {
  return [
    storeConfig(store),
    { id: 'ingest', type: 'vector-ingest', store: 'store', collection: 'docs', wires: [['out']] },
    { id: 'out', type: 'helper' },
    ...catchAll(),
  ];
}

describe('vector-store config node', function () {
  afterEach(unloadFlow);

  it('warns once, naming the store, when the embedded memory store is used while waits and jobs are shared through PostgreSQL', async function () {
    // Nothing listens on port 1: the job store is never reached by this flow (a direct ingest).
    const settings = { vectorPipeline: { jobStore: { type: 'postgres', url: 'postgres://nodered@127.0.0.1:1/flows' } } };
    await loadFlow(flow({ name: 'local docs' }), {}, { settings });
    for (const payload of [['one'], ['two']]) {
      const out = nextMessage('out');
      helper.getNode('ingest').receive({ payload });
      await out;
    }
    const warnings = helper.log().args.map((a: unknown[]) => String((a[0] as { msg?: unknown })?.msg)).filter((m: string) => /memory store/.test(m));
    should(warnings).have.length(1);
    should(warnings[0]).match(/"local docs"/).and.match(/each Node-RED instance keeps its own/).and.match(/pgvector, Chroma or a LanceDB directory/);
  });

  it('uses the embedApiKey credential for an OpenAI-compatible embedder, and never shows it', async function () {
    const server = await startEmbeddingServer();
    try {
      await loadFlow(flow({ embedder: 'openai', embedUrl: server.url, embedModel: 'test-model' }), { store: { embedApiKey: SECRET } });
      const out = nextMessage('out');
      helper.getNode('ingest').receive({ payload: ['one', 'three'] });
      const msg = await out;
      should(msg.payload).match({ ingested: 2, totalCount: 2 });
      should(server.headers[0]).equal(`Bearer ${SECRET}`);
      should(JSON.stringify(msg)).not.containEql(SECRET);
    } finally {
      await server.close();
    }
  });

  it('reports a rejected key without revealing it', async function () {
    const server = await startEmbeddingServer(401);
    try {
      await loadFlow(flow({ embedder: 'openai', embedUrl: server.url, embedModel: 'test-model' }), { store: { embedApiKey: SECRET } });
      const errors = nextMessage('errors');
      helper.getNode('ingest').receive({ payload: ['one'] });
      const err = await errors;
      should(err.error.message).match(/embedApiKey/);
      should(JSON.stringify(err)).not.containEql(SECRET);
    } finally {
      await server.close();
    }
  });

  for (const [backend, field, label] of [
    ['pgvector', 'password', 'Password'],
    ['chroma', 'apiKey', 'API key'],
  ] as const) {
    it(`refuses the ${label} credential when it has a line break: a clear error naming the field, never the value, and no connection`, async function () {
      const secret = `${SECRET}\n`;
      // A port nothing listens on: the check must come before any connection attempt.
      const url = backend === 'pgvector' ? 'postgres://postgres@127.0.0.1:1/postgres' : 'http://127.0.0.1:1';
      await loadFlow(flow({ backend, url }), { store: { [field]: secret } });
      const errors = nextMessage('errors');
      helper.getNode('ingest').receive({ payload: ['one'] });
      const err = await errors;
      should(err.error.message).match(new RegExp(`The ${label} credential contains a line break`));
      should(err.error.message).not.match(/ECONNREFUSED|reach/);
      should(JSON.stringify(err)).not.containEql(SECRET.slice(0, 8));
    });
  }

  it('turns an invalid configuration into a clear error on use', async function () {
    await loadFlow(flow({ dimensions: 'lots' }));
    const errors = nextMessage('errors');
    helper.getNode('ingest').receive({ payload: ['one'] });
    const err = await errors;
    should(err.error.message).match(/"Dimensions" must be/);
  });

  describe('embedding throughput settings (embedding stub)', function () {
    const texts = (n: number) => Array.from({ length: n }, (_, i) => `document ${i}`);

    it('passes embedBatchSize and embedConcurrency, as the editor saves them, to the openai embedder', async function () {
      const stub = await startEmbeddingStub({ hold: true });
      try {
        const openai = { embedder: 'openai', embedUrl: stub.url, embedModel: 'stub-model', embedBatchSize: '2', embedConcurrency: '3' };
        await loadFlow(flow(openai));
        const out = nextMessage('out');
        helper.getNode('ingest').receive({ payload: texts(20) });
        await until('3 requests in flight', async () => stub.stats.inFlight === 3);
        stub.setOptions({ hold: false });
        should((await out).payload).match({ ingested: 20, totalCount: 20 });
        should(stub.stats.requests).equal(10); // 2 texts per request
        should(stub.stats.maxInFlight).equal(3);
      } finally {
        await stub.close();
      }
    });

    it('gives a flow saved before these settings 64 texts per request and 4 requests at once', async function () {
      const stub = await startEmbeddingStub({ hold: true });
      try {
        await loadFlow(flow({ embedder: 'openai', embedUrl: stub.url, embedModel: 'stub-model' }));
        const out = nextMessage('out');
        helper.getNode('ingest').receive({ payload: texts(300) });
        await until('4 requests in flight', async () => stub.stats.inFlight === 4);
        stub.setOptions({ hold: false });
        should((await out).payload).match({ ingested: 300 });
        should(stub.stats.requests).equal(5); // 64 + 64 + 64 + 64 + 44
        should(stub.stats.maxInFlight).equal(4);
      } finally {
        await stub.close();
      }
    });

    it('names the field of a setting out of range', async function () {
      await loadFlow(flow({ embedder: 'openai', embedUrl: 'http://127.0.0.1:1/v1', embedModel: 'm', embedConcurrency: '100' }));
      const errors = nextMessage('errors');
      helper.getNode('ingest').receive({ payload: ['one'] });
      should((await errors).error.message).match(/"Requests at once" must be an integer between 1 and 64 \(got "100"\)/);
    });
  });

  it('keeps in-process collections across a redeploy when persist is off', async function () {
    await loadFlow(flow({ persist: false }));
    const first = nextMessage('out');
    helper.getNode('ingest').receive({ payload: ['kept across redeploys'] });
    await first;
    await redeploy(flow({ persist: false }));
    should(await helper.getNode('store').getStore().backend.collectionExists('docs')).be.true();
  });
});
