/**
 * The shape of a status, the same for every backend (each fixture's real store):
 * ready means everything is indexed, progress 1 and nothing left to wait for;
 * phase and detail, when present, are what the contract says they are.
 */
import should from 'should';
import type { Backend, CollectionStatus } from '../../lib/types';
import { fixtures } from './fixtures';

const DIM = 8;

function vectors(n: number, seed = 7): number[][] {
  let x = seed;
  const next = () => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
  return Array.from({ length: n }, () => Array.from({ length: DIM }, next));
}

async function statusesUntilSettled(backend: Backend, collection: string, budgetSeconds: number): Promise<CollectionStatus[]> {
  const seen: CollectionStatus[] = [];
  const deadline = Date.now() + budgetSeconds * 1000;
  for (;;) {
    const status = await backend.status(collection);
    seen.push(status);
    if (status.state !== 'indexing') return seen;
    if (Date.now() > deadline) throw new Error(`not settled within ${budgetSeconds} s: ${JSON.stringify(status)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

for (const fixture of fixtures) {
  describe(`status shape: ${fixture.name} (its real store)`, function () {
    this.timeout(Math.max(30_000, fixture.indexingBudgetSeconds * 2000));
    let backend: Backend;

    before(async function () {
      this.timeout(120_000);
      await fixture.start();
      backend = fixture.create();
    });

    after(async function () {
      this.timeout(60_000);
      await backend?.close();
      await fixture.stop();
    });

    it('ready: everything indexed, progress 1, etaSeconds 0 (an empty collection, then one that was indexed)', async () => {
      const name = `shape_${Date.now().toString(36)}`;
      await backend.ensureCollection(name, { dimensions: DIM });
      should(await backend.status(name)).match({ state: 'ready', documentCount: 0, indexedCount: 0, progress: 1, etaSeconds: 0 });

      const docs = vectors(300).map((vector, i) => ({ id: `d${i}`, vector, text: `doc ${i}` }));
      await backend.upsert(name, docs, { buildIndex: true });
      const seen = await statusesUntilSettled(backend, name, fixture.indexingBudgetSeconds);
      for (const status of seen) {
        if (status.phase !== undefined && status.phase !== null) should(status.phase).be.a.String().and.not.be.empty();
        if (status.detail !== undefined) should(status.detail).be.a.String().and.not.be.empty();
      }
      should(seen[seen.length - 1]).match({ state: 'ready', documentCount: 300, indexedCount: 300, progress: 1, etaSeconds: 0 });
    });
  });
}
