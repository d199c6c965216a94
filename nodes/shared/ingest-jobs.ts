/**
 * The background ingest jobs of one vector-ingest node: hands a message's
 * documents to the runtime's triggerer as a durable job (lib/ingest-job), and
 * turns the job's events into messages: output 2 progress, output 1 the final
 * summary, `done(err)` for a failure.
 *
 * Like a sensor's wait, a job outlives the node instance: closing the node
 * (redeploy, shutdown) detaches it and the job stays on disk; the next instance
 * (same node id) attaches and the job resumes at its first unfinished batch. Its
 * final message is then built from the original message's saved fields (its
 * payload, the documents, stays in the spool). Deleting the node or `msg.reset`
 * cancels.
 */
import type { Node, NodeAPI, NodeMessageInFlow } from 'node-red';
import { messageOf } from '../../lib/errors';
import { newWaitId } from '../../lib/ids';
import { spoolIngestJob, type NewJobOptions } from '../../lib/ingest-job/prepare';
import type { JobFailurePayload, JobProgressPayload, JobSuccessPayload } from '../../lib/ingest-job/spec';
import type { JobEvent } from '../../lib/ingest-job/run';
import type { IngestItem } from '../../lib/schemas';
import type { Triggerer, DurableRecord, JobRecord, WaitOwner } from '../../lib/triggerer';
import { NodeStatus, failureStatus, fits, shortDuration } from './status';
import type { Texts } from './texts';
import { parkable } from './messages';
import { resolveStore } from './store';
import { dropWaitsOfDeletedNodes, triggererFor, triggererStartError } from './runtime';

type Msg = NodeMessageInFlow & Record<string, unknown>;
type Done = (err?: Error) => void;

/** A job started by this node instance: its message and callbacks. */
interface LiveJob {
  msg: Msg;
  send: (msg: NodeMessageInFlow) => void;
  done: Done;
}

/** How often the status may be redrawn while jobs report progress. */
const STATUS_REFRESH_MS = 500;

export class NodeIngestJobs {
  private readonly live = new Map<string, LiveJob>();
  private readonly attached: Promise<Triggerer | null>;
  private triggerer: Triggerer | null = null;
  private closed = false;
  private newest: JobProgressPayload | null = null;
  private statusTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly RED: NodeAPI,
    private readonly node: Node,
    private readonly status: NodeStatus,
    private readonly text: Texts,
    private readonly storeId: string | undefined,
  ) {
    dropWaitsOfDeletedNodes(RED);
    // Attaching resumes this node's jobs left by a redeploy, a restart or a crash.
    this.attached = triggererFor(RED).then(
      (t) => {
        if (this.closed) return null;
        this.triggerer = t;
        t.attach(node.id, this.owner());
        const resumed = t.pending(node.id);
        if (resumed > 0) status.busy(text('vector-ingest.status.resuming', { jobs: resumed }));
        return t;
      },
      (err) => {
        node.error(`Cannot start the pending jobs store: ${messageOf(err)}`);
        return null;
      },
    );
  }

  /**
   * Background jobs can run here. With a PostgreSQL job store too: their spools
   * are then in the database, so another instance finishes a job this one started.
   */
  async available(): Promise<boolean> {
    await this.attached;
    return true;
  }

  /** Jobs of this node still running or waiting to resume. */
  get pending(): number {
    return this.triggerer?.pending(this.node.id) ?? 0;
  }

  /**
   * Spool the documents and hand the job over. Resolves once the job is durable
   * (then the message completes when the job ends); rejects when the input is
   * bad or the job could not be saved (nothing was written then).
   */
  async start(msg: Msg, send: LiveJob['send'], done: Done, items: IngestItem[], options: Omit<NewJobOptions, 'jobId'>): Promise<string> {
    const store = resolveStore(this.RED, this.storeId);
    const t = await this.attached;
    if (this.closed) throw new Error('The node was stopped (a redeploy or a shutdown) before the ingest job could start. Send the message again.');
    if (!t) {
      const startError = triggererStartError(this.RED);
      throw new Error(`The ingest job could not be started: ${startError ? messageOf(startError) : 'the pending jobs store is not available'}`);
    }
    const jobId = newWaitId();
    this.status.busy(this.text('vector-ingest.status.spooling', { docs: items.length }));
    const spools = t.spools;
    if (!spools) throw new Error('The ingest job could not be started: this runtime has no place for job spools.');
    const { spec, batches } = await spoolIngestJob(store, items, spools, { ...options, jobId });
    const { payload: _documents, ...rest } = msg;
    const { parked, dropped } = parkable(rest);
    if (dropped.length > 0) {
      this.node.warn(
        `Ingest job ${jobId}: ${dropped.map((d) => `msg.${d.key} (${d.reason})`).join(', ')} cannot be saved with the job; if it resumes after a redeploy or a restart, its messages come without ${dropped.length === 1 ? 'it' : 'them'}.`,
      );
    }
    const record: JobRecord = { ownerId: this.node.id, spec, message: parked };
    msg.jobId = jobId;
    this.live.set(jobId, { msg, send, done });
    try {
      await t.defer(record, { batches });
    } catch (err) {
      this.live.delete(jobId);
      throw new Error(`The ingest job could not be saved, so it was not started (nothing was written): ${messageOf(err)}`);
    }
    return jobId;
  }

  /** msg.reset: cancel this node's jobs (of one collection, when named). Returns how many. */
  async cancel(collection: string | null): Promise<number> {
    const t = await this.attached;
    const cancelled = t?.cancel((r) => r.ownerId === this.node.id && (collection === null || r.spec.collection === collection)) ?? [];
    for (const record of cancelled) {
      this.live.get(record.spec.waitId)?.done();
      this.live.delete(record.spec.waitId);
    }
    if (this.newest && cancelled.some((r) => r.spec.waitId === this.newest?.jobId)) this.newest = null;
    return cancelled.length;
  }

  /** Node closed: messages in flight are done; the jobs stay on disk and resume with the next instance. */
  close(): void {
    this.closed = true;
    if (this.statusTimer) clearTimeout(this.statusTimer);
    this.statusTimer = null;
    for (const entry of this.live.values()) entry.done();
    this.live.clear();
    this.triggerer?.detach(this.node.id);
  }

  private owner(): WaitOwner {
    const onEvent = (record: DurableRecord, event: unknown) => this.onEvent(record as JobRecord, event as JobEvent);
    try {
      const store = resolveStore(this.RED, this.storeId);
      return { backend: store.backend, embedder: store.embedder, storeKey: store.storeKey, onEvent };
    } catch (err) {
      return {
        backend: null,
        unavailable: `its vector-store configuration is missing or invalid: ${messageOf(err).replace(/\.$/, '')}`,
        storeKey: this.storeId ?? '',
        onEvent,
      };
    }
  }

  private onEvent(record: JobRecord, event: JobEvent): void {
    const jobId = record.spec.waitId;
    if (event.type === 'progress') {
      this.newest = event.payload;
      const progress = this.messageOf(record) as Msg;
      progress._msgid = this.RED.util.generateId();
      progress.payload = event.payload;
      progress.jobId = jobId;
      this.node.send([null, progress]);
      this.scheduleStatus();
      return;
    }
    const entry = this.live.get(jobId);
    this.live.delete(jobId);
    if (this.newest?.jobId === jobId) this.newest = null;
    const target: LiveJob =
      entry && !event.redelivered
        ? entry
        : (() => {
            // Resumed after a redeploy or restart: rebuild the saved message.
            const msg = this.messageOf(record) as Msg;
            msg.jobId = jobId;
            if (event.redelivered) msg.redelivered = true;
            return { msg, send: (out) => this.node.send([out, null]), done: (err) => err && this.node.error(err.message, msg) };
          })();
    if (event.payload.status === 'success') void this.succeed(record, target, event.payload);
    else this.fail(target, event.payload, entry !== undefined && !event.redelivered);
  }

  private async succeed(record: JobRecord, target: LiveJob, payload: JobSuccessPayload): Promise<void> {
    let ids: string[] = [];
    try {
      // The ids are read back from the spool: the durable record stays small.
      const spools = this.triggerer?.spools;
      if (!spools) throw new Error('this runtime has no job spools');
      ids = (await spools.header(record.spec.spool)).ids;
    } catch (err) {
      this.node.warn(`Ingest job ${payload.jobId}: the ids of the written documents could not be read back (${messageOf(err)}); msg.payload.ids is empty.`);
    }
    const { status: _status, ...summary } = payload;
    target.msg.payload = { ...summary, ids };
    target.msg.collection = payload.collection;
    target.msg.expectedCount = payload.totalCount;
    this.status.ok(
      target.msg.redelivered
        ? this.text('vector-ingest.status.redelivered', { collection: payload.collection })
        : this.text('vector-ingest.status.done', { ingested: payload.ingested, total: payload.totalCount, collection: payload.collection }),
    );
    target.send(target.msg);
    target.done();
    if (this.pending > 0) this.scheduleStatus();
  }

  /** `live`: the message that started the job is still here; its payload keeps the documents. */
  private fail(target: LiveJob, payload: JobFailurePayload, live: boolean): void {
    if (!live) target.msg.payload = payload;
    target.msg.collection = payload.collection;
    this.status.fail(failureStatus(Object.assign(new Error(payload.message), payload.code ? { code: payload.code } : {}), 'operation'));
    target.done(Object.assign(new Error(payload.message), payload.code ? { code: payload.code } : {}));
    if (this.pending > 0) this.scheduleStatus();
  }

  private messageOf(record: JobRecord): Record<string, unknown> {
    try {
      return this.RED.util.cloneMessage(record.message as NodeMessageInFlow) as unknown as Record<string, unknown>;
    } catch {
      return JSON.parse(JSON.stringify(record.message)) as Record<string, unknown>;
    }
  }

  private scheduleStatus(): void {
    if (this.statusTimer || this.closed) return;
    this.statusTimer = setTimeout(() => {
      this.statusTimer = null;
      this.drawStatus();
    }, STATUS_REFRESH_MS);
  }

  private drawStatus(): void {
    if (this.closed) return;
    const pending = this.pending;
    const p = this.newest;
    if (pending === 0 || !p) return; // keep the last final status
    const percent = Math.floor(p.progress * 100);
    if (p.detail) {
      this.status.warn(this.text('vector-ingest.status.retrying', { percent, retries: p.retries }));
      return;
    }
    const withEta =
      p.etaSeconds === null
        ? this.text('vector-ingest.status.ingesting', { percent, written: p.written, chunks: p.chunks })
        : this.text('vector-ingest.status.ingestingEta', { percent, written: p.written, chunks: p.chunks, eta: shortDuration(p.etaSeconds * 1000) });
    this.status.busy(fits(withEta) ? withEta : this.text('vector-ingest.status.ingestingShort', { percent, eta: p.etaSeconds === null ? '…' : shortDuration(p.etaSeconds * 1000) }));
  }
}
