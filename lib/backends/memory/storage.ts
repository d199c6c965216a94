/**
 * The memory backend's files: `<dataDir>/<collection>.jsonl`, one `AppendLog` each.
 *
 * Records: a `create` record, then one `upsert` record per acknowledged write
 * and one `delete` record (the ids removed) per acknowledged delete.
 * Vectors are base64 of the Float32Array bytes (platform byte order:
 * little-endian on every platform Node-RED runs on). Metadata is stored as JSON
 * (a Date becomes a string, as after a reload).
 *
 * Damage: at load, a torn last line (a crash mid-write, never acknowledged) is
 * dropped quietly. Any other unreadable record (garbled, zeroed, invalid) is
 * copied to `<file>.corrupt` and reported once; what can be read is used, and the
 * collection reports "failed" with a sentence saying so until its next successful
 * write (the re-ingest). The file is then rewritten without the damaged lines and
 * with a `damage` record, so a restart keeps the failed state without reporting
 * the same lines again. A later `upsert` record clears it.
 */
import { VectorStoreError, messageOf } from '../../errors';
import { AppendLog, readLog, type LogContents } from '../../storage/append-log';
import type { Metric } from '../../types';
import { METRICS } from '../collection-spec';
import { isPlainObject } from '../values';
import { MemoryCollection, type CollectionDamage, type StoredDocument } from './collection';
import type { IndexingWrite } from './timeline';

/** Compact a log on load when it holds more superseded document versions than this (and than live ones). */
const COMPACT_MIN_SUPERSEDED = 1000;
/** Documents per record when a log is compacted, to keep each JSON line a reasonable size. */
const COMPACT_DOCS_PER_RECORD = 1000;

interface CreateRecord {
  type: 'create';
  dimensions: number;
  metric: Metric;
  createdAt: number;
}

interface LoggedDocument {
  id: string;
  /** base64 of the Float32Array bytes (already normalised for cosine). */
  vector: string;
  text?: string;
  metadata?: Record<string, unknown>;
}

interface UpsertRecord {
  type: 'upsert';
  at: number;
  rate: number;
  delay: number;
  fail?: string;
  /** Documents to index when not docs.length (written by compaction only). */
  count?: number;
  docs: LoggedDocument[];
}

/** The collection's file was found damaged (written when it is rewritten without the damaged lines). */
interface DamageRecord {
  type: 'damage';
  at: number;
  lines: number;
  keptIn: string | null;
}

/** Documents removed by one delete call (only the ids that existed). */
interface DeleteRecord {
  type: 'delete';
  at: number;
  ids: string[];
}

export type LogRecord = CreateRecord | UpsertRecord | DamageRecord | DeleteRecord;

export function deleteRecord(at: number, ids: string[]): DeleteRecord {
  return { type: 'delete', at, ids };
}

export function encodeDocument(doc: StoredDocument): LoggedDocument {
  const bytes = Buffer.from(doc.vector.buffer, doc.vector.byteOffset, doc.vector.byteLength);
  const logged: LoggedDocument = { id: doc.id, vector: bytes.toString('base64') };
  if (doc.text !== null) logged.text = doc.text;
  if (doc.metadata !== null) logged.metadata = doc.metadata;
  return logged;
}

export function upsertRecord(write: IndexingWrite, docs: LoggedDocument[], count?: number): UpsertRecord {
  const record: UpsertRecord = { type: 'upsert', at: write.at, rate: write.rate, delay: write.delay, docs };
  if (write.fail !== undefined) record.fail = write.fail;
  if (count !== undefined) record.count = count;
  return record;
}

const isFiniteNumber = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
const isCount = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;

/**
 * Reads the records of one file: `isRecord` checks each line's record, in order
 * (one that fails is damage), decoding its vectors on the way, against the size
 * the first create record declared; `replay` then uses the decoded vectors.
 */
class RecordReader {
  /** Vector size in bytes, once the create record told the dimensions. */
  private vectorBytes: number | null = null;
  private readonly vectors = new WeakMap<object, Float32Array>();

  readonly isRecord = (value: unknown): boolean => {
    if (!isPlainObject(value)) return false;
    switch (value.type) {
      case 'create': {
        const ok = Number.isSafeInteger(value.dimensions) && (value.dimensions as number) >= 1 && METRICS.includes(value.metric as Metric) && isFiniteNumber(value.createdAt);
        if (ok && this.vectorBytes === null) this.vectorBytes = (value.dimensions as number) * 4;
        return ok;
      }
      case 'upsert':
        return (
          isFiniteNumber(value.at) &&
          isFiniteNumber(value.rate) &&
          value.rate > 0 &&
          (value.delay === undefined || (isFiniteNumber(value.delay) && value.delay >= 0)) &&
          (value.fail === undefined || typeof value.fail === 'string') &&
          (value.count === undefined || isCount(value.count)) &&
          Array.isArray(value.docs) &&
          value.docs.every(this.isDocument)
        );
      case 'delete':
        return isFiniteNumber(value.at) && Array.isArray(value.ids) && value.ids.every((id) => typeof id === 'string');
      case 'damage':
        return isFiniteNumber(value.at) && isCount(value.lines) && (value.keptIn === null || typeof value.keptIn === 'string');
      default:
        return false;
    }
  };

  /** The decoded vector of a document that passed `isRecord`. */
  vectorOf(doc: LoggedDocument): Float32Array | undefined {
    return this.vectors.get(doc);
  }

  private readonly isDocument = (d: unknown): boolean => {
    if (!isPlainObject(d) || typeof d.id !== 'string' || typeof d.vector !== 'string') return false;
    if (d.text !== undefined && typeof d.text !== 'string') return false;
    if (d.metadata !== undefined && !isPlainObject(d.metadata)) return false;
    if (this.vectorBytes === null) return true; // no create record: the collection cannot be loaded anyway
    // A damaged character is skipped by the decoder: the vector comes out short.
    const bytes = Buffer.from(d.vector, 'base64');
    if (bytes.length !== this.vectorBytes) return false;
    const vector = new Float32Array(this.vectorBytes / 4);
    new Uint8Array(vector.buffer).set(bytes);
    this.vectors.set(d, vector);
    return true;
  };
}

/** Rebuild a collection from its (checked) log records; null when the log holds no create record. */
function replay(name: string, records: LogRecord[], reader: RecordReader, log: AppendLog<LogRecord>): MemoryCollection | null {
  let collection: MemoryCollection | null = null;
  for (const record of records) {
    if (record.type === 'create') {
      // A later create record can follow a torn first one; the first complete one wins.
      collection ??= new MemoryCollection(name, record.dimensions, record.metric, record.createdAt, log);
    } else if (!collection) {
      continue; // cannot happen with files this module wrote (its create record was lost: reported as damage)
    } else if (record.type === 'upsert') {
      const docs: StoredDocument[] = [];
      for (const d of record.docs) {
        const vector = reader.vectorOf(d);
        if (vector) docs.push({ id: d.id, vector, text: d.text ?? null, metadata: d.metadata ?? null });
      }
      const write: IndexingWrite = { at: record.at, count: record.count ?? docs.length, rate: record.rate, delay: record.delay ?? 0 };
      if (typeof record.fail === 'string') write.fail = record.fail;
      collection.apply(docs, write);
      collection.loggedDocuments += docs.length;
    } else if (record.type === 'delete') {
      collection.remove(record.ids);
    } else {
      collection.damage = { lines: (collection.damage?.lines ?? 0) + record.lines, keptIn: record.keptIn, at: record.at };
    }
  }
  return collection;
}

/** Rewrite the log with only the live documents (and the damage mark, if any), keeping the timeline exact. */
async function compact(collection: MemoryCollection, now: number): Promise<void> {
  const log = collection.log;
  if (!log) return;
  const [settled, ...pending] = collection.timeline.toWrites(now);
  const records: LogRecord[] = [
    { type: 'create', dimensions: collection.dimensions, metric: collection.metric, createdAt: collection.createdAt },
  ];
  let chunk: LoggedDocument[] = [];
  for (const doc of collection.documents()) {
    chunk.push(encodeDocument(doc));
    if (chunk.length === COMPACT_DOCS_PER_RECORD) {
      records.push(upsertRecord(settled, chunk, 0));
      chunk = [];
    }
  }
  if (chunk.length > 0 || records.length === 1) records.push(upsertRecord(settled, chunk, 0));
  for (const write of pending) records.push(upsertRecord(write, [], write.count));
  // Last: every upsert record clears it on replay.
  if (collection.damage) records.push({ type: 'damage', ...collection.damage });

  await log.rewrite(records);
  collection.loggedDocuments = collection.documentCount;
}

/** Compact when superseded document versions dominate the log. */
async function compactIfWasteful(collection: MemoryCollection, now: number): Promise<void> {
  const live = collection.documentCount;
  const superseded = collection.loggedDocuments - live;
  if (superseded <= live || superseded <= COMPACT_MIN_SUPERSEDED) return;
  await compact(collection, now);
}

const TRANSIENT_FS_CODES = new Set(['EAGAIN', 'EBUSY', 'EMFILE', 'ENFILE', 'EIO', 'ENOSPC', 'ETIMEDOUT']);

/** Wrap a file-system failure in a VectorStoreError that says what was being done. */
export function storageError(err: unknown, doing: string): VectorStoreError {
  if (err instanceof VectorStoreError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const transient = code !== undefined && TRANSIENT_FS_CODES.has(code);
  const fix =
    code === 'EISDIR'
      ? 'A directory is in the place of the collection file: move it aside and restart Node-RED.'
      : 'Check that the directory exists, is writable by Node-RED and that the disk is not full.';
  return new VectorStoreError(transient ? 'UNAVAILABLE' : 'INTERNAL', `The memory store could not ${doing}: ${messageOf(err)}. ${fix}`, {
    transient,
    cause: err,
  });
}

/**
 * Load a collection from its file; null when the file holds no collection (a
 * crash during its creation). Damage is reported once through `warn`, and the
 * collection then reports "failed" (see the top of this file).
 */
export async function loadCollection(name: string, file: string, now: number, warn: (message: string) => void): Promise<MemoryCollection | null> {
  const reader = new RecordReader();
  let contents: LogContents<LogRecord>;
  try {
    contents = await readLog<LogRecord>(file, { isRecord: reader.isRecord });
  } catch (err) {
    throw storageError(err, `read collection "${name}" from ${file}`);
  }
  const { records, tornTailAt, damage } = contents;
  const log = new AppendLog<LogRecord>(file);
  const collection = replay(name, records, reader, log);
  if (!collection) {
    if (damage) {
      throw new VectorStoreError(
        'INTERNAL',
        `The memory store file ${file} of collection "${name}" is damaged: its first record (the collection's settings) is unreadable. ` +
          `${describeCopy(damage.lines, damage.copiedTo)} Move the file aside, restart Node-RED and re-ingest the collection.`,
      );
    }
    return null; // a crash during creation: no collection yet
  }
  // Compaction is an optimisation (and, after damage, a clean-up): if it fails the full log still works.
  if (damage) {
    const found: CollectionDamage = { lines: (collection.damage?.lines ?? 0) + damage.lines, keptIn: damage.copiedTo, at: now };
    collection.damage = found;
    const copied = damage.copiedTo !== null;
    warn(
      `${damage.lines} unreadable line${damage.lines === 1 ? '' : 's'} in the memory store file ${file} (collection "${name}") ` +
        (copied ? `${damage.lines === 1 ? 'was' : 'were'} copied to ${damage.copiedTo}` : `could not be copied aside (${damage.copyError})`) +
        `: the documents ${damage.lines === 1 ? 'it' : 'they'} held are lost. The collection reports "failed" until its documents are re-ingested.`,
    );
    // Once copied aside, the damaged lines leave the file; lines that could not be copied stay.
    if (copied) await compact(collection, now).catch(() => undefined);
  } else {
    // Cut a torn last line off, or the next append would leave it in the middle of the file.
    if (tornTailAt !== null) await log.truncate(tornTailAt).catch(() => undefined);
    await compactIfWasteful(collection, now).catch(() => undefined);
  }
  return collection;
}

function describeCopy(lines: number, copiedTo: string | null): string {
  const what = `${lines} unreadable line${lines === 1 ? '' : 's'}`;
  return copiedTo !== null ? `${what} ${lines === 1 ? 'was' : 'were'} kept in ${copiedTo}.` : `${what} could not be copied aside.`;
}
