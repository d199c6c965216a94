import should from 'should';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { VectorStoreError } from '../../lib/errors';
import { createTriggerSpec, type FinalPayload } from '../../lib/trigger';
import { WaitStore, type DurableRecord, type WaitRecord, type WaitStoreOptions } from '../../lib/wait-store';

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

  function store(options: Omit<WaitStoreOptions, 'log'> = {}): WaitStore {
    // Compacted past twice the live set plus 1,000 records (10,000 by default): small files show it.
    const s = new WaitStore(file, { compactionSlack: 1000, ...options, log: { warn: (m) => warnings.push(m) } });
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
    b.spec = { ...b.spec, polls: 7, lastProgress: { status: 'indexing', collection: 'docs', indexedCount: 4, expectedCount: 10, progress: 0.4, etaSeconds: null, elapsedMs: 2000, polls: 7, phase: null, detail: null } };
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
    await s.flush(); // the lines can be seen before their write is counted (after its fsync)
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
    should((loaded.find((w) => w.spec.waitId === 'w7') as WaitRecord | undefined)?.spec.polls).equal(3);
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
    should((loaded[0] as WaitRecord).spec.polls).equal(1099);
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
  describe('a wait is live only once it is on disk', () => {
    /**
     * A test double for a full disk (this runs as root, so a read-only directory
     * would not refuse writes): the real file handle, whose appends fail with
     * ENOSPC after writing half of their data while `disk.full` is set.
     */
    const disk = { full: false };
    const openOnFlakyDisk = async (f: string) => {
      const handle = await fs.open(f, 'a+');
      const append = handle.appendFile.bind(handle);
      handle.appendFile = (async (data: string) => {
        if (!disk.full) return append(data);
        await append(data.slice(0, Math.floor(data.length / 2)));
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      }) as typeof handle.appendFile;
      return handle;
    };

    beforeEach(() => {
      disk.full = false;
    });

    /** A store whose log is past the compaction threshold: its next checkpoint rewrites it. */
    async function storeDueForCompaction(): Promise<WaitStore> {
      const s = store({ checkpointMs: 60_000, openForAppend: openOnFlakyDisk });
      await s.load();
      const all = Array.from({ length: 1200 }, (_, i) => record(`w${i}`));
      await Promise.all(all.map((w) => s.put(w)));
      await Promise.all(all.slice(10).map((w) => s.remove(w.spec.waitId)));
      return s;
    }

    it('a failed append (disk full, injected through the file handle) leaves the wait nowhere on disk', async () => {
      const s = store({ openForAppend: openOnFlakyDisk });
      await s.load();
      await s.put(record('a'));
      disk.full = true;
      await should(s.put(record('b'))).be.rejectedWith(/Could not save wait b on collection "docs" to .*ENOSPC/);
      disk.full = false;
      should(s.stats.waits).equal(1);
      should(await fs.readFile(file, 'utf8')).not.match(/"b"/); // the half-written line was cut off
      await s.put(record('c'));
      await s.close();
      should((await store().load()).map((w) => w.spec.waitId)).eql(['a', 'c']);
      should(warnings).eql([]);
    });

    it('a compaction while a put is in flight does not write it; the failed append then leaves it nowhere', async () => {
      const s = await storeDueForCompaction();
      const compactionsBefore = s.stats.compactions;
      disk.full = true;
      const putting = s.put(record('late'));
      const compacting = s.flush(); // rewrites the log before the put's batch is written
      await should(putting).be.rejectedWith(/ENOSPC/);
      await compacting;
      disk.full = false;
      should(s.stats.compactions).equal(compactionsBefore + 1);
      should(s.stats.waits).equal(10);
      await s.close();
      should(await fs.readFile(file, 'utf8')).not.match(/"late"/);
      const loaded = await store().load();
      should(loaded).have.length(10);
      should(loaded.some((w) => w.spec.waitId === 'late')).be.false();
    });

    it('a put that succeeds while a compaction runs is kept', async () => {
      const s = await storeDueForCompaction();
      const putting = s.put(record('late'));
      const compacting = s.flush();
      await Promise.all([putting, compacting]);
      await s.close();
      should((await store().load()).map((w) => w.spec.waitId)).containEql('late');
    });

    it('a put written just before a compaction runs is in the rewrite', async () => {
      const s = await storeDueForCompaction();
      const putting = s.put(record('late'));
      await new Promise((r) => setImmediate(r)); // its batch is queued first
      await Promise.all([putting, s.flush()]);
      should(s.stats.compactions).equal(1);
      should((await lines(file)).some((l) => l.includes('"late"'))).be.true();
      await s.close();
      should((await store().load()).map((w) => w.spec.waitId)).containEql('late');
    });

    it('remove() of a wait whose put is in flight ends with the wait removed on disk', async () => {
      const s = store();
      await s.load();
      const putting = s.put(record('a'));
      const removing = s.remove('a');
      await Promise.all([putting, removing]);
      should(s.stats.waits).equal(0);
      // and the triggerer's way: remove once the put resolved
      await s.put(record('b'));
      await s.remove('b');
      await s.close();
      should(await store().load()).eql([]);
    });
  });

  describe('final markers', () => {
    const success: FinalPayload = { status: 'success', collection: 'docs', documentCount: 10, indexedCount: 10, expectedCount: 10, elapsedMs: 1234, polls: 3, deferred: true };

    it('markFinal is on disk when it resolves, and load returns the wait with its final', async () => {
      const s = store();
      await s.load();
      await Promise.all([s.put(record('a')), s.put(record('b'))]);
      await s.markFinal('a', success);
      const last = (await lines(file)).map((l) => JSON.parse(l)).pop();
      should(last).eql({ op: 'final', id: 'a', p: success });
      await s.close(); // as after a crash between the marker and the removal

      const loaded = await store().load();
      should(loaded.find((w) => w.spec.waitId === 'a')?.final).eql(success);
      should(loaded.find((w) => w.spec.waitId === 'b')).not.have.property('final');
    });

    it('remove after delivery forgets a marked wait', async () => {
      const s = store();
      await s.load();
      await s.put(record('a'));
      await s.markFinal('a', success);
      await s.remove('a');
      await s.close();
      should(await store().load()).eql([]);
    });

    it('a final marker survives compaction (at a checkpoint and at load) and reload', async () => {
      const s = store({ checkpointMs: 60_000 });
      await s.load();
      const all = Array.from({ length: 1200 }, (_, i) => record(`w${i}`));
      await Promise.all(all.map((w) => s.put(w)));
      await s.markFinal('w3', success);
      // marked while the compaction is queued: its marker is kept by the rewrite or after it
      await Promise.all(all.slice(10).map((w) => s.remove(w.spec.waitId)));
      const marking = s.markFinal('w5', success);
      await Promise.all([marking, s.flush()]);
      should(s.stats.compactions).equal(1);
      await s.close();
      const compacted = (await lines(file)).map((l) => JSON.parse(l));
      should(compacted.find((r) => r.w?.spec.waitId === 'w3')).match({ op: 'put', w: { final: success } });

      const loaded = await store().load();
      should(loaded).have.length(10);
      should(loaded.filter((w) => w.final).map((w) => w.spec.waitId).sort()).eql(['w3', 'w5']);
    });

    it('a final marker of an unknown wait writes nothing', async () => {
      const s = store();
      await s.load();
      await s.markFinal('nope', success);
      await s.flush();
      await should(fs.readFile(file, 'utf8')).be.rejected();
    });
  });

  describe('damaged files', () => {
    /** A file of `n` waits, one put line each. */
    async function writeWaits(n: number, extra: string[] = []): Promise<string[]> {
      const body = Array.from({ length: n }, (_, i) => JSON.stringify({ op: 'put', w: record(`w${i}`) }));
      body.push(...extra);
      await fs.writeFile(file, body.join('\n') + '\n');
      return body;
    }

    const ids = (waits: DurableRecord[]) => waits.map((w) => w.spec.waitId);

    it('a torn last line is dropped quietly (no warning, no copy), and cut off before the next append', async () => {
      await writeWaits(3);
      await fs.appendFile(file, '{"op":"put","w":{"ownerId":"node-1","spec":{"v":1,"wai');
      const s = store();
      should(ids(await s.load())).eql(['w0', 'w1', 'w2']);
      await s.put(record('x'));
      await s.close();
      should(ids(await store().load())).eql(['w0', 'w1', 'w2', 'x']);
      should(warnings).eql([]);
      await should(fs.stat(`${file}.corrupt`)).be.rejected();
    });

    it('an unparsable last line ending in a newline is a torn line too', async () => {
      await writeWaits(2, ['{"op":"del","id":"w']);
      should(ids(await store().load())).eql(['w0', 'w1']);
      should(warnings).eql([]);
    });

    it('a garbled middle line: kept aside verbatim, reported once, the rest loaded', async () => {
      const body = await writeWaits(6);
      const garbled = body[2].slice(0, 40) + '\u00ff#garbage#' + body[2].slice(60);
      body[2] = garbled;
      await fs.writeFile(file, body.join('\n') + '\n');

      const s = store();
      should(ids(await s.load())).eql(['w0', 'w1', 'w3', 'w4', 'w5']);
      should(warnings).eql([
        `1 unreadable line in the pending waits file ${file} was copied to ${file}.corrupt: the waits it described are lost, and a wait whose end it recorded may run again.`,
      ]);
      const copy = await fs.readFile(`${file}.corrupt`, 'utf8');
      should(copy.split('\n')[0]).match(/^# \d{4}-\d\d-\d\dT.*Z: unreadable lines of .*waits\.jsonl/);
      should(copy.split('\n')[1]).equal(garbled);
      await s.close();

      // The damage was moved out of the log: the next start reports nothing.
      warnings.length = 0;
      should(ids(await store().load())).eql(['w0', 'w1', 'w3', 'w4', 'w5']);
      should(warnings).eql([]);
    });

    it('a line cut short in the middle of the file (truncated, newline kept) costs only that wait', async () => {
      const body = await writeWaits(5);
      body[1] = body[1].slice(0, 70);
      await fs.writeFile(file, body.join('\n') + '\n');
      should(ids(await store().load())).eql(['w0', 'w2', 'w3', 'w4']);
      should(warnings).have.length(1);
      should(warnings[0]).match(/^1 unreadable line in the pending waits file/);
    });

    it('a 4 KB block of zeros costs only the lines it overwrote', async () => {
      const body = await writeWaits(60);
      const text = body.join('\n') + '\n';
      const start = 3000;
      const bytes = Buffer.from(text);
      bytes.fill(0, start, start + 4096);
      await fs.writeFile(file, bytes);
      // The waits whose line holds any of the zeroed bytes.
      const lineStarts: number[] = [];
      let at = 0;
      for (const line of body) {
        lineStarts.push(at);
        at += Buffer.byteLength(line) + 1;
      }
      const hit = body.map((_, i) => i).filter((i) => lineStarts[i] < start + 4096 && lineStarts[i] + Buffer.byteLength(body[i]) + 1 > start);

      const loaded = ids(await store().load());
      should(loaded).eql(body.map((_, i) => `w${i}`).filter((_, i) => !hit.includes(i)));
      should(warnings).have.length(1);
      should(warnings[0]).match(/unreadable line in the pending waits file .* was copied to .*\.corrupt/);
    });

    it('a record after a block of zeros (no newline between) is still read', async () => {
      const body = await writeWaits(3);
      const text = `${body[0]}\n${'\0'.repeat(4096)}${body[1]}\n${body[2]}\n`;
      await fs.writeFile(file, text);
      should(ids(await store().load())).eql(['w0', 'w1', 'w2']);
      should(warnings).have.length(1);
    });

    it('a garbled del line is reported, and its wait comes back flagged with its final', async () => {
      const final: FinalPayload = { status: 'timeout', collection: 'docs', message: 'Timed out', elapsedMs: 60_000, polls: 9, lastProgress: null };
      await writeWaits(3, [JSON.stringify({ op: 'final', id: 'w1', p: final }), '{"op":"d\u0001l","id":"w1"}', JSON.stringify({ op: 'del', id: 'w2' })]);
      const loaded = await store().load();
      should(ids(loaded)).eql(['w0', 'w1']);
      should(loaded[1].final).eql(final);
      should(warnings).have.length(1);
      should(warnings[0]).match(/may run again/);
    });

    it('records that parse but are invalid are kept aside with one summarised warning', async () => {
      await writeWaits(2, ['{"op":"put","w":{"ownerId":"n"}}', '[1,2,3]', '{"op":"frobnicate","id":"w0"}', '"just a string"', JSON.stringify({ op: 'put', w: record('w9') })]);
      should(ids(await store().load())).eql(['w0', 'w1', 'w9']);
      should(warnings).eql([
        `4 unreadable lines in the pending waits file ${file} were copied to ${file}.corrupt: the waits they described are lost, and a wait whose end they recorded may run again.`,
      ]);
      should((await fs.readFile(`${file}.corrupt`, 'utf8')).split('\n').slice(1, 5)).eql(['{"op":"put","w":{"ownerId":"n"}}', '[1,2,3]', '{"op":"frobnicate","id":"w0"}', '"just a string"']);
    });

    it('a wait of the current format with a damaged field is damage (kept aside), not a skipped format', async () => {
      const damaged = { op: 'put', w: { ...record('bad'), spec: { ...record('bad').spec, expectedCount: -5 } } };
      const damagedUpdate = { op: 'spec', id: 'w0', s: { ...record('w0').spec, polls: 'many' } };
      await writeWaits(1, [JSON.stringify(damaged), JSON.stringify(damagedUpdate), JSON.stringify({ op: 'final', id: 'w0', p: { status: 'nope' } })]);
      const loaded = await store().load();
      should(ids(loaded)).eql(['w0']);
      should((loaded[0] as WaitRecord).spec.polls).equal(0);
      should(loaded[0]).not.have.property('final');
      should(warnings).eql([
        `3 unreadable lines in the pending waits file ${file} were copied to ${file}.corrupt: the waits they described are lost, and a wait whose end they recorded may run again.`,
      ]);
    });

    it('several waits of an unknown format make one warning', async () => {
      const future = (id: string) => JSON.stringify({ op: 'put', w: { ownerId: 'node-9', spec: { v: 2, waitId: id }, message: {} } });
      await writeWaits(1, [future('f1'), future('f2'), future('f3')]);
      should(ids(await store().load())).eql(['w0']);
      should(warnings).have.length(1);
      should(warnings[0]).match(/skipped 3 records: wait f1: .*format version 2/);
    });

    it('removes temp files left by a rewrite that was killed, and only those', async () => {
      await writeWaits(1);
      const stale = `${file}.4242.lz1x2y.k3j4h5.tmp`;
      await fs.writeFile(stale, '{"op":"put"');
      await fs.writeFile(path.join(dir, 'other.jsonl.4242.lz1x2y.k3j4h5.tmp'), 'not ours');
      await fs.writeFile(`${file}.notes`, 'not a temp file');
      should(ids(await store().load())).eql(['w0']);
      should((await fs.readdir(dir)).sort()).eql(['other.jsonl.4242.lz1x2y.k3j4h5.tmp', 'waits.jsonl', 'waits.jsonl.notes']);
    });

    it('a directory in place of the file: load rejects with what is wrong and the fix', async () => {
      await fs.mkdir(file);
      const err = await store().load().then(
        () => null,
        (e: unknown) => e,
      );
      should(err).be.instanceOf(VectorStoreError);
      should((err as VectorStoreError).code).equal('INTERNAL');
      should((err as VectorStoreError).message).equal(
        `The pending waits file ${file} cannot be read: it is a directory. Move it aside and restart Node-RED.`,
      );
    });
  });
});
