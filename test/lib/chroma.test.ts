// The chroma backend beyond the conformance suite: batching within the server's
// limit, what goes over the wire (token headers, base64 vectors, no embedding
// function), replacing records whole, the indexing-status route, and failures.
// A real `chroma run` serves every test except those named "(test double)", which
// use a local stand-in server for answers a healthy local server never gives.
import should from 'should';
import { ChromaBackend } from '../../lib/backends/chroma';
import { createBackend } from '../../lib/backends';
import { parseStoreConfig } from '../../lib/schemas';
import {
  freePort,
  startChromaServer,
  startRecordingProxy,
  startStandIn,
  type ChromaServer,
  type LocalServer,
  type RecordedRequest,
  type Reply,
} from '../support/chroma-server';
import { rejectsWith, throwsWith } from '../support/errors';

const DIM = 4;
const TOKEN = 'tok-sekret-123456';

let counter = 0;
const freshName = (prefix = 'unit') => `${prefix}_${Date.now().toString(36)}_${++counter}`;

const unit = (i: number): number[] => Array.from({ length: DIM }, (_, k) => (k === i % DIM ? 1 : 0.01 * (i + 1)));



const upserts = (requests: RecordedRequest[]) => requests.filter((r) => r.method === 'POST' && r.path.endsWith('/upsert'));

describe('chroma backend', function () {
  this.timeout(30_000);
  let server: ChromaServer;
  const backends: ChromaBackend[] = [];
  const servers: LocalServer[] = [];

  const backend = (options: Partial<ConstructorParameters<typeof ChromaBackend>[0]> = {}) => {
    const made = new ChromaBackend({ url: server.url, ...options });
    backends.push(made);
    return made;
  };
  const proxy = async (override?: (request: RecordedRequest) => Reply) => {
    const made = await startRecordingProxy(server.url, override);
    servers.push(made);
    return made;
  };
  const standIn = async (answer: (request: RecordedRequest) => Reply) => {
    const made = await startStandIn(answer);
    servers.push(made);
    return made;
  };

  before(async function () {
    this.timeout(60_000);
    server = await startChromaServer();
  });

  afterEach(async () => {
    await Promise.all(backends.splice(0).map((b) => b.close()));
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  after(async () => {
    await server?.stop();
  });

  describe('writes', () => {
    it("splits an upsert into batches within the server's max_batch_size (pre-flight answer lowered by the proxy)", async () => {
      const recording = await proxy((r) =>
        r.path === '/api/v2/pre-flight-checks' ? { status: 200, body: { max_batch_size: 5, supports_base64_encoding: true } } : null,
      );
      const store = backend({ url: recording.url });
      const name = freshName();
      await store.ensureCollection(name, { dimensions: DIM });
      const docs = Array.from({ length: 12 }, (_, i) => ({ id: `d${i}`, vector: unit(i), text: `doc ${i}` }));
      should(await store.upsert(name, docs)).eql({ written: 12, totalCount: 12 });
      const sizes = upserts(recording.requests).map((r) => (JSON.parse(r.body) as { ids: string[] }).ids.length);
      should(sizes).eql([5, 5, 2]);
      // The pre-flight checks are asked once per backend.
      await store.upsert(name, docs.slice(0, 3));
      should(recording.requests.filter((r) => r.path === '/api/v2/pre-flight-checks')).have.length(1);
    });

    it('uses its own maxBatchSize when that is lower than the server limit', async () => {
      const recording = await proxy();
      const store = backend({ url: recording.url, maxBatchSize: 4 });
      const name = freshName();
      await store.ensureCollection(name, { dimensions: DIM });
      const docs = Array.from({ length: 10 }, (_, i) => ({ id: `d${i}`, vector: unit(i) }));
      should(await store.upsert(name, docs)).eql({ written: 10, totalCount: 10 });
      should(upserts(recording.requests).map((r) => (JSON.parse(r.body) as { ids: string[] }).ids.length)).eql([4, 4, 2]);
    });

    it('deletes a source by paging through ids without payloads (pages of the batch size), then deleting by id in batches', async () => {
      const recording = await proxy();
      const store = backend({ url: recording.url, maxBatchSize: 4 });
      const name = freshName();
      await store.ensureCollection(name, { dimensions: DIM });
      const docs = [
        ...Array.from({ length: 6 }, (_, i) => ({ id: `s#${i}`, vector: unit(i) })),
        ...Array.from({ length: 5 }, (_, i) => ({ id: `other${i}`, vector: unit(i) })),
        { id: 's', vector: unit(0) },
      ];
      await store.upsert(name, docs);
      recording.requests.splice(0);
      should(await store.delete(name, { sources: ['s'] })).eql({ deleted: 7, totalCount: 5 });
      const gets = recording.requests.filter((r) => r.path.endsWith('/get')).map((r) => JSON.parse(r.body) as Record<string, unknown>);
      // 12 ids in pages of 4: three full pages and an empty one; never vectors, documents or metadata.
      should(gets.map((g) => g.offset)).eql([0, 4, 8, 12]);
      for (const get of gets) should(get).match({ include: [], limit: 4 });
      const deletes = recording.requests.filter((r) => r.path.endsWith('/delete')).map((r) => (JSON.parse(r.body) as { ids: string[] }).ids);
      should(deletes.map((ids) => ids.length)).eql([4, 3]);
      should(deletes.flat().sort()).eql(['s', 's#0', 's#1', 's#2', 's#3', 's#4', 's#5']);
      should((await store.query(name, { vector: unit(0), topK: 20 })).map((h) => h.id).sort()).eql(docs.slice(6, 11).map((d) => d.id));
    });

    it('sends vectors as base64 when the server supports it, as numbers otherwise', async () => {
      let base64 = true;
      const recording = await proxy((r) =>
        r.path === '/api/v2/pre-flight-checks' ? { status: 200, body: { max_batch_size: 100, supports_base64_encoding: base64 } } : null,
      );
      const name = freshName();
      const first = backend({ url: recording.url });
      await first.ensureCollection(name, { dimensions: DIM });
      await first.upsert(name, [{ id: 'b64', vector: [0, 0, 0, 2] }]);
      base64 = false;
      const second = backend({ url: recording.url });
      await second.upsert(name, [{ id: 'num', vector: [0, 0, 2, 0] }]);
      const [asBase64, asNumbers] = upserts(recording.requests).map((r) => (JSON.parse(r.body) as { embeddings: unknown[] }).embeddings[0]);
      should(asBase64).be.a.String();
      should(Buffer.from(asBase64 as string, 'base64')).have.length(DIM * 4);
      should(asNumbers).eql([0, 0, 2, 0]);
      const [hit] = await first.query(name, { vector: [0, 0, 0, 1], topK: 1 });
      should(hit).match({ id: 'b64' });
      should(hit.score).be.approximately(1, 1e-6);
    });

    it('creates collections with no embedding function, cosine space and the dimension in the metadata', async () => {
      const name = freshName();
      await backend().ensureCollection(name, { dimensions: DIM });
      const res = await fetch(`${server.url}/api/v2/tenants/default_tenant/databases/default_database/collections/${name}`);
      const collection = (await res.json()) as { metadata: Record<string, unknown>; configuration_json: { hnsw: { space: string }; embedding_function: unknown } };
      should(collection.metadata).match({ 'vp:dimensions': DIM });
      should(collection.configuration_json.hnsw.space).equal('cosine');
      should(collection.configuration_json.embedding_function).be.null();
    });

    it('replaces a re-ingested document whole: old metadata fields and text are gone, filters follow', async () => {
      const store = backend();
      const name = freshName();
      await store.ensureCollection(name, { dimensions: DIM });
      await store.upsert(name, [{ id: 'a', vector: unit(0), text: 'first', metadata: { source: 'web', page: 1, nested: { x: 1 } } }]);
      await store.upsert(name, [{ id: 'a', vector: unit(0), metadata: { page: 2 } }]);
      const [hit] = await store.query(name, { vector: unit(0), topK: 1 });
      should(hit).match({ id: 'a', text: null });
      should(hit.metadata).eql({ page: 2 });
      should(await store.query(name, { vector: unit(0), topK: 5, filter: { source: 'web' } })).eql([]);
      should((await store.query(name, { vector: unit(0), topK: 5, filter: { page: 2 } })).map((h) => h.id)).eql(['a']);
      await store.upsert(name, [{ id: 'a', vector: unit(0), text: 'back' }]);
      const [again] = await store.query(name, { vector: unit(0), topK: 1 });
      should(again).match({ text: 'back' });
      should(again.metadata).eql({});
      should((await store.stats(name)).documentCount).equal(1);
    });

    it('keeps the last of documents sharing an id within one call', async () => {
      const store = backend();
      const name = freshName();
      await store.ensureCollection(name, { dimensions: DIM });
      const result = await store.upsert(name, [
        { id: 'same', vector: unit(0), text: 'older' },
        { id: 'same', vector: unit(1), text: 'newer' },
      ]);
      should(result).eql({ written: 1, totalCount: 1 });
      should((await store.query(name, { vector: unit(1), topK: 1 }))[0]).match({ id: 'same', text: 'newer' });
    });

    it('validates every document before writing: a bad value in the last one writes nothing', async () => {
      const store = backend();
      const name = freshName();
      await store.ensureCollection(name, { dimensions: DIM });
      await rejectsWith(
        store.upsert(name, [
          { id: 'ok', vector: unit(0) },
          { id: 'nan', vector: [0, NaN, 0, 0] },
        ]),
        'INVALID_INPUT',
        false,
      );
      await rejectsWith(store.upsert(name, [{ id: 'x', vector: unit(0) }], { simulateFailure: 'boom' }), 'INVALID_INPUT', false);
      should((await store.stats(name)).documentCount).equal(0);
    });
  });

  describe('status', () => {
    it('asks for the indexing status once; without that route (this server) everything counted is ready', async () => {
      const recording = await proxy();
      const store = backend({ url: recording.url });
      const name = freshName();
      await store.ensureCollection(name, { dimensions: DIM });
      await store.upsert(name, [{ id: 'a', vector: unit(0) }]);
      // Ready reads like every other store's ready: all of it, nothing left to wait for.
      should(await store.status(name)).eql({ state: 'ready', documentCount: 1, indexedCount: 1, progress: 1, etaSeconds: 0 });
      await store.status(name);
      should(recording.requests.filter((r) => r.path.endsWith('/indexing_status'))).have.length(1);
    });

    it('maps the indexing_status route onto indexing progress, then ready (route answered by the proxy: test double)', async () => {
      let unindexed = 6;
      const recording = await proxy((r) =>
        r.path.endsWith('/indexing_status')
          ? { status: 200, body: { num_indexed_ops: 10 - unindexed, num_unindexed_ops: unindexed, total_ops: 10, op_indexing_progress: (10 - unindexed) / 10 } }
          : null,
      );
      const store = backend({ url: recording.url });
      const name = freshName();
      await store.ensureCollection(name, { dimensions: DIM });
      await store.upsert(name, Array.from({ length: 10 }, (_, i) => ({ id: `d${i}`, vector: unit(i) })));
      const indexing = await store.status(name);
      should(indexing).match({ state: 'indexing', documentCount: 10, indexedCount: 4, progress: 0.4, etaSeconds: null });
      should(indexing.detail).match(/6 write operation/);
      should(await store.stats(name)).match({ documentCount: 10, indexedCount: 4, dimensions: DIM, metric: 'cosine', indexType: 'hnsw' });
      unindexed = 0;
      should(await store.status(name)).match({ state: 'ready', documentCount: 10, indexedCount: 10, progress: 1, etaSeconds: 0 });
    });

    it('finds a collection again after it was deleted and re-created under the same name', async () => {
      const store = backend();
      const name = freshName();
      await store.ensureCollection(name, { dimensions: DIM });
      await store.upsert(name, [{ id: 'a', vector: unit(0) }]);
      const base = `${server.url}/api/v2/tenants/default_tenant/databases/default_database/collections`;
      should((await fetch(`${base}/${name}`, { method: 'DELETE' })).status).equal(200);
      await backend().ensureCollection(name, { dimensions: DIM });
      should(await store.status(name)).match({ state: 'ready', documentCount: 0 });
      await fetch(`${base}/${name}`, { method: 'DELETE' });
      await rejectsWith(store.status(name), 'NOT_FOUND', false);
    });
  });

  describe('collections', () => {
    it("refuses names Chroma refuses (shorter than 3 characters, or not ending with a letter or digit)", async () => {
      const store = backend();
      for (const bad of ['ab', 'docs_', 'docs-']) {
        const err = await rejectsWith(store.ensureCollection(bad, { dimensions: DIM }), 'INVALID_INPUT', false);
        should(err.message).match(/chroma/);
      }
    });

    it("tells a collection named like another collection's id apart from that collection", async () => {
      const store = backend();
      const first = freshName();
      await store.ensureCollection(first, { dimensions: DIM });
      const res = await fetch(`${server.url}/api/v2/tenants/default_tenant/databases/default_database/collections/${first}`);
      const { id } = (await res.json()) as { id: string };
      const fresh = backend();
      should(await fresh.collectionExists(id)).be.false();
      await fresh.ensureCollection(id, { dimensions: DIM + 1 });
      should(await backend().collectionExists(id)).be.true();
      should((await backend().stats(id)).dimensions).equal(DIM + 1);
    });

    it('works in another database of the tenant, and says NOT_FOUND for a database that does not exist', async () => {
      const database = `db_${Date.now().toString(36)}`;
      const created = await fetch(`${server.url}/api/v2/tenants/default_tenant/databases`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: database }),
      });
      should(created.status).equal(200);
      const store = backend({ database });
      const name = freshName();
      await store.ensureCollection(name, { dimensions: DIM });
      should(await backend().collectionExists(name)).be.false(); // not in default_database
      const err = await rejectsWith(backend({ database: 'no_such_db' }).ensureCollection(name, { dimensions: DIM }), 'NOT_FOUND', false);
      should(err.message).match(/no_such_db/);
    });

    it('filters only on scalar fields, and says so', async () => {
      const store = backend();
      const name = freshName();
      await store.ensureCollection(name, { dimensions: DIM });
      await store.upsert(name, [{ id: 'a', vector: unit(0), metadata: { tags: ['x'] } }]);
      const err = await rejectsWith(store.query(name, { vector: unit(0), topK: 1, filter: { tags: ['x'] } }), 'INVALID_INPUT', false);
      should(err.message).match(/tags/).and.match(/strings, numbers and booleans/);
      await rejectsWith(store.query(name, { vector: unit(0), topK: 1, filter: { 'vp:meta': 'x' } }), 'INVALID_INPUT', false);
    });

    it('is what the factory builds for backend "chroma", with the apiKey credential as token', async () => {
      const recording = await proxy();
      const config = parseStoreConfig({ backend: 'chroma', url: recording.url, tenant: '', database: '' });
      const store = createBackend(config, { userDir: null, storeKey: 'k', credentials: { apiKey: TOKEN } });
      try {
        // Wrapped with the call timeouts (lib/backends/timeouts.ts), so not the class itself.
        should(store.name).equal('chroma');
        should(await store.collectionExists(freshName())).be.false();
        should(recording.requests[0].path).match(/^\/api\/v2\/tenants\/default_tenant\/databases\/default_database\//);
      } finally {
        await store.close();
      }
    });
  });

  describe('credentials', () => {
    it('sends the token as x-chroma-token and as a Bearer authorization on every request', async () => {
      const recording = await proxy();
      const store = backend({ url: recording.url, apiKey: TOKEN });
      const name = freshName();
      await store.ensureCollection(name, { dimensions: DIM });
      await store.upsert(name, [{ id: 'a', vector: unit(0) }]);
      await store.query(name, { vector: unit(0), topK: 1 });
      await store.status(name);
      should(recording.requests.length).be.above(4);
      for (const r of recording.requests) {
        should(r.headers['x-chroma-token']).equal(TOKEN);
        should(r.headers.authorization).equal(`Bearer ${TOKEN}`);
      }
    });

    it('sends no auth header without a token', async () => {
      const recording = await proxy();
      await backend({ url: recording.url }).collectionExists(freshName());
      should(recording.requests[0].headers).not.have.property('x-chroma-token');
      should(recording.requests[0].headers).not.have.property('authorization');
    });

    it('says AUTH for 401 and 403, and never repeats the token even when the server echoes it (test double)', async () => {
      for (const status of [401, 403]) {
        const rejecting = await standIn(() => ({ status, body: { error: 'AuthError', message: `token ${TOKEN} is not valid` } }));
        const err = await rejectsWith(backend({ url: rejecting.url, apiKey: TOKEN }).collectionExists('docs'), 'AUTH', false);
        should(err.message).not.containEql(TOKEN);
        should(err.message).match(/API key/);
      }
    });

    it('(stand-in server) never shows a token the server echoes URL-encoded, upper-cased, base64 or cut short', async () => {
      const token = 'tok/Sek+ret=98765-xyz';
      // Echoes the Authorization header it received, in each form, in its error message.
      const echo = (r: RecordedRequest) => {
        const sent = String(r.headers.authorization).replace(/^Bearer /, '');
        const forms = [
          encodeURIComponent(sent),
          sent.toUpperCase(),
          Buffer.from(`Bearer ${sent}`).toString('base64'),
          Buffer.from(`user:${sent}`).toString('base64'),
          `${sent.slice(0, 9)}...`,
        ];
        return forms.join(' | ');
      };
      for (const status of [400, 401, 404, 429, 500]) {
        let echoed = '';
        const echoing = await standIn((r) => {
          echoed = echo(r);
          return { status, body: { error: 'InvalidArgumentError', message: `bad token: ${echoed}` } };
        });
        const err = await rejectsWith(backend({ url: echoing.url, apiKey: token }).status('docs'), status === 401 ? 'AUTH' : status === 404 ? 'NOT_FOUND' : status >= 429 ? 'UNAVAILABLE' : 'INVALID_INPUT');
        should(echoed).containEql(encodeURIComponent(token)); // the stand-in did echo it
        const shown = `${err.message} ${JSON.stringify(err)} ${String((err.cause as Error | undefined)?.message ?? '')}`;
        for (const form of echoed.split(' | ')) should(shown).not.containEql(form.replace(/\.\.\.$/, ''));
        should(shown.toLowerCase()).not.containEql(token.toLowerCase().slice(0, 8));
      }
    });

    it('refuses an API key with a line break before any request, naming the field and not the value (not retried)', async () => {
      const recording = await proxy();
      const secret = 'tok-line-break-secret\n';
      const config = parseStoreConfig({ backend: 'chroma', url: recording.url, tenant: '', database: '' });
      const err = throwsWith(() => createBackend(config, { userDir: null, storeKey: 'k', credentials: { apiKey: secret } }), 'INVALID_INPUT');
      should(err.transient).be.false();
      should(err.message).match(/API key credential contains a line break/);
      should(err.message).not.containEql('tok-line');
      throwsWith(() => new ChromaBackend({ url: recording.url, apiKey: secret }), 'INVALID_INPUT');
      should(recording.requests).have.length(0);
    });

    it('never puts the token in the message when the server cannot be reached', async () => {
      const port = await freePort();
      const err = await rejectsWith(backend({ url: `http://127.0.0.1:${port}`, apiKey: TOKEN }).status('docs'), 'UNAVAILABLE', true);
      should(err.message).not.containEql(TOKEN);
      should(err.message).match(/connection refused/).and.match(new RegExp(`127\\.0\\.0\\.1:${port}`));
    });
  });

  describe('failures (test double: a local stand-in server)', () => {
    for (const status of [500, 502, 503]) {
      it(`says UNAVAILABLE, transient, for HTTP ${status}`, async () => {
        const failing = await standIn(() => ({ status, body: { error: 'InternalError', message: 'the executor is not ready' } }));
        const err = await rejectsWith(backend({ url: failing.url }).status('docs'), 'UNAVAILABLE', true);
        should(err.message).match(new RegExp(`HTTP ${status}`)).and.match(/executor is not ready/).and.match(/retry later/);
      });
    }

    it('says UNAVAILABLE, transient, for HTTP 429', async () => {
      const limiting = await standIn(() => ({ status: 429, body: { error: 'RateLimitError', message: 'Too many requests' } }));
      await rejectsWith(backend({ url: limiting.url }).collectionExists('docs'), 'UNAVAILABLE', true);
    });

    it('says TIMEOUT, transient, when the server does not answer in time, naming the setting to raise', async () => {
      const silent = await standIn(() => 'hang');
      const err = await rejectsWith(backend({ url: silent.url, timeoutMs: 200 }).collectionExists('docs'), 'TIMEOUT', true);
      should(err.message).match(/did not answer within 0.2 s/).and.match(/vectorPipeline\.storeTimeout/);
      should(err.message).not.match(/will be retried/).and.match(/a sensor's wait retries on its own/);
    });

    it('says DIMENSION_MISMATCH when the server refuses a vector size', async () => {
      const refusing = await standIn((r) =>
        r.path.endsWith('/collections')
          ? { status: 200, body: { id: 'c0ffee00-0000-0000-0000-000000000000', name: 'docs', metadata: null, configuration_json: {}, dimension: null } }
          : r.path.endsWith('/pre-flight-checks')
            ? { status: 200, body: { max_batch_size: 10, supports_base64_encoding: false } }
            : r.path.endsWith('/get')
              ? { status: 200, body: { ids: [] } }
              : { status: 400, body: { error: 'InvalidArgumentError', message: 'Collection expecting embedding with dimension of 3, got 4' } },
      );
      const store = backend({ url: refusing.url });
      await store.ensureCollection('docs', { dimensions: DIM });
      await rejectsWith(store.upsert('docs', [{ id: 'a', vector: unit(0) }]), 'DIMENSION_MISMATCH', false);
    });

    it('says the URL is not a Chroma server when the answers make no sense', async () => {
      const other = await standIn(() => ({ status: 200, body: '<html>hello</html>', headers: { 'Content-Type': 'text/html' } }));
      const err = await rejectsWith(backend({ url: other.url }).collectionExists('docs'), 'INVALID_INPUT', false);
      should(err.message).match(/did not answer like a Chroma server/);
    });

    it('aborts a request in flight on close, and refuses calls after it', async () => {
      const silent = await standIn(() => 'hang');
      const store = backend({ url: silent.url, timeoutMs: 20_000 });
      const pending = store.collectionExists('docs');
      await new Promise((resolve) => setTimeout(resolve, 50));
      await store.close();
      await rejectsWith(pending, 'UNAVAILABLE', true);
      await rejectsWith(store.status('docs'), 'UNAVAILABLE', true);
      await store.close(); // idempotent
    });
  });

  describe('options', () => {
    it('refuses a URL that is not http(s), or holds a password (without repeating it)', () => {
      throwsWith(() => new ChromaBackend({ url: 'localhost:8000' }), 'INVALID_INPUT');
      throwsWith(() => new ChromaBackend({ url: 'ftp://host' }), 'INVALID_INPUT');
      const err = throwsWith(() => new ChromaBackend({ url: 'http://admin:hunter2@host:8000' }), 'INVALID_INPUT');
      should(err.message).not.containEql('hunter2');
    });

    it('accepts a URL ending with /api/v2/', async () => {
      const store = backend({ url: `${server.url}/api/v2/` });
      should(await store.collectionExists(freshName())).be.false();
    });
  });
});
