/**
 * The job store's table, created and migrated by the package: one list of
 * migrations, applied in order under a transaction-scoped advisory lock, so that
 * several instances starting at once (or one starting twice) migrate it once.
 *
 * The version of each work table is a row of `<schema>.vector_pipeline_schema_version`
 * (one row per table name: the table is configurable). A table migrated by a newer
 * version of the package is left alone, and start() says to upgrade.
 */
import type * as Pg from 'pg';

/** Qualified, already-validated names (lower-case identifiers: see lib/settings.ts). */
export interface WorkTableNames {
  schema: string;
  table: string;
}

export const VERSION_TABLE = 'vector_pipeline_schema_version';

/** Each entry takes the table from the version before it to its own (index + 1). Append only. */
export const MIGRATIONS: ReadonlyArray<(names: WorkTableNames) => string[]> = [
  ({ schema, table }) => [
    `CREATE TABLE IF NOT EXISTS "${schema}"."${table}" (
      id text PRIMARY KEY,
      kind text NOT NULL,
      owner_id text NOT NULL,
      spec jsonb NOT NULL,
      message jsonb NOT NULL,
      final jsonb,
      state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivering')),
      lease_holder text,
      lease_until timestamptz,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    )`,
    // claim: the records of some owners whose lease is missing or over.
    `CREATE INDEX IF NOT EXISTS "${table}_owner_lease" ON "${schema}"."${table}" (owner_id, lease_until)`,
    // heartbeat, release, holders: the records one instance holds.
    `CREATE INDEX IF NOT EXISTS "${table}_holder" ON "${schema}"."${table}" (lease_holder) WHERE lease_holder IS NOT NULL`,
  ],
  // 2: the spools of ingest jobs (lib/job-stores/spool-table.ts), readable by every instance:
  // one row per batch (seq k + 1), the header at seq 0; created_at (the header's) finds strays.
  ({ schema, table }) => [
    `CREATE TABLE IF NOT EXISTS "${schema}"."${table}_spool" (
      name text NOT NULL,
      seq integer NOT NULL,
      body text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
      PRIMARY KEY (name, seq)
    )`,
    `CREATE INDEX IF NOT EXISTS "${table}_spool_headers" ON "${schema}"."${table}_spool" (created_at) WHERE seq = 0`,
  ],
];

/**
 * The lock key of the migrations in one schema, the same in every instance: per
 * schema, not per table, since the tables of a schema share its version table.
 */
function lockKey(names: WorkTableNames): string {
  return `vector-pipeline migrate ${names.schema}`;
}

/**
 * Bring the table to the latest version, in one transaction on `client`.
 * Returns the version found before (0: no table). Throws a plain Error for a
 * newer table; the caller turns failures into VectorStoreErrors.
 */
export async function migrate(client: Pick<Pg.PoolClient, 'query'>, names: WorkTableNames): Promise<{ from: number; to: number }> {
  const { schema, table } = names;
  await client.query('BEGIN');
  try {
    // Every instance takes the same lock first: the second waits, then finds the work done.
    await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [lockKey(names)]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS "${schema}"."${VERSION_TABLE}" (table_name text PRIMARY KEY, version integer NOT NULL, migrated_at timestamptz NOT NULL DEFAULT now())`,
    );
    const found = await client.query<{ version: number }>(`SELECT version FROM "${schema}"."${VERSION_TABLE}" WHERE table_name = $1`, [table]);
    const from = found.rows.length === 0 ? 0 : Number(found.rows[0].version);
    if (from > MIGRATIONS.length) {
      throw new NewerTableError(from);
    }
    for (let version = from + 1; version <= MIGRATIONS.length; version++) {
      for (const statement of MIGRATIONS[version - 1](names)) await client.query(statement);
    }
    if (from < MIGRATIONS.length) {
      await client.query(
        `INSERT INTO "${schema}"."${VERSION_TABLE}" (table_name, version) VALUES ($1, $2)
         ON CONFLICT (table_name) DO UPDATE SET version = EXCLUDED.version, migrated_at = now()`,
        [table, MIGRATIONS.length],
      );
    }
    await client.query('COMMIT');
    return { from, to: Math.max(from, MIGRATIONS.length) };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** The table was migrated by a newer version of the package than this one. */
export class NewerTableError extends Error {
  constructor(readonly version: number) {
    super(`the table is at version ${version}, this version of the package knows versions up to ${MIGRATIONS.length}`);
  }
}
