// The LanceDB backend with a second process on the same directory (real
// @lancedb/lancedb in both, the other one a plain Node.js child process running
// test/support/lancedb-other-process.js): the cases only LanceDB has. The shared
// failure situations (a second writer's rows seen, then indexed; an optimize held up
// by another process's commits, retried, never failed) are in
// test/conformance/situations.test.ts, produced by test/conformance/situations/lancedb.ts.
import should from 'should';
import type { VectorDocument } from '../../lib/types';
import { Gate, optimizeThrough } from '../support/lancedb-optimize-double';
import { lancedbFixture, untilSettled } from '../support/lancedb-fixture';
import { lancedbOtherProcess as otherProcess } from '../support/lancedb-second-process';

const DIM = 8;

function docsOf(count: number, from = 0): VectorDocument[] {
  return Array.from({ length: count }, (_, k) => {
    const i = from + k;
    return { id: `doc-${i}`, vector: Array.from({ length: DIM }, (_, d) => Math.sin(i * 7 + d + 1)), text: `text doc ${i}`, metadata: { n: i } };
  });
}

describe('lancedb backend with a second process on the same directory (real LanceDB, child process): its own cases', function () {
  this.timeout(120_000);
  const { tempDir, backend, gates } = lancedbFixture('lancedb-processes');

  it('a failed optimize() (simulated by a test double) is failed, then ready once another process indexed the table anyway', async () => {
    const dir = await tempDir();
    const modules = optimizeThrough(() => Promise.reject(new Error('disk on fire (simulated)')));
    const b = backend({ path: dir, indexThreshold: 100, loadModules: () => modules });
    await b.ensureCollection('docs', { dimensions: DIM });
    await b.upsert('docs', docsOf(300), { buildIndex: true }); // creating the index does not optimize
    should(await untilSettled(b, 'docs', 60_000, 25)).matchAny({ state: 'ready', indexedCount: 300 });
    await b.upsert('docs', docsOf(50, 300), { buildIndex: false });
    const seen = await untilSettled(b, 'docs', 60_000, 25);
    should(seen[seen.length - 1]).match({ state: 'failed', documentCount: 350, indexedCount: 300, detail: /disk on fire \(simulated\)/ });

    should(await otherProcess('optimize', dir, 'docs', 1, 0, DIM, 0)).match({ rounds: 1, conflicts: 0 });
    should(await b.status('docs')).match({ state: 'ready', documentCount: 350, indexedCount: 350, progress: 1, etaSeconds: 0 });
  });

  it('rows folded in by another process give the ETA its rate (our optimize() held by a test double, injected clock)', async () => {
    const dir = await tempDir();
    let clock = Date.UTC(2024, 0, 1);
    const gate = new Gate();
    const modules = optimizeThrough(async (optimize) => {
      await gate.pass();
      return optimize();
    });
    const b = backend({ path: dir, indexThreshold: 100, now: () => clock, loadModules: () => modules });
    await b.ensureCollection('docs', { dimensions: DIM });
    await b.upsert('docs', docsOf(300), { buildIndex: true });
    await untilSettled(b, 'docs', 60_000, 25);

    gate.closed = true; // our optimize() waits: only the other process folds rows in
    gates.push(gate);
    await otherProcess('append', dir, 'docs', 300, 1000, DIM);
    const entered = gate.entered();
    should(await b.status('docs')).match({ state: 'indexing', documentCount: 1300, indexedCount: 300, phase: 'optimizing', etaSeconds: null });
    await entered;
    clock += 4000;
    await otherProcess('optimize', dir, 'docs', 1, 0, DIM, 0); // 1000 rows folded in within 4 s: 250 rows/s
    should(await b.status('docs')).match({ state: 'ready', documentCount: 1300, indexedCount: 1300, etaSeconds: 0 });
    await otherProcess('append', dir, 'docs', 1300, 500, DIM);
    should(await b.status('docs')).match({ state: 'indexing', documentCount: 1800, indexedCount: 1300, etaSeconds: 2 });
    clock += 500;
    should(await b.status('docs')).match({ state: 'indexing', etaSeconds: 1.5 }); // counts down
    clock += 5000; // longer than the rate says: still not 0
    should(await b.status('docs')).match({ state: 'indexing', etaSeconds: 1 });
    gate.open();
    should(await untilSettled(b, 'docs', 60_000, 25)).matchAny({ state: 'ready', documentCount: 1800, etaSeconds: 0 });
  });
});
