// The LanceDB backend with a second process on the same directory (real
// @lancedb/lancedb in both, the other one a plain Node.js child process running
// test/support/lancedb-other-process.js): its writes are seen, and two optimizers
// colliding is retried, not a failure.
import should from 'should';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import type { CollectionStatus, VectorDocument } from '../../lib/types';
import { Gate, optimizeThrough } from '../support/lancedb-optimize-double';
import { lancedbFixture, untilSettled } from '../support/lancedb-fixture';

const DIM = 8;
const OTHER_PROCESS = path.join(__dirname, '..', 'support', 'lancedb-other-process.js');

function docsOf(count: number, from = 0): VectorDocument[] {
  return Array.from({ length: count }, (_, k) => {
    const i = from + k;
    return { id: `doc-${i}`, vector: Array.from({ length: DIM }, (_, d) => Math.sin(i * 7 + d + 1)), text: `text doc ${i}`, metadata: { n: i } };
  });
}

/** Run the other process to its end; resolves with its last JSON line, rejects with its stderr. */
function otherProcess(...args: (string | number)[]): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [OTHER_PROCESS, ...args.map(String)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`other process exited with ${code}: ${stderr}`));
      const lines = stdout.trim().split('\n');
      resolve(JSON.parse(lines[lines.length - 1]) as Record<string, unknown>);
    });
  });
}


describe('lancedb backend with a second process on the same directory (real LanceDB, child process)', function () {
  this.timeout(120_000);
  const { tempDir, backend, gates } = lancedbFixture('lancedb-processes');

  it('sees rows another process appended: indexing with the unindexed rows, then ready once optimize() folded them in', async () => {
    const dir = await tempDir();
    const b = backend({ path: dir, indexThreshold: 100 });
    await b.ensureCollection('docs', { dimensions: DIM });
    await b.upsert('docs', docsOf(5000), { buildIndex: true });
    should(await untilSettled(b, 'docs', 60_000, 25)).matchAny({ state: 'ready', documentCount: 5000, indexedCount: 5000 });

    should(await otherProcess('append', dir, 'docs', 5000, 20_000, DIM)).match({ appended: 20_000, rows: 25_000 });

    const first = await b.status('docs');
    should(first).match({ state: 'indexing', documentCount: 25_000, indexedCount: 5000, progress: 0.2 });
    should(first.detail).equal('20,000 rows not yet indexed');
    const seen = await untilSettled(b, 'docs', 60_000, 25);
    should(seen[seen.length - 1]).match({ state: 'ready', documentCount: 25_000, indexedCount: 25_000, progress: 1, etaSeconds: 0 });
    // The other process's rows are found (through the index now).
    const [hit] = await b.query('docs', { vector: docsOf(1, 24_999)[0].vector, topK: 1 });
    should(hit).match({ id: 'doc-24999', metadata: { writer: 'other process' } });
  });

  it('retries an optimize() that lost a commit race with another process optimizing the same table: indexing, never failed', async () => {
    const dir = await tempDir();
    const b = backend({ path: dir, indexThreshold: 100 });
    await b.ensureCollection('docs', { dimensions: DIM });
    await b.upsert('docs', docsOf(2000), { buildIndex: true });
    await untilSettled(b, 'docs', 60_000, 25);

    // The other process appends and optimizes, 30 times; meanwhile our status polls find
    // unindexed rows and start optimize() runs of their own. Repeated until our side has
    // met a conflict (about one optimize in three collides here), at most 6 rounds.
    const seen: CollectionStatus[] = [];
    let written = 2000;
    let otherRows = 0;
    const conflictSeen = () => seen.some((s) => s.phase === 'retrying after a commit conflict' || s.state === 'failed');
    for (let round = 0; round < 6 && !conflictSeen(); round++) {
      await b.upsert('docs', docsOf(500, written), { buildIndex: false });
      written += 500;
      const other = otherProcess('optimize', dir, 'docs', 30, 200, DIM, 1_000_000 + round * 10_000);
      let otherDone = false;
      const finished = other.finally(() => (otherDone = true));
      while (!otherDone) {
        seen.push(await b.status('docs'));
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      should(await finished).match({ rounds: 30 });
      otherRows += 30 * 200;
      seen.push(...(await untilSettled(b, 'docs', 60_000, 25)));
    }
    should(seen.filter((s) => s.state === 'failed')).eql([]);
    const retrying = seen.find((s) => s.phase === 'retrying after a commit conflict');
    should.exist(retrying, 'no commit conflict met in 6 rounds');
    should(retrying).match({ state: 'indexing', detail: /not yet indexed; another process is optimizing this table; retrying$/ });
    should(seen[seen.length - 1]).match({ state: 'ready', documentCount: written + otherRows, indexedCount: written + otherRows, progress: 1 });
  });

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
