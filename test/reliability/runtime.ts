/**
 * A real Node-RED runtime in this process (node-red-node-test-helper) with this
 * package's nodes, like test/nodes/flow-helper.ts, plus what the reliability suites
 * need on top: runtime settings (`vectorPipeline` in settings.js, e.g. storeTimeout)
 * and a record of every log line and of unhandled rejections.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { helper, nodeModules } from '../nodes/flow-helper';
import { closeAllTriggerers } from '../../nodes/shared/runtime';

export { helper };

export type FlowNode = Record<string, unknown> & { id: string; type: string };
export type Msg = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

let userDir: string | null = null;

export interface LoadOptions {
  /** The `vectorPipeline` section of settings.js (storeTimeout in seconds...). */
  vectorPipeline?: Record<string, unknown>;
  credentials?: Record<string, unknown>;
  /** Reuse this user directory (a restart of the runtime on the same files). */
  userDir?: string;
}

export async function load(flow: FlowNode[], options: LoadOptions = {}): Promise<string> {
  userDir = options.userDir ?? (await fs.mkdtemp(path.join(os.tmpdir(), 'vp-reliability-')));
  helper.settings({ userDir, vectorPipeline: options.vectorPipeline ?? {} });
  await helper.load(nodeModules, flow, options.credentials ?? {});
  return userDir;
}

/** Stop the flows and the triggerers; remove the user directory unless `keep`. */
export async function unload(keep = false): Promise<void> {
  await helper.unload();
  await closeAllTriggerers();
  if (userDir && !keep) await fs.rm(userDir, { recursive: true, force: true });
  if (!keep) userDir = null;
}

const LEVELS: Record<number, string> = { 10: 'fatal', 20: 'error', 30: 'warn', 40: 'info', 50: 'debug', 60: 'trace', 98: 'audit', 99: 'metric' };

/** Every log line of the runtime (helper.log() is a sinon spy on the log handler) as "<level> <node type> <text>". */
export function logLines(): string[] {
  const spy = helper.log();
  return spy.args.map((args: unknown[]) => {
    const entry = args[0] as { msg?: unknown; type?: string; level?: number } | undefined;
    const text = typeof entry?.msg === 'string' ? entry.msg : JSON.stringify(entry?.msg ?? entry);
    return `${LEVELS[entry?.level ?? 0] ?? entry?.level} ${entry?.type ?? '-'} ${text}`;
  });
}

/** Record unhandled rejections and uncaught exceptions while a suite runs. */
export function recordProcessFaults(): { faults: string[]; stop(): void } {
  const faults: string[] = [];
  const onRejection = (reason: unknown) => faults.push(`unhandledRejection: ${(reason as Error)?.stack ?? String(reason)}`);
  const onException = (err: Error) => faults.push(`uncaughtException: ${err.stack ?? String(err)}`);
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return {
    faults,
    stop() {
      process.off('unhandledRejection', onRejection);
      process.off('uncaughtException', onException);
    },
  };
}

/** Every message reaching a helper node, with when it arrived. */
export function collectTimed(nodeId: string): Array<{ msg: Msg; at: number }> {
  const seen: Array<{ msg: Msg; at: number }> = [];
  helper.getNode(nodeId).on('input', (msg: Msg) => seen.push({ msg, at: Date.now() }));
  return seen;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Poll until `predicate` is truthy or `timeoutMs` passes (then resolve false: the caller asserts). */
export async function until(predicate: () => boolean, timeoutMs: number, intervalMs = 25): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() >= deadline) return false;
    await sleep(intervalMs);
  }
  return true;
}
