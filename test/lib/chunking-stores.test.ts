// Chunked ingest (ingestDocuments with the chunking option) on every store, conformance
// style: a long Markdown document becomes chunks <id>#<n> written over several batches;
// re-ingested after an edit that makes it shorter, its stale chunks are gone, its changed
// chunks carry the new text, and other documents are untouched. Memory, LanceDB (embedded,
// temp dir), Postgres + pgvector (PGlite) and Chroma (a local `chroma run`).
import should from 'should';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MemoryBackend } from '../../lib/backends/memory';
import { PgVectorBackend } from '../../lib/backends/pgvector';
import { LanceDbBackend } from '../../lib/backends/lancedb';
import { ChromaBackend } from '../../lib/backends/chroma';
import { HashEmbedder } from '../../lib/embedders/hash';
import { ingestDocuments, type IngestOptions, type Store } from '../../lib/operations';
import type { ChunkOptions } from '../../lib/chunking';
import type { Backend, QueryHit } from '../../lib/types';
import { startPgliteServer, type PgliteServer } from '../support/pglite-server';
import { startChromaServer, type ChromaServer } from '../support/chroma-server';

const DIM = 32;
const CHUNKING: ChunkOptions = { mode: 'markdown', size: 120, overlap: 20, unit: 'characters' };

/** A Markdown guide: `sections` sections of a few sentences each (the `version` word changes every text). */
function guide(sections: number, version: string): string {
  const parts = ['# Guide', '', `Version ${version} of the guide.`];
  for (let s = 0; s < sections; s++) {
    parts.push('', `## Step ${s}`, '', `Do step ${s} (${version}). Check it worked. Then go on to the next step of the guide.`);
  }
  return parts.join('\n');
}

interface BackendCase {
  name: string;
  open(): Promise<Backend>;
}

let pglite: PgliteServer | null = null;
let chroma: ChromaServer | null = null;
const tempDirs: string[] = [];

async function tempDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'chunking-stores-'));
  tempDirs.push(dir);
  return dir;
}

const backends: BackendCase[] = [
  { name: 'memory', open: async () => new MemoryBackend({ dataDir: await tempDir(), indexingRate: 10_000, indexingDelay: 0 }) },
  { name: 'lancedb', open: async () => new LanceDbBackend({ path: await tempDir() }) },
  {
    name: 'pgvector',
    open: async () => {
      pglite ??= await startPgliteServer();
      return new PgVectorBackend({ connectionString: pglite.url });
    },
  },
  {
    name: 'chroma',
    open: async () => {
      chroma ??= await startChromaServer();
      return new ChromaBackend({ url: chroma.url });
    },
  },
];

after(async () => {
  await pglite?.stop();
  await chroma?.stop();
  await Promise.all(tempDirs.splice(0).map((dir) => fs.rm(dir, { recursive: true, force: true })));
});

for (const backendCase of backends) {
  describe(`chunked ingest, stale chunks removed: ${backendCase.name}`, function () {
    this.timeout(120_000);
    let backend: Backend;
    let store: Store;
    let collections = 0;

    before(async () => {
      backend = await backendCase.open();
      store = { backend, embedder: new HashEmbedder(DIM) };
    });
    after(async () => backend?.close());

    const options = (collection: string): IngestOptions => ({
      collection,
      batchSize: 3, // a document's chunks span batches
      createCollection: true,
      buildIndex: false,
      chunking: CHUNKING,
    });

    /** Every document of the collection, by id (it holds far fewer than 200). */
    async function contents(collection: string): Promise<Map<string, QueryHit>> {
      const probe = new Float32Array(DIM);
      probe[0] = 1;
      const hits = await backend.query(collection, { vector: probe, topK: 200 });
      return new Map(hits.map((hit) => [hit.id, hit]));
    }

    it('re-ingesting an edited, shorter document leaves only its new chunks, with the new texts; others untouched', async () => {
      const collection = `chunks${++collections}`;
      const first = await ingestDocuments(
        store,
        [
          { id: 'guide', text: guide(8, 'one'), metadata: { lang: 'en' } },
          { id: 'other', text: 'Another document, short.' },
        ],
        options(collection),
      );
      const before = first.chunks as number;
      should(first).match({ documents: 2, ingested: before });
      should(before).be.above(8);
      should(first.batches).equal(Math.ceil(before / 3));
      should(first.ids[0]).equal('guide#0');
      should(first.ids).containEql('other#0');
      should((await backend.stats(collection)).documentCount).equal(before);

      const stored = await contents(collection);
      should(stored.get('guide#0')?.metadata).match({ lang: 'en', source: 'guide', chunk: 0, of: before - 1, headings: ['Guide'] });
      should(stored.get('guide#2')?.metadata).match({ source: 'guide', chunk: 2, headings: ['Guide', 'Step 1'] });

      const edited = await ingestDocuments(store, [{ id: 'guide', text: guide(3, 'two') }], options(collection));
      const after = edited.chunks as number;
      should(after).be.below(before - 1);
      should(edited.totalCount).equal(after + 1); // the new chunks and "other"
      should((await backend.stats(collection)).documentCount).equal(after + 1);

      const now = await contents(collection);
      should([...now.keys()].sort()).eql([...Array.from({ length: after }, (_, n) => `guide#${n}`), 'other#0'].sort());
      for (let n = 0; n < after; n++) {
        should(now.get(`guide#${n}`)?.metadata).match({ source: 'guide', chunk: n, of: after });
        should(now.get(`guide#${n}`)?.text).not.match(/\(one\)|Version one/);
      }
      should(now.get('guide#0')?.text).match(/Version two/);
      should(now.get('other#0')?.text).equal('Another document, short.');
    });

    it('a document first written whole is replaced by its chunks when ingested with chunking', async () => {
      const collection = `chunks${++collections}`;
      await ingestDocuments(store, [{ id: 'guide', text: guide(4, 'whole') }], { ...options(collection), chunking: undefined });
      should([...(await contents(collection)).keys()]).eql(['guide']);
      const chunked = await ingestDocuments(store, [{ id: 'guide', text: guide(4, 'whole') }], options(collection));
      const ids = [...(await contents(collection)).keys()].sort();
      should(ids).eql([...chunked.ids].sort());
      should(ids).not.containEql('guide');
    });
  });
}
