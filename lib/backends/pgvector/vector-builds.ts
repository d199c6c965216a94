/**
 * Which index builds on a table are vector index builds on the watched column, and
 * which are not (a btree, gin, brin or hash index, or a vector index on another
 * column): only the first kind is "indexing". Used for the package's own collections
 * and for tables made by other tools (./existing.ts).
 *
 * What Postgres shows of a build in progress:
 * - CREATE INDEX CONCURRENTLY: a row of pg_stat_progress_create_index whose
 *   index_relid is the (still invalid) index in pg_index: its access method and
 *   columns are in the catalog.
 * - CREATE INDEX: a progress row with index_relid 0; the index is not in the catalog
 *   yet, so its kind is read from the statement (pg_stat_activity.query: USING hnsw
 *   or ivfflat, on the column). Another role's statement is hidden without
 *   pg_read_all_stats: then the kind cannot be told, and the caller says so.
 * - A build by another role is absent from the progress view without
 *   pg_read_all_stats, but its lock on the table is in pg_locks (see build-sessions.ts).
 *
 * The access methods that count as vector indexes are a constructor option, so that
 * the detection is tested on a PostgreSQL without pgvector (gin standing in for hnsw).
 */

/** pgvector's index access methods. */
export const VECTOR_ACCESS_METHODS: readonly string[] = ['hnsw', 'ivfflat'];

/** What a status statement returns about one session building an index on the table. */
export interface BuildSession {
  pid: number | null;
  /** index_relid of the progress row (0: not in the catalog yet, a plain CREATE INDEX), null: seen by its lock only. */
  indexRelid?: number | null;
  /** The index being built, when in the catalog: its name, access method, and whether it covers the column. */
  indexName?: string | null;
  indexAm?: string | null;
  onColumn?: boolean | null;
  /** pg_stat_activity.query of the session: null or "<insufficient privilege>" when hidden. */
  query?: string | null;
}

/** vector: a vector index build on the column; other: something else; unknown: cannot be told (statement hidden). */
export type BuildKind = 'vector' | 'other' | 'unknown';

export interface BuildWatch {
  /** The vector column. */
  column: string;
  /** Only builds of this index count (a named index); null: any vector index on the column. */
  index: string | null;
}

/** What a CREATE INDEX statement says (null when the text is not one). */
export interface CreateIndexStatement {
  concurrently: boolean;
  /** The index name as written, unquoted; null when not given. */
  name: string | null;
  accessMethod: string;
  /** Text inside the parentheses after USING. */
  keys: string;
}

const IDENT = String.raw`(?:"(?:[^"]|"")*"|[A-Za-z_][\w$]*)`;
const CREATE_INDEX = new RegExp(
  String.raw`^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?((?!ON\s)${IDENT}(?:\s*\.\s*${IDENT})?\s+)?` +
    String.raw`ON\s+(?:ONLY\s+)?${IDENT}(?:\s*\.\s*${IDENT})?\s*(?:USING\s+(${IDENT})\s*)?\(([\s\S]*)\)`,
  'i',
);

/** An identifier as Postgres reads it: quoted kept as is, unquoted folded to lower case. */
function unquote(ident: string): string {
  const trimmed = ident.trim();
  if (trimmed.startsWith('"')) return trimmed.slice(1, -1).replace(/""/g, '"');
  return trimmed.toLowerCase();
}

export function parseCreateIndex(query: string): CreateIndexStatement | null {
  const match = CREATE_INDEX.exec(query.replace(/--[^\n]*/g, ' '));
  if (!match) return null;
  const qualified = match[2]?.trim() ?? null;
  // "schema"."name": the index's own name is the last part.
  const name = qualified ? unquote(qualified.match(new RegExp(`${IDENT}$`))?.[0] ?? qualified) : null;
  return { concurrently: Boolean(match[1]), name, accessMethod: match[3] ? unquote(match[3]) : 'btree', keys: match[4] };
}

/** Does the key list use the column (as a quoted identifier, or unquoted when its name allows)? */
function keysUse(keys: string, column: string): boolean {
  const quoted = `"${column.replace(/"/g, '""')}"`;
  if (keys.includes(quoted)) return true;
  if (!/^[a-z_][a-z0-9_$]*$/.test(column)) return false;
  return new RegExp(`(^|[^\\w$"])${column.replace(/\$/g, '\\$')}($|[^\\w$"])`, 'i').test(keys);
}

/** Is the statement visible to this user? */
export function visibleQuery(query: string | null | undefined): string | null {
  if (typeof query !== 'string' || query === '' || query === '<insufficient privilege>') return null;
  return query;
}

/** pgvector's column types (pg_type.typname) a table made by another tool may hold its vectors in. */
export const VECTOR_COLUMN_TYPES: readonly string[] = ['vector', 'halfvec'];

/** Tells vector index builds from the others; `accessMethods` and `columnTypes` default to pgvector's. */
export class VectorBuildReader {
  readonly accessMethods: readonly string[];
  readonly columnTypes: readonly string[];

  constructor(options: { accessMethods?: readonly string[]; columnTypes?: readonly string[] } = {}) {
    this.accessMethods = (options.accessMethods ?? VECTOR_ACCESS_METHODS).map((m) => m.toLowerCase());
    this.columnTypes = options.columnTypes ?? VECTOR_COLUMN_TYPES;
  }

  isVectorType(typname: string): boolean {
    return this.columnTypes.includes(typname);
  }

  isVectorMethod(accessMethod: string | null | undefined): boolean {
    return typeof accessMethod === 'string' && this.accessMethods.includes(accessMethod.toLowerCase());
  }

  kindOf(session: BuildSession, watch: BuildWatch): BuildKind {
    if (session.indexRelid && session.indexAm) {
      // In the catalog (CONCURRENTLY): read it there.
      if (watch.index !== null && session.indexName !== watch.index) return 'other';
      return this.isVectorMethod(session.indexAm) && session.onColumn === true ? 'vector' : 'other';
    }
    const query = visibleQuery(session.query);
    if (query === null) return 'unknown';
    const statement = parseCreateIndex(query);
    if (!statement) return 'other'; // the lock is held by something else (ALTER TABLE, CREATE STATISTICS, ...)
    if (watch.index !== null && statement.name !== watch.index) return 'other';
    return this.isVectorMethod(statement.accessMethod) && keysUse(statement.keys, watch.column) ? 'vector' : 'other';
  }

  /** How a build is named in details: `the hnsw index "x"`, from the catalog or the statement. */
  labelOf(session: BuildSession): string | null {
    if (session.indexRelid && session.indexName) return `the ${session.indexAm ?? 'vector'} index "${session.indexName}"`;
    const query = visibleQuery(session.query);
    const statement = query ? parseCreateIndex(query) : null;
    if (!statement) return null;
    return `the ${statement.accessMethod} index${statement.name ? ` "${statement.name}"` : ''}`;
  }
}
