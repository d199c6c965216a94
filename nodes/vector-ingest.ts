/**
 * `vector-ingest`: validate a message's documents, embed them, write them in
 * batches. Output: the write's summary, with `msg.expectedCount` set for the
 * sensor downstream.
 */
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { ingestDocuments } from '../lib/operations';
import { parseIngestConfig, parseIngestPayload, parseSimulate, type IngestConfig } from '../lib/schemas';
import { messageOf } from '../lib/errors';
import { NodeStatus } from './shared/status';
import { resolveStore } from './shared/store';
import { collectionOf, errorPayload, toError } from './shared/messages';

type IngestMessage = NodeMessageInFlow & { collection?: unknown; simulate?: unknown; expectedCount?: number };

export = function register(RED: NodeAPI): void {
  function VectorIngestNode(this: Node, def: NodeDef & Record<string, unknown>): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const status = new NodeStatus(node);
    const storeId = def.store as string | undefined;

    let config: IngestConfig | null = null;
    let configError: Error | null = null;
    try {
      config = parseIngestConfig(def);
    } catch (err) {
      configError = toError(err);
      status.fail(messageOf(err));
    }

    node.on('input', (msg: IngestMessage, send, done) => {
      void handle(msg, send, done);
    });

    async function handle(
      msg: IngestMessage,
      send: (msg: NodeMessageInFlow) => void,
      done: (err?: Error) => void,
    ): Promise<void> {
      let collection: string | null = null;
      try {
        if (configError || !config) throw configError;
        const store = resolveStore(RED, storeId);
        collection = collectionOf(msg, config.collection, store.backend.name);
        // Everything is validated before anything is written.
        const items = parseIngestPayload(msg.payload);
        const simulate = parseSimulate(msg.simulate);
        status.busy(RED._('vector-ingest.status.writing', { count: items.length }));
        const result = await ingestDocuments(store, items, {
          collection,
          batchSize: config.batchSize,
          createCollection: config.createCollection,
          buildIndex: config.buildIndex,
          simulateFailure: simulate?.fail,
        });
        msg.payload = result;
        msg.collection = collection;
        msg.expectedCount = result.totalCount;
        status.ok(
          RED._('vector-ingest.status.done', {
            ingested: result.ingested,
            total: result.totalCount,
            collection,
          }),
        );
        send(msg);
        done();
      } catch (err) {
        msg.payload = errorPayload(collection, err);
        status.fail(messageOf(err));
        done(toError(err));
      }
    }
  }

  RED.nodes.registerType('vector-ingest', VectorIngestNode as never);
};
