/**
 * The job spool: an ingest job's validated documents on disk, so that the job
 * survives a restart or a crash, and so that a job of any size is read back one
 * batch at a time (memory stays bounded while it runs).
 *
 * One JSON-lines file per job, written atomically (temp file, fsync, rename)
 * before the job is acknowledged:
 *   line 1: the header {v: 1, jobId, collection, documents, chunks, batches, ids}
 *   then one line per batch: {docs: [{id, text?, vector?, metadata?}], replace?: [source ids]}
 * `replace` names the documents whose first chunk is in the batch: their old
 * chunks are removed before the batch is written (see lib/chunking.ts).
 * A job's spec keeps the byte offset of its first unfinished batch: resuming
 * reads on from there, never from the start.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../storage/append-log';
import { VectorStoreError, messageOf } from '../errors';
import type { IngestItem } from '../schemas';

/** A document of a batch, with its id assigned (and its chunk metadata, when chunked). */
export type SpooledDocument = IngestItem & { id: string };

export interface SpoolBatch {
  docs: SpooledDocument[];
  /** Sources whose old chunks are removed before this batch is written. */
  replace?: string[];
}

export interface SpoolHeader {
  v: 1;
  jobId: string;
  collection: string;
  documents: number;
  chunks: number;
  batches: number;
  /** Every id written, in order (the final message's `ids`). */
  ids: string[];
}

/** Where a job's spool lives: a plain file name, inside the jobs directory. */
export function spoolFileName(jobId: string): string {
  return `${jobId.replace(/[^A-Za-z0-9._-]/g, '_')}.jsonl`;
}

/**
 * Characters of batch lines gathered per chunk written: under V8's large-object
 * size, so that the chunks are young garbage, collected at once (larger ones pile
 * up until a full collection: 80 MB more heap for 100,000 documents).
 */
const CHUNK_CHARS = 60_000;

/** Where each batch line of a spool ends: the offset a job resumes from after batch k. */
export interface SpoolLayout {
  /** Byte offset of the first batch (just after the header). */
  first: number;
  /** `ends[k]`: byte offset just after batch k. */
  ends: number[];
}

/**
 * Write the spool durably; resolves with where its batches are. `batches` is
 * iterated once, lazily. The spool counts as being started (see `markStarting`)
 * until its job is saved: the caller then unmarks it.
 */
export async function writeSpool(file: string, header: SpoolHeader, batches: Iterable<SpoolBatch>): Promise<SpoolLayout> {
  const headerLine = JSON.stringify(header) + '\n';
  const layout: SpoolLayout = { first: Buffer.byteLength(headerLine), ends: [] };
  markStarting(file, true);
  function* chunks(): Generator<string> {
    yield headerLine;
    let offset = layout.first;
    let chunk = '';
    for (const batch of batches) {
      const line = JSON.stringify(batch) + '\n';
      offset += Buffer.byteLength(line);
      layout.ends.push(offset);
      chunk += line;
      if (chunk.length >= CHUNK_CHARS) {
        yield chunk;
        chunk = '';
      }
    }
    if (chunk.length > 0) yield chunk;
  }
  try {
    await writeFileAtomic(file, chunks());
  } catch (err) {
    markStarting(file, false);
    throw new VectorStoreError(
      'INTERNAL',
      `Could not save the ingest job's documents to ${file}: ${messageOf(err)}. Nothing was written: check that the disk has space and the Node-RED user directory is writable, then send the message again.`,
      { cause: err },
    );
  }
  return layout;
}

/** Bytes read from the spool per read call. */
const READ_BYTES = 1 << 20;

/**
 * Reads a spool's batches from a byte offset on, one line at a time. `close()`
 * releases the file (also after an error).
 */
export class SpoolReader {
  private handle: fs.FileHandle | null = null;
  private buffered = Buffer.alloc(0);
  /** File position of the first byte of `buffered`. */
  private position: number;
  private ended = false;

  constructor(
    readonly file: string,
    offset: number,
  ) {
    this.position = offset;
  }

  /** The next batch and the offset just after it, or null at the end. */
  async next(): Promise<{ batch: SpoolBatch; nextOffset: number } | null> {
    const line = await this.nextLine();
    if (line === null) return null;
    let batch: SpoolBatch;
    try {
      batch = JSON.parse(line.text) as SpoolBatch;
    } catch (err) {
      throw damaged(this.file, `a batch at byte ${line.start} is not JSON (${messageOf(err)})`);
    }
    if (!batch || !Array.isArray(batch.docs)) throw damaged(this.file, `a batch at byte ${line.start} has no documents`);
    return { batch, nextOffset: line.end };
  }

  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = null;
    await handle?.close().catch(() => undefined);
  }

  /** The next non-empty line, with its byte range. */
  async nextLine(): Promise<{ text: string; start: number; end: number } | null> {
    for (;;) {
      const newline = this.buffered.indexOf(10);
      if (newline !== -1) {
        const start = this.position;
        const text = this.buffered.subarray(0, newline).toString('utf8');
        this.buffered = this.buffered.subarray(newline + 1);
        this.position += newline + 1;
        if (text.trim() === '') continue;
        return { text, start, end: this.position };
      }
      if (this.ended) {
        if (this.buffered.length > 0) throw damaged(this.file, `its last batch is cut short at byte ${this.position}`);
        return null;
      }
      await this.fill();
    }
  }

  private async fill(): Promise<void> {
    if (!this.handle) {
      try {
        this.handle = await fs.open(this.file, 'r');
      } catch (err) {
        throw new VectorStoreError(
          'INTERNAL',
          `The ingest job's documents file ${this.file} cannot be read (${messageOf(err)}): the job cannot go on. Send the message again.`,
          { transient: false, cause: err },
        );
      }
    }
    const chunk = Buffer.alloc(READ_BYTES);
    const { bytesRead } = await this.handle.read(chunk, 0, READ_BYTES, this.position + this.buffered.length);
    if (bytesRead === 0) this.ended = true;
    else this.buffered = this.buffered.length === 0 ? chunk.subarray(0, bytesRead) : Buffer.concat([this.buffered, chunk.subarray(0, bytesRead)]);
  }
}

/** The spool's header (its first line): what the final message needs (`ids`). */
export async function readSpoolHeader(file: string): Promise<SpoolHeader> {
  const reader = new SpoolReader(file, 0);
  try {
    const line = await reader.nextLine();
    if (line === null) throw damaged(file, 'it is empty');
    const header = JSON.parse(line.text) as SpoolHeader;
    if (header?.v !== 1 || !Array.isArray(header.ids)) throw damaged(file, 'its header is not one this version reads');
    return header;
  } finally {
    await reader.close();
  }
}

/** Remove a job's spool (it ended or was cancelled); a spool already gone is fine. */
export async function removeSpool(file: string): Promise<void> {
  await fs.rm(file, { force: true });
}

/**
 * Spools being started in this process (written, not yet saved as a job): never
 * strays. Module state on purpose: the writer and the triggerer of one runtime
 * share the process.
 */
const starting = new Set<string>();

/** Mark a spool as being started, or no longer (its job is saved, or given up). */
export function markStarting(file: string, isStarting: boolean): void {
  if (isStarting) starting.add(path.resolve(file));
  else starting.delete(path.resolve(file));
}

/**
 * Spools in the jobs directory that no pending job names and no job being
 * started here: left by a crash between spooling a job and saving it (it was
 * never acknowledged).
 */
export async function straySpools(dir: string, known: ReadonlySet<string>): Promise<string[]> {
  let entries: string[];
  try {
    entries = await fs.readdir(dir);
  } catch {
    return [];
  }
  return entries
    .filter((name) => name.endsWith('.jsonl') && !known.has(name))
    .map((name) => path.join(dir, name))
    .filter((file) => !starting.has(path.resolve(file)));
}

function damaged(file: string, what: string): VectorStoreError {
  return new VectorStoreError('INTERNAL', `The ingest job's documents file ${file} is damaged: ${what}. The job cannot go on: send the message again.`, {
    transient: false,
  });
}
