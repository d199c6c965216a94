/**
 * `vector-ingest`: validate a message's documents, embed them, write them in
 * batches. Output: the write's summary, with `msg.expectedCount` set for the
 * sensor downstream.
 */
import type { NodeAPI } from 'node-red';
import { deleteDocuments, ingestDocuments } from '../lib/operations';
import { parseDeletePayload, parseIngestConfig, parseIngestPayload, parseSimulate } from '../lib/schemas';
import { registerStoreNode } from './shared/store-node';

export = function register(RED: NodeAPI): void {
  registerStoreNode(RED, 'vector-ingest', parseIngestConfig, async ({ text, config, store, label: collection, msg, status }) => {
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
    status.busy(text('vector-ingest.status.writing', { docs: items.length }));
    const result = await ingestDocuments(store, items, {
      collection,
      batchSize: config.batchSize,
      createCollection: config.createCollection,
      buildIndex: config.buildIndex,
      simulateFailure: simulate?.fail,
      fieldOf: Array.isArray(msg.payload) ? undefined : () => 'msg.payload',
      chunking:
        config.chunking === 'off'
          ? undefined
          : { mode: config.chunking, size: config.chunkSize, overlap: config.chunkOverlap, unit: config.chunkUnit },
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
