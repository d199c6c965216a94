// The chroma backend watching collections another client made (named by an
// ExistingCollection): collections created and filled over Chroma's own HTTP API
// (as the Python or JS client would), on a real local `chroma run`.
import should from 'should';
import { ChromaBackend } from '../../lib/backends/chroma';
import type { ExistingCollection } from '../../lib/types';
import { startChromaServer, type ChromaServer } from '../support/chroma-server';
import { rejectsWith } from '../support/errors';

describe('chroma backend: collections made by other clients', function () {
  this.timeout(30_000);
  let server: ChromaServer;
  const backends: ChromaBackend[] = [];
  let counter = 0;
  /** A fresh name under Chroma's rule that the package's own rule refuses (dots, capitals). */
  const freshName = (prefix: string) => `${prefix}.${Date.now().toString(36)}.V${++counter}`;

  const backend = () => {
    const made = new ChromaBackend({ url: server.url });
    backends.push(made);
    return made;
  };

  /** The other client: Chroma's HTTP API v2, directly. */
  async function api(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    const base = `${server.url}/api/v2/tenants/default_tenant/databases/default_database/collections`;
    const response = await fetch(base + path, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json: unknown = await response.json();
    if (!response.ok) throw new Error(`Chroma answered ${response.status}: ${JSON.stringify(json)}`);
    return json;
  }
  const createCollection = async (body: Record<string, unknown>) => (await api('POST', '', body)) as { id: string };

  before(async function () {
    this.timeout(60_000);
    server = await startChromaServer();
  });
  afterEach(async () => {
    await Promise.all(backends.splice(0).map((b) => b.close()));
  });
  after(async () => {
    await server?.stop();
  });

  it('reads a collection created over the HTTP API under a dotted name with l2 space: exists, empty with no dimension yet, then ready, stats, nearest records with their own metadata', async () => {
    const name = freshName('Team.Docs');
    const { id } = await createCollection({ name, metadata: { 'hnsw:space': 'l2' } });
    const store = backend();
    const ref: ExistingCollection = { name };

    should(await store.collectionExists(ref)).be.true();
    should(await store.stats(ref)).eql({ documentCount: 0, indexedCount: 0, dimensions: 0, metric: 'l2', indexType: 'hnsw' });

    // The other client writes its first records: the dimension comes from them.
    await api('POST', `/${id}/add`, {
      ids: ['a0', 'a1', 'a2'],
      embeddings: [
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 1],
      ],
      documents: ['text 0', 'text 1', 'text 2'],
      metadatas: [{ source: 'a.md', page: 1 }, { source: 'b.md', page: 2 }, null],
    });
    should(await store.status(ref)).eql({ state: 'ready', documentCount: 3, indexedCount: 3, progress: 1, etaSeconds: 0 });
    should(await store.stats(ref)).eql({ documentCount: 3, indexedCount: 3, dimensions: 3, metric: 'l2', indexType: 'hnsw' });

    const hits = await store.query(ref, { vector: [0, 0.9, 0.1], topK: 2 });
    should(hits[0]).containEql({ id: 'a1', text: 'text 1', metadata: { source: 'b.md', page: 2 } });
    should(hits[0].score).be.approximately(-0.02, 1e-6); // minus Chroma's squared l2 distance
    should(await store.query(ref, { vector: [1, 0, 0], topK: 3, filter: { source: 'b.md' } })).have.length(1);
    await rejectsWith(store.query(ref, { vector: [1, 0], topK: 1 }), 'DIMENSION_MISMATCH');
  });

  it("takes the metric from the collection's configuration when its metadata does not say it", async () => {
    const name = freshName('cfg');
    await createCollection({ name, configuration: { hnsw: { space: 'ip' } } });
    should(await backend().stats({ name })).containEql({ metric: 'dot', dimensions: 0 });
  });

  it("refuses the pgvector-only fields by name and names outside Chroma's rule; NOT_FOUND names a missing collection; a string keeps the package's rule", async () => {
    const name = freshName('Rules');
    await createCollection({ name });
    const store = backend();
    const onlyFor = { schema: 'a pgvector table', column: 'pgvector and LanceDB tables', index: 'a pgvector table', path: 'a LanceDB table', preset: 'a pgvector table' };
    for (const field of ['schema', 'column', 'index', 'path', 'preset'] as const) {
      const ref = { name, [field]: field === 'preset' ? 'llamaindex' : 'x' } as ExistingCollection;
      const err = await rejectsWith(store.status(ref), 'INVALID_INPUT');
      should(err.message).startWith(`"${field}" only applies to ${onlyFor[field]}`);
    }
    for (const bad of ['ab', '.starts.with.dot', 'ends-', 'two..dots', '192.168.1.20', 'has space']) {
      const err = await rejectsWith(store.collectionExists({ name: bad }), 'INVALID_INPUT');
      should(err.message).match(/cannot be a Chroma collection name: Chroma allows 3 to 512 characters/);
    }
    await rejectsWith(store.collectionExists({ name: 'x'.repeat(513) }), 'INVALID_INPUT');
    // At the edges of the rule, and names that look like addresses but are not.
    for (const good of ['abc', 'A.b-c_9', '1.2.3', '256.1.1.1', 'x'.repeat(512)]) should(await store.collectionExists({ name: good })).be.false();
    const missing = await rejectsWith(store.status({ name: 'No.Such.Collection' }), 'NOT_FOUND');
    should(missing.message).match(/Collection "No\.Such\.Collection" does not exist in Chroma/).and.match(/case-sensitive/);
    await rejectsWith(store.status(name), 'INVALID_INPUT');
  });
});
