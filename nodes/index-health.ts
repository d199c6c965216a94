/**
 * `index-health`: prove a collection is queryable, holds the expected number of
 * documents, is fully indexed, and report its statistics.
 */
import type { NodeAPI } from 'node-red';
import { checkHealth, describeUnhealthy } from '../lib/operations';
import { parseHealthConfig } from '../lib/schemas';
import { expectedCountOf } from './shared/messages';
import { registerStoreNode } from './shared/store-node';
import { unhealthyStatus } from './shared/status';

export = function register(RED: NodeAPI): void {
  registerStoreNode(RED, 'index-health', parseHealthConfig, async ({ text, config, store, collection, label, msg, status }) => {
    const expectedCount = config.expectedCount > 0 ? config.expectedCount : expectedCountOf(msg);
    status.busy(text('index-health.status.checking', { collection: label }));
    const report = await checkHealth(store, {
      collection,
      expectedCount,
      countMode: config.countMode,
      dimensions: config.dimensions,
    });
    msg.payload = report;
    if (!report.healthy) return { ok: false, reason: describeUnhealthy(report), status: unhealthyStatus(report) };
    return {
      ok: true,
      statusText: text('index-health.status.healthy', {
        docs: report.documentCount ?? 0,
        latency: report.queryLatencyMs ?? 0,
      }),
    };
  }, {
    watches: true,
    typedInputs: [
      { property: 'collection', literal: 'str', labelKey: 'index-health.label.collection', overriddenBy: 'collection' },
      { property: 'expectedCount', literal: 'num', labelKey: 'index-health.label.expectedCount' },
    ],
  });
};
