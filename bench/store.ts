/**
 * Benchmarks 3 and 4 for one store, in a running Node-RED (bench/runtime.ts):
 *
 * - Ingest: the `vector-ingest` node against what a program would do directly
 *   with the same store, embedder, documents and batch size: embed, create the
 *   collection, `Backend.upsert` batch by batch. Each repetition writes a fresh
 *   collection on each side; the two sides alternate (A B, B A, ...) and the
 *   medians are compared (node / direct).
 * - Query: the `sample-query` node against embedding the question and calling
 *   `Backend.query`, over one collection, the same questions and topK.
 * - The `hash` embedder alone: documents embedded per second.
 *
 * Both sides use the very backend and embedder instances of the `vector-store`
 * config node, so the difference is what the node adds: validation, the
 * collection check, ids, status, message passing.
 */
import { performance } from 'node:perf_hooks';
import { stableId } from '../lib/ids';
import type { QueryHit } from '../lib/types';
import { backendNamed } from './backends';
import { compareInterleaved, median, ms } from './measure';
import { onTab, sink, startNodeRed, type FlowNode, type Msg, type Runtime } from './runtime';

export interface StoreOptions {
  backend: string;
  /** Documents per ingest repetition. */
  documents: number;
  batchSize: number;
  ingestRepetitions: number;
  /** Documents in the collection the queries run on. */
  queryDocuments: number;
  /** Questions per query repetition. */
  queries: number;
  queryRepetitions: number;
  topK: number;
}

export interface StoreResult {
  backend: string;
  describe: string;
  ingest: {
    documents: number;
    batchSize: number;
    nodeMs: number;
    directMs: number;
    ratio: number;
    nodeDocsPerSecond: number;
    directDocsPerSecond: number;
    /** Each repetition's time, to see the spread. */
    nodeRunsMs: number[];
    directRunsMs: number[];
  };
  query: {
    documents: number;
    queries: number;
    topK: number;
    nodeMsPerQuery: number;
    directMsPerQuery: number;
    ratio: number;
    /** One `Backend.collectionExists` call: the node makes one before each query. */
    collectionExistsMs: number;
    /** Each repetition's time (all questions), to see the spread. */
    nodeRunsMs: number[];
    directRunsMs: number[];
  };
  hashEmbedderDocsPerSecond: number;
}

export type StoreOutcome = StoreResult | { backend: string; skipped: string };

const DIMENSIONS = 384;

const TOPICS = ['vector index', 'batch ingest', 'sensor wait', 'query latency', 'embedding model', 'health check', 'node status', 'retry policy'];
const WORDS = ['fast', 'durable', 'approximate', 'exact', 'cosine', 'distance', 'shard', 'replica', 'segment', 'cache', 'flush', 'compaction'];

/** A deterministic document of about 200 characters. */
export function documentText(i: number, prefix = 'doc'): string {
  const words: string[] = [];
  for (let k = 0; k < 24; k++) words.push(WORDS[(i * 7 + k * 3) % WORDS.length]);
  return `${prefix} ${i} about ${TOPICS[i % TOPICS.length]}: ${words.join(' ')}.`;
}

function flow(config: Record<string, unknown>, options: StoreOptions): FlowNode[] {
  const store: FlowNode = { id: 'store', type: 'vector-store', name: 'bench store', embedder: 'hash', dimensions: DIMENSIONS, ...config };
  return onTab(
    [store],
    [
      { id: 'ingest', type: 'vector-ingest', store: 'store', collection: '', batchSize: options.batchSize, createCollection: true, buildIndex: false, wires: [['ingested']] },
      { id: 'query', type: 'sample-query', store: 'store', collection: '', query: '', topK: options.topK, failOnEmpty: true, wires: [['answered']] },
      sink('ingested'),
      sink('answered'),
      { id: 'catch-all', type: 'catch', scope: null, uncaught: false, wires: [['errors']] },
      sink('errors'),
    ],
  );
}

/** Sends a message into a node and resolves with the message reaching the output sink. */
class Exchange {
  private next = 0;
  private readonly pending = new Map<number, { resolve(msg: Msg): void; reject(err: Error): void }>();

  constructor(private readonly runtime: Runtime, outputs: string[]) {
    for (const id of outputs) runtime.onInput(id, (msg) => this.settle(msg, null));
    runtime.onInput('errors', (msg) => this.settle(msg, new Error(`${msg.error?.message ?? 'failed'} (node ${msg.error?.source?.id})`)));
  }

  send(nodeId: string, msg: Msg): Promise<Msg> {
    const benchId = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(benchId, { resolve, reject });
      this.runtime.node(nodeId).receive({ ...msg, benchId });
    });
  }

  private settle(msg: Msg, error: Error | null): void {
    const waiter = this.pending.get(msg.benchId);
    if (!waiter) return;
    this.pending.delete(msg.benchId);
    if (error) waiter.reject(error);
    else waiter.resolve(msg);
  }
}

export async function run(options: StoreOptions): Promise<StoreOutcome> {
  const entry = backendNamed(options.backend);
  let store;
  try {
    store = await entry.start();
  } catch (err) {
    return { backend: entry.name, skipped: `cannot start here: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}` };
  }
  let runtime: Runtime | null = null;
  try {
    runtime = await startNodeRed(flow(store.config, options));
    const { backend, embedder } = runtime.store('store');
    try {
      await backend.collectionExists('bench-probe');
    } catch (err) {
      return { backend: entry.name, skipped: `the backend does not answer: ${err instanceof Error ? err.message : String(err)}` };
    }
    const exchange = new Exchange(runtime, ['ingested', 'answered']);
    const texts = Array.from({ length: options.documents }, (_, i) => documentText(i));

    // Ingest: the node, and the same work by hand.
    const ingestNode = async (rep: number) => {
      const out = await exchange.send('ingest', { payload: texts, collection: `node_${rep < 0 ? 'warmup' : rep}` });
      if (out.payload.ingested !== texts.length) throw new Error(`vector-ingest wrote ${out.payload.ingested} of ${texts.length} documents.`);
    };
    const ingestDirect = async (rep: number) => {
      const collection = `direct_${rep < 0 ? 'warmup' : rep}`;
      const vectors = await embedder.embed(texts);
      await backend.ensureCollection(collection, { dimensions: DIMENSIONS, metric: 'cosine' });
      for (let start = 0; start < texts.length; start += options.batchSize) {
        const batch = [];
        for (let i = start; i < Math.min(texts.length, start + options.batchSize); i++) batch.push({ id: stableId(texts[i]), vector: vectors[i], text: texts[i] });
        await backend.upsert(collection, batch, { buildIndex: false });
      }
    };
    await ingestNode(-1); // warm-up of both paths, not timed
    await ingestDirect(-1);
    const ingest = await compareInterleaved(options.ingestRepetitions, ingestNode, ingestDirect);

    // The hash embedder alone.
    const embedRuns: number[] = [];
    for (let rep = 0; rep < 5; rep++) {
      const started = performance.now();
      await embedder.embed(texts);
      embedRuns.push(performance.now() - started);
    }

    // Query: one collection of queryDocuments, the same questions on both sides.
    const queryCollection = 'queried';
    const corpus = Array.from({ length: options.queryDocuments }, (_, i) => documentText(i, 'entry'));
    await backend.ensureCollection(queryCollection, { dimensions: DIMENSIONS, metric: 'cosine' });
    for (let start = 0; start < corpus.length; start += 500) {
      const part = corpus.slice(start, start + 500);
      const vectors = await embedder.embed(part);
      await backend.upsert(queryCollection, part.map((text, i) => ({ id: stableId(text), vector: vectors[i], text })), { buildIndex: false });
    }
    const questions = Array.from({ length: options.queries }, (_, i) => `which entry is about ${TOPICS[i % TOPICS.length]} and ${WORDS[i % WORDS.length]} ${i}?`);
    const queryNode = async () => {
      for (const question of questions) {
        const out = await exchange.send('query', { payload: question, collection: queryCollection });
        if ((out.payload as QueryHit[]).length === 0) throw new Error('sample-query found nothing.');
      }
    };
    const queryDirect = async () => {
      for (const question of questions) {
        const [vector] = await embedder.embed([question]);
        const hits = await backend.query(queryCollection, { vector, topK: options.topK });
        if (hits.length === 0) throw new Error('Backend.query found nothing.');
      }
    };
    await queryNode();
    await queryDirect();
    const query = await compareInterleaved(options.queryRepetitions, queryNode, queryDirect);
    const existsStarted = performance.now();
    for (let i = 0; i < questions.length; i++) await backend.collectionExists(queryCollection);
    const collectionExistsMs = (performance.now() - existsStarted) / questions.length;

    return {
      backend: entry.name,
      describe: entry.describe,
      ingest: {
        documents: texts.length,
        batchSize: options.batchSize,
        nodeMs: ingest.aMs,
        directMs: ingest.bMs,
        ratio: ingest.ratio,
        nodeDocsPerSecond: Math.round(texts.length / (ingest.aMs / 1000)),
        directDocsPerSecond: Math.round(texts.length / (ingest.bMs / 1000)),
        nodeRunsMs: ingest.aRuns,
        directRunsMs: ingest.bRuns,
      },
      query: {
        documents: corpus.length,
        queries: questions.length,
        topK: options.topK,
        nodeMsPerQuery: ms(query.aMs / questions.length, 3),
        directMsPerQuery: ms(query.bMs / questions.length, 3),
        ratio: query.ratio,
        collectionExistsMs: ms(collectionExistsMs, 3),
        nodeRunsMs: query.aRuns,
        directRunsMs: query.bRuns,
      },
      hashEmbedderDocsPerSecond: Math.round(texts.length / (median(embedRuns) / 1000)),
    };
  } finally {
    await runtime?.stop();
    await store.stop();
  }
}
