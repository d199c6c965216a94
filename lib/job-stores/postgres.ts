/**
 * Durable work (sensor waits and ingest jobs) kept in one PostgreSQL table that
 * several Node-RED instances share, each record leased by one instance at a time.
 *
 * The rules, which every method keeps:
 * - A record is worked on only by the instance that holds its live lease
 *   (lease_holder set, lease_until in the future by the database's clock: the
 *   instances' own clocks never count). put() leases a record to the instance
 *   that accepted it; claim() leases records whose lease is missing or over, with
 *   FOR UPDATE SKIP LOCKED in one statement, so two instances never get the same
 *   record; heartbeat() renews the live leases of an instance; release() ends them.
 * - saveSpec() and markFinal() succeed only for the holder of a live lease.
 *   markFinal() is the commit that decides "this instance ends the wait": it
 *   moves the record from 'pending' to 'delivering' once; the final is delivered
 *   only after it returned true, and remove() follows delivery.
 * - A record claimed in state 'delivering' (its holder died between that commit
 *   and remove) comes back with `final` set: the final may have gone out, and is
 *   delivered again flagged as a redelivery.
 * - Specs and messages are the very JSON the file store writes (lib/wait-store.ts),
 *   read back with adoptDurableSpec. A record this version cannot read (a newer
 *   format) is never deleted or held: its lease is given back at once, it is
 *   reported once, and this store claims it no more (a newer instance may).
 *
 * Every call has a deadline (statement_timeout and lock_timeout on the server, a
 * query timeout and a connection timeout on the client) and rejects with a
 * VectorStoreError, transient for connection problems. The password never
 * appears in a message.
 */
import type * as Pg from 'pg';
import { VectorStoreError, messageOf, type ErrorCode } from '../errors';
import { redact, redactError } from '../redact';
import { reasonOf, sqlState, timeoutKind } from '../backends/pgvector/errors';
import { adoptDurableSpec, isJobRecord, type DurableRecord, type DurableSpec } from '../wait-store';
import type { PostgresJobStoreSettings } from '../settings';
import { migrate, NewerTableError, MIGRATIONS } from './migrations';
import type { HolderCount } from './holder-counts';

export interface PostgresJobStoreOptions {
  settings: Pick<PostgresJobStoreSettings, 'host' | 'port' | 'user' | 'database' | 'password' | 'schema' | 'table' | 'where'>;
  /** Longest time one call may take (the runtime setting storeTimeout), in ms. */
  callTimeoutMs?: number;
  /** Connections of the pool. */
  maxConnections?: number;
  /** Records this version cannot read (once each). */
  log?: { warn(message: string): void };
}

/** A claimed record: `final` set when its holder had committed the final (a redelivery). */
export type ClaimedRecord = DurableRecord & { state: 'pending' | 'delivering' };

export interface PostgresJobStoreStats {
  records: number;
  pending: number;
  delivering: number;
  /** Records with a live lease, any holder. */
  leased: number;
  /** Statements of this store's calls, migrations aside (for the benchmark's statements per second). */
  statements: number;
  /** Records this version cannot read, left in the table. */
  unreadable: number;
}

const DEFAULT_CALL_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_CONNECTIONS = 4;
const IDLE_TIMEOUT_MS = 30_000;
/**
 * Most specs written by one progress statement. At 100,000 waits one statement per
 * wait made a heartbeat's progress take longer than the lease; batches of this size
 * stay far from the call deadline.
 */
export const PROGRESS_BATCH = 1_000;
const APPLICATION_NAME = 'node-red-vector-pipeline job store';

interface WorkRow {
  id: string;
  owner_id: string;
  spec: unknown;
  message: unknown;
  final: unknown;
  state: 'pending' | 'delivering';
}

let pgModule: typeof Pg | null = null;

function loadPg(): typeof Pg {
  if (!pgModule) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      pgModule = require('pg') as typeof Pg;
    } catch (err) {
      throw new VectorStoreError(
        'NOT_INSTALLED',
        'The PostgreSQL job store needs the "pg" package, which is missing: run `npm install pg` in the Node-RED user directory, then restart Node-RED.',
        { cause: err },
      );
    }
  }
  return pgModule;
}

/** A lease time the caller computed from the settings: a mistake there is a bug, named plainly. */
function checkLease(leaseMs: number): void {
  if (!(Number.isFinite(leaseMs) && leaseMs > 0)) {
    throw new VectorStoreError('INVALID_INPUT', `A job store lease must be a positive number of milliseconds, not ${String(leaseMs)}: check vectorPipeline.jobStore.leaseSeconds.`);
  }
}

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

export class PostgresJobStore {
  private readonly settings: PostgresJobStoreOptions['settings'];
  private readonly callTimeoutMs: number;
  private readonly maxConnections: number;
  private readonly warn: (message: string) => void;
  /** `"schema"."table"`: validated lower-case identifiers (lib/settings.ts). */
  private readonly table: string;
  private pool: Pg.Pool | null = null;
  private closed = false;
  private statements = 0;
  /** The instances this store acted for: close() releases their leases. */
  private readonly instances = new Set<string>();
  /** Ids of records this version cannot read: reported once, never claimed again by this store. */
  private readonly unreadable = new Set<string>();

  constructor(options: PostgresJobStoreOptions) {
    const { schema, table } = options.settings;
    for (const [name, value] of [['schema', schema], ['table', table]] as const) {
      if (!/^[a-z_][a-z0-9_]{0,62}$/.test(value)) {
        throw new VectorStoreError('INVALID_INPUT', `The job store ${name} must be a lower-case SQL name (letters, digits and _): set vectorPipeline.jobStore.${name}.`);
      }
    }
    this.settings = options.settings;
    this.table = `"${schema}"."${table}"`;
    this.callTimeoutMs = options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    this.maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    this.warn = options.log?.warn.bind(options.log) ?? (() => undefined);
  }

  /** Connect and bring the table to the latest version (safe from several instances at once). */
  async start(): Promise<void> {
    await this.withClient(`creating or migrating the table ${this.table}`, async (client) => {
      try {
        await migrate(client, this.settings);
      } catch (err) {
        if (!(err instanceof NewerTableError)) throw err;
        throw new VectorStoreError(
          'INVALID_INPUT',
          `The job store table ${this.table} at ${this.settings.where} was created by a newer version of @deferrable/node-red-vector-pipeline ` +
            `(${err.message}): upgrade the package on this instance to the version the other instances run.`,
        );
      }
    });
  }

  /**
   * Run `work` on one connection of the pool, errors mapped to VectorStoreErrors
   * saying what was being done. A connection that anything failed on (a timeout,
   * a cut) is not reused: its state is unknown.
   */
  private async withClient<T>(doing: string, work: (client: Pg.PoolClient) => Promise<T>): Promise<T> {
    let client: Pg.PoolClient;
    try {
      client = await this.getPool().connect();
    } catch (err) {
      throw this.error(err, doing);
    }
    // A checked-out client's connection error would otherwise be unhandled.
    const ignore = (): void => undefined;
    client.on('error', ignore);
    let broken = false;
    try {
      return await work(client);
    } catch (err) {
      broken = true;
      throw err instanceof VectorStoreError ? err : this.error(err, doing);
    } finally {
      client.removeListener('error', ignore);
      client.release(broken);
    }
  }

  /** The table's schema and name (validated lower-case SQL names), for tables that go with it. */
  get names(): { schema: string; table: string } {
    return { schema: this.settings.schema, table: this.settings.table };
  }

  /**
   * Run `work` in one transaction on one connection of the pool, with the
   * store's deadlines: `sql` runs one statement. Committed when `work` resolves,
   * rolled back when it throws; rejects with a VectorStoreError saying what
   * was being done (`doing`).
   */
  async transaction<T>(doing: string, work: (sql: <R extends object>(text: string, values: unknown[]) => Promise<R[]>) => Promise<T>): Promise<T> {
    return this.withClient(doing, async (client) => {
      const sql = async <R extends object>(text: string, values: unknown[]): Promise<R[]> => {
        this.statements += 1;
        return (await client.query<R>(text, values)).rows;
      };
      await sql('BEGIN', []);
      try {
        const result = await work(sql);
        await sql('COMMIT', []);
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    });
  }

  /** One statement, with the store's deadlines and error mapping (see `transaction`). */
  async sql<R extends object>(text: string, values: unknown[], doing: string): Promise<R[]> {
    return this.run<R>(text, values, doing);
  }

  /** The version of the table this package migrates to. */
  static get schemaVersion(): number {
    return MIGRATIONS.length;
  }

  /**
   * Add a record, leased by the instance that accepted it. Sending the same
   * record again (a retry after a lost answer) is harmless; an id leased by
   * another instance is refused.
   */
  async put(record: DurableRecord, instanceId: string, leaseMs: number): Promise<void> {
    checkLease(leaseMs);
    this.instances.add(instanceId);
    const id = record.spec.waitId;
    const rows = await this.run<{ id: string }>(
      `INSERT INTO ${this.table} AS w (id, kind, owner_id, spec, message, final, state, lease_holder, lease_until)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + $9::float8 * interval '1 millisecond')
       ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, owner_id = EXCLUDED.owner_id, spec = EXCLUDED.spec, message = EXCLUDED.message,
         lease_holder = EXCLUDED.lease_holder, lease_until = EXCLUDED.lease_until, updated_at = now()
       WHERE w.lease_holder = EXCLUDED.lease_holder OR w.lease_until IS NULL OR w.lease_until < now()
       RETURNING w.id`,
      [
        id,
        isJobRecord(record) ? 'ingest-job' : 'wait',
        record.ownerId,
        JSON.stringify(record.spec),
        JSON.stringify(record.message),
        record.final === undefined ? null : JSON.stringify(record.final),
        record.final === undefined ? 'pending' : 'delivering',
        instanceId,
        leaseMs,
      ],
      `adding wait ${id}`,
    );
    if (rows.length === 0) {
      throw new VectorStoreError('INVALID_INPUT', `Wait ${id} is already in the job store ${this.table}, held by another instance: give the new wait another id.`);
    }
  }

  /**
   * Lease to `instanceId` at most `capacity` records (its free capacity) of the
   * given owners (the nodes it has deployed) that have no live lease, oldest first.
   */
  async claim(instanceId: string, ownerIds: readonly string[], capacity: number, leaseMs: number): Promise<ClaimedRecord[]> {
    checkLease(leaseMs);
    this.instances.add(instanceId);
    if (ownerIds.length === 0 || capacity < 1) return [];
    const rows = await this.run<WorkRow>(
      `WITH picked AS (
         SELECT id FROM ${this.table}
         WHERE owner_id = ANY($2::text[]) AND (lease_until IS NULL OR lease_until < now()) AND NOT (id = ANY($4::text[]))
         ORDER BY created_at
         LIMIT $3
         FOR UPDATE SKIP LOCKED
       )
       UPDATE ${this.table} AS w SET lease_holder = $1, lease_until = now() + $5::float8 * interval '1 millisecond'
       FROM picked WHERE w.id = picked.id
       RETURNING w.id, w.owner_id, w.spec, w.message, w.final, w.state`,
      [instanceId, [...ownerIds], Math.floor(capacity), [...this.unreadable], leaseMs],
      'claiming waits',
    );
    const claimed: ClaimedRecord[] = [];
    const refused: string[] = [];
    for (const row of rows) {
      const record = this.adopt(row);
      if (record) claimed.push(record);
      else refused.push(row.id);
    }
    if (refused.length > 0) {
      // Given back at once, so that a newer instance may take them.
      await this.giveBack(refused, instanceId);
    }
    return claimed;
  }

  /** Renew the live leases of `instanceId`; returns how many. Leases already over are not renewed: another may hold them. */
  async heartbeat(instanceId: string, leaseMs: number): Promise<number> {
    checkLease(leaseMs);
    this.instances.add(instanceId);
    return this.count(
      `UPDATE ${this.table} SET lease_until = now() + $2::float8 * interval '1 millisecond' WHERE lease_holder = $1 AND lease_until >= now()`,
      [instanceId, leaseMs],
      'renewing leases',
    );
  }

  /** End every lease of `instanceId` now: other instances may claim the records at once. Returns how many. */
  async release(instanceId: string): Promise<number> {
    return this.count(
      `UPDATE ${this.table} SET lease_holder = NULL, lease_until = NULL WHERE lease_holder = $1`,
      [instanceId],
      'releasing leases',
    );
  }

  /** End the leases of `instanceId` on these records only (work it gave up): others, or itself, may claim them again. */
  async giveBack(ids: readonly string[], instanceId: string): Promise<number> {
    if (ids.length === 0) return 0;
    return this.count(
      `UPDATE ${this.table} SET lease_holder = NULL, lease_until = NULL WHERE id = ANY($1::text[]) AND lease_holder = $2`,
      [[...ids], instanceId],
      'giving back waits',
    );
  }

  /** Save a later state of the spec (a checkpoint); false when `instanceId` does not hold the live lease. */
  async saveSpec(id: string, instanceId: string, spec: DurableSpec): Promise<boolean> {
    const changed = await this.count(
      `UPDATE ${this.table} SET spec = $3, updated_at = now() WHERE id = $1 AND lease_holder = $2 AND lease_until >= now()`,
      [id, instanceId, JSON.stringify(spec)],
      `saving the progress of wait ${id}`,
    );
    return changed === 1;
  }

  /**
   * Save later states of many specs (the progress of a heartbeat), one statement per
   * PROGRESS_BATCH specs. Returns the ids saved; the others are not leased live by
   * `instanceId` any more (or are gone). A failed batch rejects: the batches before
   * it are saved.
   */
  async saveSpecs(specs: readonly DurableSpec[], instanceId: string): Promise<Set<string>> {
    const saved = new Set<string>();
    for (let from = 0; from < specs.length; from += PROGRESS_BATCH) {
      const batch = specs.slice(from, from + PROGRESS_BATCH);
      const rows = await this.run<{ id: string }>(
        `UPDATE ${this.table} AS w SET spec = v.spec, updated_at = now()
         FROM jsonb_to_recordset($2::jsonb) AS v(id text, spec jsonb)
         WHERE w.id = v.id AND w.lease_holder = $1 AND w.lease_until >= now()
         RETURNING w.id`,
        [instanceId, JSON.stringify(batch.map((spec) => ({ id: spec.waitId, spec })))],
        `saving the progress of ${batch.length} waits`,
      );
      for (const row of rows) saved.add(row.id);
    }
    return saved;
  }

  /**
   * Commit the final: 'pending' → 'delivering', only by the holder of the live
   * lease and only once. True: this instance ends the wait (deliver, then remove).
   */
  async markFinal(id: string, instanceId: string, payload: NonNullable<DurableRecord['final']>): Promise<boolean> {
    const changed = await this.count(
      `UPDATE ${this.table} SET final = $3, state = 'delivering', updated_at = now()
       WHERE id = $1 AND lease_holder = $2 AND lease_until >= now() AND state = 'pending'`,
      [id, instanceId, JSON.stringify(payload)],
      `committing the final of wait ${id}`,
    );
    return changed === 1;
  }

  /** Remove a record (delivered, or cancelled); false when it was not there. */
  async remove(id: string): Promise<boolean> {
    return (await this.count(`DELETE FROM ${this.table} WHERE id = $1`, [id], `removing wait ${id}`)) === 1;
  }

  /** Remove records (delivered, or cancelled); returns how many were there. */
  async removeMany(ids: readonly string[]): Promise<number> {
    if (ids.length === 0) return 0;
    return this.count(`DELETE FROM ${this.table} WHERE id = ANY($1::text[])`, [[...ids]], 'removing finished waits');
  }

  /**
   * Remove every record of the given owners (nodes deleted by a deploy). Not
   * "all but the owners I have": other instances may run other flows.
   */
  async removeOwners(ownerIds: readonly string[]): Promise<number> {
    if (ownerIds.length === 0) return 0;
    return this.count(`DELETE FROM ${this.table} WHERE owner_id = ANY($1::text[])`, [[...ownerIds]], 'removing the waits of deleted nodes');
  }

  /** Which instance holds a live lease on each of `ids` (for the sidebar); ids without one are left out. */
  async holders(ids: readonly string[]): Promise<Map<string, string>> {
    if (ids.length === 0) return new Map();
    const rows = await this.run<{ id: string; lease_holder: string }>(
      `SELECT id, lease_holder FROM ${this.table} WHERE id = ANY($1::text[]) AND lease_holder IS NOT NULL AND lease_until >= now()`,
      [[...ids]],
      'reading who holds waits',
    );
    return new Map(rows.map((row) => [row.id, row.lease_holder]));
  }

  /**
   * How many waits of these owners (sensor nodes) each instance holds, per
   * collection, in one grouped query: `holder` is the holder of a live lease,
   * null for waits nobody holds now (a holder died or closed; the next claim
   * takes them). For the sidebar and the node status (see ./holder-counts.ts).
   */
  async holderCounts(ownerIds: readonly string[]): Promise<HolderCount[]> {
    if (ownerIds.length === 0) return [];
    const rows = await this.run<{ owner_id: string; collection: string | null; holder: string | null; count: string }>(
      `SELECT owner_id, spec->>'collection' AS collection,
         CASE WHEN lease_until >= now() THEN lease_holder END AS holder, count(*) AS count
       FROM ${this.table}
       WHERE owner_id = ANY($1::text[]) AND kind = 'wait'
       GROUP BY 1, 2, 3`,
      [[...ownerIds]],
      'counting who holds waits',
    );
    return rows.map((row) => ({ ownerId: row.owner_id, collection: row.collection ?? '', holder: row.holder, count: Number(row.count) }));
  }

  async stats(): Promise<PostgresJobStoreStats> {
    const rows = await this.run<{ records: string; pending: string; delivering: string; leased: string }>(
      `SELECT count(*) AS records, count(*) FILTER (WHERE state = 'pending') AS pending,
         count(*) FILTER (WHERE state = 'delivering') AS delivering,
         count(*) FILTER (WHERE lease_holder IS NOT NULL AND lease_until >= now()) AS leased
       FROM ${this.table}`,
      [],
      'counting waits',
    );
    const row = rows[0];
    return {
      records: Number(row.records),
      pending: Number(row.pending),
      delivering: Number(row.delivering),
      leased: Number(row.leased),
      statements: this.statements,
      unreadable: this.unreadable.size,
    };
  }

  /** Release the leases of the instances this store acted for (others take over at once), and end the pool. */
  async close(): Promise<void> {
    if (this.closed) return;
    let failure: unknown;
    if (this.pool) {
      for (const instanceId of this.instances) {
        try {
          await this.release(instanceId);
        } catch (err) {
          failure ??= err; // the leases then run out on their own
        }
      }
    }
    this.closed = true;
    const pool = this.pool;
    this.pool = null;
    await pool?.end().catch(() => undefined);
    if (failure !== undefined) {
      this.warn(`Could not release the leases of this instance in the job store while closing (${messageOf(failure)}); other instances take the work over when the leases run out.`);
    }
  }

  /** The record as the file store would give it, or null (reported once) when this version cannot read it. */
  private adopt(row: WorkRow): ClaimedRecord | null {
    try {
      if (!isObject(row.message)) throw new Error('its message is not an object');
      const spec = adoptDurableSpec(row.spec);
      const record = { ownerId: row.owner_id, spec, message: row.message, state: row.state } as ClaimedRecord;
      if (row.final !== null && row.final !== undefined) record.final = row.final as ClaimedRecord['final'];
      return record;
    } catch (err) {
      if (!this.unreadable.has(row.id)) {
        this.unreadable.add(row.id);
        this.warn(
          `Wait ${row.id} in the job store ${this.table} cannot be read by this version of the package (${messageOf(err)}); ` +
            'it is left in the table for an instance that reads it. Upgrade this instance if the others run a newer version.',
        );
      }
      return null;
    }
  }

  private getPool(): Pg.Pool {
    if (this.closed) throw new VectorStoreError('INTERNAL', 'The job store is closed.');
    if (!this.pool) {
      const { host, port, user, database, password } = this.settings;
      const pool = new (loadPg().Pool)({
        host,
        port,
        user,
        database,
        password,
        max: this.maxConnections,
        idleTimeoutMillis: IDLE_TIMEOUT_MS,
        connectionTimeoutMillis: this.callTimeoutMs,
        keepAlive: true,
        application_name: APPLICATION_NAME,
        // The server cancels a statement that runs or waits for a lock too long;
        // the client gives up a little later on a server that stopped answering.
        statement_timeout: this.callTimeoutMs,
        lock_timeout: this.callTimeoutMs,
        // A connection cut mid-statement (a network partition) leaves the server waiting for
        // the rest of it inside the statement's transaction, holding its row locks: claims by
        // other instances skip those rows (SKIP LOCKED) until the server gives up on it.
        idle_in_transaction_session_timeout: this.callTimeoutMs,
        query_timeout: this.callTimeoutMs + Math.min(500, Math.max(10, Math.round(this.callTimeoutMs / 20))),
      });
      // An idle connection that breaks (server restart) is dropped by the pool; the next call reconnects.
      pool.on('error', () => undefined);
      this.pool = pool;
    }
    return this.pool;
  }

  private async run<R extends object>(text: string, values: unknown[], doing: string): Promise<R[]> {
    return (await this.query<R>(text, values, doing)).rows;
  }

  private async count(text: string, values: unknown[], doing: string): Promise<number> {
    return (await this.query(text, values, doing)).rowCount ?? 0;
  }

  private async query<R extends object>(text: string, values: unknown[], doing: string): Promise<Pg.QueryResult<R>> {
    const pool = this.getPool();
    this.statements += 1;
    try {
      return await pool.query<R>(text, values);
    } catch (err) {
      throw this.error(err, doing);
    }
  }

  private error(err: unknown, doing: string): VectorStoreError {
    return toJobStoreError(err, { where: this.settings.where, password: this.settings.password, callTimeoutMs: this.callTimeoutMs, doing });
  }
}

/**
 * What `pg` threw, as a VectorStoreError: transient for connection problems,
 * timeouts and a server shutting down or overloaded; the password is removed
 * from every text, should a server or a library ever echo it.
 */
export function toJobStoreError(
  err: unknown,
  context: { where: string; password: string | undefined; callTimeoutMs: number; doing: string },
): VectorStoreError {
  const { where, password, callTimeoutMs, doing } = context;
  if (err instanceof VectorStoreError) return err;
  const store = `The PostgreSQL job store at ${where}`;
  const reason = reasonOf(err, password);
  const cause = redactError(err, [password]);
  const make = (code: ErrorCode, message: string, transient?: boolean): VectorStoreError =>
    new VectorStoreError(code, redact(message, [password]), { transient, cause });
  const state = sqlState(err);

  const timedOut = timeoutKind(err);
  if (timedOut !== null) {
    return make(
      'TIMEOUT',
      `${store} did not answer within ${Number((callTimeoutMs / 1000).toFixed(3))} s while ${doing} (${timedOut}); ` +
        'it is retried. If it is only slow, raise vectorPipeline.storeTimeout (seconds) in settings.js.',
      true,
    );
  }
  if (state === '28P01' || state === '28000') {
    return make(
      'AUTH',
      `${store} rejected the login while ${doing} (${reason}). Check the user name in vectorPipeline.jobStore.url and the password ` +
        '(VECTOR_PIPELINE_JOB_STORE_PASSWORD, vectorPipeline.jobStore.password or PGPASSWORD).',
    );
  }
  if (state === '42501') {
    return make('AUTH', `${store} refused while ${doing} (${reason}): grant the database user the right to create and use tables in the schema, or use another user.`);
  }
  if (state === '3D000') {
    return make('INVALID_INPUT', `${store} has no such database (${reason}): check the database name at the end of vectorPipeline.jobStore.url.`);
  }
  if (state === '22P05' || state === '22021') {
    return make('INVALID_INPUT', `${store} refused a value while ${doing} (${reason}): PostgreSQL cannot store NUL characters (\\u0000) in JSON; remove them from the message.`);
  }
  const transientState =
    state !== null && (['08', '53', '57', '58'].includes(state.slice(0, 2)) || ['40001', '40P01', '55P03', '55006'].includes(state));
  if (transientState) {
    return make('UNAVAILABLE', `${store} is not available right now while ${doing} (${reason}); it is retried.`, true);
  }
  if (state !== null) {
    return make('INTERNAL', `${store} failed while ${doing}: ${reason} (SQLSTATE ${state}).`);
  }
  if (/password must be a string|SASL|no password/i.test(reason)) {
    return make(
      'AUTH',
      `${store} asks for a password while ${doing}: set VECTOR_PIPELINE_JOB_STORE_PASSWORD (or vectorPipeline.jobStore.password, or PGPASSWORD).`,
    );
  }
  // Network errors and the client library's own: worth retrying.
  return make(
    'UNAVAILABLE',
    `${store} could not be reached while ${doing} (${reason}). Check that PostgreSQL is running and vectorPipeline.jobStore.url is right; it is retried.`,
    true,
  );
}
