/**
 * The failure situations, one statement of what every store must do in each, run
 * through the `Backend` interface on each store's real thing. How a store produces a
 * situation is in its file in ./situations/ (whose header also says which situations
 * that store cannot have, and why: those define no test here).
 *
 * - A build the store cancelled: `failed` with the store's code and a detail carrying
 *   its reason; still `failed` on the next polls, and no build is started again by
 *   them (no rebuild loop); an ingest with buildIndex builds again and reaches ready.
 * - A build blocked by something another session or process holds: `indexing` with a
 *   detail naming what it waits for, never `failed`; ready once released.
 * - A connection limit: the status answers (no thrown error, poll after poll) and says
 *   the build waits for a connection; `failed` with that reason after the backend's
 *   bounded wait, also while the connection is still held.
 * - A second writer: the rows it wrote are counted by the next status, reported
 *   unindexed until indexed (where the store does not index them as it writes), then
 *   ready, and found by a query.
 */
import should from 'should';
import type { Backend, CollectionStatus } from '../../lib/types';
import { stores } from './situations';
import { rowVector, rowsFrom, type StoreSituations } from './situations/situation';

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

let counter = 0;
function freshName(prefix: string): string {
  counter += 1;
  return `${prefix}_${Date.now().toString(36)}_${counter}`;
}

/** Polls until the state is no longer `indexing`; every status seen. */
async function untilSettled(backend: Backend, collection: string, budgetSeconds: number): Promise<CollectionStatus[]> {
  const seen: CollectionStatus[] = [];
  const deadline = Date.now() + budgetSeconds * 1000;
  for (;;) {
    const status = await backend.status(collection);
    seen.push(status);
    if (status.state !== 'indexing') return seen;
    if (Date.now() > deadline) throw new Error(`not settled within ${budgetSeconds} s: ${JSON.stringify(status)}`);
    await sleep(50);
  }
}

function last<T>(items: T[]): T {
  return items[items.length - 1];
}

function situations(store: StoreSituations): void {
  describe(`failure situations: ${store.store} (${store.runsOn})`, function () {
    this.timeout(Math.max(60_000, store.budgetSeconds * 4000));

    before(async function () {
      this.timeout(120_000);
      await store.start();
    });

    after(async function () {
      this.timeout(60_000);
      await store.stop();
    });

    const { cancelledBuild, blockedBuild, connectionLimit, secondWriter } = store;

    if (cancelledBuild) {
      it(`a cancelled build (${store.runsOn}: ${cancelledBuild.how}) is failed with the store's code and reason, stays failed without a rebuild loop, and an ingest with buildIndex builds again`, async () => {
        const collection = freshName('cancelled');
        const scene = await cancelledBuild.arrange(collection);
        try {
          const { backend } = scene;
          await backend.ensureCollection(collection, { dimensions: rowVector(0).length });
          await backend.upsert(collection, rowsFrom(0, 300), { buildIndex: true });
          const failed = last(await untilSettled(backend, collection, store.budgetSeconds));
          should(failed).match({ state: 'failed', code: cancelledBuild.code, documentCount: 300 });
          should(failed.detail).match(cancelledBuild.reason);
          const builds = await scene.buildsStarted();
          should(builds).be.aboveOrEqual(1);

          for (let i = 0; i < 5; i++) {
            await sleep(100);
            const again = await backend.status(collection);
            should(again).match({ state: 'failed', code: cancelledBuild.code });
            should(again.detail).match(cancelledBuild.reason);
          }
          should(await scene.buildsStarted()).equal(builds); // the polls started no build

          await scene.removeCause();
          await backend.upsert(collection, rowsFrom(300, 1), { buildIndex: true });
          const ready = last(await untilSettled(backend, collection, store.budgetSeconds));
          should(ready).match({ state: 'ready', documentCount: 301, indexedCount: 301, progress: 1, etaSeconds: 0 });
          should(await scene.buildsStarted()).equal(builds); // built without the cause, which counted no more
        } finally {
          await scene.close();
        }
      });
    }

    if (blockedBuild) {
      it(`a build blocked by another session or process (${store.runsOn}: ${blockedBuild.how}) is indexing and says what it waits for, never failed; ready once released`, async () => {
        const collection = freshName('blocked');
        const scene = await blockedBuild.arrange(collection);
        try {
          const { backend } = scene;
          await backend.ensureCollection(collection, { dimensions: rowVector(0).length });
          await backend.upsert(collection, rowsFrom(0, 2000), { buildIndex: true });
          should(last(await untilSettled(backend, collection, store.budgetSeconds))).match({ state: 'ready', indexedCount: 2000 });

          const seen: CollectionStatus[] = [];
          const waiting = () => seen.some((s) => s.state === 'indexing' && blockedBuild.waitsFor.test(s.detail ?? ''));
          const total = await scene.blockWhile(async () => {
            const status = await backend.status(collection);
            seen.push(status);
            return status;
          }, waiting);
          seen.push(...(await untilSettled(backend, collection, store.budgetSeconds)));

          should(seen.filter((s) => s.state === 'failed')).eql([]);
          should(waiting()).be.true(`no status said what the build waits for (${String(blockedBuild.waitsFor)})`);
          should(last(seen)).match({ state: 'ready', documentCount: total, indexedCount: total, progress: 1, etaSeconds: 0 });
        } finally {
          await scene.close();
        }
      });
    }

    if (connectionLimit) {
      const limit = connectionLimit;
      /** Polls every 200 ms for `ms`; a poll that throws fails the test, saying which one. */
      async function pollFor(backend: Backend, collection: string, ms: number, what: string): Promise<CollectionStatus[]> {
        const seen: CollectionStatus[] = [];
        const until = Date.now() + ms;
        while (Date.now() < until) {
          const status = await backend.status(collection).catch((err: Error) => {
            throw new Error(`status poll ${seen.length + 1} ${what} threw: ${err.message}`);
          });
          seen.push(status);
          await sleep(200);
        }
        return seen;
      }

      it(`a connection limit (${store.runsOn}: ${limit.how}): every status poll answers, saying the build waits for a connection; failed with that reason after the bounded wait`, async () => {
        const collection = freshName('limited');
        const scene = await limit.arrange(collection);
        try {
          const { backend } = scene;
          await backend.ensureCollection(collection, { dimensions: rowVector(0).length });
          await scene.ingestAndHold(rowsFrom(0, 50));
          const waiting = await pollFor(backend, collection, limit.waitMs - 500, 'during the wait for a connection');
          should(waiting.length).be.above(2);
          for (const s of waiting) {
            should(s).match({ state: 'indexing', documentCount: 50, phase: 'waiting for a connection' });
            should(s.detail).match(limit.waiting);
          }
          await sleep(1000); // past the bounded wait
          await scene.release();
          for (let i = 0; i < 3; i++) {
            const after = await backend.status(collection);
            should(after.state).equal('failed');
            should(after.detail).match(limit.reason);
            await sleep(100);
          }
        } finally {
          await scene.close();
        }
      });

      it(`a connection limit (${store.runsOn}: ${limit.how}): after the bounded wait, with the connection still held, the status answers failed with that reason (no thrown error)`, async () => {
        const collection = freshName('limited');
        const scene = await limit.arrange(collection);
        try {
          const { backend } = scene;
          await backend.ensureCollection(collection, { dimensions: rowVector(0).length });
          await scene.ingestAndHold(rowsFrom(0, 50));
          // Until the bounded wait has ended (a busy machine takes longer than the bound itself): every poll answers.
          const settled = await untilSettled(backend, collection, limit.waitMs / 1000 + 30);
          should(last(settled).state).equal('failed');
          const held = await pollFor(backend, collection, 1000, 'after the bounded wait, the connection still held');
          for (const s of held) {
            should(s.state).equal('failed');
            should(s.detail).match(limit.reason);
          }
        } finally {
          await scene.close();
        }
      });
    }

    if (secondWriter) {
      const unindexed = secondWriter.indexesOnWrite ? 'indexed as they were written' : 'reported unindexed until indexed';
      it(`a second writer (${store.runsOn}: ${secondWriter.how}): its rows are counted by the next status, ${unindexed}, then ready and found`, async () => {
        const collection = freshName('shared');
        const scene = await secondWriter.arrange();
        try {
          const { backend } = scene;
          await backend.ensureCollection(collection, { dimensions: rowVector(0).length });
          await backend.upsert(collection, rowsFrom(0, 2000), { buildIndex: true });
          should(last(await untilSettled(backend, collection, store.budgetSeconds))).match({
            state: 'ready',
            documentCount: 2000,
            indexedCount: 2000,
          });

          await scene.write(collection, 2000, 8000);
          const next = await backend.status(collection);
          if (secondWriter.indexesOnWrite) {
            should(next).match({ state: 'ready', documentCount: 10_000, indexedCount: 10_000, progress: 1 });
          } else {
            should(next).match({ state: 'indexing', documentCount: 10_000, indexedCount: 2000, progress: 0.2 });
            should(next.detail).match(/\b8,000\b/);
          }
          const settled = last(await untilSettled(backend, collection, store.budgetSeconds));
          should(settled).match({ state: 'ready', documentCount: 10_000, indexedCount: 10_000, progress: 1, etaSeconds: 0 });
          const [hit] = await backend.query(collection, { vector: rowVector(9999), topK: 1 });
          should(hit).match({ id: 'doc-9999', text: 'text doc 9999' });
        } finally {
          await scene.close();
        }
      });
    }
  });
}

// A store that can have none of the situations (memory) gets no suite: its file says why.
for (const store of stores) {
  if (store.cancelledBuild || store.blockedBuild || store.connectionLimit || store.secondWriter) situations(store);
}
