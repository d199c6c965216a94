// Bad input writes nothing: the whole ingest input is checked, with every check
// any backend makes, before the first write and before a collection is created.
// Run on the memory backend, on Postgres + pgvector (PGlite) and on LanceDB, with
// batchSize 1 so that a check made batch by batch would let earlier documents in.
import should from 'should';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MemoryBackend } from '../../lib/backends/memory';
import { PgVectorBackend } from '../../lib/backends/pgvector';
import { LanceDbBackend } from '../../lib/backends/lancedb';
import { ChromaBackend } from '../../lib/backends/chroma';
import { HashEmbedder } from '../../lib/embedders/hash';
import { VectorStoreError } from '../../lib/errors';
import { ingestDocuments, type Store } from '../../lib/operations';
import { parseIngestPayload } from '../../lib/schemas';
import { stableId } from '../../lib/ids';
import type { Backend } from '../../lib/types';
import { startPgliteServer, type PgliteServer } from '../support/pglite-server';
import { startChromaServer, type ChromaServer } from '../support/chroma-server';

const DIM = 32;
const ok = (id: string) => ({ id, vector: new Array(DIM).fill(0.1), text: `text of ${id}`, metadata: { n: 1 } });

function deeplyNested(levels: number): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  let node = root;
  for (let i = 0; i < levels; i++) {
    const child: Record<string, unknown> = {};
    node.next = child;
    node = child;
  }
  return root;
}

function circular(): Record<string, unknown> {
  const a: Record<string, unknown> = { name: 'a' };
  a.self = a;
  return a;
}

/** [what, the bad second document, what the message must say]. The first document is always fine. */
const badSecondDocuments: Array<[string, () => Record<string, unknown>, RegExp]> = [
  ['a vector value beyond 32-bit float range', () => ({ id: 'b', vector: new Array(DIM).fill(1e39) }), /msg\.payload\[1\]\.vector\[0\].*32-bit/],
  ['a vector of another size', () => ({ id: 'b', vector: new Array(DIM + 1).fill(0.1) }), /msg\.payload\[1\].*dimensions/],
  ['a NUL character in the text', () => ({ id: 'b', text: 'before\u0000after' }), /msg\.payload\[1\]\.text.*NUL/],
  ['a NUL character in the id', () => ({ id: 'b\u0000', text: 'x' }), /msg\.payload\[1\]\.id.*NUL/],
  ['a lone surrogate in the id', () => ({ id: 'b\ud800', text: 'x' }), /msg\.payload\[1\]\.id/],
  ['an id that is too long', () => ({ id: 'b'.repeat(5000), text: 'x' }), /msg\.payload\[1\]\.id.*long/],
  ['a NUL character in a metadata value', () => ({ ...ok('b'), metadata: { k: 'v\u0000' } }), /msg\.payload\[1\]\.metadata\.k.*NUL/],
  ['a NUL character in a metadata key', () => ({ ...ok('b'), metadata: { 'k\u0000': 'v' } }), /msg\.payload\[1\]\.metadata.*NUL/],
  ['a BigInt in the metadata', () => ({ ...ok('b'), metadata: { big: 10n } }), /msg\.payload\[1\]\.metadata\.big.*BigInt/],
  ['circular metadata', () => ({ ...ok('b'), metadata: circular() }), /msg\.payload\[1\]\.metadata\.self.*(circular|itself)/],
  ['metadata 100,000 levels deep', () => ({ ...ok('b'), metadata: deeplyNested(100_000) }), /msg\.payload\[1\]\.metadata.*deep/],
  ['a function in the metadata', () => ({ ...ok('b'), metadata: { f: () => 1 } }), /msg\.payload\[1\]\.metadata\.f.*function/],
  ['a symbol in the metadata', () => ({ ...ok('b'), metadata: { s: Symbol('x') } }), /msg\.payload\[1\]\.metadata\.s.*symbol/],
  ['a Map in the metadata', () => ({ ...ok('b'), metadata: { m: new Map([[1, 2]]) } }), /msg\.payload\[1\]\.metadata\.m.*Map/],
  ['NaN in the metadata', () => ({ ...ok('b'), metadata: { x: Number.NaN } }), /msg\.payload\[1\]\.metadata\.x.*NaN/],
];

interface BackendCase {
  name: string;
  open(): Promise<Backend>;
}

let pglite: PgliteServer | null = null;
let chroma: ChromaServer | null = null;
const tempDirs: string[] = [];

async function tempDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ingest-validation-'));
  tempDirs.push(dir);
  return dir;
}

let pgTables = 0;
const backends: BackendCase[] = [
  { name: 'memory', open: async () => new MemoryBackend({ dataDir: await tempDir(), indexingRate: 10_000, indexingDelay: 0 }) },
  {
    name: 'pgvector',
    open: async () => {
      pglite ??= await startPgliteServer();
      return new PgVectorBackend({ connectionString: pglite.url });
    },
  },
  { name: 'lancedb', open: async () => new LanceDbBackend({ path: await tempDir() }) },
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
  describe(`ingest validation before the first write: ${backendCase.name}`, function () {
    this.timeout(60_000);
    let backend: Backend;
    let store: Store;

    before(async () => {
      backend = await backendCase.open();
      store = { backend, embedder: new HashEmbedder(DIM) };
    });
    after(async () => backend?.close());

    const ingest = (collection: string, payload: unknown) =>
      ingestDocuments(store, parseIngestPayload(payload), { collection, batchSize: 1, createCollection: true, buildIndex: false });

    async function rejected(collection: string, payload: unknown): Promise<VectorStoreError> {
      try {
        await ingest(collection, payload);
      } catch (err) {
        should(err).be.instanceOf(VectorStoreError);
        return err as VectorStoreError;
      }
      throw new Error('the ingest succeeded');
    }

    for (const [what, second, message] of badSecondDocuments) {
      it(`rejects ${what} in the second document: nothing written, no collection created`, async () => {
        const collection = `bad${++pgTables}`;
        const err = await rejected(collection, [ok('a'), second()]);
        should(err.message).match(message);
        should(err.message).not.match(/RangeError|Maximum call stack/);
        should(await backend.collectionExists(collection)).be.false();
      });
    }

    it('writes nothing to an existing collection when a later document is bad', async () => {
      const collection = `existing${++pgTables}`;
      await ingest(collection, [ok('first')]);
      const err = await rejected(collection, [ok('a'), ok('c'), { id: 'b', vector: new Array(DIM).fill(1e39) }]);
      should(err.message).match(/msg\.payload\[2\]/);
      should((await backend.stats(collection)).documentCount).equal(1);
    });

    it('leaves no collection behind after two rejected single-document inputs', async () => {
      const collection = `single${++pgTables}`;
      await rejected(collection, [{ id: 'x', vector: new Array(DIM).fill(1e39) }]);
      await rejected(collection, [{ id: 'y', text: 'nul \u0000 here' }]);
      should(await backend.collectionExists(collection)).be.false();
    });

    it('still takes what every store can hold: nested metadata, Dates, unicode, undefined fields', async () => {
      const collection = `good${++pgTables}`;
      const result = await ingest(collection, [
        { id: 'ü-✓-😀', text: 'naïve café 😀', metadata: { nested: { list: [1, 'two', null, true] }, when: new Date(0), skip: undefined } },
      ]);
      should(result.ingested).equal(1);
      const [hit] = await backend.query(collection, { vector: new Array(DIM).fill(0.1), topK: 1 });
      should(hit.metadata).eql({ nested: { list: [1, 'two', null, true] }, when: '1970-01-01T00:00:00.000Z' });
    });
  });
}

describe('ingest of a 10 MB text', function () {
  this.timeout(60_000);

  it('gives a long text the same stable id as a short one would get (hashed in slices, pairs kept whole)', async () => {
    const backend = new MemoryBackend({ dataDir: null, indexingRate: 10_000, indexingDelay: 0 });
    try {
      // An emoji (a surrogate pair) across every 1 MiB boundary of the hashing slices.
      const text = 'x' + '😀'.repeat(1_600_000);
      const result = await ingestDocuments({ backend, embedder: new HashEmbedder(DIM) }, parseIngestPayload(text), {
        collection: 'ids',
        batchSize: 10,
        createCollection: true,
        buildIndex: false,
      });
      should(result.ids).eql([stableId(text)]);
    } finally {
      await backend.close();
    }
  });

  it('does not hold the event loop long: parsing, checks, id hashing, embedding, an in-process memory store\'s write (the longest block is reported)', async () => {
    // In-process: writing a 10 MB line to the store's file is the memory store's own business.
    const backend = new MemoryBackend({ dataDir: null, indexingRate: 10_000, indexingDelay: 0 });
    try {
      const words = 'the quick brown fox jumps over a lazy dog while waiting for indexing to finish'.split(' ');
      const parts: string[] = [];
      for (let n = 0; n < 10_000_000; ) {
        const w = words[(n * 7) % words.length];
        parts.push(w);
        n += w.length + 1;
      }
      const text = parts.join(' ');
      const store: Store = { backend, embedder: new HashEmbedder(DIM) };
      let parseMs = 0;
      const longest = await longestBlockDuring(async () => {
        const t0 = performance.now();
        const items = parseIngestPayload([{ text, metadata: { source: 'big.txt' } }]);
        parseMs = performance.now() - t0;
        await ingestDocuments(store, items, {
          collection: 'big',
          batchSize: 100,
          createCollection: true,
          buildIndex: false,
        });
      });
      console.log(`      zod parse of the 10 MB payload: ${parseMs.toFixed(1)} ms; longest event-loop block of the ingest: ${longest.toFixed(0)} ms`);
      should(longest).be.below(300); // very loose on purpose: it was 700 ms idle, seconds under load
    } finally {
      await backend.close();
    }
  });
});

/** Run `work`, probing the event loop every millisecond; the longest gap seen between probes, in ms. */
async function longestBlockDuring(work: () => Promise<unknown>): Promise<number> {
  let last = performance.now();
  let longest = 0;
  const probe = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 1);
  try {
    await work();
    return Math.max(longest, performance.now() - last);
  } finally {
    clearInterval(probe);
  }
}
