/**
 * Loads flows into a real Node-RED runtime (node-red-node-test-helper) with this
 * package's nodes, each test in its own user directory so persisted collections
 * and waits never leak between tests.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { closeAllTriggerers } from '../../nodes/shared/runtime';

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const helper = require('node-red-node-test-helper');
helper.init(require.resolve('node-red'));

/** This package's nodes and the core nodes the test flows use. */
/* eslint-disable @typescript-eslint/no-require-imports */
export const nodeModules = [
  require('../../nodes/vector-store'),
  require('../../nodes/vector-ingest'),
  require('../../nodes/deferrable-sensor'),
  require('../../nodes/index-health'),
  require('../../nodes/sample-query'),
  require('@node-red/nodes/core/common/25-catch.js'),
  require('@node-red/nodes/core/common/24-complete.js'),
  require('@node-red/nodes/core/common/25-status.js'),
  require('@node-red/nodes/core/function/10-function.js'),
];
/* eslint-enable @typescript-eslint/no-require-imports */

export type FlowNode = Record<string, unknown> & { id: string; type: string };
export type Msg = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

let userDir: string | null = null;

/** A memory store that indexes fast, unless told otherwise. */
export function storeConfig(overrides: Record<string, unknown> = {}): FlowNode {
  return {
    id: 'store',
    type: 'vector-store',
    name: 'test store',
    backend: 'memory',
    embedder: 'hash',
    dimensions: 64,
    indexingRate: 10000,
    indexingDelay: 0,
    persist: true,
    ...overrides,
  };
}

export async function loadFlow(
  flow: FlowNode[],
  credentials: Record<string, unknown> = {},
  options: { prepare?: (userDir: string) => Promise<void>; settings?: Record<string, unknown> } = {},
): Promise<string> {
  userDir = await fs.mkdtemp(path.join(os.tmpdir(), 'vp-node-test-'));
  await options.prepare?.(userDir);
  helper.settings({ vectorPipeline: undefined, ...options.settings, userDir });
  await helper.load(nodeModules, flow, credentials);
  return userDir;
}

/** Stop the flow and load another in the same runtime and user directory: a redeploy. */
export async function redeploy(flow: FlowNode[], credentials: Record<string, unknown> = {}): Promise<void> {
  await helper.unload();
  helper.settings({ userDir });
  await helper.load(nodeModules, flow, credentials);
}

export async function unloadFlow(): Promise<void> {
  await helper.unload();
  await closeAllTriggerers();
  if (userDir) await fs.rm(userDir, { recursive: true, force: true });
  userDir = null;
}

/** Collect every message reaching a helper node. */
export function collect(nodeId: string): Msg[] {
  const seen: Msg[] = [];
  helper.getNode(nodeId).on('input', (msg: Msg) => seen.push(msg));
  return seen;
}

/** Resolve with the first message reaching `nodeId` that matches. */
export function nextMessage(nodeId: string, match: (msg: Msg) => boolean = () => true, timeoutMs = 10000): Promise<Msg> {
  return new Promise((resolve, reject) => {
    const node = helper.getNode(nodeId);
    const timer = setTimeout(() => {
      node.removeListener('input', listener);
      reject(new Error(`no matching message reached ${nodeId} within ${timeoutMs} ms`));
    }, timeoutMs);
    let matched = false;
    function listener(msg: Msg): void {
      if (matched || !match(msg)) return;
      matched = true;
      clearTimeout(timer);
      // Not synchronously: Node-RED would skip the next input listener of this node.
      setImmediate(() => node.removeListener('input', listener));
      resolve(msg);
    }
    node.on('input', listener);
  });
}

/** Assert nothing reaches `nodeId` for `ms`. */
export function silence(nodeId: string, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const node = helper.getNode(nodeId);
    const listener = (msg: Msg) => {
      clearTimeout(timer);
      reject(new Error(`unexpected message at ${nodeId}: ${JSON.stringify(msg.payload)}`));
    };
    const timer = setTimeout(() => {
      node.removeListener('input', listener);
      resolve();
    }, ms);
    node.on('input', listener);
  });
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The backend behind the `store` config node, to look at what was written. */
export function backendOf(storeId = 'store') {
  return helper.getNode(storeId).getStore().backend;
}

/** A catch node (scope: all) wired to a helper node named `errors`. */
export function catchAll(): FlowNode[] {
  return [
    { id: 'catch-all', type: 'catch', scope: null, uncaught: false, wires: [['errors']] },
    { id: 'errors', type: 'helper' },
  ];
}
