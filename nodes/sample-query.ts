/**
 * `sample-query`: run one or more queries and return the best hits, to verify a
 * collection answers sensibly. An empty answer is a failure unless told otherwise.
 */
import type { NodeAPI } from 'node-red';
import { queryCollection } from '../lib/operations';
import { parseQueryConfig, parseQueryInput } from '../lib/schemas';
import { registerStoreNode } from './shared/store-node';

export = function register(RED: NodeAPI): void {
  registerStoreNode(RED, 'sample-query', parseQueryConfig, async ({ text, config, store, collection, label, msg, status }) => {
    const input = parseQueryInput(msg.payload, config.query, config.topK);
    status.busy(text('sample-query.status.querying', { collection: label }));
    const results = await queryCollection(store, collection, input.queries, (i) => (input.batch ? `msg.payload[${i}]` : 'msg.payload'));
    // On failure too, msg.payload keeps the (partly) empty results: that is the structured answer.
    msg.payload = input.batch ? results : results[0];
    const emptyAt = results.findIndex((hits) => hits.length === 0);
    if (config.failOnEmpty && emptyAt !== -1) {
      const which = input.batch ? `query ${emptyAt + 1} of ${results.length}` : 'the query';
      return {
        ok: false,
        reason: `No results for ${which} in collection "${label}": the collection may be empty or the filter matches nothing. Turn off "Fail when a query finds nothing" to let empty answers through.`,
        status: 'no results',
      };
    }
    const best = results[0]?.[0];
    if (!best) return { ok: true, empty: true, statusText: text('sample-query.status.empty') };
    // Not named "count": i18next would look up plural forms, several times slower.
    const count = results.reduce((n, hits) => n + hits.length, 0);
    return { ok: true, statusText: text('sample-query.status.done', { hits: count, score: best.score.toFixed(3) }) };
  }, {
    watches: true,
    typedInputs: [
      { property: 'collection', literal: 'str', labelKey: 'sample-query.label.collection', overriddenBy: 'collection' },
      // The query is the fallback when msg.payload is not a query: missing, it is just not there.
      { property: 'query', literal: 'str', labelKey: 'sample-query.label.query', optional: true },
      { property: 'topK', literal: 'num', labelKey: 'sample-query.label.topK' },
    ],
  });
};
