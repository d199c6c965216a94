// The editor in a real browser: Debian's Chromium (driven by playwright-core) on the
// editor of a real `node-red` process that runs the package as users install it (npm
// pack, npm install of the tarball). What a new user sees: the palette, its search, the
// dialogs and their validation, the examples from Import > Examples deployed, and the
// sensor's status under the node while it waits.
//
// Screenshots go to $BROWSER_SCREENSHOTS (a temp directory when unset; CI keeps them as
// artifacts); `BROWSER_SCREENSHOTS=docs` refreshes the ones the README shows.
import should from 'should';
import { existsSync, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { cleanupAll, packageName, readFlowFile, repoRoot, startNodeRed, waitFor, type FlowNode, type NodeRed } from '../e2e/harness';
import { CHROMIUM, installPackedPackage, launchChromium, processesMentioning, type Editor } from './browser-support';

const PALETTE_TYPES = ['vector-ingest', 'deferrable-sensor', 'index-health', 'sample-query'];
const CATEGORY = 'red-ui-palette-container-vector_store';
const EXAMPLES = ['Vector store pipeline', 'Failure handling', 'Chroma pipeline', 'LanceDB pipeline', 'pgvector pipeline'];

/** What the palette search should find for each word a new user may type. */
const SEARCHES: Array<{ term: string; finds: string[] }> = [
  { term: 'vector', finds: PALETTE_TYPES },
  { term: 'sensor', finds: ['deferrable-sensor'] },
  { term: 'wait', finds: ['deferrable-sensor'] },
  { term: 'embedding', finds: ['vector-ingest'] },
  { term: 'index', finds: ['deferrable-sensor', 'index-health'] },
  { term: 'query', finds: ['sample-query'] },
  // Store names ("pgvector", "lancedb", "chroma") are not searched here: Node-RED's palette
  // filter matches a node's type and label only; they are npm keywords for Manage palette.
];

/**
 * One node of each type, to open their dialogs: copies of the example's nodes (every
 * property set, as the editor saves them) on their own tab, with the memory store.
 */
async function dialogFlow(): Promise<FlowNode[]> {
  const example = await readFlowFile(path.join(repoRoot, 'examples', 'Vector store pipeline.json'));
  const copy = (type: string, id: string, y: number): FlowNode => {
    const node = example.find((n) => n.type === type)!;
    return { ...node, id, z: 'dlg-tab', store: 'dlg-store', name: '', x: 150, y, wires: (node.wires ?? []).map(() => []) };
  };
  const store = example.find((n) => n.type === 'vector-store')!;
  return [
    { id: 'dlg-tab', type: 'tab', label: 'Dialogs' },
    { ...store, id: 'dlg-store', name: 'dialog store', persist: false },
    copy('vector-ingest', 'dlg-ingest', 80),
    copy('deferrable-sensor', 'dlg-sensor', 160),
    copy('index-health', 'dlg-health', 240),
    copy('sample-query', 'dlg-query', 320),
  ];
}

/** Per dialog: a field given a value its validator must refuse. */
const BAD_VALUES: Array<{ node: string; type: string; field: string; value: string }> = [
  { node: 'dlg-ingest', type: 'vector-ingest', field: 'batchSize', value: '0' },
  { node: 'dlg-sensor', type: 'deferrable-sensor', field: 'timeout', value: '-1' },
  { node: 'dlg-health', type: 'index-health', field: 'dimensions', value: '-1' },
  { node: 'dlg-query', type: 'sample-query', field: 'topK', value: '0' },
];

const screenshotDir = process.env.BROWSER_SCREENSHOTS
  ? path.resolve(repoRoot, process.env.BROWSER_SCREENSHOTS)
  : path.join(os.tmpdir(), 'vector-pipeline-browser-screenshots');

describe('browser: the editor in Chromium, on the packed package', function () {
  this.timeout(60_000);
  let nodeRed: NodeRed;
  let editor: Editor | null = null;
  let page: Page;

  before(async function () {
    if (!existsSync(CHROMIUM)) throw new Error(`No Chromium at ${CHROMIUM}: install it (apt-get install -y chromium) or set CHROMIUM_PATH.`);
    this.timeout(120_000);
    const { userDir } = await installPackedPackage();
    nodeRed = await startNodeRed({ userDir, packageDir: null, flows: await dialogFlow() });
    editor = await launchChromium(1280, 800);
    page = editor.page;
    page.setDefaultTimeout(10_000);
    await page.goto(nodeRed.url);
    await page.waitForSelector(`#${CATEGORY} .red-ui-palette-node`, { timeout: 30_000 });
    await fsp.mkdir(screenshotDir, { recursive: true });
  });

  // A failing test leaves a picture of the editor beside the others (CI keeps them).
  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && editor) {
      const name = this.currentTest.title.replace(/[^A-Za-z0-9]+/g, '-').slice(0, 80);
      await page.screenshot({ path: path.join(screenshotDir, `failed-${name}.png`) }).catch(() => undefined);
    }
  });

  after(async () => {
    const profile = editor?.profileDir;
    await editor?.context.close();
    await cleanupAll();
    // Closing the context ends Chromium and all its helpers: none may be left behind.
    if (profile) should(await processesMentioning(profile)).eql([], 'Chromium processes left running');
  });

  describe('palette', () => {
    it('shows the four nodes in one category, "vector store"', async () => {
      const byCategory = await page.evaluate((types) => {
        const found: Record<string, string[]> = {};
        for (const type of types) {
          const el = document.querySelector(`.red-ui-palette-node[data-palette-type="${type}"]`);
          const category = el?.closest('.red-ui-palette-category')?.id ?? 'missing';
          (found[category] ??= []).push(type);
        }
        return found;
      }, PALETTE_TYPES);
      should(byCategory).eql({ [CATEGORY]: PALETTE_TYPES });
    });

    for (const { term, finds } of SEARCHES) {
      it(`search "${term}" finds ${finds.join(', ')}`, async () => {
        const shown = await paletteSearch(page, term);
        should(shown).not.containEql('inject'); // else the palette did not filter at all
        should(shown.filter((type) => PALETTE_TYPES.includes(type))).containDeep(finds);
      });
    }

    after(async () => {
      await paletteSearch(page, '');
    });
  });

  describe('dialogs', () => {
    // A failed test must not leave its dialog over the next one.
    afterEach(() => closeDialogs(page));

    for (const bad of BAD_VALUES) {
      it(`${bad.type}: the dialog opens and flags ${bad.field} = ${bad.value} in red`, async () => {
        await openNodeDialog(page, bad.node);
        const field = `#node-input-${bad.field}`;
        should(await isFlagged(page, field)).be.false(`${field} is red before any change`);
        await enter(page, field, bad.value);
        await waitFor(() => isFlagged(page, field), 3_000, `${field} to be flagged`);
        // The picture for the README: the sensor's dialog (the edit tray) with the red field.
        if (bad.type === 'deferrable-sensor') {
          await page.screenshot({ path: path.join(screenshotDir, 'editor-dialog.png'), clip: { x: 336, y: 40, width: 626, height: 700 } });
        }
        await page.click('#node-dialog-cancel');
        await page.waitForSelector('#node-dialog-cancel', { state: 'detached' });
      });
    }

    it('vector-store: the dialog opens from a node\'s store field and flags indexing rate = -1 in red; Search shows Exact for a store saved without it', async () => {
      await openNodeDialog(page, 'dlg-ingest');
      await page.click('#node-input-btn-store-edit');
      const field = '#node-config-input-indexingRate';
      await page.waitForSelector(field, { state: 'visible' });
      await page.waitForSelector('#node-config-input-memoryIndex', { state: 'visible' });
      should(await page.$eval('#node-config-input-memoryIndex', (el) => (el as HTMLSelectElement).value)).equal('exact');
      should(await isFlagged(page, field)).be.false(`${field} is red before any change`);
      await enter(page, field, '-1');
      await waitFor(() => isFlagged(page, field), 3_000, `${field} to be flagged`);
      await page.click('#node-config-dialog-cancel');
      await page.waitForSelector('#node-config-dialog-cancel', { state: 'detached' });
      await page.click('#node-dialog-cancel');
      await page.waitForSelector('#node-dialog-cancel', { state: 'detached' });
    });
  });

  describe('examples from Import > Examples', () => {
    for (const name of EXAMPLES) {
      it(`"${name}" imports, fits beside the sidebar at 1,280 px, and deploys${name === 'Vector store pipeline' ? '; the sensor shows progress, then success' : ''}`, async () => {
        const file = await readFlowFile(path.join(repoRoot, 'examples', `${name}.json`));
        const tab = file.find((n) => n.type === 'tab')!;
        await importExample(page, name);
        // The example's tab exists once imported; show it (the import may leave another tab active).
        await page.waitForFunction((label) => {
          const RED = (window as any).RED;
          let id: string | null = null;
          RED.nodes.eachWorkspace((ws: { id: string; label: string }) => {
            if (ws.label === label) id = ws.id;
          });
          if (id && RED.workspaces.active() !== id) RED.workspaces.show(id);
          return id !== null && RED.workspaces.active() === id;
        }, tab.label);
        await page.waitForTimeout(200); // one redraw of the canvas

        // Every node of the flow is inside the visible canvas: no scrolling needed.
        const outside = await page.evaluate(() => {
          const chart = document.getElementById('red-ui-workspace-chart')!.getBoundingClientRect();
          const right = chart.left + document.getElementById('red-ui-workspace-chart')!.clientWidth;
          const bottom = chart.top + document.getElementById('red-ui-workspace-chart')!.clientHeight;
          return Array.from(document.querySelectorAll('#red-ui-workspace-chart g.red-ui-flow-node-group'))
            .map((g) => {
              const data = (g as any).__data__;
              const parts = Array.from(g.querySelectorAll(':scope > .red-ui-flow-node, :scope > .red-ui-flow-node-button')).map((e) => e.getBoundingClientRect());
              return { name: data.name || data.type, right: Math.max(...parts.map((r) => r.right)), bottom: Math.max(...parts.map((r) => r.bottom)) };
            })
            .filter((n) => n.right > right || n.bottom > bottom)
            .map((n) => `${n.name} (right ${Math.round(n.right)} of ${Math.round(right)}, bottom ${Math.round(n.bottom)} of ${Math.round(bottom)})`);
        });
        should(outside).eql([], `nodes of "${name}" outside the visible canvas`);

        const watchSensor = name === 'Vector store pipeline';
        if (watchSensor) await recordStatuses(page, 'deferrable-sensor');
        const from = nodeRed.log.mark();
        await deploy(page);
        const deployed = await nodeRed.getFlows();
        should(deployed.filter((n) => n.type === 'tab').map((n) => n.label)).containEql(tab.label);
        should(nodeRed.log.find(/Waiting for missing types/, from)).eql([]);

        if (watchSensor) {
          // The inject fires 1 s after the deploy; the memory store takes a few seconds.
          const statuses = await waitFor(
            async () => {
              const seen = await page.evaluate(() => (window as any).__statuses as Array<{ fill: string; text: string }>);
              const progress = seen.findIndex((s) => /blue|yellow/.test(s.fill) && /\d/.test(s.text));
              const success = seen.findIndex((s, i) => i > progress && /green/.test(s.fill));
              return progress !== -1 && success !== -1 ? seen : null;
            },
            30_000,
            'the sensor status to show progress, then success',
          );
          should(statuses.length).be.above(1);
          // The picture for the README: the flow with its statuses, the last answer open in the sidebar.
          await page.evaluate(() => (window as any).RED.sidebar.show('debug'));
          const answer = page.locator('.red-ui-debug-msg', { hasText: 'node: answers' }).last();
          await answer.scrollIntoViewIfNeeded();
          await answer.locator('.red-ui-debug-msg-object-header').first().click(); // the array
          await answer.evaluate((el) => el.scrollIntoView({ block: 'end' }));
          await page.screenshot({ path: path.join(screenshotDir, 'editor-pipeline.png'), clip: { x: 180, y: 40, width: 1100, height: 500 } });
          await page.evaluate(() => (window as any).RED.sidebar.show('info'));
        }
      });
    }
  });

  describe('the Vector waits sidebar', () => {
    const TAB = 'sb-tab';
    const SENSOR = 'sb-sensor';
    /** A slow memory store (2 documents a second), one ingest -> sensor pipeline, two injects of 30 documents each. */
    function sidebarFlow(): FlowNode[] {
      const docs = (from: number) => JSON.stringify(Array.from({ length: 30 }, (_, i) => `sidebar document ${from + i}`));
      const inject = (id: string, from: number, y: number): FlowNode => ({
        id, type: 'inject', z: TAB, name: id, props: [{ p: 'payload' }], repeat: '', once: false, topic: '',
        payload: docs(from), payloadType: 'json', x: 120, y, wires: [['sb-ingest']],
      });
      return [
        { id: TAB, type: 'tab', label: 'Sidebar' },
        { id: 'sb-store', type: 'vector-store', name: 'slow store', backend: 'memory', embedder: 'hash', dimensions: '64', indexingRate: '2', indexingDelay: '0', persist: true },
        inject('sb-inject-a', 0, 80),
        inject('sb-inject-b', 100, 140),
        { id: 'sb-ingest', type: 'vector-ingest', z: TAB, store: 'sb-store', collection: 'sidebar-docs', batchSize: '100', createCollection: true, buildIndex: true, x: 320, y: 110, wires: [[SENSOR]] },
        { id: SENSOR, type: 'deferrable-sensor', z: TAB, name: 'wait for the index', store: 'sb-store', collection: 'sidebar-docs', expectedCount: '0', pollInterval: '0.5', maxPollInterval: '1', timeout: '300', deferrable: true, x: 540, y: 110, wires: [[], []] },
      ];
    }
    const rows = () => page.locator('#vector-waits-sidebar .vector-waits-wait');
    const sensorStatus = () => page.evaluate((id) => (window as any).RED.nodes.node(id)?.status?.text ?? '', SENSOR);

    it('lists the running waits live, cancels one from the sidebar (the sensor\'s status says so), then the collection; the list is empty after', async () => {
      await nodeRed.deploy(sidebarFlow(), 'full');
      await page.reload();
      await page.waitForSelector(`#${CATEGORY} .red-ui-palette-node`, { timeout: 30_000 });
      await page.evaluate((tab) => (window as any).RED.workspaces.show(tab), TAB);
      await page.evaluate(() => (window as any).RED.sidebar.show('vector-waits'));
      await nodeRed.inject('sb-inject-a');
      await nodeRed.inject('sb-inject-b');

      // The group appears without a reload (comms), with both waits.
      const group = page.locator('#vector-waits-sidebar .vector-waits-group[data-collection="sidebar-docs"]');
      await waitFor(async () => (await group.locator('.vector-waits-group-count').textContent())?.includes('2') || null, 20_000, 'the group with 2 waits');
      if (!(await group.getAttribute('class'))?.includes('vector-waits-open')) await group.locator('.vector-waits-group-header').click();
      await waitFor(async () => ((await rows().count()) === 2 ? true : null), 10_000, 'two wait rows');
      should(await rows().first().locator('.vector-waits-node').textContent()).match(/wait for the index/);
      await page.waitForTimeout(1500); // a progress update or two, for the picture
      await page.screenshot({ path: path.join(screenshotDir, 'editor-sidebar.png'), clip: { x: 780, y: 40, width: 500, height: 460 } });

      // Cancel one wait: confirm, then it leaves the list, and the sensor's status says it was cancelled.
      await rows().first().locator('.vector-waits-cancel').click();
      await page.click('#vector-waits-confirm');
      await waitFor(async () => ((await rows().count()) === 1 ? true : null), 10_000, 'one wait row left');
      await waitFor(async () => (/cancelled/.test(await sensorStatus()) ? true : null), 10_000, 'the sensor status to say "cancelled"');

      // Cancel the rest of the collection: the list is empty.
      await group.locator('.vector-waits-cancel-group').click();
      await page.click('#vector-waits-confirm');
      await page.waitForSelector('#vector-waits-sidebar .vector-waits-empty', { state: 'visible', timeout: 10_000 });
      should(await rows().count()).equal(0);
      should(nodeRed.log.find(/cancelled 1 pending wait/)).not.eql([]);
    });
  });
});

/** Cancel whatever edit dialogs are open (the config node's over the node's). */
async function closeDialogs(page: Page): Promise<void> {
  for (const cancel of ['#node-config-dialog-cancel', '#node-dialog-cancel']) {
    if (await page.isVisible(cancel)) {
      await page.click(cancel);
      await page.waitForSelector(cancel, { state: 'detached' });
    }
  }
}

/** Type `term` into the palette's search box; the types of the palette nodes then shown. */
async function paletteSearch(page: Page, term: string): Promise<string[]> {
  const box = page.locator('#red-ui-palette-search input');
  await box.fill('');
  if (term !== '') await box.pressSequentially(term);
  else await box.press('Backspace');
  // The search box filters after a short pause in typing.
  await page.waitForTimeout(400);
  return page.evaluate(() =>
    Array.from(document.querySelectorAll('#red-ui-palette-container .red-ui-palette-node'))
      .filter((el) => (el as HTMLElement).offsetParent !== null)
      .map((el) => el.getAttribute('data-palette-type') ?? ''),
  );
}

/** Double-click the node on the canvas (its tab shown first): its edit dialog opens. */
async function openNodeDialog(page: Page, id: string): Promise<void> {
  await page.evaluate((nodeId) => {
    const RED = (window as any).RED;
    RED.workspaces.show(RED.nodes.node(nodeId).z);
  }, id);
  await page.dblclick(`g.red-ui-flow-node-group[id="${id}"] > .red-ui-flow-node`);
  await page.waitForSelector('#node-dialog-cancel', { state: 'visible' });
}

/** Give a dialog field a value as a user would: typing into it, or through its typedInput. */
async function enter(page: Page, selector: string, value: string): Promise<void> {
  if (await page.isVisible(selector)) {
    await page.fill(selector, value);
    await page.press(selector, 'Tab');
    return;
  }
  await page.evaluate(
    ([sel, v]) => {
      const $ = (window as any).$;
      $(sel).typedInput('value', v);
      $(sel).trigger('change');
    },
    [selector, value],
  );
}

/** Whether Node-RED marks the field (or the typedInput around it) as invalid: the red border. */
function isFlagged(page: Page, selector: string): Promise<boolean> {
  return page.evaluate((sel) => {
    const $ = (window as any).$;
    const el = $(sel);
    return el.hasClass('input-error') || el.closest('.red-ui-typedInput-container').hasClass('input-error');
  }, selector);
}

/** Menu > Import > Examples > the package > `name` > Import. */
async function importExample(page: Page, name: string): Promise<void> {
  await page.click('#red-ui-header-button-sidemenu');
  await page.click('#menu-item-import');
  await page.click('#red-ui-tab-red-ui-clipboard-dialog-import-tab-examples a');
  const tree = page.locator('#red-ui-clipboard-dialog-import-tab-examples');
  await tree.locator('.red-ui-treeList-label', { hasText: packageName }).click();
  await tree.locator('.red-ui-treeList-label', { hasText: new RegExp(`^\\s*${name}\\s*$`) }).click();
  await page.click('#red-ui-clipboard-dialog-ok');
  await page.waitForSelector('#red-ui-clipboard-dialog-ok', { state: 'hidden' });
}

/** Click Deploy and wait for the editor's own "deploy" event; fail on a "Confirm deploy" warning. */
async function deploy(page: Page): Promise<void> {
  await page.evaluate(() => {
    const w = window as any;
    w.__deployed = false;
    if (!w.__deployListener) w.RED.events.on('deploy', (w.__deployListener = () => (w.__deployed = true)));
  });
  await page.click('#red-ui-header-button-deploy');
  const outcome = await page.waitForFunction(() => {
    const w = window as any;
    if (w.__deployed) return 'deployed';
    // An invalid or unknown node makes the editor ask before deploying.
    const warning = Array.from(document.querySelectorAll('.red-ui-notification')).find((n) => /Confirm deploy/.test(n.textContent ?? ''));
    return warning ? warning.textContent : null;
  });
  should(await outcome.jsonValue()).equal('deployed');
}

/** Record every status the editor draws under nodes of `type` into window.__statuses. */
async function recordStatuses(page: Page, type: string): Promise<void> {
  await page.evaluate((nodeType) => {
    const w = window as any;
    w.__statuses = [];
    const chart = document.getElementById('red-ui-workspace-chart')!;
    let last = '';
    const read = () => {
      for (const g of Array.from(chart.querySelectorAll('g.red-ui-flow-node-group'))) {
        if ((g as any).__data__?.type !== nodeType) continue;
        const shape = g.querySelector('.red-ui-flow-node-status');
        const label = g.querySelector('.red-ui-flow-node-status-label');
        const status = { fill: shape?.getAttribute('class') ?? '', text: label?.textContent ?? '' };
        const key = JSON.stringify(status);
        if (key !== last && status.text !== '') {
          last = key;
          w.__statuses.push(status);
        }
      }
    };
    new MutationObserver(read).observe(chart, { subtree: true, childList: true, characterData: true, attributes: true });
  }, type);
}
