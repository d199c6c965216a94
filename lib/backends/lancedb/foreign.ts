/**
 * Tables made by another tool (LangChain JS, LlamaIndex, a script with the
 * lancedb client) in the database directory, named by an ExistingCollection.
 *
 * The package only reads them: it never writes, indexes or optimizes another
 * tool's table. So `status` is what LanceDB itself says of the vector index on
 * the watched column (its unindexed rows), and rows wait until the other tool
 * optimizes.
 *
 * Layout, read from the table's schema on every call (another tool may add columns):
 * - the vector column: the one fixed-size list of floats, or the one named by `column`;
 * - id: the `id` column as text when there is one, else LanceDB's row id (`_rowid`,
 *   the row's position: its fragment and offset);
 * - text: the `text` column when there is one;
 * - metadata: the `metadata` column (a struct, or JSON text) when there is one,
 *   else the other scalar columns (strings, numbers, booleans, dates).
 * - metric: the one the package recorded (a package table), else the vector
 *   index's own distance type, else LanceDB's default (l2).
 */
import type * as LanceDb from '@lancedb/lancedb';
import { collectionLabel, refuseFields } from '../../collection-ref';
import { VectorStoreError } from '../../errors';
import type { ExistingCollection, Metric, QueryHit } from '../../types';
import { isPlainObject } from '../values';
import { scoreOf } from './documents';
import { MIN_ETA_SECONDS, SmoothedRate } from './maintenance';

/** LanceDB's own rule for table names (it panics on others): ASCII letters, digits, "_", "-" and ".". */
export const LANCE_TABLE_NAME_PATTERN = /^[A-Za-z0-9_.-]+$/;

/** The fields of an ExistingCollection that only pgvector uses. */
const PGVECTOR_ONLY = ['schema', 'index', 'preset'] as const;
const ROW_ID = '_rowid';
const DISTANCE = '_distance';
const METADATA_COLUMN = 'metadata';

/** Schema metadata key of the package's own tables (see database.ts). */
export const METRIC_KEY = 'vector_pipeline.metric';
const METRICS: readonly Metric[] = ['cosine', 'l2', 'dot'];
/** LanceDB's index details name the distance type in capitals. */
const INDEX_METRIC: Record<string, Metric> = { COSINE: 'cosine', L2: 'l2', DOT: 'dot' };

/** Refuse the fields LanceDB does not use and a name outside LanceDB's rule; returns the table name. */
export function checkForeignRef(ref: ExistingCollection, dir: string): string {
  refuseFields(ref, 'LanceDB', PGVECTOR_ONLY);
  if (!LANCE_TABLE_NAME_PATTERN.test(ref.name)) {
    throw new VectorStoreError(
      'INVALID_INPUT',
      `${JSON.stringify(ref.name)} cannot be a LanceDB table name (in ${dir}): LanceDB allows only letters A-Z and a-z, ` +
        'digits, "_", "-" and "." in table names. Check the name the other tool gave the table.',
    );
  }
  return ref.name;
}

/** What a call needs to know of another tool's table: its vector column and how to read a row. */
export interface ForeignLayout {
  name: string;
  /** `LanceDB table "My.Docs"`, for messages. */
  label: string;
  column: string;
  dimensions: number;
  /** Columns of the id, text and metadata, when the table has them. */
  idColumn: string | null;
  textColumn: string | null;
  metadataColumn: string | null;
  /** Without a metadata column: the scalar columns that make the metadata. */
  scalarColumns: string[];
  /** From the package's schema metadata (a package table), else null: the index decides. */
  recordedMetric: Metric | null;
}

interface SchemaField {
  name: string;
  type: { toString(): string };
}

/** "FixedSizeList[8]<Float32>" -> 8; null for any other type. */
function vectorDimensions(type: string): number | null {
  const match = /^FixedSizeList\[(\d+)\]<Float(16|32|64)>$/.exec(type);
  return match ? Number(match[1]) : null;
}

/** Strings, numbers, booleans and dates: what a metadata field can be. */
function isScalarType(type: string): boolean {
  return /^(Utf8|LargeUtf8|Utf8View|Bool|u?int\d+|Int\d*|Uint\d+|Float\d*|Decimal.*|Date.*|Timestamp.*)$/i.test(type);
}

/** Read the layout from the table's schema; INVALID_INPUT when no vector column can be chosen. */
export function foreignLayout(
  ref: ExistingCollection,
  fields: readonly SchemaField[],
  schemaMetadata: Map<string, string>,
  dir: string,
): ForeignLayout {
  const label = `LanceDB table "${collectionLabel(ref)}"`;
  const typed = fields.map((f) => ({ name: f.name, type: String(f.type) }));
  const vectors = typed.filter((f) => vectorDimensions(f.type) !== null);
  const found = vectors.length === 0 ? 'none' : vectors.map((f) => `"${f.name}" (${f.type})`).join(', ');
  let vector: { name: string; type: string };
  if (ref.column !== undefined) {
    const named = typed.find((f) => f.name === ref.column);
    if (!named || vectorDimensions(named.type) === null) {
      throw new VectorStoreError(
        'INVALID_INPUT',
        (named
          ? `The ${label} in ${dir} has a column "${ref.column}" of type ${named.type}, which is not a vector column (a fixed-size list of floats). `
          : `The ${label} in ${dir} has no column "${ref.column}". `) + `Vector columns found: ${found}.`,
      );
    }
    vector = named;
  } else if (vectors.length === 1) {
    vector = vectors[0];
  } else {
    throw new VectorStoreError(
      'INVALID_INPUT',
      vectors.length === 0
        ? `The ${label} in ${dir} has no vector column (a fixed-size list of floats); its columns are ` +
            `${typed.map((f) => `"${f.name}" (${f.type})`).join(', ')}. Watch a table that holds vectors.`
        : `The ${label} in ${dir} has several vector columns: ${found}. Say which one to watch with "column".`,
    );
  }
  const has = (name: string) => typed.some((f) => f.name === name);
  const idColumn = has('id') ? 'id' : null;
  const textColumn = has('text') && vector.name !== 'text' ? 'text' : null;
  const metadataColumn = has(METADATA_COLUMN) && vector.name !== METADATA_COLUMN ? METADATA_COLUMN : null;
  const taken = new Set([vector.name, idColumn, textColumn]);
  const scalarColumns = metadataColumn
    ? []
    : typed.filter((f) => !taken.has(f.name) && !f.name.startsWith('_') && isScalarType(f.type)).map((f) => f.name);
  const stored = schemaMetadata.get(METRIC_KEY) as Metric | undefined;
  return {
    name: ref.name,
    label,
    column: vector.name,
    dimensions: vectorDimensions(vector.type)!,
    idColumn,
    textColumn,
    metadataColumn,
    scalarColumns,
    recordedMetric: stored && METRICS.includes(stored) ? stored : null,
  };
}

/** The metric searches use: the package's record, else the index's distance type, else LanceDB's default (l2). */
export function metricOf(layout: ForeignLayout, index: ForeignIndex | null): Metric {
  if (layout.recordedMetric) return layout.recordedMetric;
  const details = index?.indexDetails;
  const named = isPlainObject(details) ? INDEX_METRIC[String(details.metric_type).toUpperCase()] : undefined;
  return named ?? 'l2';
}

/** The columns a search selects: never the vectors. */
export function selectedColumns(layout: ForeignLayout): string[] {
  const columns = [layout.idColumn, layout.textColumn, layout.metadataColumn, ...layout.scalarColumns];
  return [...columns.filter((c): c is string => c !== null), DISTANCE];
}

/** A row found by a search (with `_rowid`) as a hit. */
export function foreignHit(row: Record<string, unknown>, layout: ForeignLayout, metric: Metric): QueryHit {
  const id = layout.idColumn ? row[layout.idColumn] : row[ROW_ID];
  const text = layout.textColumn ? row[layout.textColumn] : null;
  return {
    id: id === null || id === undefined ? String(row[ROW_ID]) : String(plainValue(id)),
    score: scoreOf(Number(row[DISTANCE]), metric),
    text: text === null || text === undefined ? null : String(plainValue(text)),
    metadata: foreignMetadata(row, layout),
  };
}

function foreignMetadata(row: Record<string, unknown>, layout: ForeignLayout): Record<string, unknown> {
  if (layout.metadataColumn) {
    const value = plainValue(row[layout.metadataColumn]);
    if (typeof value === 'string') {
      try {
        const parsed: unknown = JSON.parse(value);
        return isPlainObject(parsed) ? parsed : {};
      } catch {
        return {};
      }
    }
    return isPlainObject(value) ? value : {};
  }
  const metadata: Record<string, unknown> = {};
  for (const column of layout.scalarColumns) {
    const value = plainValue(row[column]);
    if (value !== undefined) metadata[column] = value;
  }
  return metadata;
}

/**
 * An Arrow value as plain JSON: a BigInt as a number (as text when too large),
 * a Date as ISO text, a struct or list as an object or array.
 */
export function plainValue(value: unknown): unknown {
  if (typeof value === 'bigint') {
    return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(value) : value.toString();
  }
  if (value instanceof Date) return value.toISOString();
  if (value === null || typeof value !== 'object') return value;
  if (ArrayBuffer.isView(value)) return Array.from(value as unknown as ArrayLike<number>, (v) => plainValue(v));
  const json = (value as { toJSON?: () => unknown }).toJSON;
  const plain = typeof json === 'function' ? json.call(value) : value;
  if (Array.isArray(plain)) return plain.map(plainValue);
  if (plain === null || typeof plain !== 'object') return plain;
  const result: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(plain as Record<string, unknown>)) result[key] = plainValue(v);
  return result;
}

/** A vector index on the watched column, as LanceDB lists it. */
export interface ForeignIndex {
  name: string;
  /** As LanceDB names it, e.g. "IvfFlat". */
  indexType: string;
  numUnindexedRows: number;
  /** LanceDB's details, with the distance type as `metric_type`. */
  indexDetails?: unknown;
}

/** The vector index on the column, with LanceDB's own counters; null when it has none. */
export async function foreignIndex(table: LanceDb.Table, column: string): Promise<ForeignIndex | null> {
  const index = (await table.listIndices()).find((i) => i.columns.length === 1 && i.columns[0] === column);
  if (!index) return null;
  let unindexed = index.numUnindexedRows;
  if (unindexed === undefined) unindexed = (await table.indexStats(index.name))?.numUnindexedRows ?? 0;
  return { name: index.name, indexType: index.indexType, numUnindexedRows: unindexed, indexDetails: (index as { indexDetails?: unknown }).indexDetails };
}

/**
 * The rate at which another tool folds unindexed rows into the index, as status
 * sees the backlog shrink (the package runs nothing on such a table), for an ETA.
 */
export class ForeignBacklog {
  private readonly rate = new SmoothedRate();
  private last: { rows: number; since: number } | null = null;

  /** Status saw `rows` unindexed rows at t (epoch ms). */
  observe(rows: number, t: number): void {
    const last = this.last;
    if (last && rows === last.rows) return;
    if (last && rows < last.rows) this.rate.add(last.rows - rows, (t - last.since) / 1000);
    this.last = rows > 0 ? { rows, since: t } : null;
  }

  /** Seconds until the backlog is gone at the rate seen, less the time since it last changed; null before any drop was seen, never 0. */
  etaSeconds(rows: number, t: number): number | null {
    const rate = this.rate.rowsPerSecond;
    if (rate === null) return null;
    const waited = this.last ? (t - this.last.since) / 1000 : 0;
    return Math.max(MIN_ETA_SECONDS, rows / rate - waited);
  }
}
