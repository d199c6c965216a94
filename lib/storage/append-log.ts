/**
 * Crash-safe files for the engine's durable state (the memory backend's
 * collections and the sensor's pending waits).
 *
 * Two primitives:
 * - `writeFileAtomic`: temp file, fsync, rename, fsync of the directory. A crash
 *   leaves either the old file or the new one, never a mix (and perhaps a stale
 *   temp file, which `removeStaleTempFiles` cleans up at the next start).
 * - `AppendLog`: a JSON-lines log. Records appended in the same tick (or within
 *   `flushDelayMs`) share one write and one fsync; each `append` resolves only once
 *   its record is on disk. A failed append is cut off the file again, so a record
 *   whose append was rejected is not read back. `rewrite` compacts the log
 *   atomically.
 *
 * `readLog` reads a log back and tells apart the two kinds of damage:
 * - a torn last line (a crash in the middle of an append): that batch was never
 *   acknowledged, so it is dropped quietly;
 * - any other unreadable line (garbled bytes, a block of zeros, a line that is
 *   JSON but not a record): acknowledged data was lost. Such lines are copied
 *   verbatim to `<file>.corrupt` (appended, after a `#` header line with the time)
 *   and counted, so that the caller reports them once; everything readable is used.
 *
 * All I/O is asynchronous: nothing here blocks the event loop.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

/** Bytes read at a time by `readLog`: the event loop runs between chunks. */
const READ_CHUNK_BYTES = 1 << 20;
/** Records serialised per chunk when a log is rewritten, so a big rewrite never blocks the loop for long. */
const REWRITE_CHUNK_RECORDS = 1000;
/** Damaged bytes gathered in memory before they are written to the `.corrupt` copy. */
const DAMAGE_BUFFER_BYTES = 4 << 20;
const NEWLINE = 0x0a;
const NUL = 0x00;

/** `<file>.<pid>.<time>.<random>.tmp`: the temp files of `writeFileAtomic`. */
function tempFileOf(file: string): string {
  return `${file}.${process.pid}.${Date.now().toString(36)}.${Math.random().toString(36).slice(2)}.tmp`;
}

const TEMP_FILE = /^(.+)\.\d+\.[0-9a-z]+\.[0-9a-z]+\.tmp$/;

/** When `name` (a directory entry) is a temp file of `writeFileAtomic`: the name of the file it was for. */
export function tempFileTarget(name: string): string | null {
  return TEMP_FILE.exec(name)?.[1] ?? null;
}

/**
 * Remove the temp files a rewrite of `file` left behind when the process was
 * killed in the middle of it. Call it only while nothing rewrites `file` (at
 * load, before the first write). Returns the paths removed. Never rejects: a
 * temp file that cannot be removed is only wasted space.
 */
export async function removeStaleTempFiles(file: string): Promise<string[]> {
  const dir = path.dirname(file);
  const base = path.basename(file);
  let entries: string[];
  try {
    entries = await fs.readdir(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const entry of entries) {
    if (tempFileTarget(entry) !== base) continue;
    const stale = path.join(dir, entry);
    try {
      await fs.rm(stale, { force: true });
      removed.push(stale);
    } catch {
      // left for the next start
    }
  }
  return removed;
}

/**
 * Write a file atomically. `data` may be a sequence of chunks (e.g. a generator
 * that serialises records lazily): each is written in turn, so a large file is
 * never held as one string and the event loop runs between chunks.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array | Iterable<string>): Promise<number> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const tmp = tempFileOf(file);
  let bytes = 0;
  try {
    const handle = await fs.open(tmp, 'w');
    try {
      const chunks = typeof data === 'string' || data instanceof Uint8Array ? [data] : data;
      for (const chunk of chunks) {
        // writeFile on a handle continues from where the previous chunk ended, and writes it all.
        await handle.writeFile(chunk);
        bytes += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.byteLength;
      }
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  await syncDirectory(path.dirname(file));
  return bytes;
}

/** Make a rename or a file creation in `dir` durable. Not all platforms allow it. */
async function syncDirectory(dir: string): Promise<void> {
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(dir, 'r');
    await handle.sync();
  } catch {
    // Windows cannot open a directory for fsync; the rename is still atomic there.
  } finally {
    await handle?.close();
  }
}

// ---------------------------------------------------------------------------
// Reading a log back
// ---------------------------------------------------------------------------

export interface ReadLogOptions {
  /**
   * Whether a parsed line is a record of this log (cheap checks of its shape).
   * A line that is JSON but fails it is damage, like a garbled line. Called in
   * file order, so it may keep state (e.g. what the first record declared).
   */
  isRecord?: (value: unknown) => boolean;
}

/** Unreadable lines other than a torn last one. */
export interface LogDamage {
  /** How many lines could not be used (a line with zeros in it counts once). */
  lines: number;
  /** Where they were copied, verbatim; null when the copy failed (see `copyError`). */
  copiedTo: string | null;
  copyError: string | null;
}

export interface LogContents<R> {
  /** Every readable record, in file order. */
  records: R[];
  /**
   * Byte offset where a torn last line starts (dropped: it was never
   * acknowledged), or null. Cut it off (`AppendLog.truncate`) before appending,
   * or it would become a damaged line in the middle of the file.
   */
  tornTailAt: number | null;
  /** Null when nothing but a torn last line was unreadable. */
  damage: LogDamage | null;
}

/** The `.corrupt` copy next to a log: damaged lines are appended there, verbatim. */
export function corruptCopyOf(file: string): string {
  return `${file}.corrupt`;
}

/**
 * Read every record of a log. A missing file is an empty log. The file is read
 * in chunks: memory stays bounded by the records, not by the file's text, and the
 * event loop runs between chunks. Rejects only when the file cannot be read at all
 * (it is a directory, access denied, an I/O error): the error's `code` says which.
 */
export async function readLog<R>(file: string, options: ReadLogOptions = {}): Promise<LogContents<R>> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { records: [], tornTailAt: null, damage: null };
    throw err;
  }
  const reader = new LineReader<R>(file, options.isRecord);
  const buffer = Buffer.allocUnsafe(READ_CHUNK_BYTES);
  try {
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      await reader.chunk(buffer.subarray(0, bytesRead));
    }
  } finally {
    await handle.close();
  }
  return reader.end();
}

/**
 * Splits a log's bytes into lines and classifies them. Works on bytes, not on
 * decoded text, so a damaged line is copied aside exactly as it was.
 */
class LineReader<R> {
  readonly records: R[] = [];
  /** Bytes of the file before the current chunk. */
  private offset = 0;
  /** The start of a line whose end is in a later chunk (copied: the read buffer is reused). */
  private partial: Buffer[] = [];
  private partialStart = 0;
  /**
   * The last unparsable line seen: damage if any non-empty line follows it, the
   * torn last line if none does.
   */
  private lastUnparsable: { bytes: Buffer; at: number } | null = null;
  private readonly damage: DamageCopy;

  constructor(
    file: string,
    private readonly isRecord: ((value: unknown) => boolean) | undefined,
  ) {
    this.damage = new DamageCopy(file);
  }

  async chunk(bytes: Buffer): Promise<void> {
    let start = 0;
    for (;;) {
      const end = bytes.indexOf(NEWLINE, start);
      if (end === -1) break;
      if (this.partial.length > 0) {
        this.partial.push(bytes.subarray(start, end));
        const line = Buffer.concat(this.partial);
        this.partial = [];
        this.line(line, 0, line.length, this.partialStart, false);
      } else {
        this.line(bytes, start, end, this.offset + start, true);
      }
      start = end + 1;
    }
    if (start < bytes.length) {
      if (this.partial.length === 0) this.partialStart = this.offset + start;
      this.partial.push(Buffer.from(bytes.subarray(start)));
    }
    this.offset += bytes.length;
    await this.damage.flushIfLarge();
  }

  async end(): Promise<LogContents<R>> {
    let tornTailAt: number | null = null;
    // What is left without a newline: an unfinished (unacknowledged) write.
    if (this.partial.length > 0) {
      this.flushUnparsable(); // a line before it is not the last one
      tornTailAt = this.partialStart;
      this.partial = [];
    } else if (this.lastUnparsable) {
      tornTailAt = this.lastUnparsable.at;
      this.lastUnparsable = null;
    }
    return { records: this.records, tornTailAt, damage: await this.damage.close() };
  }

  /** One newline-terminated line, bytes [start, end) of `source`, starting at `at` in the file. */
  private line(source: Buffer, start: number, end: number, at: number, shared: boolean): void {
    if (isBlank(source, start, end)) return;
    const value = parseJson(source, start, end);
    if (value !== undefined) {
      this.flushUnparsable();
      if (this.accept(value)) return;
      this.damage.add(source.subarray(start, end));
      return;
    }
    this.flushUnparsable();
    const bytes = shared ? Buffer.from(source.subarray(start, end)) : source.subarray(start, end);
    // Zeros (a block the disk or file system lost) end a line: what follows them
    // may be a whole record, written after the lost block.
    if (bytes.includes(NUL) && this.recoverAroundZeros(bytes)) {
      this.damage.add(bytes);
      return;
    }
    this.lastUnparsable = { bytes, at };
  }

  /** Use the records found between runs of zeros; true if any was found. */
  private recoverAroundZeros(bytes: Buffer): boolean {
    let found = false;
    let start = 0;
    while (start < bytes.length) {
      let end = bytes.indexOf(NUL, start);
      if (end === -1) end = bytes.length;
      if (end > start && !isBlank(bytes, start, end)) {
        const value = parseJson(bytes, start, end);
        if (value !== undefined && this.accept(value)) found = true;
      }
      start = end + 1;
    }
    return found;
  }

  private accept(value: unknown): boolean {
    if (this.isRecord && !this.isRecord(value)) return false;
    this.records.push(value as R);
    return true;
  }

  private flushUnparsable(): void {
    if (!this.lastUnparsable) return;
    this.damage.add(this.lastUnparsable.bytes);
    this.lastUnparsable = null;
  }
}

function isBlank(bytes: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const b = bytes[i];
    if (b !== 0x20 && b !== 0x09 && b !== 0x0d) return false;
  }
  return true;
}

/** The JSON value of bytes [start, end), or undefined when they are not JSON. */
function parseJson(bytes: Buffer, start: number, end: number): unknown {
  try {
    return JSON.parse(bytes.toString('utf8', start, end));
  } catch {
    return undefined;
  }
}

/** Gathers damaged lines and appends them to `<file>.corrupt`, durably, in large writes. */
class DamageCopy {
  private lines = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private handle: fs.FileHandle | null = null;
  private error: string | null = null;
  private readonly target: string;

  constructor(private readonly file: string) {
    this.target = corruptCopyOf(file);
  }

  add(line: Buffer): void {
    this.lines += 1;
    if (this.error) return;
    // Copied: the line may be a view of the read buffer, which is reused.
    this.pending.push(Buffer.from(line), Buffer.from('\n'));
    this.pendingBytes += line.length + 1;
  }

  async flushIfLarge(): Promise<void> {
    if (this.pendingBytes >= DAMAGE_BUFFER_BYTES) await this.write();
  }

  async close(): Promise<LogDamage | null> {
    if (this.lines === 0) return null;
    await this.write();
    try {
      if (this.handle) {
        await this.handle.sync();
        await this.handle.close();
      }
    } catch (err) {
      this.error ??= errorText(err);
    }
    this.handle = null;
    return { lines: this.lines, copiedTo: this.error ? null : this.target, copyError: this.error };
  }

  private async write(): Promise<void> {
    if (this.error || this.pending.length === 0) return;
    const data = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    try {
      if (!this.handle) {
        this.handle = await fs.open(this.target, 'a');
        await this.handle.appendFile(`# ${new Date().toISOString()}: unreadable lines of ${this.file}, copied verbatim, one per line\n`);
      }
      await this.handle.appendFile(Buffer.concat(data));
    } catch (err) {
      this.error = errorText(err);
      await this.handle?.close().catch(() => undefined);
      this.handle = null;
    }
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// ---------------------------------------------------------------------------
// Appending
// ---------------------------------------------------------------------------

function* serialiseInChunks<R>(records: Iterable<R>): Generator<string> {
  let chunk = '';
  let count = 0;
  for (const record of records) {
    chunk += JSON.stringify(record) + '\n';
    if (++count === REWRITE_CHUNK_RECORDS) {
      yield chunk;
      chunk = '';
      count = 0;
    }
  }
  if (chunk.length > 0) yield chunk;
}

/** Tells whether an append is on disk yet, synchronously (see `AppendLog.appendTracked`). */
export interface AppendReceipt {
  /** True from the moment its batch is durable, before its promise's callbacks run. */
  readonly durable: boolean;
}

interface PendingBatch {
  lines: string[];
  waiters: Array<{ resolve: () => void; reject: (err: unknown) => void }>;
  receipt: { durable: boolean };
  /** fsync after writing: false only while every record in it came through `appendWritten`. */
  sync: boolean;
}

/** Opens a log file for appending (flags 'a+'). Tests inject disk faults through it. */
export type OpenForAppend = (file: string) => Promise<fs.FileHandle>;

export interface AppendLogOptions {
  /** Extra time to gather appends into one write. 0: the current tick only. */
  flushDelayMs?: number;
  /** How the file is opened for appending (default `fs.open(file, 'a+')`). */
  openForAppend?: OpenForAppend;
}

function newBatch(): PendingBatch {
  return { lines: [], waiters: [], receipt: { durable: false }, sync: false };
}

export class AppendLog<R> {
  readonly file: string;
  private readonly flushDelayMs: number;
  private readonly openForAppend: OpenForAppend;
  private handle: fs.FileHandle | null = null;
  /** Length of the file's complete lines while the handle is open: a failed append is cut back to it. */
  private size = 0;
  /** A failed append that could not be cut off yet: done when the file is next opened. */
  private truncateOnOpen: number | null = null;
  private pending: PendingBatch = newBatch();
  private flushScheduled = false;
  private timer: NodeJS.Timeout | null = null;
  /** Serialises writes, rewrites and close: one file operation at a time. */
  private chain: Promise<void> = Promise.resolve();
  private closed = false;
  private needsLeadingNewline = false;
  /** Records written by `appendWritten` and not yet synced to the disk. */
  private unsynced = false;
  /** Bytes and writes done, for benchmarks and compaction decisions. */
  bytesWritten = 0;
  writes = 0;

  constructor(file: string, options: AppendLogOptions = {}) {
    this.file = file;
    this.flushDelayMs = options.flushDelayMs ?? 0;
    this.openForAppend = options.openForAppend ?? ((f) => fs.open(f, 'a+'));
  }

  /** Append one record; resolves once it is durable. Throws at once if it cannot be serialised. */
  append(record: R): Promise<void> {
    return this.appendMany([record]);
  }

  appendMany(records: R[]): Promise<void> {
    return this.appendTracked(records).written;
  }

  /**
   * `appendMany`, with a receipt that turns durable synchronously when the batch
   * is on disk: code running inside a later file operation (a rewrite's record
   * source) can tell which appends made it, before their promises settle.
   */
  /**
   * Append one record and resolve once the operating system has it, without
   * waiting for the disk: it survives the process being killed (kill -9, a
   * crash of Node-RED), not a power cut. The next `flush()` (or any durable
   * append after it) syncs it. For frequent progress records whose loss on a
   * power cut only costs redoing a little work.
   */
  appendWritten(record: R): Promise<void> {
    return this.appendTracked([record], false).written;
  }

  appendTracked(records: R[], sync = true): { written: Promise<void>; receipt: AppendReceipt } {
    if (this.closed) return { written: Promise.reject(new Error(`log ${this.file} is closed`)), receipt: { durable: false } };
    const batch = this.pending;
    if (records.length === 0) return { written: Promise.resolve(), receipt: { durable: true } };
    // Serialised before anything is queued: a record that cannot be saved throws here, alone.
    const lines = records.map((record) => JSON.stringify(record));
    batch.lines.push(...lines);
    if (sync) batch.sync = true;
    const written = new Promise<void>((resolve, reject) => batch.waiters.push({ resolve, reject }));
    this.scheduleFlush();
    return { written, receipt: batch.receipt };
  }

  /**
   * Replace the whole log with these records, atomically (compaction). They are
   * read and serialised when the rewrite runs, a chunk at a time, so a record
   * changed in the meantime is written in its latest state. A function is called
   * then, after every earlier append has settled (see `appendTracked`).
   */
  rewrite(records: R[] | (() => Iterable<R>)): Promise<void> {
    return this.enqueue(async () => {
      await this.closeHandle();
      const source = typeof records === 'function' ? records() : records;
      this.bytesWritten += await writeFileAtomic(this.file, serialiseInChunks(source));
      this.unsynced = false; // the new file is synced whole
      this.truncateOnOpen = null;
      this.needsLeadingNewline = false;
      this.writes += 1;
    });
  }

  /** Cut the file to `bytes` (e.g. a torn last line found by `readLog`), before the next append. */
  truncate(bytes: number): Promise<void> {
    return this.enqueue(async () => {
      await this.closeHandle();
      await fs.truncate(this.file, bytes);
      this.truncateOnOpen = null;
    });
  }

  /** Write what is pending now, without waiting for the flush delay. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.pending.lines.length === 0) return this.unsynced ? this.enqueue(() => this.syncWritten()) : this.chain;
    this.flushScheduled = false;
    const batch = this.pending;
    this.pending = newBatch();
    return this.enqueue(() => this.writeBatch(batch));
  }

  /** Flush what is pending and release the file handle. */
  async close(): Promise<void> {
    if (this.closed) return this.chain;
    await this.flush();
    this.closed = true;
    return this.enqueue(() => this.closeHandle());
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    if (this.flushDelayMs > 0) {
      this.timer = setTimeout(() => {
        this.timer = null;
        void this.flush();
      }, this.flushDelayMs);
    } else {
      setImmediate(() => void this.flush());
    }
  }

  private enqueue(op: () => Promise<void>): Promise<void> {
    const run = this.chain.then(op);
    // Keep the chain alive after a failure; the caller of `op` sees the error.
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async open(): Promise<fs.FileHandle> {
    if (this.handle) return this.handle;
    await fs.mkdir(path.dirname(this.file), { recursive: true });
    const handle = await this.openForAppend(this.file);
    try {
      if (this.truncateOnOpen !== null) {
        await handle.truncate(this.truncateOnOpen);
        this.truncateOnOpen = null;
      }
      this.size = (await handle.stat()).size;
      // After a crash the file may end in a torn line: start on a fresh one.
      this.needsLeadingNewline = await endsMidLine(handle, this.size);
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
    this.handle = handle;
    return handle;
  }

  private async writeBatch(batch: PendingBatch): Promise<void> {
    let sizeBefore: number | null = null;
    try {
      const handle = await this.open();
      sizeBefore = this.size;
      const data = (this.needsLeadingNewline ? '\n' : '') + batch.lines.join('\n') + '\n';
      await handle.appendFile(data, 'utf8');
      if (batch.sync) {
        await handle.datasync();
        this.unsynced = false;
      } else {
        this.unsynced = true;
      }
      const bytes = Buffer.byteLength(data);
      this.needsLeadingNewline = false;
      this.size += bytes;
      this.bytesWritten += bytes;
      this.writes += 1;
      batch.receipt.durable = true;
      for (const w of batch.waiters) w.resolve();
    } catch (err) {
      // The batch may be partly (or even wholly, if only the fsync failed) in the
      // file. Its appends are rejected, so cut it off: a record reported as not
      // saved must not come back at the next start.
      if (sizeBefore !== null) await this.cutBack(sizeBefore);
      for (const w of batch.waiters) w.reject(err);
    }
  }

  /** fsync what `appendWritten` wrote since the last sync. */
  private async syncWritten(): Promise<void> {
    if (!this.unsynced || !this.handle) return;
    await this.handle.datasync();
    this.unsynced = false;
  }

  private async cutBack(size: number): Promise<void> {
    try {
      await (this.handle as fs.FileHandle).truncate(size);
      await (this.handle as fs.FileHandle).datasync();
    } catch {
      this.truncateOnOpen = size; // retried before the next append
      await this.closeHandle().catch(() => undefined);
    }
  }

  private async closeHandle(): Promise<void> {
    const handle = this.handle;
    this.handle = null;
    if (handle) await handle.close();
  }
}

async function endsMidLine(handle: fs.FileHandle, size: number): Promise<boolean> {
  if (size === 0) return false;
  const last = Buffer.alloc(1);
  await handle.read(last, 0, 1, size - 1);
  return last[0] !== NEWLINE;
}
