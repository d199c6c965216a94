/**
 * The durable list of pending waits: what lets a wait survive a redeploy, a
 * restart or a crash.
 *
 * A JSON-lines log (AppendLog) of four kinds of records:
 *   {op: 'put', w: DurableRecord}           a new wait or ingest job (durable when put() resolves)
 *   {op: 'spec', id, s: DurableSpec}        a later state of its spec (lazy; a job's checkpoint: save())
 *   {op: 'final', id, p: FinalPayload}      its final is being delivered (markFinal)
 *   {op: 'del', id}                         the wait ended or was cancelled
 * Replaying the log in order gives the pending waits; a wait with a `final`
 * record and no `del` comes back with `final` set (its final may have gone out).
 * Spec updates are cheap lines (the message is written once, by put) and are
 * batched: update() only marks the wait, and a checkpoint every `checkpointMs`
 * writes the latest spec of the marked waits in one append (at most
 * `maxUpdatesPerCheckpoint` of them). A crash loses at most the last checkpoint's
 * progress, never a wait: startedAt and the deadline are in the put record.
 * Loading yields to the event loop every 10,000 records.
 *
 * A wait joins the live set only once its put is on disk: a compaction that runs
 * meanwhile does not write it, so a put that then fails leaves nothing behind.
 *
 * The log is compacted (rewritten atomically with one put per live wait) when it
 * has grown past twice the live set plus `compactionSlack` records (10,000: a few
 * MB; smaller, 10,000 waits ending rewrote the file three times over while they
 * ended), at load and at checkpoints,
 * and instead of a flush (at shutdown) that would update most waits: the same
 * bytes, and a file half as long to read at the next start. A load that found
 * damaged lines compacts too, once they are copied to `<file>.corrupt`.
 *
 * The store keeps a reference to the records it is given: the triggerer updates
 * `record.spec` and calls update(); the next checkpoint writes the spec it finds.
 */
import {
  AppendLog,
  readLog,
  removeStaleTempFiles,
  type AppendReceipt,
  type LogContents,
  type LogDamage,
  type OpenForAppend,
} from './storage/append-log';
import { VectorStoreError, messageOf } from './errors';
import { adoptTriggerSpec, type FinalPayload, type TriggerSpec } from './trigger';
import { isIngestJobSpec, parseIngestJobSpec, type IngestJobSpec, type JobFinalPayload } from './ingest-job/spec';

/** A pending wait: which node it belongs to, its trigger, the message to deliver at the end. */
export interface WaitRecord {
  /** The deferrable-sensor node (id) that owns the wait. */
  ownerId: string;
  spec: TriggerSpec;
  /** The original message's JSON-serializable fields. */
  message: Record<string, unknown>;
  /**
   * Set when a final was being delivered (markFinal) and the wait was not removed
   * afterwards: after a crash, that final may or may not have gone out.
   */
  final?: FinalPayload;
}

/** A pending ingest job (see lib/ingest-job): the vector-ingest node that owns it, its spec, its message. */
export interface JobRecord {
  /** The vector-ingest node (id) that owns the job. */
  ownerId: string;
  spec: IngestJobSpec;
  /** The original message's JSON-serializable fields, without its payload (the documents are in the spool). */
  message: Record<string, unknown>;
  final?: JobFinalPayload;
}

/** Any kind of durable work the store keeps: a sensor's wait or an ingest job. */
export type DurableRecord = WaitRecord | JobRecord;
/** The spec of any kind of durable work. */
export type DurableSpec = TriggerSpec | IngestJobSpec;

/**
 * The one place where saved specs of every kind are read (and migrated): a job
 * spec by its `kind`, anything else as a sensor's wait (whose specs carry no kind).
 */
export function adoptDurableSpec(value: unknown): DurableSpec {
  return isIngestJobSpec(value) ? parseIngestJobSpec(value) : adoptTriggerSpec(value);
}

/** How the store holds any record internally (the kinds' unions are for its callers). */
interface StoredRecord {
  ownerId: string;
  spec: DurableSpec;
  message: Record<string, unknown>;
  final?: FinalPayload | JobFinalPayload;
}

/** True for the record of an ingest job. */
export function isJobRecord(record: Readonly<DurableRecord>): record is JobRecord {
  return isIngestJobSpec(record.spec);
}

/**
 * What the triggerer needs of a durable store: this file store (one runtime), or
 * a store shared by several runtimes (lib/job-stores/shared-work.ts).
 */
export interface DurableStore {
  readonly stats: WaitStoreStats;
  load(): Promise<DurableRecord[]>;
  put(record: DurableRecord): Promise<void>;
  /** Record that the final is being delivered; false: this runtime must not deliver it (another one holds the work). */
  markFinal(waitId: string, payload: FinalPayload | JobFinalPayload): Promise<boolean>;
  update(record: DurableRecord): void;
  save(record: DurableRecord): Promise<void>;
  remove(waitId: string): Promise<void>;
  close(): Promise<void>;
  /** Shared stores only: how the triggerer hears of work it gains or loses. */
  bind?(runtime: SharedRuntime): void;
  /** Shared stores only: look for work now (an owner attached). */
  wake?(): void;
  /** Shared stores: a failed markFinal is not a reason to deliver anyway (another runtime may). */
  readonly shared?: boolean;
}

/** The triggerer, as a shared store sees it. */
export interface SharedRuntime {
  /** The owners (node ids) attached here: only their work is claimed. */
  owners(): string[];
  /** Work leased to this runtime (new, or taken over after another's lease ran out). */
  adopt(records: Array<DurableRecord>): void;
  /** Work whose lease this runtime lost: stop it quietly, another runtime has it. */
  drop(waitIds: string[]): void;
}

/** Records replayed per event-loop turn when loading. */
const RECORDS_PER_TURN = 10_000;
/** Skipped records named in the one warning of a load; the others are counted. */
const SKIPS_NAMED = 3;

type LogRecord =
  | { op: 'put'; w: StoredRecord }
  | { op: 'spec'; id: string; s: DurableSpec }
  | { op: 'final'; id: string; p: FinalPayload | JobFinalPayload }
  | { op: 'del'; id: string };

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const isId = (x: unknown): x is string => typeof x === 'string' && x.length > 0;

/** A trigger spec of the current format that is damaged (an unknown format is not damage: it is kept). */
function isDamagedSpec(spec: Record<string, unknown>): boolean {
  if (spec.v !== (isIngestJobSpec(spec) ? 2 : 1)) return false;
  try {
    adoptDurableSpec(spec); // a plain check for valid specs; the file's object is adopted as it is
    return false;
  } catch {
    return true;
  }
}

const FINAL_STATUSES = new Set(['success', 'failed', 'timeout', 'error']);

/**
 * The shape of a log record (cheap checks, run on every line at load). A line
 * that fails it is damage. A trigger spec of another format version is kept, not
 * damage: replay skips it, and compaction keeps it for a version that reads it.
 */
function isLogRecord(value: unknown): boolean {
  if (!isObject(value)) return false;
  switch (value.op) {
    case 'put': {
      const w = value.w;
      if (!isObject(w) || !isObject(w.spec) || !isId(w.spec.waitId) || typeof w.ownerId !== 'string' || !isObject(w.message)) return false;
      if (w.final !== undefined && !isFinal(w.final)) return false;
      return !isDamagedSpec(w.spec);
    }
    case 'spec':
      return isId(value.id) && isObject(value.s) && !isDamagedSpec(value.s);
    case 'final':
      return isId(value.id) && isFinal(value.p);
    case 'del':
      return isId(value.id);
    default:
      return false;
  }
}

function isFinal(p: unknown): boolean {
  return isObject(p) && FINAL_STATUSES.has(p.status as string) && typeof p.collection === 'string';
}

/** What a failed read of the file means for a person, by system error code. */
const UNREADABLE_BECAUSE: Record<string, string> = {
  EISDIR: 'it is a directory',
  EACCES: 'Node-RED is not allowed to read it (permission denied)',
  EPERM: 'Node-RED is not allowed to read it (operation not permitted)',
  ENOTDIR: 'a part of its path is a file, not a directory',
  ELOOP: 'it is a loop of symbolic links',
  EIO: 'the disk reported an input/output error',
};

export interface WaitStoreOptions {
  /** How often lazy spec updates are written. */
  checkpointMs?: number;
  /**
   * Most spec updates one checkpoint writes; the rest (oldest first) wait for the
   * next one. Bounds the disk traffic of very many moving waits. flush() and
   * close() write them all.
   */
  maxUpdatesPerCheckpoint?: number;
  /** Records the log may hold beyond twice the live set before it is compacted (default 10,000). */
  compactionSlack?: number;
  /** Damaged or skipped records found at load (one warning each load), failed checkpoints. */
  log?: { warn(message: string): void };
  /** How the file is opened for appending; tests inject disk faults through it. */
  openForAppend?: OpenForAppend;
}

export interface WaitStoreStats {
  bytesWritten: number;
  writes: number;
  /** Pending waits known to the store. */
  waits: number;
  /** Records in the log file (compaction shrinks it to `waits`). */
  logRecords: number;
  compactions: number;
}

/** A put or a final marker whose append is not known to be durable yet. */
interface InFlight<T> {
  value: T;
  receipt: AppendReceipt;
}

export class WaitStore implements DurableStore {
  readonly file: string;
  private readonly log: AppendLog<LogRecord>;
  private readonly checkpointMs: number;
  private readonly maxUpdatesPerCheckpoint: number;
  private readonly compactionSlack: number;
  private readonly warn: (message: string) => void;
  /** Waits whose put is durable. */
  private readonly live = new Map<string, StoredRecord>();
  /** Puts not yet durable: not live, not written by a compaction (unless durable by then). */
  private readonly puts = new Map<string, InFlight<StoredRecord>>();
  /** Final markers not yet durable: compaction writes `final` only once they are. */
  private readonly finals = new Map<string, InFlight<FinalPayload | JobFinalPayload>>();
  /**
   * Records this version cannot read (e.g. written by a newer version), kept
   * verbatim so that compaction does not destroy them.
   */
  private readonly unreadable = new Map<string, LogRecord>();
  private readonly dirty = new Map<string, StoredRecord>();
  /** Records skipped during the load in progress, reported in one warning at its end. */
  private skipped: string[] = [];
  private logRecords = 0;
  private compactions = 0;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(file: string, options: WaitStoreOptions = {}) {
    this.file = file;
    this.log = new AppendLog<LogRecord>(file, { openForAppend: options.openForAppend });
    this.checkpointMs = options.checkpointMs ?? 1000;
    this.maxUpdatesPerCheckpoint = Math.max(1, options.maxUpdatesPerCheckpoint ?? 2000);
    this.compactionSlack = Math.max(0, options.compactionSlack ?? 10_000);
    this.warn = options.log?.warn.bind(options.log) ?? (() => undefined);
  }

  get stats(): WaitStoreStats {
    return {
      bytesWritten: this.log.bytesWritten,
      writes: this.log.writes,
      waits: this.live.size,
      logRecords: this.logRecords,
      compactions: this.compactions,
    };
  }

  /**
   * Read the pending waits from disk (compacting the log if it has grown or was
   * damaged). Call once, first. Damage is reported once through the logger and
   * what can be read is used; rejects (VectorStoreError) only when the file
   * cannot be read at all, saying why and what to do.
   */
  async load(): Promise<DurableRecord[]> {
    await removeStaleTempFiles(this.file);
    let contents: LogContents<LogRecord>;
    try {
      contents = await readLog<LogRecord>(this.file, { isRecord: isLogRecord });
    } catch (err) {
      throw this.unreadableFile(err);
    }
    const { records, tornTailAt, damage } = contents;
    for (let i = 0; i < records.length; i++) {
      this.apply(records[i]);
      // Let the event loop run now and then: a restart may replay 100,000s of records.
      if (i % RECORDS_PER_TURN === RECORDS_PER_TURN - 1) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    this.logRecords = records.length;
    if (damage) this.reportDamage(damage);
    this.reportSkipped();
    // Once copied aside, damaged lines leave the log: the next start does not
    // report them again. Lines that could not be copied stay where they are.
    const damageLeftInFile = damage !== null && damage.copiedTo === null;
    try {
      if (damage?.copiedTo || (!damageLeftInFile && this.needsCompaction())) await this.compact();
      else if (tornTailAt !== null) await this.log.truncate(tornTailAt);
    } catch (err) {
      // The file as it is still works; a put will say if it cannot be written.
      this.warn(`Could not rewrite the pending waits file ${this.file} after reading it: ${messageOf(err)}`);
    }
    return [...this.live.values()] as DurableRecord[];
  }

  /** Add a wait; resolves once it is on disk. Puts made in the same tick share one write and fsync. */
  async put(record: DurableRecord): Promise<void> {
    this.assertOpen();
    const id = record.spec.waitId;
    let appended: { written: Promise<void>; receipt: AppendReceipt };
    try {
      // The record is serialised here, at once: a message that cannot be saved fails this put alone.
      appended = this.log.appendTracked([{ op: 'put', w: record }]);
    } catch (err) {
      throw new Error(
        `The message of wait ${id} on collection "${record.spec.collection}" cannot be saved as JSON (${messageOf(err)}); remove circular or special values from it.`,
      );
    }
    const entry: InFlight<StoredRecord> = { value: record, receipt: appended.receipt };
    this.puts.set(id, entry);
    this.logRecords += 1;
    try {
      await appended.written;
    } catch (err) {
      if (this.puts.get(id) === entry) this.puts.delete(id);
      throw new Error(
        `Could not save wait ${id} on collection "${record.spec.collection}" to ${this.file}: ${messageOf(err)}. ` +
          'The wait was not started: check that the disk has space and the file is writable, then send the message again.',
      );
    }
    // This put alone: each put of a shared write settles its own (a scan of all in flight per put was O(N²) in a burst).
    if (this.puts.get(id) === entry) {
      this.puts.delete(id);
      this.live.set(id, record);
    }
  }

  /**
   * Record durably that the final `payload` of a wait is being delivered;
   * resolves once it is on disk. Until remove(), the wait keeps it (compaction
   * included), and a later load returns the wait with `final` set. Nothing is
   * written for a wait the store does not know (already removed).
   */
  async markFinal(waitId: string, payload: FinalPayload | JobFinalPayload): Promise<boolean> {
    this.assertOpen();
    if (!this.live.has(waitId) && !this.puts.has(waitId)) return true;
    let appended: { written: Promise<void>; receipt: AppendReceipt };
    try {
      appended = this.log.appendTracked([{ op: 'final', id: waitId, p: payload }]);
    } catch (err) {
      throw new Error(`The final message of wait ${waitId} cannot be saved as JSON (${messageOf(err)}).`);
    }
    const entry: InFlight<FinalPayload | JobFinalPayload> = { value: payload, receipt: appended.receipt };
    this.finals.set(waitId, entry);
    this.logRecords += 1;
    try {
      await appended.written;
    } catch (err) {
      if (this.finals.get(waitId) === entry) this.finals.delete(waitId);
      throw new Error(`Could not record the delivery of wait ${waitId}'s final message in ${this.file}: ${messageOf(err)}`);
    }
    if (this.finals.get(waitId) === entry) {
      this.finals.delete(waitId);
      // Its put settles first (appended first); were it still in flight, it takes the final with it.
      const record = this.live.get(waitId) ?? this.puts.get(waitId)?.value;
      if (record) record.final = payload;
    }
    return true; // one process: its final is always this process's to deliver
  }

  /** Note that `record.spec` changed; written by the next checkpoint. Ignored for removed waits. */
  update(record: DurableRecord): void {
    const id = record.spec.waitId;
    if (this.closed) return;
    const known = this.live.get(id);
    if (known === undefined) return;
    if (known !== record) {
      if (known.final !== undefined && record.final === undefined) record.final = known.final;
      this.live.set(id, record);
    }
    this.dirty.set(id, record);
    this.scheduleCheckpoint();
  }

  /**
   * Write `record.spec` now: an ingest job's checkpoint, which must be saved
   * before its next batch is embedded. Resolves once the operating system has
   * it (a kill -9 or a crash of Node-RED loses nothing); it reaches the disk
   * with the next checkpoint, within `checkpointMs` (a power cut may lose the
   * last second of checkpoints: those batches are embedded and upserted again).
   * One fsync per batch cost a job about a third of its time. Ignored for
   * removed records and once the store is closed.
   */
  async save(record: DurableRecord): Promise<void> {
    const id = record.spec.waitId;
    if (this.closed || this.live.get(id) !== record) return;
    this.dirty.delete(id);
    this.logRecords += 1;
    await this.log.appendWritten({ op: 'spec', id, s: record.spec });
    this.scheduleCheckpoint(); // syncs it
  }

  /** Forget a wait (also one whose put is still in flight); resolves once the removal is on disk. */
  async remove(waitId: string): Promise<void> {
    const wasLive = this.live.delete(waitId);
    const wasInFlight = this.puts.delete(waitId);
    const wasKept = this.unreadable.delete(waitId);
    const known = wasLive || wasInFlight || wasKept;
    this.finals.delete(waitId);
    this.dirty.delete(waitId);
    if (!known || this.closed) return;
    this.logRecords += 1;
    if (this.needsCompaction()) this.scheduleCheckpoint();
    await this.log.append({ op: 'del', id: waitId });
  }

  /** Write pending spec updates now and wait until everything written so far is on disk. */
  async flush(): Promise<void> {
    await this.checkpoint(Infinity);
  }

  /** Flush and release the file. The store cannot be used afterwards. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    this.closed = true;
    await this.log.close();
  }

  /**
   * Move the puts and final markers that are on disk into the live state, all at
   * once: when a compaction reads the live set before their appends resolved (each
   * put and final settles its own when its append resolves). The receipts tell
   * synchronously what is durable.
   */
  private settle(): void {
    for (const [id, { value, receipt }] of this.puts) {
      if (!receipt.durable) continue;
      this.puts.delete(id);
      this.live.set(id, value);
    }
    for (const [id, { value, receipt }] of this.finals) {
      if (!receipt.durable) continue;
      this.finals.delete(id);
      const record = this.live.get(id);
      if (record) record.final = value;
    }
  }

  private scheduleCheckpoint(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.checkpoint(this.maxUpdatesPerCheckpoint).catch((err) => this.warn(`Could not save the progress of pending waits to ${this.file}: ${messageOf(err)}`));
    }, this.checkpointMs);
  }

  private async checkpoint(limit: number): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.closed) return;
    const updates = Math.min(limit, this.dirty.size);
    // A flush (at shutdown) that would update most waits rewrites them instead:
    // about the same bytes as their update lines, and a file half as long for
    // the next start to read.
    const flushOfMost = limit === Infinity && updates > 1000 && updates * 2 >= this.live.size;
    if (flushOfMost || this.needsCompaction(updates)) {
      // The rewrite holds every live record with its latest spec: dirty included.
      this.dirty.clear();
      await this.compact();
      return;
    }
    const lines: LogRecord[] = [];
    for (const [id, record] of this.dirty) {
      if (lines.length >= limit) break;
      lines.push({ op: 'spec', id, s: record.spec });
      this.dirty.delete(id); // deleting the visited entry is safe while iterating a Map
    }
    if (this.dirty.size > 0) this.scheduleCheckpoint();
    this.logRecords += lines.length;
    await this.log.appendMany(lines);
    await this.log.flush();
  }

  private needsCompaction(extra = 0): boolean {
    return this.logRecords + extra > 2 * (this.live.size + this.unreadable.size) + this.compactionSlack;
  }

  private async compact(): Promise<void> {
    this.compactions += 1;
    // The records are read when the rewrite runs, after every earlier append has
    // settled: a put durable by then is written, one still in flight is not (its
    // own append follows the rewrite; if it fails, the wait is nowhere).
    await this.log.rewrite(() => {
      this.settle();
      const records: LogRecord[] = [...this.unreadable.values()];
      for (const w of this.live.values()) records.push({ op: 'put', w });
      this.logRecords = records.length + this.puts.size + this.finals.size;
      return records;
    });
  }

  /** Replay one log record (its shape already checked) onto the live set. */
  private apply(record: LogRecord): void {
    switch (record.op) {
      case 'put': {
        const id = record.w.spec.waitId;
        try {
          const spec = adoptDurableSpec(record.w.spec); // just parsed from the file: nobody else holds it
          const wait = { ownerId: record.w.ownerId, spec, message: record.w.message } as StoredRecord;
          if (record.w.final !== undefined) wait.final = record.w.final;
          this.live.set(id, wait);
          this.unreadable.delete(id);
        } catch (err) {
          this.live.delete(id);
          this.unreadable.set(id, record);
          this.skipped.push(`wait ${id}: ${messageOf(err)}`);
        }
        return;
      }
      case 'spec': {
        const current = this.live.get(record.id);
        const kept = this.unreadable.get(record.id);
        if (kept?.op === 'put') kept.w = { ...kept.w, spec: record.s }; // keep its latest state verbatim
        if (!current) return; // a late update of a removed or unreadable wait
        try {
          current.spec = adoptDurableSpec(record.s);
        } catch (err) {
          this.skipped.push(`an update of wait ${record.id}: ${messageOf(err)}`);
        }
        return;
      }
      case 'final': {
        const current = this.live.get(record.id);
        if (current) current.final = record.p;
        const kept = this.unreadable.get(record.id);
        if (kept?.op === 'put') kept.w = { ...kept.w, final: record.p };
        return;
      }
      case 'del':
        this.live.delete(record.id);
        this.unreadable.delete(record.id);
        return;
    }
  }

  private reportDamage(damage: LogDamage): void {
    const one = damage.lines === 1;
    const lines = `${damage.lines} unreadable line${one ? '' : 's'} in the pending waits file ${this.file}`;
    const consequence = `the waits ${one ? 'it' : 'they'} described are lost, and a wait whose end ${one ? 'it' : 'they'} recorded may run again.`;
    if (damage.copiedTo !== null) {
      this.warn(`${lines} ${one ? 'was' : 'were'} copied to ${damage.copiedTo}: ${consequence}`);
    } else {
      this.warn(`${lines} could not be copied aside (${damage.copyError}) and ${one ? 'is' : 'are'} left in it: ${consequence}`);
    }
  }

  private reportSkipped(): void {
    const skipped = this.skipped;
    this.skipped = [];
    if (skipped.length === 0) return;
    const named = skipped
      .slice(0, SKIPS_NAMED)
      .map((what) => (skipped.length === 1 ? what : what.replace(/\.$/, '')))
      .join('; ');
    const more = skipped.length > SKIPS_NAMED ? `; and ${skipped.length - SKIPS_NAMED} more` : '';
    const text =
      skipped.length === 1
        ? `In the pending waits file ${this.file}, skipped ${named}`
        : `In the pending waits file ${this.file}, skipped ${skipped.length} records: ${named}${more}`;
    this.warn(/[.!?]$/.test(text) ? text : `${text}.`);
  }

  /** The error of a file that cannot be read at all: what is wrong and what to do. */
  private unreadableFile(err: unknown): VectorStoreError {
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    const because = (code !== undefined && UNREADABLE_BECAUSE[code]) || messageOf(err);
    return new VectorStoreError(
      'INTERNAL',
      `The pending waits file ${this.file} cannot be read: ${because}. Move it aside and restart Node-RED.`,
      { cause: err },
    );
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`The pending waits file ${this.file} is closed; the wait cannot be saved.`);
  }
}
