// End-to-end harness: a real `node-red` process (node_modules/node-red/red.js) on a free
// port and a temp user directory, driven through its admin HTTP API, plus a "collector"
// HTTP server that records every message the flows under test POST to it.
//
// Everything started here registers a cleanup; call `cleanupAll()` in an after() hook so
// processes, servers and temp dirs go away even when a test fails.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

// Shared with scripts/start.js: how the package is made visible and how Node-RED is started.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const userdir = require('../../scripts/userdir.js') as {
  repoRoot: string;
  packageName: string;
  linkPackage(userDir: string, packageDir?: string): string;
  nodeRedArgs(opts: { userDir: string; port: number; defines?: Record<string, string> }): string[];
};

export const repoRoot = userdir.repoRoot;
export const packageName = userdir.packageName;

/** A node of a flow file, as the admin API and the example files hold it. */
export type FlowNode = { id: string; type: string; z?: string; wires?: string[][]; [key: string]: unknown };

// ---------------------------------------------------------------------------------------
// Cleanup registry

const cleanups: Array<() => Promise<void>> = [];

/** Run every registered cleanup (newest first); errors are collected, not thrown midway. */
export async function cleanupAll(): Promise<void> {
  const errors: unknown[] = [];
  while (cleanups.length > 0) {
    const cleanup = cleanups.pop()!;
    try {
      await cleanup();
    } catch (err) {
      errors.push(err);
    }
  }
  if (errors.length > 0) throw errors[0];
}

/** A fresh directory under os.tmpdir(), removed by cleanupAll(). */
export async function makeTempDir(prefix: string): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), `${prefix}-`));
  cleanups.push(() => fsp.rm(dir, { recursive: true, force: true }));
  return dir;
}

// ---------------------------------------------------------------------------------------
// Small helpers

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Poll `predicate` until it returns something truthy (which is returned) or time runs out. */
export async function waitFor<T>(
  predicate: () => T | Promise<T>,
  timeoutMs: number,
  what = 'condition',
  intervalMs = 50,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value as NonNullable<T>;
    if (Date.now() >= deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}.`);
    await sleep(intervalMs);
  }
}

import { freePort } from '../support/ports';

const runFile = promisify(execFile);
export { freePort };

interface HttpResult {
  status: number;
  body: string;
}

/** One HTTP request without keep-alive (no pooled sockets left behind). */
export function httpRequest(
  method: string,
  url: string,
  body?: unknown,
  headers: Record<string, string> = {},
  timeoutMs = 10_000,
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const req = http.request(
      url,
      {
        method,
        agent: false,
        headers: {
          ...(data !== undefined ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } : {}),
          ...headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${url} got no answer within ${timeoutMs} ms.`)));
    req.on('error', reject);
    if (data !== undefined) req.write(data);
    req.end();
  });
}

// ---------------------------------------------------------------------------------------
// Log buffer: every stdout/stderr line of the Node-RED process

export class LogBuffer {
  readonly lines: string[] = [];
  private partial = { stdout: '', stderr: '' };

  feed(stream: 'stdout' | 'stderr', chunk: string): void {
    const text = this.partial[stream] + chunk;
    const parts = text.split('\n');
    this.partial[stream] = parts.pop() ?? '';
    for (const line of parts) this.lines.push(line);
  }

  flush(): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      if (this.partial[stream]) this.lines.push(this.partial[stream]);
      this.partial[stream] = '';
    }
  }

  /** Index to pass as `from` to look only at lines logged after this moment. */
  mark(): number {
    return this.lines.length;
  }

  find(pattern: RegExp | string, from = 0): string[] {
    const test = typeof pattern === 'string' ? (line: string) => line.includes(pattern) : (line: string) => pattern.test(line);
    return this.lines.slice(from).filter(test);
  }

  /** Node-RED's `[error]` lines (and uncaught exceptions) since `from`. */
  errors(from = 0): string[] {
    return this.find(/\[error\]|Uncaught Exception|UnhandledPromiseRejection/, from);
  }

  async waitForLine(pattern: RegExp | string, timeoutMs: number, from = 0): Promise<string> {
    return waitFor(() => this.find(pattern, from)[0], timeoutMs, `log line ${String(pattern)}`);
  }

  text(from = 0): string {
    return this.lines.slice(from).join('\n');
  }
}

// ---------------------------------------------------------------------------------------
// Node-RED process

/** What Node-RED logs once flows are running after a start or a deploy (or why they are not). */
const FLOWS_STARTED = /\[info\] Started (modified )?(flows|nodes)|\[info\] Waiting for missing types|\[error\] Error loading flows/;

export interface StartOptions {
  /** User directory; a temp dir (removed by cleanupAll) when omitted. Reused as is across restarts. */
  userDir?: string;
  /** Port; a free one from the OS when omitted. */
  port?: number;
  /** Written to <userDir>/flows.json before starting (otherwise what is there is kept). */
  flows?: FlowNode[];
  /** Directory linked as the package into <userDir>/node_modules; null links nothing (installed package). */
  packageDir?: string | null;
  /** Extra `-D key=value` settings. */
  defines?: Record<string, string>;
  /** Options for node itself, before red.js (e.g. `--expose-gc`, `-r <preload>`). */
  nodeArgs?: string[];
  startTimeoutMs?: number;
}

export interface NodeRed {
  readonly url: string;
  readonly port: number;
  readonly userDir: string;
  readonly pid: number;
  readonly log: LogBuffer;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** POST /flows with the given deployment type ("full", "nodes", "flows"). */
  deploy(flows: FlowNode[], type?: 'full' | 'nodes' | 'flows'): Promise<void>;
  getFlows(): Promise<FlowNode[]>;
  /** Trigger an inject node through its admin endpoint. */
  inject(nodeId: string): Promise<void>;
  /** GET /nodes: the palette (node sets with types, enabled, err). */
  getNodes(): Promise<Array<{ id: string; module: string; types: string[]; enabled: boolean; loaded?: boolean; err?: string }>>;
  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  stop(graceMs?: number): Promise<void>;
  /** kill -9: no shutdown code runs (simulates a crash). */
  kill9(): Promise<void>;
}

export async function startNodeRed(options: StartOptions = {}): Promise<NodeRed> {
  const userDir = options.userDir ?? (await makeTempDir('nr-e2e-user'));
  const port = options.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  await fsp.mkdir(userDir, { recursive: true });
  if (options.packageDir !== null) userdir.linkPackage(userDir, options.packageDir ?? repoRoot);
  if (options.flows) await fsp.writeFile(path.join(userDir, 'flows.json'), JSON.stringify(options.flows, null, 2));

  const log = new LogBuffer();
  const child: ChildProcess = spawn(process.execPath, [...(options.nodeArgs ?? []), ...userdir.nodeRedArgs({ userDir, port, defines: options.defines })], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => log.feed('stdout', chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => log.feed('stderr', chunk));
  let hasExited = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      hasExited = true;
      resolve({ code, signal });
    });
  });
  // 'close' fires once the output pipes are drained: the log is complete after that.
  const closed = new Promise<void>((resolve) => child.on('close', () => resolve()));
  closed.then(() => log.flush());

  const killAndWait = async (graceMs: number) => {
    if (hasExited) return void (await closed);
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await closed;
    clearTimeout(timer);
  };
  cleanups.push(() => killAndWait(5_000));

  const api = (method: string, route: string, body?: unknown, headers: Record<string, string> = {}) =>
    httpRequest(method, `${url}${route}`, body, headers);
  const expectOk = (result: HttpResult, what: string) => {
    if (result.status < 200 || result.status >= 300) {
      throw new Error(`${what} failed with HTTP ${result.status}: ${result.body}`);
    }
    return result;
  };

  const nodeRed: NodeRed = {
    url,
    port,
    userDir,
    pid: child.pid!,
    log,
    exited,
    async deploy(flows, type = 'full') {
      const from = log.mark();
      expectOk(await api('POST', '/flows', flows, { 'Node-RED-Deployment-Type': type }), `Deploying flows (${type})`);
      // The API answers before the new flows have started: wait for the runtime to say so.
      await log.waitForLine(FLOWS_STARTED, 15_000, from);
    },
    async getFlows() {
      return JSON.parse(expectOk(await api('GET', '/flows'), 'GET /flows').body) as FlowNode[];
    },
    async inject(nodeId) {
      expectOk(await api('POST', `/inject/${nodeId}`), `Injecting ${nodeId}`);
    },
    async getNodes() {
      return JSON.parse(expectOk(await api('GET', '/nodes', undefined, { Accept: 'application/json' }), 'GET /nodes').body);
    },
    stop: (graceMs = 5_000) => killAndWait(graceMs),
    async kill9() {
      if (!hasExited) child.kill('SIGKILL');
      await closed;
    },
  };

  // Up means the flows were loaded (the runtime logs that it starts them, or which node
  // types it waits for) and the admin API answers GET /flows. Asking GET /flows earlier
  // makes Node-RED log an [error] (its flows are still null), so the log line comes first.
  const deadline = Date.now() + (options.startTimeoutMs ?? 30_000);
  for (;;) {
    if (hasExited || log.find(FLOWS_STARTED).length > 0 || Date.now() > deadline) break;
    await sleep(50);
  }
  for (;;) {
    if (hasExited) {
      await closed;
      throw new Error(`Node-RED exited during startup (user dir ${userDir}). Log:\n${log.text()}`);
    }
    try {
      const result = await api('GET', '/flows');
      if (result.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await killAndWait(2_000);
      throw new Error(`Node-RED did not answer GET ${url}/flows in time. Log:\n${log.text()}`);
    }
    await sleep(100);
  }
  return nodeRed;
}

// ---------------------------------------------------------------------------------------
// Collector: records messages POSTed by `http request` nodes added to the flows under test

export interface CollectedMessage {
  /** Which tap the message came through (the label given to collectorNodes). */
  label: string;
  /** The message without req/res: payload, waitId, topic, error and any other fields. */
  msg: Record<string, any>;
  /** When the collector received it (ms since epoch). */
  at: number;
}

export class Collector {
  readonly messages: CollectedMessage[] = [];
  private server = http.createServer((req, res) => this.receive(req, res));
  private port = 0;

  static async start(): Promise<Collector> {
    const collector = new Collector();
    await new Promise<void>((resolve, reject) => {
      collector.server.once('error', reject);
      collector.server.listen(0, '127.0.0.1', () => resolve());
    });
    collector.port = (collector.server.address() as net.AddressInfo).port;
    cleanups.push(() => collector.close());
    return collector;
  }

  private receive(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const label = decodeURIComponent((req.url ?? '/').replace(/^\/collect\//, ''));
      try {
        this.messages.push({ label, msg: JSON.parse(Buffer.concat(chunks).toString('utf8')), at: Date.now() });
        res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok');
      } catch (err) {
        res.writeHead(400, { 'Content-Type': 'text/plain' }).end(`not JSON: ${(err as Error).message}`);
      }
    });
  }

  async close(): Promise<void> {
    if (!this.server.listening) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  url(label: string): string {
    return `http://127.0.0.1:${this.port}/collect/${encodeURIComponent(label)}`;
  }

  /**
   * Two core nodes that forward every message they receive to this collector under
   * `label`: a function node copying the message without req/res into the payload, then
   * an `http request` node POSTing it (ret: txt). Wire the outputs to observe to the
   * returned `inputId`.
   */
  nodes(label: string, z: string, position = { x: 900, y: 500 }): { inputId: string; nodes: FlowNode[] } {
    const base = `collect-${label.replace(/[^A-Za-z0-9]/g, '-')}-${Math.random().toString(36).slice(2, 8)}`;
    const fn: FlowNode = {
      id: `${base}-fn`,
      type: 'function',
      z,
      name: `collect ${label}`,
      func: 'const copy = Object.assign({}, msg);\ndelete copy.req;\ndelete copy.res;\nreturn { payload: copy };',
      outputs: 1,
      noerr: 0,
      x: position.x,
      y: position.y,
      wires: [[`${base}-http`]],
    };
    const request: FlowNode = {
      id: `${base}-http`,
      type: 'http request',
      z,
      name: `POST ${label}`,
      method: 'POST',
      ret: 'txt',
      paytoqs: 'ignore',
      url: this.url(label),
      tls: '',
      persist: false,
      proxy: '',
      insecureHTTPParser: false,
      authType: '',
      senderr: false,
      headers: [],
      x: position.x + 200,
      y: position.y,
      wires: [[]],
    };
    return { inputId: fn.id, nodes: [fn, request] };
  }

  /**
   * Add collector taps to a copy of `flows`: each tap wires output `output` (0-based) of node
   * `from` to a new collector pair labelled `label`, placed on the same tab.
   */
  tap(flows: FlowNode[], taps: Array<{ label: string; from: string; output?: number }>): FlowNode[] {
    const copy: FlowNode[] = JSON.parse(JSON.stringify(flows));
    let y = 40;
    for (const { label, from, output = 0 } of taps) {
      const source = copy.find((node) => node.id === from);
      if (!source) throw new Error(`Cannot tap "${label}": no node with id ${from} in the flows.`);
      const { inputId, nodes } = this.nodes(label, source.z as string, { x: 1100, y: (y += 60) });
      source.wires = source.wires ?? [];
      while (source.wires.length <= output) source.wires.push([]);
      source.wires[output].push(inputId);
      copy.push(...nodes);
    }
    return copy;
  }

  byLabel(label: string): CollectedMessage[] {
    return this.messages.filter((m) => m.label === label);
  }

  /** Wait until `predicate` over all collected messages returns something truthy. */
  waitFor<T>(predicate: (messages: CollectedMessage[]) => T, timeoutMs: number, what = 'collected messages'): Promise<NonNullable<T>> {
    return waitFor(() => predicate(this.messages), timeoutMs, what);
  }

  clear(): void {
    this.messages.length = 0;
  }
}

/**
 * `npm pack` this repository (dist/ must be built: `npm test` builds first) and
 * `npm install` the tarball into a fresh Node-RED user directory, production
 * dependencies only, as the palette manager would. Returns the user directory and
 * where the package was installed.
 */
export async function installPackedPackage(): Promise<{ userDir: string; installed: string }> {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const packDir = await makeTempDir('nr-e2e-pack');
  const packed = await runFile(npm, ['pack', '--json', '--pack-destination', packDir], { cwd: repoRoot });
  const tarball = path.join(packDir, JSON.parse(packed.stdout)[0].filename);
  const userDir = await makeTempDir('nr-e2e-installed');
  await fsp.writeFile(path.join(userDir, 'package.json'), JSON.stringify({ name: 'node-red-project', private: true }));
  await runFile(npm, ['install', tarball, '--no-audit', '--no-fund', '--omit=dev', '--no-package-lock'], { cwd: userDir });
  return { userDir, installed: path.join(userDir, 'node_modules', ...packageName.split('/')) };
}

/** Read a flow file (e.g. an example) as an array of nodes. */
export async function readFlowFile(file: string): Promise<FlowNode[]> {
  return JSON.parse(await fsp.readFile(file, 'utf8')) as FlowNode[];
}
