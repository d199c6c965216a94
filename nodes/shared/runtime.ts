/**
 * One triggerer per Node-RED runtime (per user directory), shared by every
 * deferrable-sensor node, with its durable wait store in the user directory.
 *
 * Waits are keyed by the sensor node's id. After every (re)deploy or start,
 * waits whose node no longer exists are dropped: that is what makes "deleting
 * the node cancels its waits" true even for waits that were on disk while the
 * node was deleted.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import type { NodeAPI } from 'node-red';
import { Triggerer } from '../../lib/triggerer';
import { LocalWaits } from '../../lib/local-waits';
import { WaitStore, type DurableStore } from '../../lib/wait-store';
import { PostgresJobStore } from '../../lib/job-stores/postgres';
import { SharedWorkStore } from '../../lib/job-stores/shared-work';
import { PostgresSpools } from '../../lib/job-stores/spool-table';
import { readJobStoreSettings, runtimeSettingsOrDefaults, type JobStoreSettings } from '../../lib/settings';
import { randomUUID } from 'node:crypto';
import { dataRoot } from '../../lib/backends';
import { messageOf } from '../../lib/errors';

const NO_USER_DIR = '(no user directory)';
const triggerers = new Map<string, Promise<Triggerer>>();
/** Why the triggerer of a user directory could not start (e.g. its waits file is unreadable), per key. */
const startErrors = new Map<string, Error>();
const listeners = new WeakMap<object, { RED: NodeAPI }>();

const localWaits = new Map<string, LocalWaits>();

/** The waits sensors run in their node (deferrable off) of this runtime: for the Vector waits sidebar. */
export function localWaitsFor(RED: NodeAPI): LocalWaits {
  const key = RED.settings.userDir ?? NO_USER_DIR;
  let waits = localWaits.get(key);
  if (!waits) {
    waits = new LocalWaits();
    localWaits.set(key, waits);
  }
  return waits;
}

/** Where pending waits (and ingest jobs) are kept. */
export function waitStoreFile(userDir: string): string {
  return path.join(dataRoot(userDir), 'waits.jsonl');
}

/**
 * Where ingest jobs spool their documents: beside the waits file; without a user
 * directory (nothing survives a restart then anyway), in the system's temporary directory.
 */
export function jobsDirFor(RED: NodeAPI): string {
  const userDir: string | undefined = RED.settings.userDir;
  return userDir ? path.join(dataRoot(userDir), 'jobs') : path.join(os.tmpdir(), `node-red-vector-pipeline-jobs-${process.pid}`);
}

export function triggererFor(RED: NodeAPI): Promise<Triggerer> {
  const userDir: string | undefined = RED.settings.userDir;
  const key = userDir ?? NO_USER_DIR;
  let triggerer = triggerers.get(key);
  if (!triggerer) {
    if (!userDir) {
      RED.log.warn('deferrable-sensor: Node-RED has no user directory, so pending waits will not survive a restart.');
    }
    const log = { warn: (text: string) => RED.log.warn(`deferrable-sensor: ${text}`) };
    const sharing = sharedStoreFor(RED, log);
    const shared = sharing?.work ?? null;
    const waitStore: DurableStore | null = shared ?? (userDir ? new WaitStore(waitStoreFile(userDir), { log }) : null);
    // Shared: the jobs' spools are in the database too, so any instance can finish a job.
    const spools = sharing ? { spools: new PostgresSpools(sharing.store) } : { jobsDir: jobsDirFor(RED) };
    const created = new Triggerer({ waitStore, log, ...spools });
    triggerer = created.start().then(() => created);
    triggerers.set(key, triggerer);
    startErrors.delete(key);
    // A waits file that cannot be read never stops Node-RED: the sensors say why
    // (triggererStartError), and the next deploy tries again.
    triggerer.catch((err: unknown) => {
      triggerers.delete(key);
      const file = waitStore instanceof WaitStore ? waitStore.file : '';
      const text = messageOf(err);
      startErrors.set(key, new Error(file && !text.includes(file) ? `The pending waits file ${file} cannot be read (${text}). Move it aside and restart Node-RED.` : text));
      void created.close().catch(() => undefined);
    });
  }
  return triggerer;
}

/**
 * The PostgreSQL job store when settings.js (`vectorPipeline.jobStore`) or the
 * environment (VECTOR_PIPELINE_JOB_STORE) asks for one: waits and ingest jobs are
 * then shared with the other instances using the same table. Null: the file store.
 * A setting that cannot be used keeps the file store, and says why.
 */
function sharedStoreFor(RED: NodeAPI, log: { warn(text: string): void }): { work: SharedWorkStore; store: PostgresJobStore } | null {
  let settings: JobStoreSettings;
  try {
    settings = readJobStoreSettings((RED.settings as unknown as Record<string, unknown>).vectorPipeline);
  } catch (err) {
    log.warn(`${messageOf(err)} The pending waits stay in the user directory meanwhile.`);
    return null;
  }
  if (settings.type !== 'postgres') return null;
  const runtime = runtimeSettingsOrDefaults((RED.settings as unknown as Record<string, unknown>).vectorPipeline, log.warn);
  const store = new PostgresJobStore({ settings, callTimeoutMs: runtime.storeTimeoutMs, log });
  // Unique per running instance: a restarted instance is a new holder (its old leases run out).
  const instanceId = `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  RED.log.info(`deferrable-sensor: waits and ingest jobs are shared through PostgreSQL (${settings.where}, table ${settings.schema}.${settings.table}) as instance ${instanceId}`);
  return { work: new SharedWorkStore({ store, instanceId, leaseMs: settings.leaseMs, heartbeatMs: settings.heartbeatMs, capacity: settings.capacity, log }), store };
}

/** Why the runtime's triggerer failed to start, if it did. */
export function triggererStartError(RED: NodeAPI): Error | null {
  return startErrors.get(RED.settings.userDir ?? NO_USER_DIR) ?? null;
}

/**
 * Drop the waits of deleted sensor nodes once flows have (re)started. Registered
 * once per runtime, when the node type is registered.
 */
export function dropWaitsOfDeletedNodes(RED: NodeAPI): void {
  const events = RED.events as unknown as NodeJS.EventEmitter;
  // The node API object can be rebuilt on each registration (as the test helper
  // does); listen once per event bus and always use the newest API object.
  const known = listeners.get(events);
  if (known) {
    known.RED = RED;
    return;
  }
  const listener = { RED };
  listeners.set(events, listener);
  events.on('flows:started', () => {
    const api = listener.RED;
    triggererFor(api)
      .then((triggerer) => {
        // A node of a disabled flow, or a disabled node, is in the flow
        // configuration but not running: its waits stay, dormant, until it is
        // enabled again. Only a node that is gone from the configuration loses them.
        const configured = new Set<string>();
        api.nodes.eachNode((n: { id: string }) => configured.add(n.id));
        const dropped = triggerer.dropOrphans((ownerId: string) => configured.has(ownerId) || api.nodes.getNode(ownerId) != null);
        if (dropped.length > 0) {
          api.log.info(`deferrable-sensor: dropped ${dropped.length} pending wait(s) of deleted sensor nodes`);
        }
      })
      .catch((err) => api.log.error(`deferrable-sensor: cannot read pending waits: ${messageOf(err)}`));
  });
}

/** Close every triggerer of this process (tests and benchmarks; the runtime never needs it). */
export async function closeAllTriggerers(): Promise<void> {
  const all = [...triggerers.values()];
  triggerers.clear();
  startErrors.clear();
  await Promise.all(all.map((p) => p.then((t) => t.close()).catch(() => undefined)));
}
