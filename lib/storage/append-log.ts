/**
 * Crash-safe files for the engine's durable state (the memory backend's
 * collections and the sensor's pending waits).
 *
 * Two primitives:
 * - `writeFileAtomic`: temp file, fsync, rename, fsync of the directory. A crash
 *   leaves either the old file or the new one, never a mix.
 * - `AppendLog`: a JSON-lines log. Records appended in the same tick (or within
 *   `flushDelayMs`) share one write and one fsync; each `append` resolves only once
 *   its record is on disk. A crash mid-write can only tear the last line, which
 *   `readLog` drops: that batch was never acknowledged. `rewrite` compacts the log
 *   atomically.
 *
 * All I/O is asynchronous: nothing here blocks the event loop.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { StringDecoder } from 'node:string_decoder';

/** Bytes read at a time by `readLog`: the event loop runs between chunks. */
const READ_CHUNK_BYTES = 1 << 20;
/** Records serialised per chunk when a log is rewritten, so a big rewrite never blocks the loop for long. */
const REWRITE_CHUNK_RECORDS = 1000;

/**
 * Write a file atomically. `data` may be a sequence of chunks (e.g. a generator
 * that serialises records lazily): each is written in turn, so a large file is
 * never held as one string and the event loop runs between chunks.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array | Iterable<string>): Promise<number> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${Date.now().toString(36)}.${Math.random().toString(36).slice(2)}.tmp`;
  const handle = await fs.open(tmp, 'w');
  let bytes = 0;
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
  try {
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
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

/**
 * Read every complete record of a log. A missing file is an empty log. A line
 * that does not parse is skipped (only the last line can be torn by a crash).
 * The file is read in chunks: memory stays bounded by the records, not by the
 * file's text, and the event loop runs between chunks.
 */
export async function readLog<R>(file: string): Promise<R[]> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const records: R[] = [];
  const decoder = new StringDecoder('utf8');
  const buffer = Buffer.allocUnsafe(READ_CHUNK_BYTES);
  /** The start of a line whose end is in a later chunk. */
  let partial = '';
  try {
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      const text = decoder.write(buffer.subarray(0, bytesRead));
      const lastNewline = text.lastIndexOf('\n');
      if (lastNewline === -1) {
        partial += text;
        continue;
      }
      parseLines(partial + text.slice(0, lastNewline + 1), records);
      partial = text.slice(lastNewline + 1);
    }
  } finally {
    await handle.close();
  }
  // What is left in `partial` has no newline: an unfinished (unacknowledged) write.
  return records;
}

/** Parse each newline-terminated line of `text` into `records`, skipping empty and torn lines. */
function parseLines<R>(text: string, records: R[]): void {
  let start = 0;
  while (start < text.length) {
    const end = text.indexOf('\n', start);
    if (end === -1) break;
    if (end > start) {
      try {
        records.push(JSON.parse(text.slice(start, end)) as R);
      } catch {
        // A torn or corrupted line: never acknowledged, skip it.
      }
    }
    start = end + 1;
  }
}

async function endsMidLine(handle: fs.FileHandle): Promise<boolean> {
  const { size } = await handle.stat();
  if (size === 0) return false;
  const last = Buffer.alloc(1);
  await handle.read(last, 0, 1, size - 1);
  return last[0] !== 0x0a;
}

function* serialiseInChunks<R>(records: R[]): Generator<string> {
  for (let start = 0; start < records.length; start += REWRITE_CHUNK_RECORDS) {
    let chunk = '';
    for (const record of records.slice(start, start + REWRITE_CHUNK_RECORDS)) chunk += JSON.stringify(record) + '\n';
    yield chunk;
  }
}

interface PendingBatch {
  lines: string[];
  waiters: Array<{ resolve: () => void; reject: (err: unknown) => void }>;
}

export interface AppendLogOptions {
  /** Extra time to gather appends into one write. 0: the current tick only. */
  flushDelayMs?: number;
}

export class AppendLog<R> {
  readonly file: string;
  private readonly flushDelayMs: number;
  private handle: fs.FileHandle | null = null;
  private pending: PendingBatch = { lines: [], waiters: [] };
  private flushScheduled = false;
  private timer: NodeJS.Timeout | null = null;
  /** Serialises writes, rewrites and close: one file operation at a time. */
  private chain: Promise<void> = Promise.resolve();
  private closed = false;
  private needsLeadingNewline = false;
  /** Bytes and writes done, for benchmarks and compaction decisions. */
  bytesWritten = 0;
  writes = 0;

  constructor(file: string, options: AppendLogOptions = {}) {
    this.file = file;
    this.flushDelayMs = options.flushDelayMs ?? 0;
  }

  /** Append one record; resolves once it is durable. */
  append(record: R): Promise<void> {
    return this.appendMany([record]);
  }

  appendMany(records: R[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`log ${this.file} is closed`));
    if (records.length === 0) return Promise.resolve();
    for (const record of records) this.pending.lines.push(JSON.stringify(record));
    const done = new Promise<void>((resolve, reject) => this.pending.waiters.push({ resolve, reject }));
    this.scheduleFlush();
    return done;
  }

  /**
   * Replace the whole log with these records, atomically (compaction). They are
   * serialised when the rewrite runs, a chunk at a time, so a record changed in
   * the meantime is written in its latest state.
   */
  rewrite(records: R[]): Promise<void> {
    return this.enqueue(async () => {
      await this.closeHandle();
      this.bytesWritten += await writeFileAtomic(this.file, serialiseInChunks(records));
      this.writes += 1;
    });
  }

  /** Write what is pending now, without waiting for the flush delay. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.pending.lines.length === 0) return this.chain;
    this.flushScheduled = false;
    const batch = this.pending;
    this.pending = { lines: [], waiters: [] };
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

  private async writeBatch(batch: PendingBatch): Promise<void> {
    try {
      if (!this.handle) {
        await fs.mkdir(path.dirname(this.file), { recursive: true });
        this.handle = await fs.open(this.file, 'a+');
        this.needsLeadingNewline = await endsMidLine(this.handle);
      }
      // After a crash the file may end in a torn line: start on a fresh one.
      const data = (this.needsLeadingNewline ? '\n' : '') + batch.lines.join('\n') + '\n';
      this.needsLeadingNewline = false;
      await this.handle.appendFile(data, 'utf8');
      await this.handle.datasync();
      this.bytesWritten += Buffer.byteLength(data);
      this.writes += 1;
      for (const w of batch.waiters) w.resolve();
    } catch (err) {
      for (const w of batch.waiters) w.reject(err);
      // A failed append may have left a partial line: reopen (and re-check the
      // end of the file) before the next batch.
      await this.closeHandle().catch(() => undefined);
    }
  }

  private async closeHandle(): Promise<void> {
    const handle = this.handle;
    this.handle = null;
    if (handle) await handle.close();
  }
}
