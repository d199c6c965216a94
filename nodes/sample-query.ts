/**
 * `sample-query`: run one or more queries and return the best hits, to verify a
 * collection answers sensibly. An empty answer is a failure unless told otherwise.
 */
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { queryCollection } from '../lib/operations';
import { parseQueryConfig, parseQueryInput, type QueryConfig } from '../lib/schemas';
import { messageOf } from '../lib/errors';
import { NodeStatus } from './shared/status';
import { resolveStore } from './shared/store';
import { collectionOf, errorPayload, toError } from './shared/messages';

type QueryMessage = NodeMessageInFlow & { collection?: unknown };

export = function register(RED: NodeAPI): void {
  function SampleQueryNode(this: Node, def: NodeDef & Record<string, unknown>): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const status = new NodeStatus(node);
    const storeId = def.store as string | undefined;

    let config: QueryConfig | null = null;
    let configError: Error | null = null;
    try {
      config = parseQueryConfig(def);
    } catch (err) {
      configError = toError(err);
      status.fail(messageOf(err));
    }

    node.on('input', (msg: QueryMessage, send, done) => {
      void handle(msg, send, done);
    });

    async function handle(
      msg: QueryMessage,
      send: (msg: NodeMessageInFlow) => void,
      done: (err?: Error) => void,
    ): Promise<void> {
      let collection: string | null = null;
      try {
        if (configError || !config) throw configError;
        const store = resolveStore(RED, storeId);
        collection = collectionOf(msg, config.collection, store.backend.name);
        const input = parseQueryInput(msg.payload, config.query, config.topK);
        status.busy(RED._('sample-query.status.querying', { collection }));
        const results = await queryCollection(store, collection, input.queries);
        const emptyAt = results.findIndex((hits) => hits.length === 0);
        msg.payload = input.batch ? results : results[0];
        msg.collection = collection;
        if (config.failOnEmpty && emptyAt !== -1) {
          const which = input.batch ? `query ${emptyAt + 1} of ${results.length}` : 'the query';
          // msg.payload keeps the (partly) empty results: that is the structured answer.
          const reason = `No results for ${which} in collection "${collection}": the collection may be empty or the filter matches nothing. Turn off "fail on empty" to let empty answers through.`;
          status.fail(RED._('sample-query.status.empty'));
          done(new Error(reason));
          return;
        }
        const best = results[0]?.[0];
        if (best) {
          const count = results.reduce((n, hits) => n + hits.length, 0);
          status.ok(RED._('sample-query.status.done', { count, score: best.score.toFixed(3) }));
        } else {
          status.warn(RED._('sample-query.status.empty'));
        }
        send(msg);
        done();
      } catch (err) {
        msg.payload = errorPayload(collection, err);
        status.fail(messageOf(err));
        done(toError(err));
      }
    }
  }

  RED.nodes.registerType('sample-query', SampleQueryNode as never);
};
