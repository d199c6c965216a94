/**
 * Ingest job spools in the PostgreSQL job store (`<table>_spool`, migration 2):
 * what lets any instance sharing the store finish a job another one accepted.
 *
 * Rows (name, seq, body): the header at seq 0, batch k at seq k + 1, each the
 * JSON line the file spool would hold (./../ingest-job/spool.ts). A job's
 * `offset` is the seq of its first unfinished batch. A spool is written in one
 * transaction (nothing visible half-written), in multi-row inserts of bounded
 * size; it is read a few batches per query.
 *
 * Strays: a crash between the spool's commit and the job's record leaves a
 * spool no record names. Another instance may be in that very moment, so only
 * a spool older than `strayAfterMs` counts as one (the header's created_at, by
 * the database's clock).
 */
import { VectorStoreError, messageOf } from '../errors';
import type { JobSpools, SpoolBatch, SpoolBatchReader, SpoolHeader, SpoolLayout } from '../ingest-job/spools';
import type { PostgresJobStore } from './postgres';

export interface PostgresSpoolsOptions {
  /** Age (database clock) from which a spool no job names is a stray; default 10 minutes. */
  strayAfterMs?: number;
}

/** Rows per insert, and characters of bodies per insert: statements stay small, memory bounded. */
const INSERT_ROWS = 500;
const INSERT_CHARS = 4_000_000;
/** Batches fetched per query while a job runs. */
const READ_BATCHES = 4;
const DEFAULT_STRAY_AFTER_MS = 10 * 60_000;

export class PostgresSpools implements JobSpools {
  private readonly spoolTable: string;
  private readonly workTable: string;
  private readonly strayAfterMs: number;
  /** Spools this instance is writing or has written and not yet saved as a job: never strays. */
  private readonly starting = new Set<string>();

  constructor(
    private readonly store: PostgresJobStore,
    options: PostgresSpoolsOptions = {},
  ) {
    const { schema, table } = store.names;
    this.spoolTable = `"${schema}"."${table}_spool"`;
    this.workTable = `"${schema}"."${table}"`;
    this.strayAfterMs = options.strayAfterMs ?? DEFAULT_STRAY_AFTER_MS;
  }

  async write(name: string, header: SpoolHeader, batches: Iterable<SpoolBatch>): Promise<SpoolLayout> {
    this.starting.add(name);
    const layout: SpoolLayout = { first: 1, ends: [] };
    try {
      await this.store.transaction(`saving the documents of ingest job ${header.jobId}`, async (sql) => {
        // A retry under the same name replaces what an earlier attempt may have left.
        await sql(`DELETE FROM ${this.spoolTable} WHERE name = $1`, [name]);
        let seqs: number[] = [];
        let bodies: string[] = [];
        let chars = 0;
        const flush = async () => {
          if (seqs.length === 0) return;
          await sql(`INSERT INTO ${this.spoolTable} (name, seq, body) SELECT $1, s, b FROM unnest($2::int[], $3::text[]) AS u(s, b)`, [name, seqs, bodies]);
          seqs = [];
          bodies = [];
          chars = 0;
        };
        let seq = 1;
        for (const batch of batches) {
          const body = JSON.stringify(batch);
          seqs.push(seq);
          bodies.push(body);
          chars += body.length;
          seq += 1;
          layout.ends.push(seq);
          if (seqs.length >= INSERT_ROWS || chars >= INSERT_CHARS) await flush();
        }
        await flush();
        // The header last: its created_at is then the moment the spool was complete.
        await sql(`INSERT INTO ${this.spoolTable} (name, seq, body) VALUES ($1, 0, $2)`, [name, JSON.stringify(header)]);
      });
    } catch (err) {
      this.starting.delete(name);
      const cause = err instanceof VectorStoreError ? err : null;
      throw new VectorStoreError(
        cause?.code ?? 'INTERNAL',
        `Could not save the ingest job's documents in the job store: ${messageOf(err).replace(/\.$/, '')}. Nothing was written: send the message again.`,
        { transient: cause?.transient, cause: err },
      );
    }
    return layout;
  }

  settled(name: string): void {
    this.starting.delete(name);
  }

  reader(name: string, offset: number): SpoolBatchReader {
    let nextSeq = offset;
    let fetched: Array<{ seq: number; body: string }> = [];
    let ended = false;
    return {
      next: async () => {
        if (fetched.length === 0 && !ended) {
          const rows = await this.store.sql<{ seq: number; body: string }>(
            `SELECT seq, body FROM ${this.spoolTable} WHERE name = $1 AND seq >= $2 ORDER BY seq LIMIT $3`,
            [name, nextSeq, READ_BATCHES],
            `reading the documents of an ingest job (spool ${name})`,
          );
          if (rows.length === 0) {
            // The end, unless the spool is gone (the job was cancelled, or is not this store's).
            await this.header(name);
            ended = true;
          }
          fetched = rows.map((row) => ({ seq: Number(row.seq), body: row.body }));
        }
        const row = fetched.shift();
        if (!row) return null;
        if (row.seq !== nextSeq) throw damaged(name, `batch ${nextSeq - 1} is missing`);
        let batch: SpoolBatch;
        try {
          batch = JSON.parse(row.body) as SpoolBatch;
        } catch (err) {
          throw damaged(name, `batch ${row.seq - 1} is not JSON (${messageOf(err)})`);
        }
        if (!batch || !Array.isArray(batch.docs)) throw damaged(name, `batch ${row.seq - 1} has no documents`);
        nextSeq = row.seq + 1;
        return { batch, nextOffset: nextSeq };
      },
      close: async () => {
        fetched = [];
      },
    };
  }

  async header(name: string): Promise<SpoolHeader> {
    const rows = await this.store.sql<{ body: string }>(
      `SELECT body FROM ${this.spoolTable} WHERE name = $1 AND seq = 0`,
      [name],
      `reading the header of an ingest job's documents (spool ${name})`,
    );
    if (rows.length === 0) {
      throw new VectorStoreError('INTERNAL', `The documents of the ingest job (spool ${name}) are not in the job store: the job cannot go on. Send the message again.`, {
        transient: false,
      });
    }
    let header: SpoolHeader;
    try {
      header = JSON.parse(rows[0].body) as SpoolHeader;
    } catch (err) {
      throw damaged(name, `its header is not JSON (${messageOf(err)})`);
    }
    if (header?.v !== 1 || !Array.isArray(header.ids)) throw damaged(name, 'its header is not one this version reads');
    return header;
  }

  async remove(name: string): Promise<void> {
    await this.store.sql(`DELETE FROM ${this.spoolTable} WHERE name = $1`, [name], `removing the documents of a finished ingest job (spool ${name})`);
  }

  async strays(known: ReadonlySet<string>): Promise<string[]> {
    const rows = await this.store.sql<{ name: string }>(
      `SELECT s.name FROM ${this.spoolTable} AS s
       WHERE s.seq = 0 AND s.created_at < now() - $1::float8 * interval '1 millisecond'
         AND NOT EXISTS (SELECT 1 FROM ${this.workTable} AS w WHERE w.kind = 'ingest-job' AND w.spec->>'spool' = s.name)`,
      [this.strayAfterMs],
      'looking for the documents of ingest jobs never started',
    );
    return rows.map((row) => row.name).filter((name) => !known.has(name) && !this.starting.has(name));
  }
}

function damaged(name: string, what: string): VectorStoreError {
  return new VectorStoreError('INTERNAL', `The documents of the ingest job (spool ${name}) in the job store are damaged: ${what}. The job cannot go on: send the message again.`, {
    transient: false,
  });
}
