/**
 * Where ingest jobs keep their spools (their validated documents, batch by
 * batch): files in this runtime's jobs directory (FileSpools), or a table that
 * every instance sharing a PostgreSQL job store reads (lib/job-stores/spool-table.ts),
 * so that a job accepted by one instance can be finished by another.
 *
 * A spool is named by the job's spec (`spec.spool`); the spec's `offset` is an
 * opaque position the spool gave (a byte offset in a file, a row number in the
 * table): the position of the job's first unfinished batch.
 */
import * as path from 'node:path';
import { SpoolReader, markStarting, readSpoolHeader, removeSpool, straySpools, writeSpool, type SpoolBatch, type SpoolHeader, type SpoolLayout } from './spool';

export type { SpoolBatch, SpoolHeader, SpoolLayout } from './spool';

/** Reads a spool's batches from a position on. `close()` releases what it holds (also after an error). */
export interface SpoolBatchReader {
  /** The next batch and the position just after it, or null at the end. */
  next(): Promise<{ batch: SpoolBatch; nextOffset: number } | null>;
  close(): Promise<void>;
}

export interface JobSpools {
  /**
   * Write a spool durably and whole (nothing of it is visible before it is
   * complete); `batches` is iterated once, lazily. The spool counts as being
   * started (never a stray) until `settled(name)`.
   */
  write(name: string, header: SpoolHeader, batches: Iterable<SpoolBatch>): Promise<SpoolLayout>;
  /** The spool is no longer being started: its job is saved, or given up. */
  settled(name: string): void;
  reader(name: string, offset: number): SpoolBatchReader;
  /** The spool's header: what the final message needs (`ids`). */
  header(name: string): Promise<SpoolHeader>;
  /** Remove a spool; one already gone is fine. */
  remove(name: string): Promise<void>;
  /**
   * Spools no job names (`known`: the spool names of the jobs this runtime
   * loaded), left by a crash between spooling a job and saving it; never one
   * being started.
   */
  strays(known: ReadonlySet<string>): Promise<string[]>;
}

/** Spools as JSON-lines files in one directory (./spool.ts): one runtime's own. */
export class FileSpools implements JobSpools {
  constructor(readonly dir: string) {}

  file(name: string): string {
    return path.join(this.dir, name);
  }

  write(name: string, header: SpoolHeader, batches: Iterable<SpoolBatch>): Promise<SpoolLayout> {
    return writeSpool(this.file(name), header, batches);
  }

  settled(name: string): void {
    markStarting(this.file(name), false);
  }

  reader(name: string, offset: number): SpoolBatchReader {
    return new SpoolReader(this.file(name), offset);
  }

  header(name: string): Promise<SpoolHeader> {
    return readSpoolHeader(this.file(name));
  }

  remove(name: string): Promise<void> {
    return removeSpool(this.file(name));
  }

  async strays(known: ReadonlySet<string>): Promise<string[]> {
    return (await straySpools(this.dir, known)).map((file) => path.basename(file));
  }
}
