// vector-ingest with "Gather for" (gatherMs) on a real Node-RED runtime (test helper) and the
// memory store kept on disk: one-document messages written in batches, each message its own
// output and one done(), only once its document is in the store; a bad message fails alone;
// a redeploy writes what was gathered. Writes and embedding calls are counted through
// wrappers on the store's backend and embedder.
import should from 'should';
import { stableId } from '../../lib/ids';
import type { UpsertOptions, UpsertResult, VectorDocument } from '../../lib/types';
import { until } from '../support/until';
import { catchAll, collect, helper, loadFlow, redeploy, storeConfig, unloadFlow, type FlowNode, type Msg } from './flow-helper';

function flow(ingest: Record<string, unknown> = {}): FlowNode[] {
  return [
    storeConfig(),
    { id: 'ingest', type: 'vector-ingest', store: 'store', collection: 'docs', batchSize: 100, gatherMs: 2000, wires: [['out']], ...ingest },
    { id: 'out', type: 'helper' },
    { id: 'on-done', type: 'complete', scope: ['ingest'], uncaught: false, wires: [['completed']] },
    { id: 'completed', type: 'helper' },
    ...catchAll(),
  ];
}

/** Count the store's writes and embedding calls, and remember which ids the store acknowledged. */
function recordWrites() {
  const { backend, embedder } = helper.getNode('store').getStore();
  const writes: number[] = [];
  const embeds: number[] = [];
  const durable = new Set<string>();
  const upsert = backend.upsert.bind(backend);
  backend.upsert = async (collection: string, docs: VectorDocument[], options?: UpsertOptions): Promise<UpsertResult> => {
    writes.push(docs.length);
    const result = await upsert(collection, docs, options);
    for (const doc of docs) durable.add(doc.id);
    return result;
  };
  const embed = embedder.embed.bind(embedder);
  embedder.embed = (texts: string[], signal?: AbortSignal) => {
    embeds.push(texts.length);
    return embed(texts, signal);
  };
  return { backend, writes, embeds, durable };
}

/** Messages reaching `nodeId` whose ids were not yet acknowledged by the store when they arrived. */
function arrivingBeforeDurable(nodeId: string, durable: Set<string>): Msg[] {
  const early: Msg[] = [];
  helper.getNode(nodeId).on('input', (msg: Msg) => {
    const ids: string[] = msg.payload?.ids ?? [];
    if (ids.length === 0 || !ids.every((id) => durable.has(id))) early.push(msg);
  });
  return early;
}

describe('vector-ingest node, gathering one-document messages (memory store)', function () {
  afterEach(unloadFlow);

  it('250 messages of one document, batch size 100: 3 writes; each message its own output and one done, after its document is durable', async function () {
    // 2 s: the first 100 messages arrive well within it even on a busy machine, so they fill a batch;
    // the last 50 are written when it has passed.
    await loadFlow(flow({ gatherMs: 2000 }));
    const store = recordWrites();
    const outputs = collect('out');
    const completed = collect('completed');
    const errors = collect('errors');
    const earlyOutputs = arrivingBeforeDurable('out', store.durable);
    const earlyDone = arrivingBeforeDurable('completed', store.durable);
    const ingest = helper.getNode('ingest');
    for (let n = 0; n < 250; n++) ingest.receive({ payload: `document number ${n}`, n });

    await until('250 messages done', async () => completed.length >= 250);
    await until('250 outputs', async () => outputs.length >= 250);
    should(errors).have.length(0);
    should(store.writes).eql([100, 100, 50]);
    should(store.embeds).eql([100, 100, 50]);
    should(earlyOutputs).have.length(0);
    should(earlyDone).have.length(0);

    const byN = new Map(outputs.map((msg) => [msg.n as number, msg]));
    should(byN.size).equal(250);
    for (let n = 0; n < 250; n++) {
      const msg = byN.get(n) as Msg;
      should(msg.payload).match({ collection: 'docs', ingested: 1, ids: [stableId(`document number ${n}`)], gathered: n < 200 ? 100 : 50 });
      should(msg.expectedCount).equal(msg.payload.totalCount);
    }
    should(byN.get(249)?.payload.totalCount).equal(250);
    should(completed).have.length(250);
    should(new Set(completed.map((msg) => msg.n)).size).equal(250); // each message done once
    should(outputs).have.length(250);
    should((await store.backend.stats('docs')).documentCount).equal(250);
  });

  it('a bad message fails alone and at once; the others are written together', async function () {
    await loadFlow(flow({ batchSize: 3, gatherMs: 60_000 }));
    const store = recordWrites();
    const outputs = collect('out');
    const errors = collect('errors');
    const ingest = helper.getNode('ingest');
    ingest.receive({ payload: 'first good', n: 1 });
    ingest.receive({ payload: { id: 'bad', vector: new Array(64).fill(1e39) }, n: 2 });
    await until('the bad message failed', async () => errors.length === 1);
    should(errors[0].n).equal(2);
    should(errors[0].error.message).match(/^(Error: )?msg\.payload\.vector\[0\] is 1e\+39.*Nothing was written\.$/);
    should(store.writes).have.length(0); // the batch still gathers
    ingest.receive({ payload: 'second good', n: 3 });
    ingest.receive({ payload: 'third good', n: 4 });
    await until('the good ones written', async () => outputs.length === 3);
    should(outputs.map((msg) => msg.n).sort()).eql([1, 3, 4]);
    should(outputs.every((msg) => msg.payload.gathered === 3)).be.true();
    should(store.writes).eql([3]);
    should(errors).have.length(1);
  });

  /** The flow as the editor saves it: a tab, nodes with a position on it, the store a global config node. */
  function positioned(nodes: FlowNode[]): FlowNode[] {
    return [
      { id: 'tab', type: 'tab', label: 'gather' },
      ...nodes.map((n, i) => (n.type === 'vector-store' ? n : { ...n, z: 'tab', x: 100 + 10 * i, y: 100 })),
    ];
  }

  // Without positions Node-RED takes every node for a config node and closes them in the
  // flow's order, the store (first) before the ingest; with them, the ingest first. Both hold.
  for (const [shape, shaped] of [
    ['nodes without positions', (nodes: FlowNode[]) => nodes],
    ['a flow as the editor saves it', positioned],
  ] as const) {
    it(`a redeploy while messages are gathered writes them before the node closes: nothing is lost (${shape})`, async function () {
      await loadFlow(shaped(flow({ gatherMs: 60_000 })));
      const store = recordWrites();
      const ingest = helper.getNode('ingest');
      const gathering: string[] = [];
      const status = ingest.status.bind(ingest);
      ingest.status = (s: { text?: string }) => {
        if (s.text) gathering.push(s.text);
        return status(s);
      };
      for (let n = 0; n < 5; n++) ingest.receive({ payload: `kept ${n}` });
      await until('5 messages gathered', async () => gathering.filter((t) => /gathering/.test(t)).length >= 5);
      should(store.writes).have.length(0);

      await redeploy(shaped(flow({ gatherMs: 60_000 })));
      should(store.writes).eql([5]);
      const backend = helper.getNode('store').getStore().backend;
      should((await backend.stats('docs')).documentCount).equal(5);
    });
  }
});
