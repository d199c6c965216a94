/**
 * `index-health`: prove a collection is queryable, holds the expected number of
 * documents, is fully indexed, and report its statistics.
 */
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { checkHealth, describeUnhealthy } from '../lib/operations';
import { parseHealthConfig, type HealthConfig } from '../lib/schemas';
import { messageOf } from '../lib/errors';
import { NodeStatus } from './shared/status';
import { resolveStore } from './shared/store';
import { collectionOf, errorPayload, expectedCountOf, toError } from './shared/messages';

type HealthMessage = NodeMessageInFlow & { collection?: unknown; expectedCount?: unknown };

export = function register(RED: NodeAPI): void {
  function IndexHealthNode(this: Node, def: NodeDef & Record<string, unknown>): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const status = new NodeStatus(node);
    const storeId = def.store as string | undefined;

    let config: HealthConfig | null = null;
    let configError: Error | null = null;
    try {
      config = parseHealthConfig(def);
    } catch (err) {
      configError = toError(err);
      status.fail(messageOf(err));
    }

    node.on('input', (msg: HealthMessage, send, done) => {
      void handle(msg, send, done);
    });

    async function handle(
      msg: HealthMessage,
      send: (msg: NodeMessageInFlow) => void,
      done: (err?: Error) => void,
    ): Promise<void> {
      let collection: string | null = null;
      try {
        if (configError || !config) throw configError;
        const store = resolveStore(RED, storeId);
        collection = collectionOf(msg, config.collection, store.backend.name);
        const expectedCount = config.expectedCount > 0 ? config.expectedCount : expectedCountOf(msg);
        status.busy(RED._('index-health.status.checking', { collection }));
        const report = await checkHealth(store, {
          collection,
          expectedCount,
          countMode: config.countMode,
          dimensions: config.dimensions,
        });
        msg.payload = report;
        msg.collection = collection;
        if (!report.healthy) {
          const reason = describeUnhealthy(report);
          status.fail(reason);
          done(new Error(reason));
          return;
        }
        status.ok(
          RED._('index-health.status.healthy', {
            count: report.documentCount ?? 0,
            latency: report.queryLatencyMs ?? 0,
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

  RED.nodes.registerType('index-health', IndexHealthNode as never);
};
