// A real local Chroma server for tests: the `chroma run` CLI of the `chromadb` dev
// dependency (a native build of the Rust server, no download), on 127.0.0.1 with a
// free port and a temporary data directory. Plus two small HTTP helpers for the
// cases a local server cannot show: a stand-in that answers what a test needs (a
// test double: say so in the test name), and a recording proxy in front of the
// real server.
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const CLI = path.resolve(__dirname, '..', '..', 'node_modules', 'chromadb', 'dist', 'cli.mjs');

export interface ChromaServer {
  url: string;
  port: number;
  dir: string;
  pid: number;
  /** SIGTERM (SIGKILL after a grace period), wait for the exit, remove the data directory. Idempotent. */
  stop(): Promise<void>;
}

export { freePort } from './ports';
import { freePort } from './ports';

/** GET a URL once without keep-alive; resolves with the status, or null when nothing answers. */
function probe(url: string, timeoutMs = 1000): Promise<number | null> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? null));
      res.on('error', () => resolve(null));
    });
    req.setTimeout(timeoutMs, () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

export async function startChromaServer(options: { startTimeoutMs?: number } = {}): Promise<ChromaServer> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'chroma-test-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(process.execPath, [CLI, 'run', '--path', dir, '--host', '127.0.0.1', '--port', String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: string[] = [];
  const keep = (chunk: Buffer) => {
    log.push(chunk.toString('utf8'));
    if (log.length > 200) log.shift();
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  let exited = false;
  const closed = new Promise<void>((resolve) => child.on('close', () => resolve()));
  child.on('exit', () => {
    exited = true;
  });

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    if (!stopping) {
      stopping = (async () => {
        if (!exited) {
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
          await closed;
          clearTimeout(timer);
        } else {
          await closed;
        }
        await fsp.rm(dir, { recursive: true, force: true });
      })();
    }
    return stopping;
  };

  const deadline = Date.now() + (options.startTimeoutMs ?? 30_000);
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`chroma run exited during startup. Output:\n${log.join('')}`);
    }
    if ((await probe(`${url}/api/v2/heartbeat`)) === 200) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`chroma run did not answer ${url}/api/v2/heartbeat in time. Output:\n${log.join('')}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { url, port, dir, pid: child.pid!, stop };
}

// ---------------------------------------------------------------------------------------
// HTTP helpers

export interface RecordedRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface LocalServer {
  url: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

export type Reply = { status: number; body?: unknown; headers?: Record<string, string> } | 'hang' | null;

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: http.ServerResponse, reply: Exclude<Reply, 'hang' | null>): void {
  const body = reply.body === undefined ? '' : typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body);
  res.writeHead(reply.status, { 'Content-Type': 'application/json', ...reply.headers }).end(body);
}

async function listen(server: http.Server, requests: RecordedRequest[]): Promise<LocalServer> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: async () => {
      if (!server.listening) return;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A test double: a local HTTP server that answers every request with `answer(request)`
 * ("hang" never answers; its sockets are closed by close()).
 */
export function startStandIn(answer: (request: RecordedRequest) => Reply): Promise<LocalServer> {
  const requests: RecordedRequest[] = [];
  const server = http.createServer(async (req, res) => {
    const recorded = { method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers, body: await readBody(req) };
    requests.push(recorded);
    const reply = answer(recorded);
    if (reply === 'hang') return;
    send(res, reply ?? { status: 404, body: '' });
  });
  return listen(server, requests);
}

/**
 * A proxy in front of a real server that records every request. `override` may
 * answer a request itself (return a reply) instead of forwarding it (return null).
 */
export function startRecordingProxy(target: string, override: (request: RecordedRequest) => Reply = () => null): Promise<LocalServer> {
  const requests: RecordedRequest[] = [];
  const server = http.createServer(async (req, res) => {
    const recorded = { method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers, body: await readBody(req) };
    requests.push(recorded);
    const reply = override(recorded);
    if (reply === 'hang') return;
    if (reply) return send(res, reply);
    const headers = { ...req.headers };
    delete headers.host;
    delete headers['content-length'];
    const upstream = http.request(
      `${target}${recorded.path}`,
      { method: recorded.method, headers: { ...headers, 'content-length': Buffer.byteLength(recorded.body) }, agent: false },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', (err) => send(res, { status: 502, body: { error: 'ProxyError', message: err.message } }));
    upstream.end(recorded.body);
  });
  return listen(server, requests);
}
