/**
 * Tables made by other tools (an ExistingCollection): where they are, which
 * columns hold what, the one catalog statement a status poll runs on them, and
 * what that statement means (ready, indexing, failed). The package never writes
 * into these tables nor builds their indexes: it reads.
 *
 * Layouts:
 * - Any table: `schema` (default "public"), `name` the table, `column` the vector
 *   column (default "embedding"), `index` one index to watch (default: any vector
 *   index on the column). Ids from a column "id" when present (as text, else the
 *   row's ctid), texts from "text", metadata from "metadata" (json or jsonb).
 * - Preset "langchain" (langchain-postgres PGVector 0.0.x, and the older
 *   langchain_community.vectorstores.PGVector it replaced): table
 *   `langchain_pg_embedding` with `collection_id` (uuid of the row of
 *   `langchain_pg_collection` whose `name` is ours), `embedding`, `document`,
 *   `cmetadata` (json in old versions, jsonb in new), and the id in `id`
 *   (langchain-postgres) or `custom_id` / `uuid` (langchain_community): detected.
 *   (langchain-postgres 0.0.x `langchain_postgres.vectorstores.PGVector`; its newer
 *   `PGVectorStore` makes one table per collection: watch it as any table.)
 * - Preset "llamaindex" (llama-index-vector-stores-postgres PGVectorStore, checked
 *   against its base.py of the 0.1-0.4 series): table `data_<table_name>`
 *   (get_data_model: tablename "data_%s"), with table_name and schema_name lower-cased
 *   by PGVectorStore.__init__; columns `embedding`, `text`, `metadata_` (json, or jsonb
 *   with use_jsonb), `node_id`. Its own HNSW index (hnsw_kwargs) is
 *   `data_<name>_embedding_idx`, made by a plain CREATE INDEX.
 */
import { VectorStoreError } from '../../errors';
import { collectionKey, collectionLabel } from '../../collection-ref';
import type { CollectionStatus, ExistingCollection, Metric } from '../../types';
import { refuseFields } from '../../collection-ref';
import { quoteIdent } from './sql';
import { decideStatus, type BuildProgressRow } from './status';
import type { BuildSession, VectorBuildReader } from './vector-builds';

/** Longest identifier Postgres keeps; a longer name would be cut and could name another table. */
const MAX_IDENTIFIER_BYTES = 63;

/** Where a table made by another tool is and what its columns hold. */
export interface ExistingLayout {
  /** For messages: "schema.table", "langchain:name". */
  label: string;
  /** For maps of this instance (ETA, last status). */
  key: string;
  schema: string;
  tableName: string;
  /** "schema"."table", quoted. */
  table: string;
  column: string;
  /** The one index to watch, or null for any vector index on the column. */
  index: string | null;
  preset: 'langchain' | 'llamaindex' | null;
  /** Preset langchain: the collection's name in langchain_pg_collection. */
  langchainCollection: string | null;
  /** Preset langchain: "schema"."langchain_pg_collection", quoted. */
  langchainCollectionTable: string | null;
}

function invalid(message: string): VectorStoreError {
  return new VectorStoreError('INVALID_INPUT', message, { transient: false });
}

function identifier(value: string, field: string, label: string): string {
  if (Buffer.byteLength(value) > MAX_IDENTIFIER_BYTES) {
    throw invalid(
      `The ${field} ${JSON.stringify(value)} of the pgvector table ${label} is longer than ${MAX_IDENTIFIER_BYTES} bytes, ` +
        'which Postgres cuts short: give the name as Postgres stores it.',
    );
  }
  return value;
}

/** The layout of an ExistingCollection (presets, defaults), checking its names. */
export function layoutOf(ref: ExistingCollection): ExistingLayout {
  const label = collectionLabel(ref);
  refuseFields(ref, 'pgvector', ['path']);
  // LlamaIndex lower-cases the schema name it is given, as it does the table name.
  const givenSchema = ref.preset === 'llamaindex' && ref.schema ? ref.schema.toLowerCase() : ref.schema;
  const schema = identifier(givenSchema ?? 'public', 'schema', label);
  const index = ref.index !== undefined ? identifier(ref.index, 'index', label) : null;
  const base = { label, key: collectionKey(ref), schema, index };
  if (ref.preset && ref.column !== undefined) {
    throw invalid(
      `"column" cannot be given with the preset "${ref.preset}" (${label}): that layout fixes the vector column ("embedding"). ` +
        'Leave "column" out, or name the table without a preset.',
    );
  }
  if (ref.preset === 'langchain') {
    return {
      ...base,
      tableName: 'langchain_pg_embedding',
      table: `${quoteIdent(schema)}.${quoteIdent('langchain_pg_embedding')}`,
      column: 'embedding',
      preset: 'langchain',
      langchainCollection: ref.name,
      langchainCollectionTable: `${quoteIdent(schema)}.${quoteIdent('langchain_pg_collection')}`,
    };
  }
  if (ref.preset === 'llamaindex') {
    const tableName = identifier(`data_${ref.name.toLowerCase()}`, 'table', label);
    return {
      ...base,
      tableName,
      table: `${quoteIdent(schema)}.${quoteIdent(tableName)}`,
      column: 'embedding',
      preset: 'llamaindex',
      langchainCollection: null,
      langchainCollectionTable: null,
    };
  }
  const tableName = identifier(ref.name, 'table', label);
  return {
    ...base,
    tableName,
    table: `${quoteIdent(schema)}.${quoteIdent(tableName)}`,
    column: identifier(ref.column ?? 'embedding', 'column', label),
    preset: null,
    langchainCollection: null,
    langchainCollectionTable: null,
  };
}

// ---------------------------------------------------------------- the catalog statement

/**
 * Everything about the table in one statement that reads no rows: its row
 * estimates, its columns, its indexes (name, access method, validity, operator
 * class, whether it covers the vector column), index builds on it (progress rows,
 * with the session's statement) and sessions holding a build's lock that the
 * progress view hides (another role's). No row when the table does not exist.
 * Parameters: $1 schema, $2 table, $3 vector column.
 */
export const READ_EXISTING =
  `SELECT c.reltuples, (SELECT n_live_tup FROM pg_stat_user_tables WHERE relid = c.oid) AS live_tuples, ` +
  `(SELECT json_agg(json_build_object('name', a.attname, 'type', t.typname, 'typmod', a.atttypmod, ` +
  `'shown', format_type(a.atttypid, a.atttypmod)) ORDER BY a.attnum) FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid ` +
  `WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns, ` +
  `(SELECT coalesce(json_agg(json_build_object('oid', i.indexrelid::int8, 'name', ic.relname, 'am', am.amname, 'valid', i.indisvalid, ` +
  `'opclass', (SELECT opcname FROM pg_opclass WHERE oid = i.indclass[0]), 'definition', pg_get_indexdef(i.indexrelid), ` +
  `'onColumn', EXISTS (SELECT 1 FROM pg_depend d JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.refobjsubid ` +
  `WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid AND d.refobjid = c.oid AND a.attname = $3))), '[]'::json) ` +
  `FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam WHERE i.indrelid = c.oid) AS indexes, ` +
  `(SELECT coalesce(json_agg(json_build_object('phase', p.phase, 'blocksDone', p.blocks_done, 'blocksTotal', p.blocks_total, ` +
  `'tuplesDone', p.tuples_done, 'tuplesTotal', p.tuples_total, 'pid', p.pid, 'indexRelid', p.index_relid::int8, ` +
  `'query', (SELECT query FROM pg_stat_activity WHERE pid = p.pid))), '[]'::json) ` +
  `FROM pg_stat_progress_create_index p WHERE p.relid = c.oid AND p.pid <> pg_backend_pid()) AS builds, ` +
  `(SELECT coalesce(json_agg(json_build_object('pid', l.pid, 'query', (SELECT query FROM pg_stat_activity WHERE pid = l.pid))), '[]'::json) ` +
  `FROM pg_locks l WHERE l.locktype = 'relation' AND l.relation = c.oid AND l.granted ` +
  `AND l.mode IN ('ShareUpdateExclusiveLock', 'ShareLock') AND l.pid <> pg_backend_pid() ` +
  `AND l.pid NOT IN (SELECT pid FROM pg_stat_progress_vacuum UNION SELECT pid FROM pg_stat_progress_analyze) ` +
  `AND l.pid NOT IN (SELECT pid FROM pg_stat_progress_create_index WHERE relid = c.oid)) AS lockers, ` +
  `(SELECT extversion FROM pg_extension WHERE extname = 'vector') AS vector_version ` +
  `FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`;

export interface ExistingColumn {
  name: string;
  /** Base type name: "vector", "halfvec", "jsonb", "text", ... */
  type: string;
  typmod: number;
  /** As psql shows it: "vector(3)". */
  shown: string;
}

export interface ExistingIndex {
  oid: number;
  name: string;
  am: string;
  valid: boolean;
  opclass: string | null;
  definition: string;
  onColumn: boolean;
}

export interface ExistingRow {
  reltuples: number | null;
  live_tuples: string | null;
  columns: ExistingColumn[] | null;
  indexes: ExistingIndex[];
  builds: Array<BuildProgressRow & { indexRelid: number | null; query: string | null }>;
  lockers: Array<{ pid: number; query: string | null }>;
  vector_version: string | null;
}

/** What the table is, once checked: its vector column and the indexes that count. */
export interface ExistingTable {
  layout: ExistingLayout;
  /** The vector column's base type ("vector" or "halfvec") and declared dimensions (0: not declared). */
  vectorType: string;
  dimensions: number;
  /** Vector indexes on the column (only the named one when `index` is given). */
  vectorIndexes: ExistingIndex[];
  /** Columns read by queries: SQL expressions (quoted identifiers). */
  idSql: string;
  textSql: string;
  metadataSql: string;
  vectorVersion: string | null;
  row: ExistingRow;
}

/** Check the table's vector column and named index; throws INVALID_INPUT saying what was found instead. */
export function checkTable(layout: ExistingLayout, row: ExistingRow, builds: VectorBuildReader): ExistingTable {
  const columns = row.columns ?? [];
  const byName = new Map(columns.map((c) => [c.name, c]));
  const vector = byName.get(layout.column);
  const where = `the table ${layout.schema}.${layout.tableName} (${layout.label})`;
  if (!vector || !builds.isVectorType(vector.type)) {
    const found = vector ? `it is of type ${vector.shown}` : `the table has the columns ${columns.map((c) => `"${c.name}" ${c.shown}`).join(', ') || '(none)'}`;
    throw invalid(`The column "${layout.column}" of ${where} is not a pgvector vector column: ${found}. Name the vector column with "column".`);
  }
  const onColumn = row.indexes.filter((i) => i.onColumn && builds.isVectorMethod(i.am));
  let vectorIndexes = onColumn;
  if (layout.index !== null) {
    const named = row.indexes.find((i) => i.name === layout.index);
    if (named && !builds.isVectorMethod(named.am)) {
      throw invalid(
        `The index "${layout.index}" of ${where} is a ${named.am} index (${named.definition}), not a vector index ` +
          `(${builds.accessMethods.join(', ')}): name a vector index, or leave "index" out to watch any vector index on "${layout.column}".`,
      );
    }
    if (named && !named.onColumn) {
      throw invalid(`The index "${layout.index}" of ${where} is not on the column "${layout.column}" (${named.definition}).`);
    }
    vectorIndexes = named ? [named] : [];
  }
  const has = (name: string) => byName.has(name);
  const col = quoteIdent;
  let idSql = has('id') ? `${col('id')}::text` : 'ctid::text';
  let textSql = has('text') ? `${col('text')}::text` : 'NULL::text';
  let metadataSql = has('metadata') && ['json', 'jsonb'].includes(byName.get('metadata')!.type) ? `${col('metadata')}::jsonb` : 'NULL::jsonb';
  if (layout.preset === 'langchain') {
    // langchain-postgres: "id"; langchain_community: "custom_id" (the caller's id, may be null) or the row's "uuid".
    if (has('id')) idSql = `${col('id')}::text`;
    else if (has('custom_id')) idSql = `coalesce(${col('custom_id')}::text, ${has('uuid') ? `${col('uuid')}::text` : 'ctid::text'})`;
    else if (has('uuid')) idSql = `${col('uuid')}::text`;
    textSql = has('document') ? `${col('document')}::text` : 'NULL::text';
    metadataSql = has('cmetadata') ? `${col('cmetadata')}::jsonb` : 'NULL::jsonb';
  } else if (layout.preset === 'llamaindex') {
    idSql = has('node_id') ? `${col('node_id')}::text` : idSql;
    metadataSql = has('metadata_') ? `${col('metadata_')}::jsonb` : 'NULL::jsonb';
  }
  return {
    layout,
    vectorType: vector.type,
    dimensions: vector.typmod > 0 ? vector.typmod : 0,
    vectorIndexes,
    idSql,
    textSql,
    metadataSql,
    vectorVersion: row.vector_version,
    row,
  };
}

/** The metric of a vector index's operator class; null for one this package does not query by (l1, hamming, jaccard). */
export function metricOfOpclass(opclass: string | null): Metric | null {
  if (!opclass) return null;
  if (/_cosine_ops$/.test(opclass)) return 'cosine';
  if (/_l2_ops$/.test(opclass)) return 'l2';
  if (/_ip_ops$/.test(opclass)) return 'dot';
  return null;
}

/** The index queries go through: a valid one, preferring HNSW. */
export function servingIndex(table: ExistingTable): ExistingIndex | null {
  const valid = table.vectorIndexes.filter((i) => i.valid);
  return valid.find((i) => i.am === 'hnsw') ?? valid[0] ?? null;
}

// ---------------------------------------------------------------- status

export function decideExistingStatus(table: ExistingTable, documentCount: number, builds: VectorBuildReader): CollectionStatus {
  const { layout, row } = table;
  const watch = { column: layout.column, index: layout.index };
  const ready: CollectionStatus = { state: 'ready', documentCount, indexedCount: documentCount, progress: 1, etaSeconds: 0, phase: null };
  const serving = servingIndex(table);
  if (serving) return ready; // a valid vector index on the column serves every row (Postgres indexes each write)

  const byOid = new Map(row.indexes.map((i) => [Number(i.oid), i]));
  const sessions = row.builds.map((b) => {
    const index = b.indexRelid ? byOid.get(Number(b.indexRelid)) : undefined;
    const session: BuildSession = {
      pid: b.pid ?? null,
      indexRelid: b.indexRelid ? Number(b.indexRelid) : 0,
      indexName: index?.name ?? null,
      indexAm: index?.am ?? null,
      onColumn: index?.onColumn ?? null,
      query: b.query,
    };
    return { row: b, session, kind: builds.kindOf(session, watch) };
  });
  const vectorBuilds = sessions.filter((s) => s.kind !== 'other');
  const hiddenLockers = row.lockers.filter((l) => builds.kindOf({ pid: l.pid, query: l.query }, watch) !== 'other');
  if (vectorBuilds.length > 0 || hiddenLockers.length > 0) {
    return decideStatus({
      documentCount,
      indexValid: null,
      builds: vectorBuilds.map((s) => ({
        phase: String(s.row.phase ?? ''),
        blocksDone: numberOrNull(s.row.blocksDone),
        blocksTotal: numberOrNull(s.row.blocksTotal),
        tuplesDone: numberOrNull(s.row.tuplesDone),
        tuplesTotal: numberOrNull(s.row.tuplesTotal),
        pid: numberOrNull(s.row.pid),
        label:
          s.kind === 'unknown'
            ? `an index whose kind this database user cannot see (its statement is hidden without pg_read_all_stats), taken for a vector index`
            : (builds.labelOf(s.session) ?? `an index on "${layout.column}"`),
      })),
      activity: null,
      failure: null,
      otherBuilders: hiddenLockers.map((l) => Number(l.pid)),
      indexName: layout.index ?? layout.column,
    });
  }
  const invalid = table.vectorIndexes.find((i) => !i.valid);
  if (invalid) {
    return {
      state: 'failed',
      documentCount,
      indexedCount: 0,
      progress: null,
      etaSeconds: null,
      phase: null,
      detail:
        `the ${invalid.am} index "${invalid.name}" on ${layout.schema}.${layout.tableName} ("${layout.column}") is invalid and no build ` +
        'of it is running (a CREATE INDEX CONCURRENTLY failed or was interrupted). Queries still work, by an exact scan; ' +
        `drop it and build it again with the tool that made it (DROP INDEX CONCURRENTLY, then CREATE INDEX CONCURRENTLY)`,
    };
  }
  if (layout.index !== null) {
    return {
      state: 'indexing',
      documentCount,
      indexedCount: 0,
      progress: null,
      etaSeconds: null,
      phase: null,
      detail:
        `the index "${layout.index}" does not exist yet on ${layout.schema}.${layout.tableName} and no build of it is running: ` +
        'waiting for it to be created (by the tool that builds it)',
    };
  }
  // No vector index and no build: queries scan every row, so every row is searchable.
  return { ...ready, detail: `no vector index on "${layout.column}": queries scan every row exactly` };
}

function numberOrNull(value: unknown): number | null {
  if (value === null || value === undefined) return null;
  const n = Number(value);
  return Number.isFinite(n) ? n : null;
}
