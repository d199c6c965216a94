/**
 * kill -9 matrix on a real `node-red` process (memory backend, default settings):
 * each run starts 100 waits over 10 collections that become ready together (a burst
 * of finals), kills the process at one chosen moment, starts it again on the same
 * user directory and collects every final. Per wait: 0 lost (every wait that was
 * seen gets a final), 0 unflagged duplicates (a second final must carry
 * msg.redelivered === true, and there is at most one), and the elapsed time is
 * never reset (payload.elapsedMs covers the wall time since the original start).
 *
 * Moments: just after deferring, mid-progress, right after the first final, during
 * the burst of finals, during compaction of the waits file (at the next start),
 * during a redeploy, during a checkpoint of the waits file, and at random.
 * RELIABILITY_KILL_RUNS (default 2) sets the runs per moment.
 */
import should from 'should';
import { spawn } from 'node:child_process';
import fs, { promises as fsp } from 'node:fs';
import path from 'node:path';
import { cleanupAll, freePort, httpRequest, sleep, type NodeRed } from '../e2e/harness';
import { EventsReader, byWait, isFinal, pipelineFlows, prepareUserDir, startPipeline, startRun, type SensorEvent } from './pipeline-process';
import { writeFigures } from './figures';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const userdirScript = require('../../scripts/userdir.js') as { nodeRedArgs(opts: { userDir: string; port: number }): string[] };

const RUNS = Math.max(1, Number(process.env.RELIABILITY_KILL_RUNS ?? 2));
const COLLECTIONS = 10;
const WAITS_PER_COLLECTION = 10;
const WAITS = COLLECTIONS * WAITS_PER_COLLECTION;
const DOCS = 10;
const FLOW = { indexingRate: 3, indexingDelay: 1, pollS: 0.5, timeoutS: 120 };
/** How far payload.elapsedMs may trail the wall time since the original start. */
const ELAPSED_SLACK_MS = 1500;

type Moment = 'after-defer' | 'mid-progress' | 'first-final' | 'burst' | 'compaction' | 'redeploy' | 'checkpoint' | 'random';
const ALL_MOMENTS: Moment[] = ['after-defer', 'mid-progress', 'first-final', 'burst', 'compaction', 'redeploy', 'checkpoint', 'random'];
/** RELIABILITY_KILL_MOMENTS=burst,first-final runs only those. */
const MOMENTS = process.env.RELIABILITY_KILL_MOMENTS ? ALL_MOMENTS.filter((m) => process.env.RELIABILITY_KILL_MOMENTS!.split(',').includes(m)) : ALL_MOMENTS;

interface RunFigures {
  run: string;
  moment: Moment;
  /** Waits seen (a progress or a final event). */
  waits: number;
  finalsBeforeKill: number;
  lost: number;
  /** Of the lost: still pending in waits.jsonl (never resumed), or gone from it (removed before the final reached the next node). */
  lostStillPending: number;
  lostRemoved: number;
  flaggedRedeliveries: number;
  unflaggedDuplicates: number;
  /** Finals whose elapsedMs is shorter than the wall time since the original start (minus slack). */
  elapsedResets: number;
  killAtMs: number;
  /** Moment-specific: was a compaction temp file seen at the kill, etc. */
  detail: string;
  /** Stale *.tmp files left next to the waits file after the restart. */
  staleTmpFiles: number;
}

describe('reliability: kill -9 matrix on a real node-red process', function () {
  this.timeout(40_000 * RUNS + 30_000);
  let nodeRed: NodeRed;
  let userDir: string;
  let events: EventsReader;
  const figures: RunFigures[] = [];
  const flows = pipelineFlows(FLOW);
  let runCounter = 0;

  const waitsDir = () => path.join(userDir, 'vector-pipeline');
  const waitsFile = () => path.join(waitsDir(), 'waits.jsonl');

  before(async function () {
    this.timeout(60_000);
    const prepared = await prepareUserDir();
    userDir = prepared.userDir;
    events = new EventsReader(prepared.eventsFile);
    nodeRed = await startPipeline(userDir, { flows });
  });
  after(async () => {
    await writeFigures('kill-matrix', {
      runsPerMoment: RUNS,
      waitsPerRun: WAITS,
      collectionsPerRun: COLLECTIONS,
      runs: figures,
      totals: {
        runs: figures.length,
        waits: sum(figures.map((f) => f.waits)),
        lost: sum(figures.map((f) => f.lost)),
        lostStillPending: sum(figures.map((f) => f.lostStillPending)),
        lostRemoved: sum(figures.map((f) => f.lostRemoved)),
        flaggedRedeliveries: sum(figures.map((f) => f.flaggedRedeliveries)),
        unflaggedDuplicates: sum(figures.map((f) => f.unflaggedDuplicates)),
        elapsedResets: sum(figures.map((f) => f.elapsedResets)),
        staleTmpFiles: sum(figures.map((f) => f.staleTmpFiles)),
      },
    });
    await cleanupAll();
  });

  const ofRun = (run: string) => (all: SensorEvent[]) => all.filter((e) => e.run === run);
  const deferred = (run: string) => (all: SensorEvent[]) => new Set(ofRun(run)(all).filter((e) => e.kind === 'progress').map((e) => e.waitId)).size;
  const finals = (run: string) => (all: SensorEvent[]) => ofRun(run)(all).filter(isFinal).length;

  /** Kill at the moment; resolves with a word about what was seen. */
  async function killAt(moment: Moment, run: string, startedAt: number): Promise<string> {
    const kill = async (detail: string) => {
      await nodeRed.kill9();
      return detail;
    };
    switch (moment) {
      case 'after-defer':
        await events.until((all) => deferred(run)(all) >= WAITS / 2, 15_000, 1);
        return kill(`${deferred(run)(events.events)} deferred`);
      case 'mid-progress':
        await events.until((all) => ofRun(run)(all).some((e) => e.kind === 'progress' && (e.progress ?? 0) >= 0.4), 15_000, 1);
        return kill('progress >= 40%');
      case 'first-final':
        await events.until((all) => finals(run)(all) >= 1, 20_000, 1);
        return kill(`${finals(run)(events.events)} final(s) seen`);
      case 'burst':
        await events.until((all) => finals(run)(all) >= 5, 20_000, 1);
        return kill(`${finals(run)(events.events)} final(s) seen`);
      case 'checkpoint': {
        await events.until((all) => deferred(run)(all) >= WAITS, 15_000);
        const size = (await fsp.stat(waitsFile())).size;
        const deadline = Date.now() + 5000;
        while (Date.now() < deadline && (await fsp.stat(waitsFile())).size === size) await sleep(1);
        return kill(`waits file grew from ${size} bytes`);
      }
      case 'redeploy': {
        await events.until((all) => deferred(run)(all) >= WAITS, 15_000);
        const deploying = httpRequest('POST', `${nodeRed.url}/flows`, flows, { 'Node-RED-Deployment-Type': 'full' }).catch(() => undefined);
        const afterMs = Math.floor(Math.random() * 40);
        await sleep(afterMs);
        const detail = await kill(`${afterMs} ms into a full deploy`);
        await deploying;
        return detail;
      }
      case 'compaction': {
        await events.until((all) => deferred(run)(all) >= WAITS, 15_000);
        await nodeRed.kill9();
        // Enough removal records that the next start compacts the log (> 2 x live + 10,000, the store's compaction slack).
        const current = await fsp.readFile(waitsFile(), 'utf8');
        const filler = Array.from({ length: 10_300 }, (_, i) => JSON.stringify({ op: 'del', id: `filler-${run}-${i}` })).join('\n');
        await fsp.appendFile(waitsFile(), (current.endsWith('\n') || current === '' ? '' : '\n') + filler + '\n');
        return `crashed after deferring; ${await killDuringCompaction()}`;
      }
      case 'random': {
        const afterMs = 200 + Math.floor(Math.random() * 6000);
        await sleep(Math.max(0, startedAt + afterMs - Date.now()));
        return kill(`${afterMs} ms after the start`);
      }
    }
  }

  /** Start node-red on the user dir and kill -9 it as soon as a compaction temp file appears (or after 10 s). */
  async function killDuringCompaction(): Promise<string> {
    const port = await freePort();
    const child = spawn(process.execPath, userdirScript.nodeRedArgs({ userDir, port }), { stdio: 'ignore' });
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    let seen = 'no temp file seen within 10 s';
    await new Promise<void>((resolve) => {
      const watcher = fs.watch(waitsDir(), (_event, name) => {
        if (name && String(name).endsWith('.tmp')) {
          child.kill('SIGKILL');
          seen = 'killed as a compaction temp file appeared';
          finish();
        }
      });
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        finish();
      }, 10_000);
      function finish() {
        clearTimeout(timer);
        watcher.close();
        resolve();
      }
    });
    await exited;
    return seen;
  }

  async function oneRun(moment: Moment): Promise<RunFigures> {
    const run = `km${++runCounter}`;
    const startedAt = Date.now();
    await startRun(nodeRed, { run, collections: COLLECTIONS, docs: DOCS, waits: WAITS_PER_COLLECTION });
    const detail = await killAt(moment, run, startedAt);
    const killAtMs = Date.now() - startedAt;
    await events.poll();
    const finalsBeforeKill = finals(run)(events.events);

    nodeRed = await startPipeline(userDir);
    const seen = () => byWait(events.events, run);
    // Collections are ready by now or soon: every resumed wait ends within a few polls.
    await events.until(() => [...seen().values()].every((list) => list.some(isFinal)) && seen().size > 0, 15_000, 20);
    await sleep(1500); // room for a late duplicate
    await events.poll();

    const row: RunFigures = {
      run,
      moment,
      waits: seen().size,
      finalsBeforeKill,
      lost: 0,
      lostStillPending: 0,
      lostRemoved: 0,
      flaggedRedeliveries: 0,
      unflaggedDuplicates: 0,
      elapsedResets: 0,
      killAtMs,
      detail,
      staleTmpFiles: (await fsp.readdir(waitsDir())).filter((name) => name.endsWith('.tmp')).length,
    };
    const pendingInFile = await pendingWaitIds(waitsFile());
    for (const [waitId, list] of seen()) {
      const ends = list.filter(isFinal);
      if (ends.length === 0) {
        row.lost += 1;
        if (pendingInFile.has(waitId)) row.lostStillPending += 1;
        else row.lostRemoved += 1;
      }
      for (const extra of ends.slice(1)) {
        if (extra.redelivered && ends.length === 2) row.flaggedRedeliveries += 1;
        else row.unflaggedDuplicates += 1;
      }
      const starts = list.filter((e) => typeof e.elapsedMs === 'number').map((e) => e.at - (e.elapsedMs as number));
      const origin = Math.min(...starts);
      for (const end of ends) {
        // A flagged redelivery repeats the recorded final as it was (its elapsedMs is that of the first delivery).
        if (end.redelivered) continue;
        if (typeof end.elapsedMs === 'number' && end.elapsedMs < end.at - origin - ELAPSED_SLACK_MS) row.elapsedResets += 1;
      }
    }
    figures.push(row);
    return row;
  }

  for (const moment of MOMENTS) {
    it(`kill -9 ${moment}: ${RUNS} run(s) of ${WAITS} waits, 0 lost, 0 unflagged duplicates, elapsed never reset`, async () => {
      const rows: RunFigures[] = [];
      for (let i = 0; i < RUNS; i++) rows.push(await oneRun(moment));
      const summary = JSON.stringify(rows.map(({ run, waits, lost, unflaggedDuplicates, elapsedResets, detail }) => ({ run, waits, lost, unflaggedDuplicates, elapsedResets, detail })));
      for (const row of rows) should(row.waits).be.above(0, `no wait was seen in run ${row.run}`);
      should(sum(rows.map((r) => r.lost))).equal(0, `lost finals: ${summary}`);
      should(sum(rows.map((r) => r.unflaggedDuplicates))).equal(0, `unflagged duplicate finals: ${summary}`);
      should(sum(rows.map((r) => r.elapsedResets))).equal(0, `elapsed time reset: ${summary}`);
      if (moment === 'compaction') should(sum(rows.map((r) => r.staleTmpFiles))).equal(0, 'a stale compaction temp file was left after the restart');
    });
  }
});

/** Wait ids the waits file still holds as pending (a put and no del). */
async function pendingWaitIds(file: string): Promise<Set<string>> {
  const pending = new Set<string>();
  const text = await fsp.readFile(file, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    try {
      const record = JSON.parse(line);
      if (record?.op === 'put' && record.w?.spec?.waitId) pending.add(record.w.spec.waitId);
      if (record?.op === 'del') pending.delete(record.id);
    } catch {
      // a torn or damaged line
    }
  }
  return pending;
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}
