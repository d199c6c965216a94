// The Vector waits endpoints on a real node-red process with adminAuth in its settings.js:
// no token, no list (401); a read-only user lists the pending waits but cannot cancel (403);
// an admin cancels, and the log names them.
//
// The harness's startNodeRed() waits for GET /flows to answer without a token, which adminAuth
// forbids: this file starts the process itself, with the harness's command line and log buffer.
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import should from 'should';
import { cleanupAll, freePort, httpRequest, LogBuffer, makeTempDir, repoRoot, waitFor, type FlowNode } from './harness';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const userdir = require('../../scripts/userdir.js') as {
  linkPackage(userDir: string): string;
  nodeRedArgs(opts: { userDir: string; port: number }): string[];
};

/** Two users: "admin" may do anything, "viewer" may only read. Plain passwords: a test settings file. */
const SETTINGS = `
const users = { admin: { password: 'admin-secret', permissions: '*' }, viewer: { password: 'viewer-secret', permissions: 'read' } };
module.exports = {
  flowFile: 'flows.json',
  adminAuth: {
    type: 'credentials',
    users: async (username) => (users[username] ? { username, permissions: users[username].permissions } : null),
    authenticate: async (username, password) =>
      users[username] && users[username].password === password ? { username, permissions: users[username].permissions } : null,
  },
  editorTheme: { tours: false },
  logging: { console: { level: 'info', metrics: false, audit: false } },
};
`;

const TAB = 'auth-tab';
const STORE = 'auth-store';
const SENSOR = 'auth-sensor';

/** inject (30 documents) -> ingest -> sensor on a very slow memory store: the wait lasts about a minute. */
function flows(): FlowNode[] {
  const docs = Array.from({ length: 30 }, (_, i) => `Sidebar auth document ${i} about lighthouses.`);
  return [
    { id: TAB, type: 'tab', label: 'Auth', disabled: false, info: '' },
    { id: STORE, type: 'vector-store', name: 'slow store', backend: 'memory', embedder: 'hash', dimensions: '64', indexingRate: '0.5', indexingDelay: '0', persist: true },
    {
      id: 'auth-inject',
      type: 'inject',
      z: TAB,
      name: 'ingest',
      props: [{ p: 'payload' }],
      repeat: '',
      crontab: '',
      once: false,
      onceDelay: 0.1,
      topic: '',
      payload: JSON.stringify(docs),
      payloadType: 'json',
      x: 120,
      y: 80,
      wires: [['auth-ingest']],
    },
    { id: 'auth-ingest', type: 'vector-ingest', z: TAB, name: '', store: STORE, collection: 'lighthouses', batchSize: '100', createCollection: true, buildIndex: true, x: 300, y: 80, wires: [[SENSOR]] },
    {
      id: SENSOR,
      type: 'deferrable-sensor',
      z: TAB,
      name: 'wait for lighthouses',
      store: STORE,
      collection: 'lighthouses',
      expectedCount: '0',
      pollInterval: '1',
      maxPollInterval: '1',
      timeout: '600',
      deferrable: true,
      x: 520,
      y: 80,
      wires: [[], []],
    },
  ];
}

describe('e2e: Vector waits endpoints with adminAuth (real node-red process)', function () {
  this.timeout(60_000);
  let url: string;
  let log: LogBuffer;
  let child: ChildProcess | null = null;
  let closed: Promise<void>;
  const tokens: Record<string, string> = {};

  const auth = (user: string) => ({ Authorization: `Bearer ${tokens[user]}` });

  before(async function () {
    const userDir = await makeTempDir('nr-e2e-sidebar-auth');
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    userdir.linkPackage(userDir);
    await fsp.writeFile(path.join(userDir, 'settings.js'), SETTINGS);
    await fsp.writeFile(path.join(userDir, 'flows.json'), JSON.stringify(flows(), null, 2));
    log = new LogBuffer();
    child = spawn(process.execPath, userdir.nodeRedArgs({ userDir, port }), { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => log.feed('stdout', chunk));
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => log.feed('stderr', chunk));
    closed = new Promise<void>((resolve) => child!.on('close', () => resolve()));
    await log.waitForLine(/\[info\] Started flows/, 30_000);
    for (const user of ['admin', 'viewer']) {
      const answer = await waitFor(async () => {
        const r = await httpRequest('POST', `${url}/auth/token`, {
          client_id: 'node-red-admin',
          grant_type: 'password',
          scope: user === 'admin' ? '*' : 'read',
          username: user,
          password: `${user}-secret`,
        }).catch(() => null);
        return r && r.status === 200 ? r : null;
      }, 15_000, `a token for ${user}`);
      tokens[user] = JSON.parse(answer.body).access_token;
    }
    // One pending wait: the inject node starts it (inject needs write permission: the admin).
    should((await httpRequest('POST', `${url}/inject/auth-inject`, undefined, auth('admin'))).status).equal(200);
    await waitFor(async () => {
      const r = await httpRequest('GET', `${url}/vector-pipeline/waits`, undefined, auth('admin'));
      return r.status === 200 && JSON.parse(r.body).total === 1;
    }, 20_000, 'the wait to be listed');
  });

  after(async function () {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child?.kill('SIGKILL'), 5000);
      await closed;
      clearTimeout(timer);
    }
    await cleanupAll();
  });

  it('answers 401 without a token: no list, no cancel', async () => {
    should((await httpRequest('GET', `${url}/vector-pipeline/waits`)).status).equal(401);
    should((await httpRequest('GET', `${url}/vector-pipeline/waits?store=${STORE}&collection=lighthouses`)).status).equal(401);
    should((await httpRequest('GET', `${url}/vector-pipeline/waits/holders`)).status).equal(401);
    should((await httpRequest('POST', `${url}/vector-pipeline/waits/cancel`, { store: STORE, collection: 'lighthouses' })).status).equal(401);
  });

  it('lets a read-only user list the waits but not cancel them (403, with a sentence)', async () => {
    const groups = await httpRequest('GET', `${url}/vector-pipeline/waits`, undefined, auth('viewer'));
    should(groups.status).equal(200);
    should(JSON.parse(groups.body).groups).match([{ store: { id: STORE, name: 'slow store' }, collection: 'lighthouses', count: 1 }]);
    const page = JSON.parse((await httpRequest('GET', `${url}/vector-pipeline/waits?store=${STORE}&collection=lighthouses`, undefined, auth('viewer'))).body);
    should(page.waits[0]).match({ nodeId: SENSOR, nodeName: 'wait for lighthouses', state: 'running', durable: true });
    // Who holds the waits: not shared here (the file store).
    const holders = await httpRequest('GET', `${url}/vector-pipeline/waits/holders`, undefined, auth('viewer'));
    should(holders.status).equal(200);
    should(JSON.parse(holders.body)).eql({ shared: false, instance: null, groups: [] });

    const refused = await httpRequest('POST', `${url}/vector-pipeline/waits/cancel`, { waitId: page.waits[0].waitId }, auth('viewer'));
    should(refused.status).equal(403);
    should(JSON.parse(refused.body).message).match(/You may look at the pending waits but not cancel them: that needs the permission "vector-waits.write"/);
    should(JSON.parse((await httpRequest('GET', `${url}/vector-pipeline/waits`, undefined, auth('viewer'))).body).total).equal(1);
  });

  it('lets an admin cancel the waits of a collection; the log names the admin', async () => {
    const from = log.mark();
    const answer = await httpRequest('POST', `${url}/vector-pipeline/waits/cancel`, { store: STORE, collection: 'lighthouses' }, auth('admin'));
    should(answer.status).equal(200);
    should(JSON.parse(answer.body).cancelled).equal(1);
    const line = await log.waitForLine('cancelled 1 pending wait(s) from the Vector waits sidebar', 5000, from);
    should(line).containEql('admin cancelled');
    should(line).containEql('collection "lighthouses" (store "slow store")');
    should(JSON.parse((await httpRequest('GET', `${url}/vector-pipeline/waits`, undefined, auth('admin'))).body).total).equal(0);
    should(log.errors(from)).eql([]);
  });
});
