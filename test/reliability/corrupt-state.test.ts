/**
 * Corrupted state files on a real `node-red` process. With waits pending, Node-RED is
 * stopped, then both the pending waits file (`<userDir>/vector-pipeline/waits.jsonl`)
 * and one memory-store collection file (`<userDir>/vector-pipeline/memory/<c>.jsonl`)
 * are damaged the same way: truncated in the middle, a garbled middle line, 4 KB of
 * zeros in the middle, or replaced by a directory. Started again:
 *  - Node-RED starts;
 *  - damage other than a torn last line is logged once per file, with a count, and a
 *    `.corrupt` copy is kept next to the file;
 *  - the waits that can still be read resume and end, the readable documents are used;
 *  - a directory instead of a file: the sensor (or ingest) says what is wrong, naming the file;
 *  - no stale temporary file is left.
 */
import should from 'should';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { cleanupAll, sleep, type NodeRed } from '../e2e/harness';
import { EventsReader, byWait, healthOf, isFinal, pipelineFlows, prepareUserDir, startPipeline, startRun } from './pipeline-process';
import { writeFigures } from './figures';

type Damage = 'truncate-middle' | 'garble-middle-line' | 'zero-fill-4k' | 'directory';
const DAMAGES: Damage[] = ['truncate-middle', 'garble-middle-line', 'zero-fill-4k', 'directory'];

const WAITS_PER_COLLECTION = 10;
const DOCS = 40;
const FLOW = { indexingRate: 8, indexingDelay: 1, pollS: 0.3, timeoutS: 60, ingestBatchSize: 5 };

/** Damage a file in place; returns a word on what was done. */
async function damage(file: string, how: Damage): Promise<string> {
  const bytes = await fsp.readFile(file);
  switch (how) {
    case 'truncate-middle': {
      const at = Math.floor(bytes.length / 2);
      await fsp.truncate(file, at);
      return `cut at byte ${at} of ${bytes.length}`;
    }
    case 'garble-middle-line': {
      const lines = bytes.toString('utf8').split('\n');
      const index = Math.floor((lines.length - 1) / 2);
      lines[index] = lines[index].slice(0, 10) + '#'.repeat(Math.max(0, lines[index].length - 10));
      await fsp.writeFile(file, lines.join('\n'));
      return `line ${index + 1} of ${lines.length - 1} garbled`;
    }
    case 'zero-fill-4k': {
      const start = Math.max(0, Math.floor(bytes.length / 2) - 2048);
      const end = Math.min(bytes.length, start + 4096);
      bytes.fill(0, start, end);
      await fsp.writeFile(file, bytes);
      return `bytes ${start}-${end} of ${bytes.length} zeroed`;
    }
    case 'directory':
      await fsp.rm(file);
      await fsp.mkdir(file);
      return 'replaced by a directory';
  }
}

/** What a reader can still get from a damaged JSON-lines file: the lines that parse. */
async function readableLines(file: string): Promise<any[]> {
  const text = await fsp.readFile(file, 'utf8').catch(() => '');
  const out: any[] = [];
  for (const line of text.split('\n')) {
    try {
      out.push(JSON.parse(line));
    } catch {
      // unreadable
    }
  }
  return out;
}

/** Waits still pending according to the readable records of a waits file. */
function pendingWaits(records: any[]): Set<string> {
  const live = new Set<string>();
  for (const r of records) {
    if (r?.op === 'put' && typeof r.w?.spec?.waitId === 'string') live.add(r.w.spec.waitId);
    if (r?.op === 'del') live.delete(r.id);
  }
  return live;
}

interface CaseFigures {
  damage: Damage;
  waitsFile: string;
  collectionFile: string;
  pendingBefore: number;
  readablePending: number;
  resumedAndEnded: number;
  readableDocuments: number | null;
  documentsAfter: number | null;
  waitsFileLogLines: number;
  collectionFileLogLines: number;
  corruptCopies: string[];
  staleTmpFiles: number;
  startedAgain: boolean;
  clearMessage: string | null;
}

describe('reliability: corrupted state files on a real node-red process', function () {
  this.timeout(90_000);
  const figures: CaseFigures[] = [];
  after(async () => {
    await writeFigures('corrupt-state', { cases: figures });
    await cleanupAll();
  });

  for (const how of DAMAGES) {
    it(`${how}: Node-RED starts, the damage is reported once, what can be read resumes and ends`, async () => {
      const { userDir, eventsFile } = await prepareUserDir();
      const events = new EventsReader(eventsFile);
      const flows = pipelineFlows(FLOW);
      const run = `cs-${how.split('-')[0]}`;
      const damagedCollection = `${run}-c0`;
      const dataDir = path.join(userDir, 'vector-pipeline');
      const waitsFile = path.join(dataDir, 'waits.jsonl');
      const collectionFile = path.join(dataDir, 'memory', `${damagedCollection}.jsonl`);
      const row: CaseFigures = {
        damage: how,
        waitsFile: '',
        collectionFile: '',
        pendingBefore: 0,
        readablePending: 0,
        resumedAndEnded: 0,
        readableDocuments: null,
        documentsAfter: null,
        waitsFileLogLines: 0,
        collectionFileLogLines: 0,
        corruptCopies: [],
        staleTmpFiles: 0,
        startedAgain: false,
        clearMessage: null,
      };
      figures.push(row);

      let nodeRed: NodeRed = await startPipeline(userDir, { flows });
      await startRun(nodeRed, { run, collections: 2, docs: DOCS, waits: WAITS_PER_COLLECTION, expectAll: false });
      should(await events.until((all) => new Set(all.filter((e) => e.run === run && e.kind === 'progress').map((e) => e.waitId)).size === 2 * WAITS_PER_COLLECTION, 15_000)).be.true();
      await nodeRed.stop();
      row.pendingBefore = pendingWaits(await readableLines(waitsFile)).size;

      row.waitsFile = await damage(waitsFile, how);
      row.collectionFile = await damage(collectionFile, how);
      const readable = how === 'directory' ? new Set<string>() : pendingWaits(await readableLines(waitsFile));
      row.readablePending = readable.size;
      const readableDocs = how === 'directory' ? null : (await readableLines(collectionFile)).filter((r) => r?.type === 'upsert').reduce((n, r) => n + r.docs.length, 0);
      row.readableDocuments = readableDocs;

      nodeRed = await startPipeline(userDir);
      row.startedAgain = true;
      try {
        if (how !== 'directory') {
          // Every wait that can be read resumes and ends (success: they wait for "ready" alone).
          await events.until(() => [...readable].every((id) => byWait(events.events, run).get(id)?.some(isFinal)), 20_000, 50);
          const ends = byWait(events.events, run);
          row.resumedAndEnded = [...readable].filter((id) => ends.get(id)?.some(isFinal)).length;
          const health = await healthOf(nodeRed, damagedCollection);
          row.documentsAfter = typeof health.documentCount === 'number' ? health.documentCount : null;
        } else {
          // New work on both files: the sensor and the ingest say what is wrong, naming the file.
          const mark = events.events.length;
          await startRun(nodeRed, { run: `${run}-after`, collections: 1, docs: 3, waits: 1, names: [`${run}-fresh`], expectAll: false });
          await startRun(nodeRed, { run: `${run}-after2`, collections: 1, docs: 3, waits: 1, names: [damagedCollection], expectAll: false });
          await events.until((all) => all.slice(mark).filter((e) => e.kind === 'failed' || e.kind === 'error').length >= 2, 10_000, 50);
          const failures = events.events.slice(mark).filter((e) => e.kind === 'failed' || e.kind === 'error');
          row.clearMessage = failures.map((f) => f.message).join(' | ') || null;
        }
        await sleep(500);
      } finally {
        const logText = nodeRed.log.lines;
        row.waitsFileLogLines = logText.filter((line) => line.includes('waits.jsonl')).length;
        row.collectionFileLogLines = logText.filter((line) => line.includes(`${damagedCollection}.jsonl`)).length;
        const names = [...(await fsp.readdir(dataDir)).map((n) => n), ...(await fsp.readdir(path.join(dataDir, 'memory')).catch(() => [] as string[]))];
        row.corruptCopies = names.filter((n) => n.includes('corrupt'));
        row.staleTmpFiles = names.filter((n) => n.endsWith('.tmp')).length;
        should(nodeRed.log.find(/Uncaught Exception|UnhandledPromiseRejection/)).eql([]);
        await nodeRed.stop();
      }

      if (how === 'directory') {
        should(row.clearMessage).match(/waits\.jsonl/, 'a new wait fails with a message naming the waits file');
        should(row.clearMessage).match(new RegExp(`${damagedCollection}\\.jsonl`), 'work on the damaged collection fails naming its file');
        return;
      }
      should(row.resumedAndEnded).equal(row.readablePending, `${row.readablePending - row.resumedAndEnded} readable wait(s) did not resume and end`);
      should(row.documentsAfter).equal(row.readableDocuments, 'the readable documents of the damaged collection are all used');
      if (how === 'truncate-middle') {
        // A cut file ends in a torn line, which is what a crash mid-write leaves: dropped quietly, at most one line.
        should(row.waitsFileLogLines).be.belowOrEqual(1);
        should(row.collectionFileLogLines).be.belowOrEqual(1);
      } else {
        should(row.waitsFileLogLines).equal(1, `the damage of waits.jsonl was logged ${row.waitsFileLogLines} time(s)`);
        should(nodeRed.log.find('waits.jsonl')[0]).match(/\d/, 'the log line says how many records were set aside');
        should(row.collectionFileLogLines).equal(1, `the damage of ${damagedCollection}.jsonl was logged ${row.collectionFileLogLines} time(s)`);
        should(nodeRed.log.find(`${damagedCollection}.jsonl`)[0]).match(/\d/);
        should(row.corruptCopies.some((n) => n.startsWith('waits.jsonl'))).be.true('a .corrupt copy of waits.jsonl is kept');
        should(row.corruptCopies.some((n) => n.startsWith(`${damagedCollection}.jsonl`))).be.true(`a .corrupt copy of ${damagedCollection}.jsonl is kept`);
      }
      should(row.staleTmpFiles).equal(0);
    });
  }
});
