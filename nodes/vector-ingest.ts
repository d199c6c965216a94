/**
 * `vector-ingest`: validate a message's documents, embed them, write them in
 * batches. Output 1: the write's summary, with `msg.expectedCount` set for the
 * sensor downstream. Large inputs (or all, by the `background` property) run as
 * durable background jobs (shared/ingest-jobs.ts): output 2 then reports their
 * progress, and output 1 comes when the last batch is written, also after a
 * redeploy, a restart or a crash. `msg.reset` cancels the node's jobs. With
 * "Gather for" (gatherMs) set, the documents of several small messages are
 * written together (lib/ingest-gatherer.ts), and each message leaves once its
 * batch is written.
 */
import type { NodeAPI } from 'node-red';
import { IngestGatherer } from '../lib/ingest-gatherer';
import { deleteDocuments, ingestDocuments } from '../lib/operations';
import { runsAsJob } from '../lib/ingest-job/prepare';
import { VectorStoreError } from '../lib/errors';
import { describeValue, parseDeletePayload, parseIngestConfig, parseIngestPayload, parseSimulate, type IngestConfig } from '../lib/schemas';
import { registerStoreNode, type PerNodeState, type StoreMessage } from './shared/store-node';
import { NodeIngestJobs } from './shared/ingest-jobs';
import { toError } from './shared/messages';
import { finishBeforeStoreCloses } from './shared/store';
import type { NodeStatus } from './shared/status';
import type { Texts } from './shared/texts';

/** What a vector-ingest node keeps beyond one message: its background jobs, and its gatherer when it gathers. */
interface IngestNodeState extends PerNodeState {
  jobs: NodeIngestJobs;
  gathererFor(config: IngestConfig): IngestGatherer;
}

export = function register(RED: NodeAPI): void {
  registerStoreNode(RED, 'vector-ingest', parseIngestConfig, async ({ text, config, store, label: collection, msg, status, send, done, perNode }) => {
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
    const options = {
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
    };
    if (runsAsJob(config.background, items) && (await (perNode as IngestNodeState).jobs.available())) {
      // Durable before this returns; the message completes when the job ends.
      await (perNode as IngestNodeState).jobs.start(msg, send, done, items, options);
      return { ok: true, later: true };
    }
    if (config.gatherMs > 0) {
      // This message leaves (and its done() is called) once its batch is in the store.
      const { fieldOf, ...writeOptions } = options;
      const gathered = await (perNode as IngestNodeState).gathererFor(config).add({ store, items, options: writeOptions, fieldOf });
      msg.payload = gathered;
      msg.expectedCount = gathered.totalCount;
      return { ok: true, statusText: text('vector-ingest.status.gatheredDone', { messages: gathered.gathered, total: gathered.totalCount }) };
    }
    status.busy(text('vector-ingest.status.writing', { docs: items.length }));
    const result = await ingestDocuments(store, items, options);
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
    perNode: (node, def, status, text) => {
      const storeId = def.store as string | undefined;
      const jobs = new NodeIngestJobs(RED, node, status, text, storeId);
      let gatherer: IngestGatherer | null = null;
      let closed = false;
      const state: IngestNodeState = {
        jobs,
        gathererFor: (config) => {
          if (!gatherer) {
            gatherer = newGatherer(config, status, text);
            // A message that was on its way when the node closed is refused, not held.
            if (closed) void gatherer.close();
          }
          return gatherer;
        },
        close: () => {
          closed = true;
          jobs.close();
          if (!gatherer) return;
          // What is gathered is written before Node-RED's close callback; the store stays open until then.
          const closing = gatherer.close();
          if (storeId) finishBeforeStoreCloses(storeId, closing);
          return closing;
        },
        intercept: (msg, msgDone) => reset(jobs, msg, msgDone, status, text),
      };
      return state;
    },
  });

  /** The node's gatherer, made at its first gathered message (gatherMs is not read per message). */
  function newGatherer(config: IngestConfig, status: NodeStatus, text: Texts): IngestGatherer {
    return new IngestGatherer({
      gatherMs: config.gatherMs,
      onChange: ({ gathering, held, writing }) => {
        if (gathering + held > 0) status.busy(text('vector-ingest.status.gathering', { messages: gathering + held }));
        else if (writing > 0) status.busy(text('vector-ingest.status.writingGathered', { messages: writing }));
      },
    });
  }

  /** msg.reset cancels the node's background jobs (of msg.collection, when given): no output. */
  async function reset(jobs: NodeIngestJobs, msg: StoreMessage, done: (err?: Error) => void, status: NodeStatus, text: Texts): Promise<boolean> {
    if (msg.reset === undefined || msg.reset === null || msg.reset === false) return false;
    const given = msg.collection;
    if (given !== undefined && given !== null && given !== '' && typeof given !== 'string') {
      status.fail('bad msg.collection');
      done(toError(new VectorStoreError('INVALID_INPUT', `msg.collection must be a collection name (a string) to cancel the ingest jobs of one collection, not ${describeValue(given)}: nothing was cancelled. Leave msg.collection out to cancel all of this node's jobs.`)));
      return true;
    }
    const cancelled = await jobs.cancel(typeof given === 'string' && given !== '' ? given : null);
    status.ok(text('vector-ingest.status.reset', { cancelled }));
    done();
    return true;
  }
};
