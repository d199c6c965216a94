/**
 * Gathering small ingests into batches: when documents arrive one message at a
 * time (MQTT, file lines, HTTP), embedding and writing each alone costs one
 * embedding call and one store write per document. The gatherer joins the
 * messages of one collection until the batch holds `batchSize` documents or
 * `gatherMs` passed since its first document, whichever comes first, then writes
 * them with one `ingestDocuments` call (one embedding call, batch writes). Each
 * message's promise settles only when that write settled: resolved means its
 * documents are durable in the store (the upsert's resolution is the durability
 * point on every backend; with `persist`, the memory backend resolves once on disk).
 *
 * Invariants a caller can trust:
 * - A message is checked alone before it joins (`checkIngestInput`): bad input
 *   fails that message at once and never the batch.
 * - A batch holds only messages that would be written the same way (same store,
 *   collection, options, and kind of vectors), so a batch fails only for a reason
 *   each of its messages would have failed for alone, or for the store's or the
 *   embedder's own failure; every message of a failed batch fails with it.
 * - The batches of one collection are written one at a time, in the order their
 *   messages arrived: a later batch never overtakes an earlier one.
 * - Memory is bounded: while `maxQueuedBatches` batches wait for or are in their
 *   write, `add()` waits before joining (backpressure), in arrival order.
 * - `close()` writes what is gathered and waits for every write: no message
 *   accepted before it is lost, no timer is left. After it, `add()` rejects.
 */
import { VectorStoreError, messageOf } from './errors';
import { ingestDocuments, type IngestOptions, type IngestResult, type Store } from './operations';
import { checkIngestInput } from './ingest-input';
import type { IngestItem } from './schemas';
import type { Backend } from './types';

/** Batches waiting for or in their write after which `add()` waits, unless told otherwise. */
export const DEFAULT_MAX_QUEUED_BATCHES = 10;

export interface GatherSettings {
  /** Longest wait from the first document of a batch to its write, in ms (more than 0). */
  gatherMs: number;
  /** Batches waiting for or in their write (all collections) after which `add()` waits. */
  maxQueuedBatches?: number;
  /** Called whenever the counts change (a node shows them in its status). */
  onChange?: (counts: GatherCounts) => void;
}

/** Messages, by where they are. */
export interface GatherCounts {
  /** In a batch still gathering. */
  gathering: number;
  /** Waiting to join a batch (backpressure). */
  held: number;
  /** In a batch waiting for or in its write. */
  writing: number;
}

/** One message's ingest: what `ingestDocuments` would be called with for it alone. */
export interface GatherRequest {
  store: Store;
  /** Messages join one batch only when these are the same (`fieldOf` is per message). */
  options: Omit<IngestOptions, 'fieldOf'>;
  /** The message's documents, validated by parseIngestPayload. */
  items: IngestItem[];
  /** How messages name this message's document i; default `msg.payload[i]`. */
  fieldOf?: (index: number) => string;
}

/**
 * One message's share of its batch's write: `ingested` and `ids` are this
 * message's documents (each id once, as ingestDocuments counts them), `totalCount`
 * and `batches` the batch's, `durationMs` from the message's arrival to its write.
 */
export interface GatheredResult extends IngestResult {
  /** Messages written in the same batch (this one included). */
  gathered: number;
}

interface Entry {
  items: IngestItem[];
  ids: string[];
  fieldOf: (index: number) => string;
  /** When the message arrived: its durationMs includes the wait for its batch. */
  arrived: number;
  resolve: (result: GatheredResult) => void;
  reject: (err: unknown) => void;
}

interface Batch {
  /** What its messages share besides the collection (see groupOf). */
  group: string;
  store: Store;
  options: Omit<IngestOptions, 'fieldOf'>;
  entries: Entry[];
  documents: number;
  timer: NodeJS.Timeout | null;
}

/** One collection of one store: its batch gathering, and its batches in write order. */
interface Lane {
  key: string;
  open: Batch | null;
  queue: Batch[];
  /** The loop writing `queue`, while there is one. */
  writing: Promise<void> | null;
}

interface Held {
  laneKey: string;
  group: string;
  request: GatherRequest;
  entry: Entry;
}

export class IngestGatherer {
  private readonly lanes = new Map<string, Lane>();
  private readonly held: Held[] = [];
  /** Messages still being checked: close() lets them join first. */
  private readonly admitting = new Set<Promise<unknown>>();
  private queuedBatches = 0;
  private closing: Promise<void> | null = null;
  private readonly maxQueuedBatches: number;

  constructor(private readonly settings: GatherSettings) {
    if (!Number.isFinite(settings.gatherMs) || settings.gatherMs <= 0) {
      throw new VectorStoreError('INVALID_INPUT', `gatherMs must be a number of milliseconds greater than 0 (got ${settings.gatherMs}).`);
    }
    this.maxQueuedBatches = settings.maxQueuedBatches ?? DEFAULT_MAX_QUEUED_BATCHES;
  }

  /**
   * Gather one message's documents; resolves with its share of the batch once
   * the batch is written, rejects with the batch's error (or at once with the
   * message's own input error).
   */
  async add(request: GatherRequest): Promise<GatheredResult> {
    if (this.closing) throw closedError();
    const admitted = this.admit(request);
    const forget = () => this.admitting.delete(admitted);
    this.admitting.add(admitted);
    admitted.then(forget, forget);
    return (await admitted).settled;
  }

  /** Messages by where they are. */
  counts(): GatherCounts {
    const counts: GatherCounts = { gathering: 0, held: this.held.length, writing: 0 };
    for (const lane of this.lanes.values()) {
      counts.gathering += lane.open?.entries.length ?? 0;
      for (const batch of lane.queue) counts.writing += batch.entries.length;
    }
    return counts;
  }

  /** Write what is gathered and wait for every write; idempotent. */
  close(): Promise<void> {
    if (!this.closing) {
      this.closing = (async () => {
        await Promise.allSettled([...this.admitting]);
        // Held messages join now, past the cap: they are in memory already.
        for (const held of this.held.splice(0)) this.join(held.laneKey, held.group, held.request, held.entry);
        for (const lane of this.lanes.values()) this.seal(lane);
        this.changed();
        await Promise.all([...this.lanes.values()].map((lane) => lane.writing));
      })();
    }
    return this.closing;
  }

  /** Check the message alone, then join its batch (or wait for room); `settled` is its result. */
  private async admit(request: GatherRequest): Promise<{ settled: Promise<GatheredResult> }> {
    const { store, options } = request;
    const fieldOf = request.fieldOf ?? ((i: number) => `msg.payload[${i}]`);
    const items = await checkIngestInput(store, request.items, { collection: options.collection, simulateFailure: options.simulateFailure, fieldOf });
    const group = groupOf(options, vectorKind(items, fieldOf));
    const laneKey = `${backendKey(store.backend)}\u0000${options.collection}`;
    const settled = new Promise<GatheredResult>((resolve, reject) => {
      const entry: Entry = { items, ids: idsOf(items), fieldOf, arrived: performance.now(), resolve, reject };
      // Once some wait, later messages wait behind them: arrival order is write order.
      if (!this.closing && (this.held.length > 0 || this.queuedBatches >= this.maxQueuedBatches)) {
        this.held.push({ laneKey, group, request, entry });
      } else {
        this.join(laneKey, group, request, entry);
      }
    });
    this.changed();
    return { settled };
  }

  private join(laneKey: string, group: string, request: GatherRequest, entry: Entry): void {
    let lane = this.lanes.get(laneKey);
    if (!lane) {
      lane = { key: laneKey, open: null, queue: [], writing: null };
      this.lanes.set(laneKey, lane);
    }
    const { batchSize } = request.options;
    // A message never splits: the batch is written first when the message would not fit, or is another kind.
    if (lane.open && (lane.open.group !== group || lane.open.documents + entry.items.length > batchSize)) this.seal(lane);
    if (!lane.open) {
      const batch: Batch = { group, store: request.store, options: request.options, entries: [], documents: 0, timer: null };
      const gathering = lane;
      batch.timer = setTimeout(() => {
        this.seal(gathering);
        this.changed();
      }, this.settings.gatherMs);
      lane.open = batch;
    }
    lane.open.entries.push(entry);
    lane.open.documents += entry.items.length;
    if (lane.open.documents >= batchSize) this.seal(lane);
  }

  /** The gathering batch stops gathering and queues for its write. */
  private seal(lane: Lane): void {
    const batch = lane.open;
    if (!batch) return;
    if (batch.timer) clearTimeout(batch.timer);
    batch.timer = null;
    lane.open = null;
    lane.queue.push(batch);
    this.queuedBatches += 1;
    if (!lane.writing) lane.writing = this.writeQueue(lane);
  }

  /** Write the lane's batches one at a time, in order. */
  private async writeQueue(lane: Lane): Promise<void> {
    while (lane.queue.length > 0) {
      await this.write(lane.queue[0]);
      lane.queue.shift();
      this.queuedBatches -= 1;
      this.releaseHeld();
      this.changed();
    }
    lane.writing = null;
    if (!lane.open) this.lanes.delete(lane.key);
  }

  /** Let held messages join while there is room, first come first. */
  private releaseHeld(): void {
    while (this.held.length > 0 && this.queuedBatches < this.maxQueuedBatches) {
      const held = this.held.shift() as Held;
      this.join(held.laneKey, held.group, held.request, held.entry);
    }
  }

  /** One ingestDocuments call for the batch; settles every message's promise (never throws). */
  private async write(batch: Batch): Promise<void> {
    const { entries } = batch;
    const items: IngestItem[] = [];
    const owner: Array<[entry: number, index: number]> = [];
    entries.forEach((entry, m) => {
      entry.items.forEach((item, i) => {
        items.push(item);
        owner.push([m, i]);
      });
    });
    const fieldOf = (k: number): string => {
      const [m, i] = owner[k];
      return entries.length === 1 ? entries[0].fieldOf(i) : `${entries[m].fieldOf(i)} (message ${m + 1} of the ${entries.length} gathered)`;
    };
    let result: IngestResult;
    try {
      result = await ingestDocuments(batch.store, items, { ...batch.options, fieldOf });
    } catch (err) {
      const failure = batchFailure(err, entries.length, items.length, batch.options.collection);
      for (const entry of entries) entry.reject(failure);
      return;
    }
    // With chunking, what was written is chunks "<id>#<n>": each message gets the chunks of its documents.
    const chunkIds = batch.options.chunking ? chunksByEntry(entries, result.ids) : null;
    entries.forEach((entry, m) => {
      const ids = chunkIds ? chunkIds[m] : entry.ids;
      entry.resolve({
        collection: result.collection,
        ingested: ids.length,
        ids,
        ...(chunkIds ? { documents: entry.ids.length, chunks: ids.length } : {}),
        totalCount: result.totalCount,
        batches: result.batches,
        durationMs: Math.round(performance.now() - entry.arrived),
        gathered: entries.length,
      });
    });
  }

  private changed(): void {
    this.settings.onChange?.(this.counts());
  }
}

function closedError(): VectorStoreError {
  return new VectorStoreError(
    'UNAVAILABLE',
    'This ingest no longer gathers documents: it was closed (its node stopped or was redeployed) after writing what it had gathered. Send the message again to the running one.',
  );
}

/**
 * The error every message of a failed batch gets: the batch's size, and whether
 * anything of it may be in the store (ingestDocuments says "Nothing was written."
 * when it failed before the first write).
 */
function batchFailure(err: unknown, messages: number, documents: number, collection: string): VectorStoreError {
  const reason = messageOf(err);
  const batch = `A gathered batch of ${messages} ${messages === 1 ? 'message' : 'messages'} (${documents} ${documents === 1 ? 'document' : 'documents'}) for collection "${collection}" failed, so this message failed with it: ${reason}`;
  const written = /Nothing was written\.?$/.test(reason)
    ? ''
    : ' Some documents of the batch may have been written: sending the messages again is safe (writes are upserts by id).';
  const code = err instanceof VectorStoreError ? err.code : 'INTERNAL';
  const transient = err instanceof VectorStoreError ? err.transient : true;
  return new VectorStoreError(code, batch + written, { transient, cause: err });
}

/**
 * The chunk ids written, per message: a chunk "<source>#<n>" belongs to the message
 * of its source document (the last message that had it: its version was written).
 */
function chunksByEntry(entries: ReadonlyArray<{ ids: string[] }>, written: string[]): string[][] {
  const entryOf = new Map<string, number>();
  entries.forEach((entry, m) => entry.ids.forEach((id) => entryOf.set(id, m)));
  const out: string[][] = entries.map(() => []);
  for (const id of written) {
    const hash = id.lastIndexOf('#');
    const m = entryOf.get(hash === -1 ? id : id.slice(0, hash)) ?? entryOf.get(id);
    if (m !== undefined) out[m].push(id);
  }
  return out;
}

/** The message's ids once each, in the order ingestDocuments keeps them (the last of a repeated id wins). */
function idsOf(items: IngestItem[]): string[] {
  const ids = new Set<string>();
  for (const item of items) {
    const id = item.id as string; // filled in by checkIngestInput
    ids.delete(id);
    ids.add(id);
  }
  return [...ids];
}

/**
 * What the message's vectors are: texts only ("t"), given vectors of d
 * dimensions ("v<d>"), or both ("tv<d>"). Messages of different kinds do not
 * share a batch: a message of 3-dimensional vectors must not fail a batch of
 * embedded texts. Vectors of different sizes in one message fail it at once.
 */
function vectorKind(items: IngestItem[], fieldOf: (index: number) => string): string {
  let first = -1;
  let texts = false;
  items.forEach((item, i) => {
    if (!item.vector) {
      texts = true;
      return;
    }
    if (first === -1) first = i;
    else if (item.vector.length !== (items[first].vector as number[]).length) {
      throw new VectorStoreError(
        'DIMENSION_MISMATCH',
        `${fieldOf(i)} has a vector of ${item.vector.length} dimensions but ${fieldOf(first)} has ${(items[first].vector as number[]).length}: all documents of one message must have vectors of the same size. Nothing was written.`,
      );
    }
  });
  const vectors = first === -1 ? '' : `v${(items[first].vector as number[]).length}`;
  return `${texts ? 't' : ''}${vectors}`;
}

function groupOf(options: Omit<IngestOptions, 'fieldOf'>, kind: string): string {
  return JSON.stringify([options.batchSize, options.createCollection, options.buildIndex, options.simulateFailure ?? null, kind]);
}

/** Each backend object its own key: two stores may hold collections of the same name. */
const backendKeys = new WeakMap<Backend, number>();
let nextBackendKey = 0;

function backendKey(backend: Backend): number {
  let key = backendKeys.get(backend);
  if (key === undefined) {
    key = ++nextBackendKey;
    backendKeys.set(backend, key);
  }
  return key;
}
