/**
 * SQL text of the pgvector backend. Values always travel as parameters; the only
 * things written into SQL text are identifiers (collection, schema and index
 * names, validated by the caller and quoted here) and numbers this module
 * computes itself (dimensions, ef_search).
 *
 * Layout: one table per collection, in a schema of its own (`vector_pipeline` by
 * default) so collections never meet the user's tables:
 *
 *   "vector_pipeline"."<collection>" (
 *     id text PRIMARY KEY, embedding vector(<d>) NOT NULL, text text, metadata jsonb)
 *
 * The table comment records the metric. The HNSW index is named
 * "<collection>$hnsw": "$" cannot occur in a collection name, so an index name
 * never collides with another collection's table.
 */
import { createHash } from 'node:crypto';
import { OTHER_BUILDERS } from './build-sessions';
import type { Metric } from '../../types';

/** Longest identifier Postgres keeps (NAMEDATALEN - 1 bytes); longer ones are cut. */
const MAX_IDENTIFIER = 63;
/** HNSW on `vector` supports up to 2000 dimensions; 2001 to 4000 are indexed as half precision (`halfvec`). */
export const MAX_FULL_PRECISION_INDEX_DIMENSIONS = 2000;
/** The most dimensions a `vector` column holds. */
export const MAX_DIMENSIONS = 16000;
/** Marks a table comment as written by this backend (and versions its format). */
const COMMENT_TAG = 'node-red-vector-pipeline';

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** A name derived from the collection, kept within 63 bytes without ever colliding with another collection's. */
function derivedName(collection: string, suffix: string): string {
  const name = `${collection}$${suffix}`;
  if (Buffer.byteLength(name) <= MAX_IDENTIFIER) return name;
  // Two "$" mark a shortened name: it cannot equal any plain one.
  const hash = createHash('sha256').update(collection).digest('hex').slice(0, 8);
  const keep = MAX_IDENTIFIER - suffix.length - hash.length - 2;
  return `${collection.slice(0, keep)}$${hash}$${suffix}`;
}

/** Every identifier of one collection, bare and quoted. */
export interface CollectionNames {
  collection: string;
  schema: string;
  /** "schema"."table", quoted: for SQL text and for to_regclass(). */
  table: string;
  /** Index name without schema, as stored in pg_class. */
  indexName: string;
  /** "schema"."index", quoted. */
  index: string;
  /** Primary key constraint name, quoted. */
  primaryKey: string;
}

export function namesOf(schema: string, collection: string): CollectionNames {
  const indexName = derivedName(collection, 'hnsw');
  return {
    collection,
    schema,
    table: `${quoteIdent(schema)}.${quoteIdent(collection)}`,
    indexName,
    index: `${quoteIdent(schema)}.${quoteIdent(indexName)}`,
    primaryKey: quoteIdent(derivedName(collection, 'pkey')),
  };
}

// ---------------------------------------------------------------- metrics

interface MetricSql {
  /** pgvector distance operator. */
  operator: string;
  /** Operator class suffix: vector_<ops>, halfvec_<ops>. */
  ops: string;
}

const METRIC_SQL: Record<Metric, MetricSql> = {
  cosine: { operator: '<=>', ops: 'cosine_ops' },
  l2: { operator: '<->', ops: 'l2_ops' },
  dot: { operator: '<#>', ops: 'ip_ops' },
};

/** Higher is better: cosine similarity (1 - cosine distance), minus the L2 distance, or the inner product. */
export function scoreOf(metric: Metric, distance: number): number {
  if (Number.isNaN(distance)) return 0; // cosine with a zero vector
  if (metric === 'cosine') return Math.min(1, Math.max(-1, 1 - distance));
  return -distance; // l2: -distance; dot: <#> is the negative inner product
}

/** What the index covers: the column, or its half-precision cast above 2000 dimensions. */
function indexedExpression(dimensions: number): string {
  return dimensions <= MAX_FULL_PRECISION_INDEX_DIMENSIONS ? 'embedding' : `(embedding::halfvec(${dimensions}))`;
}

export function indexTypeOf(dimensions: number): string {
  return dimensions <= MAX_FULL_PRECISION_INDEX_DIMENSIONS ? 'hnsw' : 'hnsw (halfvec)';
}

// ---------------------------------------------------------------- table comment (metric)

export function tableComment(metric: Metric): string {
  return JSON.stringify({ [COMMENT_TAG]: 1, metric });
}

/** The metric a table comment records; cosine for tables without one. */
export function metricFromComment(comment: string | null): Metric {
  try {
    const parsed = JSON.parse(comment ?? '') as Record<string, unknown>;
    if (parsed.metric === 'l2' || parsed.metric === 'dot' || parsed.metric === 'cosine') return parsed.metric;
  } catch {
    // not ours, or no comment
  }
  return 'cosine';
}

/** A literal for COMMENT ON (which takes no parameters): single quotes doubled. */
function literal(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

// ---------------------------------------------------------------- statements

/**
 * JSON fields (for json_build_object) about the index a build makes, from the
 * catalog when it is there (CREATE INDEX CONCURRENTLY): its name, access method,
 * whether it covers the column `columnSql` (an SQL expression of its name: a
 * dependency of the index on that column, as Postgres records for key columns and
 * expressions), and the building session's statement. See ./vector-builds.ts.
 */
export function buildIndexFields(indexRelid: string, columnSql: string): string {
  return (
    `'indexName', (SELECT relname FROM pg_class WHERE oid = ${indexRelid} AND ${indexRelid} <> 0), ` +
    `'indexAm', (SELECT am.amname FROM pg_class ic JOIN pg_am am ON am.oid = ic.relam WHERE ic.oid = ${indexRelid} AND ${indexRelid} <> 0), ` +
    `'onColumn', EXISTS (SELECT 1 FROM pg_depend d JOIN pg_index ix ON ix.indexrelid = d.objid ` +
    `JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = d.refobjsubid ` +
    `WHERE d.classid = 'pg_class'::regclass AND d.objid = ${indexRelid} AND d.refobjid = ix.indrelid AND a.attname = ${columnSql}), ` +
    `'query', (SELECT query FROM pg_stat_activity WHERE pid = p.pid)`
  );
}

export const sql = {
  vectorExtension: `SELECT extversion FROM pg_extension WHERE extname = 'vector'`,
  createExtension: 'CREATE EXTENSION IF NOT EXISTS vector',
  createSchema: (schema: string) => `CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`,

  createTable: (n: CollectionNames, dimensions: number) =>
    `CREATE TABLE ${n.table} (id text NOT NULL, embedding vector(${dimensions}) NOT NULL, text text, metadata jsonb, ` +
    `CONSTRAINT ${n.primaryKey} PRIMARY KEY (id))`,
  commentTable: (n: CollectionNames, metric: Metric) => `COMMENT ON TABLE ${n.table} IS ${literal(tableComment(metric))}`,

  /**
   * One row when the table exists: its vector column type, comment, index validity
   * and the pgvector version. Parameters: schema, table, quoted index name.
   */
  describe:
    `SELECT format_type(a.atttypid, a.atttypmod) AS column_type, a.atttypmod AS dimensions, ` +
    `obj_description(c.oid, 'pg_class') AS comment, i.indisvalid AS index_valid, ` +
    `(SELECT extversion FROM pg_extension WHERE extname = 'vector') AS vector_version ` +
    `FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace ` +
    `LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'embedding' AND NOT a.attisdropped ` +
    `LEFT JOIN pg_index i ON i.indexrelid = to_regclass($3) ` +
    `WHERE s.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`,

  /**
   * Everything `status` needs, in one statement (one round trip) that reads no
   * table rows: the catalog's row estimates (pg_class.reltuples, set by VACUUM,
   * ANALYZE and CREATE INDEX; pg_stat_user_tables.n_live_tup, kept up to date by the
   * statistics system), the index's validity, the progress rows of every index build
   * on this table (with what tells a vector build from a btree or gin one: see
   * ./vector-builds.ts; the backend keeps only the vector builds), and the failure recorded in
   * the state table, and the sessions our build's connection waits for (a lock, or
   * the transactions CONCURRENTLY waits out), and the other sessions building an index on
   * it with their statements. `reltuples` is null when the table does
   * not exist. Parameters: quoted table name, quoted index name, collection, the pid of
   * our build's connection (or null).
   */
  status: (n: CollectionNames, stateTable: string) =>
    `SELECT (SELECT reltuples FROM pg_class WHERE oid = to_regclass($1)) AS reltuples, ` +
    `(SELECT n_live_tup FROM pg_stat_user_tables WHERE relid = to_regclass($1)) AS live_tuples, ` +
    `(SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($2)) AS index_valid, ` +
    `(SELECT coalesce(json_agg(json_build_object('phase', p.phase, 'blocksDone', p.blocks_done, ` +
    `'blocksTotal', p.blocks_total, 'tuplesDone', p.tuples_done, 'tuplesTotal', p.tuples_total, 'pid', p.pid, ` +
    `'indexRelid', p.index_relid, 'ownIndex', p.index_relid = to_regclass($2), ${buildIndexFields('p.index_relid', `'embedding'`)})), '[]'::json) ` +
    `FROM pg_stat_progress_create_index p WHERE p.relid = to_regclass($1)) AS builds, ` +
    `(SELECT json_build_object('code', f.code, 'reason', f.reason) FROM ${stateTable} f WHERE f.collection = $3) AS failure, ` +
    `(SELECT CASE WHEN $4::int IS NULL THEN NULL ELSE pg_blocking_pids($4::int) END) AS blocked_by, ` +
    `(SELECT coalesce(json_agg(o.pid), '[]'::json) FROM (${OTHER_BUILDERS}) o) AS other_builders, ` +
    `(SELECT coalesce(json_agg(json_build_object('pid', o.pid, 'query', (SELECT query FROM pg_stat_activity WHERE pid = o.pid))), '[]'::json) ` +
    `FROM (${OTHER_BUILDERS}) o) AS other_sessions`,

  count: (n: CollectionNames) => `SELECT count(*) AS count FROM ${n.table}`,

  /** Batched upsert of parallel arrays: $1 ids, $2 vectors (text), $3 texts, $4 metadata (JSON text). */
  upsert: (n: CollectionNames) =>
    `INSERT INTO ${n.table} (id, embedding, text, metadata) ` +
    `SELECT * FROM unnest($1::text[], $2::vector[], $3::text[], $4::jsonb[]) ` +
    `ON CONFLICT (id) DO UPDATE SET embedding = EXCLUDED.embedding, text = EXCLUDED.text, metadata = EXCLUDED.metadata`,

  /**
   * Delete by exact ids ($1) and id prefixes as LIKE patterns, wildcards escaped ($2),
   * in one statement (all or nothing). The count of the table sees the rows as before
   * the delete (one snapshot), hence the subtraction.
   */
  deleteDocuments: (n: CollectionNames) =>
    `WITH removed AS (DELETE FROM ${n.table} WHERE id = ANY($1::text[]) OR id LIKE ANY($2::text[]) RETURNING 1) ` +
    `SELECT (SELECT count(*) FROM removed) AS deleted, (SELECT count(*) FROM ${n.table}) - (SELECT count(*) FROM removed) AS total`,

  /** Parameter: quoted index name. */
  indexValid: 'SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = to_regclass($1)',
  createIndex: (n: CollectionNames, dimensions: number, metric: Metric, concurrently: boolean) =>
    `CREATE INDEX ${concurrently ? 'CONCURRENTLY ' : ''}IF NOT EXISTS ${quoteIdent(n.indexName)} ON ${n.table} ` +
    `USING hnsw (${indexedExpression(dimensions)} ${dimensions <= MAX_FULL_PRECISION_INDEX_DIMENSIONS ? 'vector' : 'halfvec'}_${METRIC_SQL[metric].ops})`,
  dropIndex: (n: CollectionNames, concurrently: boolean) => `DROP INDEX ${concurrently ? 'CONCURRENTLY ' : ''}IF EXISTS ${n.index}`,

  /** Session settings for one query through the HNSW index (inside a transaction: SET LOCAL). */
  querySettings: (efSearch: number, iterative: boolean) =>
    `BEGIN; SET LOCAL hnsw.ef_search = ${Math.trunc(efSearch)}` + (iterative ? '; SET LOCAL hnsw.iterative_scan = strict_order' : ''),

  /**
   * Nearest neighbours. $1 the query vector (text), $2 the limit, then one
   * (key, JSON value) pair of parameters per metadata filter field.
   */
  query: (n: CollectionNames, dimensions: number, metric: Metric, filterFields: number) => {
    const op = METRIC_SQL[metric].operator;
    const order =
      dimensions <= MAX_FULL_PRECISION_INDEX_DIMENSIONS
        ? `embedding ${op} $1::vector`
        : `(embedding::halfvec(${dimensions})) ${op} $1::halfvec(${dimensions})`;
    const filters = Array.from({ length: filterFields }, (_, i) => `metadata -> $${3 + 2 * i} = $${4 + 2 * i}::jsonb`);
    return (
      `SELECT id, text, metadata, embedding ${op} $1::vector AS distance FROM ${n.table}` +
      (filters.length > 0 ? ` WHERE ${filters.join(' AND ')}` : '') +
      ` ORDER BY ${order} LIMIT $2`
    );
  },
};

/** pgvector's text form of a vector: [1,2,3]. */
export function vectorLiteral(values: ArrayLike<number>): string {
  return `[${Array.prototype.join.call(values, ',')}]`;
}
