/**
 * Typed inputs: collection, expected count, query, topK and timeout may come from
 * msg, flow, global or env, read for each message, in a real Node-RED runtime.
 * Flows saved before typed inputs (a value, no source property) keep working.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import should from 'should';
import { catchAll, helper, loadFlow, nextMessage, storeConfig, unloadFlow, type FlowNode } from './flow-helper';

// The runtime's own context module: the one the test helper's runtime uses.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const Context = require('@node-red/runtime/lib/nodes/context');

const DOCS = [
  { id: 'pasta', text: 'Boil the pasta in salted water for nine minutes' },
  { id: 'train', text: 'The night train to Vienna leaves at ten' },
  { id: 'sensor', text: 'The deferrable sensor waits for the vector index to finish building' },
];

/**
 * How a message names a dialog label here: the test helper loads no message
 * catalogs, so RED._ answers the key (a running Node-RED says "Results").
 */
const label = (key: string) => key.replace(/\./g, '\\.');

function flow(nodes: FlowNode[], store: Record<string, unknown> = {}): FlowNode[] {
  return [
    { id: 'tab', type: 'tab', label: 'typed inputs' },
    ...[
      storeConfig({ dimensions: 384, ...store }),
      { id: 'ingest', type: 'vector-ingest', store: 'store', collection: 'docs', wires: [['ingested']] },
      { id: 'ingested', type: 'helper' },
      ...nodes,
      { id: 'out', type: 'helper' },
      { id: 'progress', type: 'helper' },
      ...catchAll(),
    ].map((n) => (n.type === 'vector-store' ? n : { z: 'tab', ...n })),
  ];
}

function query(props: Record<string, unknown>): FlowNode {
  return { id: 'query', type: 'sample-query', store: 'store', collection: 'docs', query: '', topK: 3, failOnEmpty: true, wires: [['out']], ...props };
}

async function ingestDocs(collection = 'docs'): Promise<void> {
  const done = nextMessage('ingested');
  helper.getNode('ingest').receive({ payload: DOCS, collection });
  await done;
}

/** Flow context of the test tab, set through the node as a flow would. */
function flowContext() {
  return helper.getNode('query').context().flow;
}

describe('typed inputs (msg, flow, global, env)', function () {
  // The context stores configured here must leave nothing behind for later test files.
  const unhandled: unknown[] = [];
  const record = (reason: unknown) => unhandled.push(reason);
  before(() => process.on('unhandledRejection', record));
  after(async function () {
    await new Promise((resolve) => setTimeout(resolve, 100));
    process.off('unhandledRejection', record);
    should(unhandled.map(String)).eql([]);
  });
  const envNames: string[] = [];
  afterEach(async function () {
    for (const name of envNames.splice(0)) delete process.env[name];
    await unloadFlow();
  });
  function setEnv(name: string, value: string): void {
    process.env[name] = value;
    envNames.push(name);
  }

  it('keeps a flow saved before typed inputs working: plain values, no source properties', async function () {
    await loadFlow(flow([query({ query: 'train to Vienna', topK: '1' })]));
    await ingestDocs();
    const out = nextMessage('out');
    helper.getNode('query').receive({ payload: 42 }); // not a query: the configured one is used
    const msg = await out;
    should(msg.payload.map((h: { id: string }) => h.id)).eql(['train']);
  });

  it('sample-query reads query from msg, topK from flow and collection from global, per message', async function () {
    await loadFlow(flow([
      query({ collection: 'target', collectionType: 'global', query: 'question', queryType: 'msg', topK: 'limits.k', topKType: 'flow' }),
    ]));
    await ingestDocs('other-docs');
    flowContext().set('limits', { k: 1 });
    helper.getNode('query').context().global.set('target', 'other-docs');

    const first = nextMessage('out');
    helper.getNode('query').receive({ payload: 0, question: 'how long to boil pasta' });
    const msg = await first;
    should(msg.payload.map((h: { id: string }) => h.id)).eql(['pasta']);
    should(msg.collection).equal('other-docs');

    // Changed between messages: the next message reads the new value.
    flowContext().set('limits', { k: 2 });
    const second = nextMessage('out');
    helper.getNode('query').receive({ payload: 0, question: 'night train' });
    const msg2 = await second;
    should(msg2.payload).have.length(2);
    should(msg2.payload[0].id).equal('train');
  });

  it('reads the collection from an environment variable', async function () {
    setEnv('VP_TYPED_COLLECTION', 'env-docs');
    await loadFlow(flow([query({ collection: 'VP_TYPED_COLLECTION', collectionType: 'env', topK: 1 })]));
    await ingestDocs('env-docs');
    const out = nextMessage('out');
    helper.getNode('query').receive({ payload: 'the night train' });
    const msg = await out;
    should(msg.collection).equal('env-docs');
    should(msg.payload[0].id).equal('train');
  });

  it('reads from an asynchronous context store (localfilesystem without cache)', async function () {
    const contextDir = await fs.mkdtemp(path.join(os.tmpdir(), 'vp-typed-context-'));
    try {
      await loadFlow(flow([query({ collection: '#:(file)::settings.collection', collectionType: 'flow', topK: 1 })]));
      // The test helper starts context without stores: configure them as Node-RED's own specs do.
      Context.init({ contextStorage: { default: { module: 'memory' }, file: { module: 'localfilesystem', config: { dir: contextDir, cache: false } } } });
      await Context.load();
      await ingestDocs('file-docs');
      await new Promise<void>((resolve, reject) =>
        flowContext().set('settings', { collection: 'file-docs' }, 'file', (err: Error | null) => (err ? reject(err) : resolve())),
      );
      const out = nextMessage('out');
      helper.getNode('query').receive({ payload: 'pasta in salted water' });
      const msg = await out;
      should(msg.collection).equal('file-docs');
      should(msg.payload[0].id).equal('pasta');
    } finally {
      // Stop the nodes while the store's directory still exists, then give the runtime
      // back its default memory store: a later clean-up must not reach a deleted directory.
      await helper.unload();
      await Context.close();
      Context.init({});
      await fs.rm(contextDir, { recursive: true, force: true });
    }
  });

  it('a bad value from flow context is an error naming the dialog label and the source', async function () {
    await loadFlow(flow([query({ topK: 'k', topKType: 'flow' })]));
    await ingestDocs();
    flowContext().set('k', 'many');
    const errors = nextMessage('errors');
    helper.getNode('query').receive({ payload: 'pasta' });
    const err = await errors;
    should(err.error.message).equal('Error: sample-query.label.topK (flow.k) must be an integer between 1 and 1000 (got "many")');
  });

  it('a missing msg property is an error saying which, not a silent default', async function () {
    await loadFlow(flow([query({ collection: 'target', collectionType: 'msg' })]));
    await ingestDocs();
    const errors = nextMessage('errors');
    helper.getNode('query').receive({ payload: 'pasta' });
    const err = await errors;
    should(err.error.message).match(new RegExp(`^Error: ${label('sample-query.label.collection')} \\(msg\\.target\\) has no value`));
  });

  it('msg.collection still wins: the typed collection is then not read', async function () {
    await loadFlow(flow([query({ collection: 'target', collectionType: 'msg', query: 'question', queryType: 'msg', topK: 1 })]));
    await ingestDocs();
    const out = nextMessage('out');
    // No msg.target and no msg.question: msg.collection names the collection, the payload is the query.
    helper.getNode('query').receive({ payload: 'night train', collection: 'docs' });
    const msg = await out;
    should(msg.collection).equal('docs');
    should(msg.payload[0].id).equal('train');
  });

  it('an unknown source is a configuration error at deploy', async function () {
    await loadFlow(flow([query({ topK: '[1]', topKType: 'json' })]));
    const errors = nextMessage('errors');
    helper.getNode('query').receive({ payload: 'pasta' });
    const err = await errors;
    should(err.error.message).match(new RegExp(`^Error: ${label('sample-query.label.topK')} has a source this node does not read \\("json"\\)`));
  });

  it('vector-ingest reads its collection from msg', async function () {
    await loadFlow(flow([
      { id: 'ingest2', type: 'vector-ingest', store: 'store', collection: 'topic', collectionType: 'msg', wires: [['out']] },
    ]));
    const out = nextMessage('out');
    helper.getNode('ingest2').receive({ payload: ['one text'], topic: 'by-topic' });
    const msg = await out;
    should(msg.payload).match({ collection: 'by-topic', ingested: 1 });
  });

  it('index-health reads the expected count from flow context', async function () {
    await loadFlow(flow([
      { id: 'query', type: 'index-health', store: 'store', collection: 'docs', expectedCount: 'expected', expectedCountType: 'flow', countMode: 'exact', wires: [['out']] },
    ]));
    await ingestDocs();
    flowContext().set('expected', 4);
    const errors = nextMessage('errors');
    helper.getNode('query').receive({ payload: 'check' });
    const err = await errors;
    should(err.payload).match({ healthy: false, documentCount: 3 });

    flowContext().set('expected', 3);
    const out = nextMessage('out');
    helper.getNode('query').receive({ payload: 'check' });
    should((await out).payload).match({ healthy: true, documentCount: 3 });
  });

  it('deferrable-sensor reads timeout from flow, expected count from msg and collection from env', async function () {
    setEnv('VP_TYPED_SENSOR_COLLECTION', 'slow');
    await loadFlow(flow([
      {
        id: 'query', // named so flowContext() finds it
        type: 'deferrable-sensor',
        store: 'store',
        collection: 'VP_TYPED_SENSOR_COLLECTION',
        collectionType: 'env',
        expectedCount: 'want',
        expectedCountType: 'msg',
        pollInterval: 0.05,
        maxPollInterval: 0.1,
        timeout: 'waits.timeout',
        timeoutType: 'flow',
        deferrable: true,
        wires: [['out'], ['progress']],
      },
    ], { indexingRate: 1, indexingDelay: 60 }));
    await ingestDocs('slow');
    flowContext().set('waits', { timeout: 0.3 });
    const errors = nextMessage('errors');
    helper.getNode('query').receive({ want: 3 });
    const err = await errors;
    should(err.payload).match({ status: 'timeout', collection: 'slow' });
    should(err.payload.elapsedMs).be.below(10000);

    // A bad timeout from the flow names the dialog label.
    flowContext().set('waits', { timeout: -1 });
    const bad = nextMessage('errors');
    helper.getNode('query').receive({ want: 3 });
    should((await bad).error.message).match(new RegExp(`^Error: ${label('deferrable-sensor.label.timeout')} \\(flow\\.waits\\.timeout\\) must be a number greater than 0`));
  });
});
