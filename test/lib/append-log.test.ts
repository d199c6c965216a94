import should from 'should';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AppendLog, readLog, removeStaleTempFiles } from '../../lib/storage/append-log';

describe('append log', () => {
  let dir: string;
  let file: string;

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'append-log-'));
    file = path.join(dir, 'log.jsonl');
  });

  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  const isNumbered = (value: unknown) => typeof (value as { n?: unknown } | null)?.n === 'number';
  const line = (n: number) => JSON.stringify({ n, text: `record number ${n}` });

  describe('readLog', () => {
    it('reads a missing file as an empty log', async () => {
      should(await readLog(file)).eql({ records: [], tornTailAt: null, damage: null });
    });

    it('drops a torn last line quietly and says where it starts', async () => {
      const good = `${line(1)}\n${line(2)}\n`;
      await fs.writeFile(file, `${good}{"n":3,"te`);
      const read = await readLog(file, { isRecord: isNumbered });
      should(read.records).have.length(2);
      should(read.tornTailAt).equal(Buffer.byteLength(good));
      should(read.damage).be.null();
      await should(fs.stat(`${file}.corrupt`)).be.rejected();
    });

    it('copies a garbled middle line aside verbatim (bytes that are not UTF-8 included)', async () => {
      const garbled = Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x80, 0x22]);
      await fs.writeFile(file, Buffer.concat([Buffer.from(`${line(1)}\n`), garbled, Buffer.from(`\n${line(3)}\n`)]));
      const read = await readLog<{ n: number }>(file, { isRecord: isNumbered });
      should(read.records.map((r) => r.n)).eql([1, 3]);
      should(read.damage).eql({ lines: 1, copiedTo: `${file}.corrupt`, copyError: null });
      should(read.tornTailAt).be.null();
      const copy = await fs.readFile(`${file}.corrupt`);
      const body = copy.subarray(copy.indexOf(0x0a) + 1);
      should(Buffer.compare(body, Buffer.concat([garbled, Buffer.from('\n')]))).equal(0);
    });

    it('appends to the copy at each damaged load, each time after a header line', async () => {
      await fs.writeFile(file, `${line(1)}\nnot json\n${line(2)}\n`);
      await readLog(file);
      await readLog(file);
      const copy = (await fs.readFile(`${file}.corrupt`, 'utf8')).split('\n');
      should(copy.filter((l) => l.startsWith('# '))).have.length(2);
      should(copy.filter((l) => l === 'not json')).have.length(2);
    });

    it('a line that is JSON but not a record is damage too, even as the last line', async () => {
      await fs.writeFile(file, `${line(1)}\n{"other":true}\n`);
      const read = await readLog(file, { isRecord: isNumbered });
      should(read.records).have.length(1);
      should(read.damage?.lines).equal(1);
      should(read.tornTailAt).be.null();
    });

    it('zeros end a line: the records around a zeroed block are read', async () => {
      await fs.writeFile(file, `${line(1)}\n${line(2).slice(0, 10)}${'\0'.repeat(4096)}${line(3)}\n${line(4)}\n`);
      const read = await readLog<{ n: number }>(file, { isRecord: isNumbered });
      should(read.records.map((r) => r.n)).eql([1, 3, 4]);
      should(read.damage?.lines).equal(1);
    });

    it('reads lines that span read chunks', async () => {
      const big = 'x'.repeat(700_000);
      const lines = [1, 2, 3, 4].map((n) => JSON.stringify({ n, big }));
      await fs.writeFile(file, lines.join('\n') + '\n');
      const read = await readLog<{ n: number }>(file, { isRecord: isNumbered });
      should(read.records.map((r) => r.n)).eql([1, 2, 3, 4]);
      should(read.damage).be.null();
    });

    it('rejects when the file is a directory, with the system error code', async () => {
      await fs.mkdir(file);
      await should(readLog(file)).be.rejectedWith({ code: 'EISDIR' });
    });
  });

  describe('AppendLog', () => {
    it('appendWritten puts the record in the file at once (a killed process keeps it) and leaves the fsync to the next flush', async () => {
      let syncs = 0;
      const log = new AppendLog<{ n: number }>(file, {
        openForAppend: async (f) => {
          const handle = await fs.open(f, 'a+');
          const datasync = handle.datasync.bind(handle);
          handle.datasync = async () => {
            syncs += 1;
            return datasync();
          };
          return handle;
        },
      });
      await log.append({ n: 1 });
      should(syncs).equal(1);
      await log.appendWritten({ n: 2 });
      await log.appendWritten({ n: 3 });
      should(syncs).equal(1); // not synced yet...
      should(await fs.readFile(file, 'utf8')).equal('{"n":1}\n{"n":2}\n{"n":3}\n'); // ...but in the file
      await log.flush();
      should(syncs).equal(2);
      await log.flush();
      should(syncs).equal(2); // nothing left to sync
      await log.close();
    });

    it('cuts a failed append off the file, so the next one starts clean (disk fault injected through the file handle)', async () => {
      let failing = false;
      const log = new AppendLog<{ n: number }>(file, {
        openForAppend: async (f) => {
          const handle = await fs.open(f, 'a+');
          const append = handle.appendFile.bind(handle);
          handle.appendFile = (async (data: string) => {
            await append(failing ? data.slice(0, 7) : data);
            if (failing) throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
          }) as typeof handle.appendFile;
          return handle;
        },
      });
      await log.append({ n: 1 });
      failing = true;
      await should(log.append({ n: 2 })).be.rejectedWith(/EIO/);
      failing = false;
      await log.append({ n: 3 });
      await log.close();
      should(await fs.readFile(file, 'utf8')).equal('{"n":1}\n{"n":3}\n');
    });

    it('truncate cuts a torn tail before appending', async () => {
      await fs.writeFile(file, '{"n":1}\n{"n":2');
      const { tornTailAt } = await readLog(file);
      const log = new AppendLog<{ n: number }>(file);
      await log.truncate(tornTailAt as number);
      await log.append({ n: 3 });
      await log.close();
      should(await fs.readFile(file, 'utf8')).equal('{"n":1}\n{"n":3}\n');
    });

    it('rewrite reads a record source when it runs', async () => {
      const log = new AppendLog<{ n: number }>(file);
      const live = [{ n: 1 }];
      const rewriting = log.rewrite(() => live);
      live.push({ n: 2 });
      await rewriting;
      await log.close();
      should(await fs.readFile(file, 'utf8')).equal('{"n":1}\n{"n":2}\n');
    });
  });

  it('removeStaleTempFiles removes the temp files of that file only', async () => {
    await fs.writeFile(file, '');
    const names = ['log.jsonl.12.lz1.abc.tmp', 'log.jsonl.1.a.b.tmp', 'log.jsonl.tmp', 'other.jsonl.12.lz1.abc.tmp', 'log.jsonl.12.lz1.abc.tmp.keep'];
    for (const name of names) await fs.writeFile(path.join(dir, name), 'x');
    const removed = await removeStaleTempFiles(file);
    should(removed.map((p) => path.basename(p)).sort()).eql(['log.jsonl.1.a.b.tmp', 'log.jsonl.12.lz1.abc.tmp']);
    should((await fs.readdir(dir)).sort()).eql(['log.jsonl', 'log.jsonl.12.lz1.abc.tmp.keep', 'log.jsonl.tmp', 'other.jsonl.12.lz1.abc.tmp']);
  });
});
