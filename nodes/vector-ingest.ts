/**
 * `vector-ingest`: validate a message's documents, embed them, write them in
 * batches. Output: the write's summary, with `msg.expectedCount` set for the
 * sensor downstream. With "Gather for" (gatherMs) set, the documents of several
 * messages are written together (lib/ingest-gatherer.ts), and each message
 * leaves once its batch is written.
 */
import type { Node, NodeAPI } from 'node-red';
import { IngestGatherer } from '../lib/ingest-gatherer';
import { deleteDocuments, ingestDocuments } from '../lib/operations';
import { parseDeletePayload, parseIngestConfig, parseIngestPayload, parseSimulate, type IngestConfig } from '../lib/schemas';
import { finishBeforeStoreCloses } from './shared/store';
import type { NodeStatus } from './shared/status';
import { registerStoreNode } from './shared/store-node';
import type { Texts } from './shared/texts';

/** Each gathering node's gatherer, made at its first message and closed with it. */
const gatherers = new WeakMap<Node, IngestGatherer>();

/**
 * The node's gatherer. Its close (the node's) writes what is gathered before
 * Node-RED's close callback, and keeps the store open until then.
 */
function gathererOf(node: Node, config: IngestConfig, storeKey: string, status: NodeStatus, text: Texts): IngestGatherer {
  let gatherer = gatherers.get(node);
  if (gatherer) return gatherer;
  const made = new IngestGatherer({
    gatherMs: config.gatherMs,
    onChange: ({ gathering, held, writing }) => {
      if (gathering + held > 0) status.busy(text('vector-ingest.status.gathering', { messages: gathering + held }));
      else if (writing > 0) status.busy(text('vector-ingest.status.writingGathered', { messages: writing }));
    },
  });
  gatherers.set(node, made);
  node.on('close', (_removed: boolean, done: () => void) => {
    const closing = made.close();
    finishBeforeStoreCloses(storeKey, closing);
    closing.then(() => done(), () => done());
  });
  return made;
}

export = function register(RED: NodeAPI): void {
  registerStoreNode(RED, 'vector-ingest', parseIngestConfig, async ({ node, text, config, store, label: collection, msg, status }) => {
    // (Ingest never watches another tool's collection: its label is the package collection's name.)
    if (config.operation === 'delete') {
      // msg.payload names what to remove: ids, or source documents with their chunks.
      const selector = parseDeletePayload(msg.payload);
      status.busy(text('vector-ingest.status.deleting', { docs: selector.ids.length + selector.sources.length }));
      const removed = await deleteDocuments(store, collection, selector);
      msg.payload = removed;
      msg.expectedCount = removed.totalCount;
      return { ok: true, statusText: text('vector-ingest.status.deleted', { deleted: removed.deleted, total: removed.totalCount }) };
    }
    // Everything is validated before anything is written.
    const items = parseIngestPayload(msg.payload);
    const simulate = parseSimulate(msg.simulate);
    if (config.gatherMs > 0) {
      // This message leaves (and its done() is called) once its batch is in the store.
      const gathered = await gathererOf(node, config, store.storeKey, status, text).add({
        store,
        items,
        options: {
          collection,
          batchSize: config.batchSize,
          createCollection: config.createCollection,
          buildIndex: config.buildIndex,
          simulateFailure: simulate?.fail,
        },
        fieldOf: Array.isArray(msg.payload) ? undefined : () => 'msg.payload',
      });
      msg.payload = gathered;
      msg.expectedCount = gathered.totalCount;
      return {
        ok: true,
        statusText: text('vector-ingest.status.gatheredDone', { messages: gathered.gathered, total: gathered.totalCount }),
      };
    }
    status.busy(text('vector-ingest.status.writing', { docs: items.length }));
    const result = await ingestDocuments(store, items, {
      collection,
      batchSize: config.batchSize,
      createCollection: config.createCollection,
      buildIndex: config.buildIndex,
      simulateFailure: simulate?.fail,
      fieldOf: Array.isArray(msg.payload) ? undefined : () => 'msg.payload',
    });
    msg.payload = result;
    msg.expectedCount = result.totalCount;
    return {
      ok: true,
      statusText: text('vector-ingest.status.done', { ingested: result.ingested, total: result.totalCount, collection }),
    };
  },
  // A failed ingest leaves the documents in msg.payload, the error in msg.error.
  {
    keepPayloadOnError: true,
    typedInputs: [{ property: 'collection', literal: 'str', labelKey: 'vector-ingest.label.collection', overriddenBy: 'collection' }],
  });
};
