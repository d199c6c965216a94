/**
 * Config versions (issue 9, item 4): a node's saved config carries its version
 * in `configVersion`; lib/config-versions migrates older shapes before parsing. Flows saved
 * by main before versions existed (test/fixtures/flows-main-2026-12.json: the
 * five example flows exactly as main shipped them, no version) deploy and run
 * unchanged in a real Node-RED runtime (test helper), against real stores:
 * memory, LanceDB (embedded), pgvector (PGlite over the Postgres wire protocol)
 * and Chroma (the local `chroma run` server). Only the pgvector and Chroma URLs
 * are pointed at the servers the test started, as the e2e example tests do.
 */
import { promises as fs, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import should from 'should';
import { helper, nodeModules, type FlowNode, type Msg } from './flow-helper';
import { closeAllTriggerers } from '../../nodes/shared/runtime';
import { CONFIG_VERSION, VERSION_PROPERTY, migrateConfig, readNodeConfig, type ConfigMigration } from '../../lib/config-versions';
import { InvalidFieldsError, parseHealthConfig, parseIngestConfig, parseQueryConfig, parseSensorConfig, parseStoreConfig, type FieldLabels } from '../../lib/schemas';
import { startPgliteServer, type PgliteServer } from '../support/pglite-server';
import { startChromaServer, type ChromaServer } from '../support/chroma-server';

const FIXTURE = path.join(__dirname, '../fixtures/flows-main-2026-12.json');
const saved = JSON.parse(readFileSync(FIXTURE, 'utf8')) as { flows: Record<string, FlowNode[]> };

const PARSERS: Record<string, (def: unknown, labels?: FieldLabels) => unknown> = {
  'vector-store': parseStoreConfig,
  'vector-ingest': parseIngestConfig,
  'deferrable-sensor': parseSensorConfig,
  'index-health': parseHealthConfig,
  'sample-query': parseQueryConfig,
};

describe('config versions: one place migrates saved node configs', function () {
  it('a config without a version is version 0 (main before versions) and reads as the current version, unchanged otherwise', function () {
    const old = { id: 'n1', type: 'vector-ingest', collection: 'docs', batchSize: '50' };
    const migrated = migrateConfig('vector-ingest', old);
    should(migrated).eql({ ...old, configVersion: CONFIG_VERSION });
    should(old).not.have.property('configVersion'); // the saved flow is never changed
    should(readNodeConfig('vector-ingest', old, parseIngestConfig)).match({ collection: 'docs', batchSize: 50 });
  });

  it('a (made-up) rename migration: configs saved before it read in the new shape, newer ones are left alone', function () {
    // Pretend version 2 renamed the sensor's "timeout" to "timeoutSeconds".
    const migrations: ConfigMigration[] = [
      {
        from: 1,
        why: 'timeout became timeoutSeconds',
        // An old node edited in the new editor may already hold timeoutSeconds: it wins.
        migrate: ({ timeout, ...rest }) => ({ ...rest, timeoutSeconds: rest.timeoutSeconds ?? timeout }),
      },
    ];
    const options = { migrations, current: 2 };
    const sensor = (config: Record<string, unknown>) => migrateConfig('deferrable-sensor', config, options);
    should(sensor({ collection: 'docs', timeout: 5 })).eql({ collection: 'docs', timeoutSeconds: 5, configVersion: 2 });
    should(sensor({ configVersion: 1, collection: 'docs', timeout: 5 })).eql({ collection: 'docs', timeoutSeconds: 5, configVersion: 2 });
    should(sensor({ configVersion: '1', timeout: 7 })).eql({ timeoutSeconds: 7, configVersion: 2 });
    should(sensor({ timeout: 7, timeoutSeconds: 8 })).eql({ timeoutSeconds: 8, configVersion: 2 });
    should(sensor({ configVersion: 2, timeoutSeconds: 9 })).eql({ configVersion: 2, timeoutSeconds: 9 });
  });

  it('refuses a config saved by a newer version, and a version that is not a number, naming the fix', function () {
    const newer = (() => {
      try {
        migrateConfig('sample-query', { configVersion: CONFIG_VERSION + 1 });
      } catch (err) {
        return err;
      }
    })();
    should(newer).be.instanceOf(InvalidFieldsError);
    should((newer as InvalidFieldsError).code).equal('INVALID_INPUT');
    should((newer as InvalidFieldsError).fields).eql(['newer version']);
    should((newer as Error).message).match(/saved by a newer version of @deferrable\/node-red-vector-pipeline \(config version 2; this one reads up to 1\): update the package/);
    should(() => migrateConfig('sample-query', { configVersion: 'two' })).throw(/config version \(configVersion\) must be a whole number, 0 or more, but is "two"/);
  });

  it('the version property is one the Node-RED editor keeps in a node\'s defaults (not one of its internal names)', function () {
    // The editor drops "internal" properties (every one-letter name, "id", "type"...) from defaults.
    const editor = readFileSync(require.resolve('@node-red/editor-client/public/red/red.js'), 'utf8');
    const list = /const internalProperties = \[([^\]]*)\]/.exec(editor);
    should.exist(list, 'internalProperties not found in the editor source');
    const internal = JSON.parse(`[${list![1]}]`.replace(/,\s*\]$/, ']')) as string[];
    should(internal).containEql('v');
    should(internal).not.containEql(VERSION_PROPERTY);
  });

  it('every node config of the five example flows saved by main reads without error', function () {
    let read = 0;
    for (const [name, flow] of Object.entries(saved.flows)) {
      for (const node of flow) {
        const parse = PARSERS[node.type];
        if (!parse) continue;
        should(node).not.have.property('configVersion');
        should.doesNotThrow(() => readNodeConfig(node.type, node, parse), `${name}: ${node.type} ${node.id}`);
        read += 1;
      }
    }
    should(read).be.above(20);
  });
});

// ---------------------------------------------------------------------------
// The flows saved by main, deployed and run

/* eslint-disable @typescript-eslint/no-require-imports */
const modules = [
  ...nodeModules,
  require('@node-red/nodes/core/common/20-inject.js'),
  require('@node-red/nodes/core/common/21-debug.js'),
  require('@node-red/nodes/core/common/90-comment.js'),
  require('@node-red/nodes/core/function/15-change.js'),
];
/* eslint-enable @typescript-eslint/no-require-imports */

let userDir: string | null = null;

/**
 * The test helper registers its own copy of the core catch node once per catch
 * node of the flow (the "Failure handling" flow has three: "catch already
 * registered"), so here it registers it once per load, and our list leaves it out.
 */
const helperCoreModules = (helper as { _nodeModules: Record<string, (red: unknown) => unknown> })._nodeModules;
const realCatch = helperCoreModules.catch;
let catchRegistered = false;
function catchOncePerLoad(red: unknown): unknown {
  if (catchRegistered) return undefined;
  catchRegistered = true;
  return realCatch(red);
}
const modulesButCatch = modules.filter((m) => m !== realCatch);

async function deploy(flow: FlowNode[]): Promise<void> {
  userDir = await fs.mkdtemp(path.join(os.tmpdir(), 'vp-saved-flow-'));
  helper.settings({ userDir });
  catchRegistered = false;
  await helper.load(modulesButCatch, flow);
}

async function undeploy(): Promise<void> {
  await helper.unload();
  await closeAllTriggerers();
  if (userDir) await fs.rm(userDir, { recursive: true, force: true });
  userDir = null;
}

/** A copy of a saved flow; `store` changes only the vector-store URL (to the server the test started). */
function savedFlow(name: string, url?: string): FlowNode[] {
  const flow = JSON.parse(JSON.stringify(saved.flows[name])) as FlowNode[];
  if (url) for (const node of flow) if (node.type === 'vector-store') node.url = url;
  return flow;
}

/** Messages reaching the nodes wired from `fromId` (e.g. the debug node after a sample query). */
function downstream(flow: FlowNode[], fromId: string): Msg[] {
  const seen: Msg[] = [];
  const from = flow.find((n) => n.id === fromId) as FlowNode & { wires?: string[][] };
  for (const target of (from.wires ?? []).flat()) helper.getNode(target).on('input', (msg: Msg) => seen.push(msg));
  return seen;
}

async function until(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** No node of ours shows a config error once deployed (red status right after start). */
function configErrorsShown(flow: FlowNode[]): string[] {
  const ours = new Set(flow.filter((n) => PARSERS[n.type]).map((n) => n.id));
  const spy = helper.getNode(flow.find((n) => ours.has(n.id) && n.type !== 'vector-store')!.id).status as {
    getCalls(): Array<{ thisValue: { id: string }; args: [{ fill?: string; text?: string }] }>;
  };
  return spy
    .getCalls()
    .filter((c) => ours.has(c.thisValue.id) && /^bad config/.test(c.args[0].text ?? ''))
    .map((c) => `${c.thisValue.id}: ${c.args[0].text}`);
}

/** Deploy a saved pipeline; its inject fires once on start; every sample query answers, nothing is caught. */
async function runPipeline(name: string, url?: string): Promise<void> {
  const flow = savedFlow(name, url);
  await deploy(flow);
  const queries = flow.filter((n) => n.type === 'sample-query');
  const answers = queries.map((q) => downstream(flow, q.id));
  const caught = flow.filter((n) => n.type === 'catch').flatMap((c) => downstream(flow, c.id));
  await until(`answers of ${name}`, () => caught.length > 0 || answers.every((a) => a.length > 0), 60_000);
  should(caught.map((m) => m.error?.message)).eql([]);
  for (const got of answers) should(got[0].payload).be.an.Array().and.not.be.empty();
  should(configErrorsShown(flow)).eql([]);
}

describe('flows saved by main (2026-12) deploy and run unchanged', function () {
  this.timeout(120_000);
  before(() => {
    helperCoreModules.catch = catchOncePerLoad;
  });
  after(() => {
    helperCoreModules.catch = realCatch;
  });
  afterEach(undeploy);

  it('"Vector store pipeline" (memory)', async function () {
    await runPipeline('Vector store pipeline');
  });

  it('"LanceDB pipeline" (embedded, in the user directory)', async function () {
    await runPipeline('LanceDB pipeline');
  });

  describe('pgvector', function () {
    let server: PgliteServer | null = null;
    after(async () => {
      await undeploy().catch(() => undefined);
      await server?.stop();
    });
    it('"pgvector pipeline"', async function () {
      server = await startPgliteServer();
      await runPipeline('pgvector pipeline', server.url);
    });
  });

  describe('chroma', function () {
    let server: ChromaServer | null = null;
    after(async () => {
      await undeploy().catch(() => undefined);
      await server?.stop();
    });
    it('"Chroma pipeline"', async function () {
      server = await startChromaServer();
      await runPipeline('Chroma pipeline', server.url);
    });
  });

  it('"Failure handling": each failure reaches its Catch node, with its short status', async function () {
    const flow = savedFlow('Failure handling');
    await deploy(flow);
    const cases = { missing: 'NOT_FOUND', simulate: 'INDEX_FAILED', timeout: 'TIMEOUT' } as const;
    const caught = Object.fromEntries(Object.keys(cases).map((c) => [c, downstream(flow, `failure-${c}-catch`)]));
    for (const c of Object.keys(cases)) helper.getNode(`failure-${c}-inject`).receive({});
    await until('the three failures', () => Object.values(caught).every((seen) => seen.length > 0), 30_000);
    for (const [c, code] of Object.entries(cases)) {
      should(caught[c]).have.length(1);
      should(caught[c][0].payload).match({ code });
    }
    const statusOf = (id: string) => {
      const spy = helper.getNode(id).status as { getCalls(): Array<{ thisValue: { id: string }; args: [{ text?: string }] }> };
      const calls = spy.getCalls().filter((c) => c.thisValue.id === id);
      return calls[calls.length - 1].args[0].text;
    };
    should(statusOf('failure-missing-sensor')).equal('missing collection');
    should(statusOf('failure-simulate-sensor')).equal('failed: disk full');
    should(statusOf('failure-timeout-sensor')).equal('timeout 5s');
    should(configErrorsShown(flow)).eql([]);
  });
});
