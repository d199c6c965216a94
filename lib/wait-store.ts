/**
 * The durable list of pending waits: what lets a wait survive a redeploy, a
 * restart or a crash.
 *
 * A JSON-lines log (AppendLog) of three kinds of records:
 *   {op: 'put', w: WaitRecord}              a new wait (durable when put() resolves)
 *   {op: 'spec', id, s: TriggerSpec}        a later state of its trigger (lazy)
 *   {op: 'final', id, p: FinalPayload}      its final is being delivered (see markFinal)
 *   {op: 'del', id}                         the wait ended or was cancelled
 * Replaying the log in order gives the pending waits. Spec updates are cheap
 * lines (the message is written once, by put) and are batched: update() only
 * marks the wait, and a checkpoint every `checkpointMs` writes the latest spec of
 * the marked waits in one append (at most `maxUpdatesPerCheckpoint` of them). A
 * crash loses at most the last checkpoint's progress, never a wait: startedAt and
 * the deadline are in the put record. Loading yields to the event loop every
 * 10,000 records.
 *
 * The log is compacted (rewritten atomically with one put per live wait) when it
 * has grown past twice the live set plus 1000 records, at load and at checkpoints,
 * and instead of a flush (at shutdown) that would update most waits: the same
 * bytes, and a file half as long to read at the next start.
 *
 * The store keeps a reference to the records it is given: the triggerer updates
 * `record.spec` and calls update(); the next checkpoint writes the spec it finds.
 */
import { AppendLog, readLog } from './storage/append-log';
import { messageOf } from './errors';
import { adoptTriggerSpec, type FinalPayload, type TriggerSpec } from './trigger';

/** A pending wait: which node it belongs to, its trigger, the message to deliver at the end. */
export interface WaitRecord {
  /** The deferrable-sensor node (id) that owns the wait. */
  ownerId: string;
  spec: TriggerSpec;
  /** The original message's JSON-serializable fields. */
  message: Record<string, unknown>;
  /** Set once its final is being delivered (markFinal): loaded with it, the wait is redelivered, not polled. */
  final?: FinalPayload;
}

/** Records replayed per event-loop turn when loading. */
const RECORDS_PER_TURN = 10_000;

type LogRecord =
  | { op: 'put'; w: WaitRecord }
  | { op: 'spec'; id: string; s: TriggerSpec }
  | { op: 'final'; id: string; p: FinalPayload }
  | { op: 'del'; id: string };

export interface WaitStoreOptions {
  /** How often lazy spec updates are written. */
  checkpointMs?: number;
  /**
   * Most spec updates one checkpoint writes; the rest (oldest first) wait for the
   * next one. Bounds the disk traffic of very many moving waits. flush() and
   * close() write them all.
   */
  maxUpdatesPerCheckpoint?: number;
  /** Skipped records (unknown format, damaged) and failed checkpoints. */
  log?: { warn(message: string): void };
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

export class WaitStore {
  readonly file: string;
  private readonly log: AppendLog<LogRecord>;
  private readonly checkpointMs: number;
  private readonly maxUpdatesPerCheckpoint: number;
  private readonly warn: (message: string) => void;
  private readonly live = new Map<string, WaitRecord>();
  /**
   * Records this version cannot read (e.g. written by a newer version), kept
   * verbatim so that compaction does not destroy them.
   */
  private readonly unreadable = new Map<string, LogRecord>();
  private readonly dirty = new Map<string, WaitRecord>();
  private logRecords = 0;
  private compactions = 0;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(file: string, options: WaitStoreOptions = {}) {
    this.file = file;
    this.log = new AppendLog<LogRecord>(file);
    this.checkpointMs = options.checkpointMs ?? 1000;
    this.maxUpdatesPerCheckpoint = Math.max(1, options.maxUpdatesPerCheckpoint ?? 2000);
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

  /** Read the pending waits from disk (compacting the log if it has grown). Call once, first. */
  async load(): Promise<WaitRecord[]> {
    const records = await readLog<LogRecord>(this.file);
    for (let i = 0; i < records.length; i++) {
      this.apply(records[i]);
      // Let the event loop run now and then: a restart may replay 100,000s of records.
      if (i % RECORDS_PER_TURN === RECORDS_PER_TURN - 1) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    this.logRecords = records.length;
    if (this.needsCompaction()) await this.compact();
    return [...this.live.values()];
  }

  /** Add a wait; resolves once it is on disk. Puts made in the same tick share one write and fsync. */
  async put(record: WaitRecord): Promise<void> {
    this.assertOpen();
    const id = record.spec.waitId;
    let written: Promise<void>;
    try {
      // The record is serialised here, at once: a message that cannot be saved fails this put alone.
      written = this.log.append({ op: 'put', w: record });
    } catch (err) {
      throw new Error(
        `The message of wait ${id} on collection "${record.spec.collection}" cannot be saved as JSON (${messageOf(err)}); remove circular or special values from it.`,
      );
    }
    this.live.set(id, record);
    this.dirty.delete(id);
    this.logRecords += 1;
    try {
      await written;
    } catch (err) {
      if (this.live.get(id) === record) this.live.delete(id);
      throw new Error(`Could not save wait ${id} on collection "${record.spec.collection}" to ${this.file}: ${messageOf(err)}`);
    }
  }

  /** Note that `record.spec` changed; written by the next checkpoint. Ignored for removed waits. */
  update(record: WaitRecord): void {
    const id = record.spec.waitId;
    if (this.closed) return;
    const known = this.live.get(id);
    if (known === undefined) return;
    if (known !== record) this.live.set(id, record);
    this.dirty.set(id, record);
    this.scheduleCheckpoint();
  }

  /**
   * Record that the wait's final is being delivered; resolves once that is on
   * disk. A wait loaded with this record ended before a crash: its final is
   * delivered again (flagged) instead of being polled.
   */
  async markFinal(waitId: string, payload: FinalPayload): Promise<void> {
    const known = this.live.get(waitId);
    if (!known || this.closed) return;
    known.final = payload;
    this.dirty.delete(waitId);
    this.logRecords += 1;
    await this.log.append({ op: 'final', id: waitId, p: payload });
  }

  /** Forget a wait; resolves once the removal is on disk. */
  async remove(waitId: string): Promise<void> {
    const known = this.live.delete(waitId) || this.unreadable.delete(waitId);
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
    return this.logRecords + extra > 2 * (this.live.size + this.unreadable.size) + 1000;
  }

  private async compact(): Promise<void> {
    const records: LogRecord[] = [...this.unreadable.values()];
    for (const w of this.live.values()) records.push({ op: 'put', w });
    this.logRecords = records.length;
    this.compactions += 1;
    await this.log.rewrite(records);
  }

  /** Replay one log record onto the live set. */
  private apply(record: LogRecord): void {
    switch (record?.op) {
      case 'put': {
        const id = record.w?.spec?.waitId;
        if (typeof id !== 'string') return this.skip('a wait without an id');
        try {
          const spec = adoptTriggerSpec(record.w.spec); // just parsed from the file: nobody else holds it
          if (typeof record.w.ownerId !== 'string' || typeof record.w.message !== 'object' || record.w.message === null) {
            return this.skip(`wait ${id} (its owner or message is missing)`);
          }
          const loaded: WaitRecord = { ownerId: record.w.ownerId, spec, message: record.w.message };
          if (record.w.final && typeof record.w.final === 'object') loaded.final = record.w.final;
          this.live.set(id, loaded);
          this.unreadable.delete(id);
        } catch (err) {
          this.live.delete(id);
          this.unreadable.set(id, record);
          this.skip(`wait ${id}: ${messageOf(err)}`);
        }
        return;
      }
      case 'spec': {
        const current = this.live.get(record.id);
        const kept = this.unreadable.get(record.id);
        if (kept?.op === 'put') kept.w = { ...kept.w, spec: record.s }; // keep its latest state verbatim
        if (!current) return; // a late update of a removed or unreadable wait
        try {
          current.spec = adoptTriggerSpec(record.s);
        } catch (err) {
          this.skip(`an update of wait ${record.id}: ${messageOf(err)}`);
        }
        return;
      }
      case 'final': {
        const current = this.live.get(record.id);
        if (current && record.p && typeof record.p === 'object') current.final = record.p;
        return;
      }
      case 'del':
        this.live.delete(record.id);
        this.unreadable.delete(record.id);
        return;
      default:
        this.skip(`a record of unknown kind ${JSON.stringify((record as { op?: unknown } | null)?.op)}`);
    }
  }

  private skip(what: string): void {
    const text = `In the pending waits file ${this.file}, skipped ${what}`;
    this.warn(/[.!?]$/.test(text) ? text : `${text}.`);
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`The pending waits file ${this.file} is closed; the wait cannot be saved.`);
  }
}
