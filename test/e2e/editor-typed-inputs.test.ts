// Typed inputs and the shared editor helper in a real editor: a real `node-red` process
// with this package, Debian's Chromium driven by playwright-core. The dialogs load
// resources/editor.js, show collection / expected count / timeout / query / topK as
// typed inputs, flag a bad value, and save the source the user picks; the runtime then
// reads timeout from flow context and the collection from the flow's env, per message.
import should from 'should';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import type { Browser, Page } from 'playwright-core';
import { chromium } from 'playwright-core';
import { cleanupAll, Collector, httpRequest, repoRoot, startNodeRed, waitFor, type FlowNode, type NodeRed } from './harness';

const run = promisify(execFile);
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

function flows(): FlowNode[] {
  return [
    // The flow's own environment variable names the collection.
    { id: 'tab', type: 'tab', label: 'typed inputs', env: [{ name: 'DOCS', value: 'typed-docs', type: 'str' }] },
    // Slow indexing: a wait outlives a short timeout.
    { id: 'store', type: 'vector-store', name: 'slow memory', backend: 'memory', embedder: 'hash', dimensions: 32, indexingRate: 1, indexingDelay: 60, persist: false },
    { id: 'go', z: 'tab', type: 'inject', name: 'go', props: [{ p: 'payload' }], payload: '["one", "two", "three"]', payloadType: 'json', repeat: '', once: false, x: 120, y: 80, wires: [['short']] },
    {
      id: 'short', z: 'tab', type: 'change', name: 'timeout 0.5 s',
      rules: [{ t: 'set', p: 'limits', pt: 'flow', to: '{"wait": 0.5}', tot: 'json' }], x: 300, y: 80, wires: [['ingest']],
    },
    { id: 'ingest', z: 'tab', type: 'vector-ingest', store: 'store', collection: 'DOCS', collectionType: 'env', batchSize: 100, createCollection: true, buildIndex: true, x: 480, y: 80, wires: [['sensor']] },
    { id: 'bad', z: 'tab', type: 'inject', name: 'bad timeout', props: [{ p: 'payload' }], payload: '', payloadType: 'str', repeat: '', once: false, x: 120, y: 160, wires: [['negative']] },
    {
      id: 'negative', z: 'tab', type: 'change', name: 'timeout -1',
      rules: [{ t: 'set', p: 'limits', pt: 'flow', to: '{"wait": -1}', tot: 'json' }], x: 300, y: 160, wires: [['sensor']],
    },
    {
      id: 'sensor', z: 'tab', type: 'deferrable-sensor', store: 'store',
      collection: 'DOCS', collectionType: 'env', expectedCount: 0, expectedCountType: 'num',
      pollInterval: 0.1, maxPollInterval: 0.2, timeout: 'limits.wait', timeoutType: 'flow', deferrable: true, maxErrors: 0,
      x: 680, y: 120, wires: [[], []],
    },
    { id: 'query', z: 'tab', type: 'sample-query', store: 'store', collection: 'typed-docs', query: 'one', topK: 3, failOnEmpty: false, x: 680, y: 220, wires: [[]] },
    { id: 'catch', z: 'tab', type: 'catch', scope: null, uncaught: false, x: 480, y: 260, wires: [[]] },
  ];
}

/** The typed input of a dialog field: its source ("flow", "num" ...) and whether the editor flags it. */
async function typedField(page: Page, property: string): Promise<{ type: string; value: string; invalid: boolean }> {
  return page.evaluate((p) => {
    const input = $('#node-input-' + p);
    return {
      type: String(input.typedInput('type')),
      value: String(input.typedInput('value')),
      invalid: input.parent().find('.red-ui-typedInput-container').addBack().hasClass('input-error') ||
        $('#node-input-' + p).closest('.form-row').find('.red-ui-typedInput-container.input-error').length > 0,
    };
  }, property);
}

async function openDialog(page: Page, nodeId: string): Promise<void> {
  await page.evaluate((id) => RED.editor.edit(RED.nodes.node(id)), nodeId);
  await page.waitForSelector('#node-input-store[data-vp-node]', { timeout: 10_000 });
}

declare const $: any; // eslint-disable-line @typescript-eslint/no-explicit-any
declare const RED: any; // eslint-disable-line @typescript-eslint/no-explicit-any

describe('e2e: typed inputs and the shared editor helper in a real editor', function () {
  this.timeout(120_000);
  let browser: Browser | null = null;
  let nodeRed: NodeRed;
  let collector: Collector;
  let page: Page;

  before(async function () {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
    collector = await Collector.start();
    nodeRed = await startNodeRed({ flows: collector.tap(flows(), [{ label: 'errors', from: 'catch' }]) });
    // playwright's launch() gives every run a fresh temporary profile.
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: { width: 1500, height: 950 } });
    await page.goto(nodeRed.url);
    await page.waitForSelector('.red-ui-palette-node[data-palette-type="deferrable-sensor"]', { timeout: 30_000 });
    await page.waitForFunction(() => RED.nodes.node('sensor') !== null, undefined, { timeout: 30_000 });
  });

  after(async function () {
    await browser?.close();
    await cleanupAll();
  });

  it('serves the editor helper and the generated limits from resources/', async function () {
    for (const file of ['editor.js', 'limits.js']) {
      const answer = await httpRequest('GET', `${nodeRed.url}/resources/@deferrable/node-red-vector-pipeline/${file}`);
      should(answer.status).equal(200, file);
    }
    const loaded = await page.evaluate(() => ({
      helper: typeof (window as any).VectorPipelineEditor, // eslint-disable-line @typescript-eslint/no-explicit-any
      batchSize: (window as any).VectorPipelineLimits['vector-ingest'].batchSize, // eslint-disable-line @typescript-eslint/no-explicit-any
    }));
    should(loaded).eql({ helper: 'object', batchSize: { integer: true, min: 1, max: 10000 } });
  });

  it('shows the saved sources of the sensor, and flags a bad literal', async function () {
    await openDialog(page, 'sensor');
    should(await typedField(page, 'timeout')).match({ type: 'flow', value: 'limits.wait', invalid: false });
    should(await typedField(page, 'collection')).match({ type: 'env', value: 'DOCS', invalid: false });
    // The shared "made by another tool" rows are there, set to this package for a flow that says so.
    should(await page.evaluate(() => $('#node-input-origin').val())).equal('package');

    await page.evaluate(() => {
      $('#node-input-expectedCount').typedInput('type', 'num');
      $('#node-input-expectedCount').typedInput('value', '-3');
    });
    await waitFor(async () => (await typedField(page, 'expectedCount')).invalid, 5_000, 'expected count flagged');
    await page.click('#node-dialog-cancel');
    await page.waitForSelector('#node-input-store', { state: 'detached' });
  });

  it('saves the source picked in the dialog: topK from flow context', async function () {
    await openDialog(page, 'query');
    should(await typedField(page, 'topK')).match({ type: 'num', value: '3' });
    // A flow saved before typed inputs has no topKType: the dialog shows what was typed in.
    await page.evaluate(() => {
      $('#node-input-topK').typedInput('type', 'flow');
      $('#node-input-topK').typedInput('value', 'k');
    });
    await page.click('#node-dialog-ok');
    await page.waitForSelector('#node-input-store', { state: 'detached' });
    await page.click('#red-ui-header-button-deploy');
    const saved = await waitFor(async () => (await nodeRed.getFlows()).find((n) => n.id === 'query' && n.topKType === 'flow'), 15_000, 'deployed topK source');
    should(saved).match({ topK: 'k', topKType: 'flow', queryType: 'str', collectionType: 'str' });
  });

  it('the runtime reads the timeout from flow context and the collection from the flow env, per message', async function () {
    await nodeRed.inject('go');
    const timedOut = await collector.waitFor((all) => all.find((m) => m.label === 'errors' && m.msg.payload?.status === 'timeout'), 20_000, 'the timeout');
    should(timedOut.msg.payload).match({ status: 'timeout', collection: 'typed-docs' });
    should(timedOut.msg.payload.elapsedMs).be.below(10_000);

    await nodeRed.inject('bad');
    const bad = await collector.waitFor((all) => all.find((m) => m.label === 'errors' && /limits\.wait/.test(m.msg.error?.message ?? '')), 20_000, 'the bad timeout');
    // A running Node-RED has the catalogs: the error names the dialog label.
    should(bad.msg.error.message).match(/^(Error: )?Timeout \(flow\.limits\.wait\) must be a number greater than 0 \(got -1\)/);
  });

  it('npm pack ships the editor resources (prepack builds first)', async function () {
    const packed = await run('npm', ['pack', '--dry-run', '--json'], { cwd: repoRoot });
    const files: string[] = JSON.parse(packed.stdout)[0].files.map((f: { path: string }) => f.path);
    should(files).containEql('resources/editor.js');
    should(files).containEql('resources/limits.js');
    should(files).containEql('dist/nodes/deferrable-sensor.html');
    should(packed.stderr).match(/prepack/);
  });
});
