/**
 * A real Node-RED runtime in the benchmark's process (`require('node-red')`,
 * `RED.init` + `RED.start`, no HTTP), loading this package from dist/ exactly as
 * an installed package: through a link in the user directory's node_modules.
 * Messages are fed with `node.receive(msg)` and outputs are counted on debug
 * nodes (switched off, so they cost nothing but their own handler).
 */
import { promises as fs, statSync, readdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Store } from '../lib/operations';

export type FlowNode = { id: string; type: string; wires?: string[][]; [key: string]: unknown };
export type Msg = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/* eslint-disable @typescript-eslint/no-require-imports */
const userdir = require('../scripts/userdir.js') as { repoRoot: string; linkPackage(userDir: string): string };
/* eslint-enable @typescript-eslint/no-require-imports */

interface RuntimeNode {
  id: string;
  receive(msg: Msg): void;
  on(event: 'input', listener: (msg: Msg, send: unknown, done: () => void) => void): void;
}

interface NodeRedModule {
  init(settings: Record<string, unknown>): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  nodes: { getNode(id: string): RuntimeNode | null };
}

export interface Runtime {
  userDir: string;
  node(id: string): RuntimeNode;
  /** The backend and embedder of a `vector-store` config node: what the nodes use. */
  store(id: string): Store;
  /** Count messages reaching a (debug) node; `seen` is called for each. */
  onInput(id: string, seen: (msg: Msg) => void): void;
  stop(): Promise<void>;
}

/** A debug node that does nothing: a place to count messages. */
export function sink(id: string): FlowNode {
  return { id, type: 'debug', active: false, tosidebar: false, console: 'false', complete: 'true', wires: [] };
}

/**
 * A flow as the editor saves it: one tab, the config nodes outside it, the other
 * nodes on it with a position (Node-RED takes a node without x/y for a config node).
 */
export function onTab(configNodes: FlowNode[], nodes: FlowNode[]): FlowNode[] {
  return [{ id: 'bench-tab', type: 'tab', label: 'bench' }, ...configNodes, ...nodes.map((n, i) => ({ ...n, z: 'bench-tab', x: 100, y: 40 * (i + 1) }))];
}

/** Fail early when dist/ is missing or older than the sources (`npm run bench` builds first). */
export function assertBuilt(): void {
  const root = userdir.repoRoot;
  let builtAt: number;
  try {
    builtAt = statSync(path.join(root, 'dist', 'nodes', 'deferrable-sensor.js')).mtimeMs;
  } catch {
    throw new Error('dist/ is missing: run `npm run build` first (`npm run bench` does).');
  }
  const newer = (dir: string): string | null => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      const found = entry.isDirectory() ? newer(file) : entry.name.endsWith('.ts') && statSync(file).mtimeMs > builtAt ? file : null;
      if (found) return found;
    }
    return null;
  };
  const stale = newer(path.join(root, 'lib')) ?? newer(path.join(root, 'nodes'));
  if (stale) throw new Error(`dist/ is older than ${path.relative(root, stale)}: run \`npm run build\` first (\`npm run bench\` does).`);
}

/** Start Node-RED with this flow in a fresh user directory. One runtime per process. */
export async function startNodeRed(flow: FlowNode[]): Promise<Runtime> {
  assertBuilt();
  const userDir = await fs.mkdtemp(path.join(os.tmpdir(), 'bench-node-red-'));
  userdir.linkPackage(userDir);
  await fs.writeFile(path.join(userDir, 'flows.json'), JSON.stringify(flow));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const RED = require('node-red') as NodeRedModule;
  RED.init({
    userDir,
    flowFile: 'flows.json',
    httpAdminRoot: false,
    httpNodeRoot: false,
    credentialSecret: 'bench',
    logging: { console: { level: 'warn', metrics: false, audit: false } },
    editorTheme: { tours: false },
    telemetry: { enabled: false },
  });
  await RED.start();
  const node = (id: string): RuntimeNode => {
    const found = RED.nodes.getNode(id);
    if (!found) throw new Error(`Node ${id} is not running in the benchmark's Node-RED.`);
    return found;
  };
  await waitForNodes(RED, flow);
  return {
    userDir,
    node,
    store: (id) => (node(id) as unknown as { getStore(): Store }).getStore(),
    onInput(id, seen) {
      node(id).on('input', (msg, _send, done) => {
        seen(msg);
        done();
      });
    },
    async stop() {
      await RED.stop();
      // The runtime's triggerer lives in the package's (dist) module: close it too.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const shared = require(path.join(userdir.repoRoot, 'dist', 'nodes', 'shared', 'runtime.js')) as { closeAllTriggerers(): Promise<void> };
      await shared.closeAllTriggerers();
      await fs.rm(userDir, { recursive: true, force: true });
    },
  };
}

async function waitForNodes(RED: NodeRedModule, flow: FlowNode[]): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!flow.every((n) => n.type === 'tab' || RED.nodes.getNode(n.id))) {
    if (Date.now() > deadline) throw new Error('Node-RED did not start the benchmark flow within 30 s (is the package built?).');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The triggerer of the runtime (the dist module's, shared with the sensor nodes). */
export async function runtimeTriggerer(userDir: string): Promise<{ stats(): { waits: number; running: number; finals: number } }> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const shared = require(path.join(userdir.repoRoot, 'dist', 'nodes', 'shared', 'runtime.js')) as {
    triggererFor(RED: unknown): Promise<{ stats(): { waits: number; running: number; finals: number } }>;
  };
  return shared.triggererFor({ settings: { userDir }, log: { warn: () => undefined } });
}
