/**
 * Benchmark 1, restart: resume N pending waits from the file the waits
 * benchmark left, in a fresh process (as after a restart of Node-RED).
 *
 * Resumed means running again: the time runs from opening the waits file to the
 * moment every wait has polled its store once more (its first event after the
 * restart), through load, the sensors' attach and the first poll of each wait.
 */
import { promises as fs } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { MemoryBackend } from '../lib/backends/memory';
import { Triggerer, type WaitOwner } from '../lib/triggerer';
import { WaitStore } from '../lib/wait-store';
import { LoopDelayMonitor, ms, until, type LoopDelay } from './measure';
import { RESUME_PREFIX, collectionNames, createPendingCollections, type ResumeFile } from './waits';

export interface ResumeResult {
  waits: number;
  fileBytes: number;
  /** Reading and replaying the file (`triggerer.start()`). */
  loadMs: number;
  /** Until every wait has polled again. */
  resumeMs: number;
  /** CPU time (user + system) this process spent on it: what the machine's other load does not change. */
  resumeCpuMs: number;
  resumed: number;
  loopDelay: LoopDelay;
}

export async function run(options: ResumeFile): Promise<ResumeResult> {
  const volatileKey = `bench-resumed-${process.pid}`;
  await createPendingCollections(volatileKey, collectionNames(RESUME_PREFIX, options.collections));
  const backend = new MemoryBackend({ dataDir: null, volatileKey, indexingRate: 1, indexingDelay: 0 });
  const fileBytes = (await fs.stat(options.file)).size;
  let resumed = 0;
  const owner: WaitOwner = {
    backend,
    storeKey: 'bench-store',
    onEvent: () => {
      resumed += 1;
    },
  };

  const monitor = new LoopDelayMonitor().start();
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const triggerer = new Triggerer({ waitStore: new WaitStore(options.file) });
  await triggerer.start();
  const loadMs = performance.now() - started;
  for (let k = 0; k < options.owners; k++) triggerer.attach(`sensor-${k}`, owner);
  await until(() => resumed >= options.waits, 60_000, `all ${options.waits} waits to resume`, 1);
  const resumeMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  const loopDelay = monitor.stop();

  const pending = triggerer.pending();
  await triggerer.close();
  await backend.close();
  await fs.rm(options.dir, { recursive: true, force: true });
  if (pending !== options.waits) throw new Error(`Resumed ${pending} waits from the file, expected ${options.waits}.`);
  return { waits: options.waits, fileBytes, loadMs: ms(loadMs), resumeMs: ms(resumeMs), resumeCpuMs: ms((cpu.user + cpu.system) / 1000), resumed: pending, loopDelay };
}
