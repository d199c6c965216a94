import should from 'should';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createTriggerSpec } from '../../lib/trigger';
import { WaitStore, type WaitRecord } from '../../lib/wait-store';

const T0 = 1_700_000_000_000;

function record(id: string, ownerId = 'node-1', message: Record<string, unknown> = { payload: `msg ${id}` }): WaitRecord {
  const spec = createTriggerSpec({ waitId: id, collection: 'docs', expectedCount: 10, pollIntervalMs: 1000, maxPollIntervalMs: 5000, timeoutMs: 60_000, now: T0 });
  return { ownerId, spec, message };
}

async function lines(file: string): Promise<string[]> {
  const text = await fs.readFile(file, 'utf8');
  return text.split('\n').filter((l) => l.length > 0);
}

describe('WaitStore', () => {
  let dir: string;
  let file: string;
  const open: WaitStore[] = [];
  const warnings: string[] = [];

  function store(options: { checkpointMs?: number } = {}): WaitStore {
    const s = new WaitStore(file, { ...options, log: { warn: (m) => warnings.push(m) } });
    open.push(s);
    return s;
  }

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wait-store-'));
    file = path.join(dir, 'waits.jsonl');
    warnings.length = 0;
  });

  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => s.close()));
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('loads nothing from a missing file', async () => {
    should(await store().load()).eql([]);
  });

  it('put, update, remove and load again', async () => {
    const first = store();
    await first.load();
    const a = record('a');
    const b = record('b');
    const c = record('c', 'node-2');
    await Promise.all([first.put(a), first.put(b), first.put(c)]);
    b.spec = { ...b.spec, polls: 7, lastProgress: { status: 'indexing', collection: 'docs', indexedCount: 4, expectedCount: 10, progress: 0.4, etaSeconds: null, elapsedMs: 2000, polls: 7 } };
    first.update(b);
    await first.remove('a');
    await first.close();

    const loaded = await store().load();
    should(loaded.map((w) => w.spec.waitId).sort()).eql(['b', 'c']);
    const loadedB = loaded.find((w) => w.spec.waitId === 'b') as WaitRecord;
    should(loadedB.spec.polls).equal(7);
    should(loadedB.spec.lastProgress?.indexedCount).equal(4);
    should(loadedB.spec.startedAt).equal(T0);
    should(loadedB.message).eql({ payload: 'msg b' });
    should(loaded.find((w) => w.spec.waitId === 'c')?.ownerId).equal('node-2');
  });

  it('a put is on disk when it resolves', async () => {
    const s = store();
    await s.load();
    await s.put(record('a', 'node-1', { payload: 'hello', topic: 't' }));
    const [line] = await lines(file);
    should(JSON.parse(line)).match({ op: 'put', w: { ownerId: 'node-1', spec: { waitId: 'a' }, message: { payload: 'hello', topic: 't' } } });
  });

  it('puts made in the same tick share one write', async () => {
    const s = store();
    await s.load();
    const before = s.stats.writes;
    await Promise.all(Array.from({ length: 50 }, (_, i) => s.put(record(`w${i}`))));
    should(s.stats.writes - before).equal(1);
    should(await lines(file)).have.length(50);
  });

  it('update is lazy: written by the next checkpoint, one line per wait however many updates', async () => {
    const s = store({ checkpointMs: 20 });
    await s.load();
    const a = record('a');
    await s.put(a);
    for (let polls = 1; polls <= 10; polls++) {
      a.spec = { ...a.spec, polls };
      s.update(a);
    }
    should(await lines(file)).have.length(1); // not yet
    await new Promise((r) => setTimeout(r, 60));
    const all = await lines(file);
    should(all).have.length(2);
    should(JSON.parse(all[1])).match({ op: 'spec', id: 'a', s: { polls: 10 } });
  });

  it('writes at most maxUpdatesPerCheckpoint updates per checkpoint, the oldest first', async () => {
    const s = new WaitStore(file, { checkpointMs: 10, maxUpdatesPerCheckpoint: 3 });
    open.push(s);
    await s.load();
    const all = Array.from({ length: 5 }, (_, i) => record(`w${i}`));
    await Promise.all(all.map((w) => s.put(w)));
    for (const w of all) {
      w.spec = { ...w.spec, polls: 1 };
      s.update(w);
    }
    const writesBefore = s.stats.writes;
    const specLines = async () => (await lines(file)).map((l) => JSON.parse(l)).filter((r) => r.op === 'spec');
    while ((await specLines()).length < 5) await new Promise((r) => setTimeout(r, 5));
    should((await specLines()).map((r) => r.id)).eql(['w0', 'w1', 'w2', 'w3', 'w4']);
    should(s.stats.writes - writesBefore).equal(2); // 3, then the other 2
  });

  it('ignores updates of removed waits and removals of unknown ones', async () => {
    const s = store();
    await s.load();
    const a = record('a');
    await s.put(a);
    await s.remove('a');
    s.update(a);
    await s.remove('nope');
    await s.flush();
    should((await lines(file)).map((l) => JSON.parse(l).op)).eql(['put', 'del']);
  });

  it('drops a torn last line and appends after it on a fresh line', async () => {
    const s = store();
    await s.load();
    await s.put(record('a'));
    await s.put(record('b'));
    await s.close();
    // A crash in the middle of writing the next batch.
    await fs.appendFile(file, '{"op":"put","w":{"ownerId":"node-1","spec":{"v":1,"wai');

    const again = store();
    should((await again.load()).map((w) => w.spec.waitId)).eql(['a', 'b']);
    await again.put(record('c'));
    await again.close();
    should((await store().load()).map((w) => w.spec.waitId)).eql(['a', 'b', 'c']);
  });

  it('compacts the log at a checkpoint once it has grown past twice the live set + 1000', async () => {
    const s = store();
    await s.load();
    const all = Array.from({ length: 1200 }, (_, i) => record(`w${i}`));
    await Promise.all(all.map((w) => s.put(w)));
    await Promise.all(all.slice(100).map((w) => s.remove(w.spec.waitId)));
    const kept = all[7];
    kept.spec = { ...kept.spec, polls: 3 };
    s.update(kept);
    await s.flush();
    should(s.stats.compactions).equal(1);
    const onDisk = await lines(file);
    should(onDisk).have.length(100);
    should(onDisk.every((l) => JSON.parse(l).op === 'put')).be.true();

    const loaded = await store().load();
    should(loaded).have.length(100);
    should(loaded.map((w) => w.spec.waitId)).eql(all.slice(0, 100).map((w) => w.spec.waitId));
    should(loaded.find((w) => w.spec.waitId === 'w7')?.spec.polls).equal(3);
  });

  it('compacts at load, keeping the live set', async () => {
    const body: string[] = [];
    for (let i = 0; i < 1500; i++) body.push(JSON.stringify({ op: 'put', w: record(`w${i}`) }));
    for (let i = 10; i < 1500; i++) body.push(JSON.stringify({ op: 'del', id: `w${i}` }));
    await fs.writeFile(file, body.join('\n') + '\n');
    const s = store();
    const loaded = await s.load();
    should(loaded).have.length(10);
    should(s.stats.compactions).equal(1);
    should(await lines(file)).have.length(10);
  });

  it('skips waits of an unknown format with a warning, and keeps them through compaction', async () => {
    const future = { op: 'put', w: { ownerId: 'node-9', spec: { v: 2, waitId: 'future', somethingNew: true }, message: {} } };
    const body = [JSON.stringify(future), JSON.stringify({ op: 'put', w: record('a') })];
    for (let i = 0; i < 1100; i++) body.push(JSON.stringify({ op: 'spec', id: 'a', s: { ...record('a').spec, polls: i } }));
    await fs.writeFile(file, body.join('\n') + '\n');

    const s = store();
    const loaded = await s.load();
    should(loaded.map((w) => w.spec.waitId)).eql(['a']);
    should(loaded[0].spec.polls).equal(1099);
    should(warnings).eql([
      `In the pending waits file ${file}, skipped wait future: This wait was saved in format version 2, which this version of the package does not know (it reads version 1). Upgrade the package to resume it.`,
    ]);
    should(s.stats.compactions).equal(1);
    const onDisk = (await lines(file)).map((l) => JSON.parse(l));
    should(onDisk).have.length(2);
    should(onDisk.find((r) => r.w.spec.waitId === 'future')).eql(future);
  });

  it('rejects a message that cannot be saved, writing nothing', async () => {
    const s = store();
    await s.load();
    const circular: Record<string, unknown> = { payload: 1 };
    circular.self = circular;
    await should(s.put(record('a', 'node-1', circular))).be.rejectedWith(/message of wait a on collection "docs" cannot be saved as JSON/);
    await s.flush();
    should(s.stats.waits).equal(0);
    await should(fs.readFile(file, 'utf8')).be.rejected();
  });

  it('refuses puts after close', async () => {
    const s = store();
    await s.load();
    await s.close();
    await should(s.put(record('a'))).be.rejectedWith(/closed/);
  });
});
