/**
 * `deferrable-sensor`: wait until a collection is indexed, without holding
 * anything while waiting.
 *
 * 1. validate (an unknown collection fails at once), 2. quick check (already
 * ready: output 1 at once, `deferred: false`), 3. defer: the wait is persisted and
 * handed to the runtime's triggerer, which polls for every wait of every sensor
 * on one scheduler. This node only turns the triggerer's events into messages:
 * output 1 ready, output 2 progress, `done(err)` for failures.
 *
 * A wait outlives this node instance: on a redeploy or restart the new instance
 * attaches and the triggerer resumes its waits; their final message is then built
 * from the JSON-serializable fields of the original message that were persisted.
 */
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { parseSensorConfig, type SensorConfig } from '../lib/schemas';
import { messageOf } from '../lib/errors';
import { newWaitId } from '../lib/ids';
import {
  createTriggerSpec,
  checkOnce,
  type FailurePayload,
  type ProgressPayload,
  type SuccessPayload,
  type TriggerEvent,
} from '../lib/trigger';
import type { Triggerer, WaitRecord } from '../lib/triggerer';
import { runLocally, type LocalWait } from '../lib/local-wait';
import { NodeStatus } from './shared/status';
import { catalogTexts } from './shared/texts';
import { resolveStore } from './shared/store';
import { collectionOf, expectedCountOf, toError } from './shared/messages';
import { triggererFor, dropWaitsOfDeletedNodes } from './shared/runtime';

type SensorMessage = NodeMessageInFlow & {
  collection?: unknown;
  expectedCount?: unknown;
  reset?: unknown;
  waitId?: string;
};
type Send = (msg: Array<NodeMessageInFlow | null>) => void;
type Done = (err?: Error) => void;

/** A wait started by this node instance: the original message and its callbacks. */
interface LiveWait {
  msg: SensorMessage;
  send: Send;
  done: Done;
  local?: LocalWait;
}

/** How often the status may be redrawn while waits report progress. */
const STATUS_REFRESH_MS = 500;

export = function register(RED: NodeAPI): void {
  dropWaitsOfDeletedNodes(RED);

  const text = catalogTexts(RED);

  function DeferrableSensorNode(this: Node, def: NodeDef & Record<string, unknown>): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const status = new NodeStatus(node);
    const storeId = def.store as string | undefined;

    let config: SensorConfig | null = null;
    let configError: Error | null = null;
    try {
      config = parseSensorConfig(def);
    } catch (err) {
      configError = toError(err);
      status.fail(messageOf(err));
    }

    const live = new Map<string, LiveWait>();
    let triggerer: Triggerer | null = null;
    let closed = false;
    /** The newest wait's latest progress, for the status. */
    let newest: { waitId: string; progress: ProgressPayload | null } | null = null;
    let statusTimer: NodeJS.Timeout | null = null;

    // Attach to the runtime's triggerer: this resumes this node's persisted waits.
    const attached: Promise<Triggerer | null> = triggererFor(RED).then(
      (t) => {
        if (closed) return null;
        triggerer = t;
        try {
          const store = resolveStore(RED, storeId);
          t.attach(node.id, { backend: store.backend, storeKey: store.storeKey, onEvent });
        } catch (err) {
          // Without a store the waits stay persisted, dormant until a fixed deploy.
          status.fail(messageOf(err));
          return t;
        }
        const resumed = t.pending(node.id);
        if (resumed > 0) status.waiting(text('deferrable-sensor.status.resuming', { waits: resumed }));
        return t;
      },
      (err) => {
        status.fail(messageOf(err));
        node.error(`Cannot start the wait store: ${messageOf(err)}`);
        return null;
      },
    );

    node.on('input', (msg: SensorMessage, send: Send, done: Done) => {
      void handle(msg, send, done);
    });

    async function handle(msg: SensorMessage, send: Send, done: Done): Promise<void> {
      if (msg.reset !== undefined && msg.reset !== false) {
        await reset(msg);
        done();
        return;
      }
      const startedAt = Date.now();
      let collection: string | null = null;
      let waitId: string | null = null;
      try {
        if (configError || !config) throw configError;
        const store = resolveStore(RED, storeId);
        collection = collectionOf(msg, config.collection, store.backend.name);
        const expectedCount = config.expectedCount > 0 ? config.expectedCount : expectedCountOf(msg);
        waitId = newWaitId();
        msg.waitId = waitId;
        status.busy(text('deferrable-sensor.status.checking', { collection }));

        // 1. Validate: an unknown collection will never become ready.
        if (!(await store.backend.collectionExists(collection))) {
          throw new Error(
            `Collection "${collection}" does not exist in the ${store.backend.name} store, so there is nothing to wait for. Check the collection name, or ingest documents into it first.`,
          );
        }

        const spec = createTriggerSpec({
          waitId,
          collection,
          expectedCount,
          pollIntervalMs: config.pollInterval * 1000,
          maxPollIntervalMs: config.maxPollInterval * 1000,
          timeoutMs: config.timeout * 1000,
          now: startedAt,
        });

        // 2. Quick check: already ready (or already failed) ends here.
        const first = checkOnce(spec, await store.backend.status(collection), startedAt);
        if (first) {
          finish({ msg, send, done }, first);
          return;
        }

        // 3. Defer. The quick check was the wait's first poll.
        spec.polls = 1;
        const record: WaitRecord = { ownerId: node.id, spec, message: parkableFields(msg) };
        const entry: LiveWait = { msg, send, done };
        live.set(waitId, entry);
        markNewest(waitId);
        if (!config.deferrable) {
          entry.local = runLocally(spec, store.backend, (event) => onEvent(record, event));
          scheduleStatus();
          return;
        }
        const t = await attached;
        if (!t || closed) {
          live.delete(waitId);
          throw new Error('The sensor was stopped before the wait could be deferred. Send the message again.');
        }
        // Resolves once the wait is on disk: durable before its first progress message.
        await t.defer(record);
        scheduleStatus();
      } catch (err) {
        if (waitId) live.delete(waitId); // e.g. the wait could not be written to disk
        const payload: FailurePayload = {
          status: 'error',
          collection: collection ?? '',
          message: messageOf(err),
          elapsedMs: Date.now() - startedAt,
          polls: 0,
          lastProgress: null,
        };
        msg.payload = payload;
        status.fail(payload.message);
        done(toError(err));
      }
    }

    /** Triggerer (or local poller) events for one of this node's waits. */
    function onEvent(wait: WaitRecord, event: TriggerEvent): void {
      const waitId = wait.spec.waitId;
      switch (event.type) {
        case 'progress': {
          if (!newest || newest.waitId === waitId) newest = { waitId, progress: event.payload };
          const progressMsg = RED.util.cloneMessage(wait.message as NodeMessageInFlow) as SensorMessage;
          progressMsg._msgid = RED.util.generateId();
          progressMsg.payload = event.payload;
          progressMsg.waitId = waitId;
          node.send([null, progressMsg]);
          scheduleStatus();
          break;
        }
        case 'warning':
          node.warn(event.message);
          break;
        case 'final': {
          const entry = live.get(waitId);
          live.delete(waitId);
          if (entry) {
            finish(entry, event.payload);
          } else {
            // Resumed after a redeploy or restart: rebuild the parked message.
            const msg = RED.util.cloneMessage(wait.message as NodeMessageInFlow) as SensorMessage;
            finish({ msg, send: (out) => node.send(out), done: (err) => err && node.error(err.message, msg) }, event.payload);
          }
          break;
        }
      }
    }

    function finish(entry: Pick<LiveWait, 'msg' | 'send' | 'done'>, payload: SuccessPayload | FailurePayload): void {
      entry.msg.payload = payload;
      if (payload.status === 'success') {
        status.ok(text('deferrable-sensor.status.ready', { collection: payload.collection, docs: payload.indexedCount }));
        entry.send([entry.msg, null]);
        entry.done();
      } else {
        status.fail(payload.message);
        entry.done(new Error(payload.message));
      }
      if (pendingCount() > 0) scheduleStatus();
    }

    async function reset(msg: SensorMessage): Promise<void> {
      const only = typeof msg.collection === 'string' && msg.collection ? msg.collection : null;
      const matches = (collection: string) => only === null || collection === only;
      const t = await attached;
      const cancelled = new Set<string>();
      for (const record of t?.cancel((w) => w.ownerId === node.id && matches(w.spec.collection)) ?? []) {
        cancelled.add(record.spec.waitId);
      }
      for (const [waitId, entry] of live) {
        if (entry.local && matches(entry.local.collection)) {
          entry.local.cancel();
          cancelled.add(waitId);
        }
      }
      for (const waitId of cancelled) {
        live.get(waitId)?.done();
        live.delete(waitId);
      }
      if (newest && cancelled.has(newest.waitId)) newest = null;
      scheduleStatus();
    }

    function pendingCount(): number {
      let local = 0;
      for (const entry of live.values()) if (entry.local) local += 1;
      return (triggerer?.pending(node.id) ?? 0) + local;
    }

    function markNewest(waitId: string): void {
      newest = { waitId, progress: null };
    }

    /** Redraw the status at most every STATUS_REFRESH_MS, however many waits report. */
    function scheduleStatus(): void {
      if (statusTimer || closed) return;
      statusTimer = setTimeout(() => {
        statusTimer = null;
        drawStatus();
      }, STATUS_REFRESH_MS);
    }

    function drawStatus(): void {
      const pending = pendingCount();
      if (pending === 0) return; // keep the last final status (ready / failed)
      const progress = newest?.progress;
      if (!progress || progress.progress === null) {
        status.waiting(text('deferrable-sensor.status.waitingPlain', { pending }));
        return;
      }
      const percent = Math.floor(progress.progress * 100);
      if (progress.etaSeconds === null) {
        status.waiting(text('deferrable-sensor.status.waitingNoEta', { pending, percent }));
      } else {
        status.waiting(text('deferrable-sensor.status.waiting', { pending, percent, eta: formatEta(progress.etaSeconds) }));
      }
    }

    node.on('close', (removed: boolean, done: () => void) => {
      closed = true;
      if (statusTimer) clearTimeout(statusTimer);
      statusTimer = null;
      for (const entry of live.values()) entry.local?.cancel();
      live.clear();
      if (triggerer) {
        // Persisted waits stay on disk: a redeploy or restart resumes them.
        triggerer.detach(node.id);
        if (removed) triggerer.cancel((w) => w.ownerId === node.id);
      }
      done();
    });
  }

  RED.nodes.registerType('deferrable-sensor', DeferrableSensorNode as never);
};

/** The fields of a message that survive JSON: what a resumed wait can deliver. */
function parkableFields(msg: SensorMessage): Record<string, unknown> {
  const parked: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(msg)) {
    if (key === 'req' || key === 'res') continue; // live HTTP objects: never serializable
    try {
      const json = JSON.stringify(value);
      if (json !== undefined) parked[key] = JSON.parse(json);
    } catch {
      // Circular or otherwise not serializable: a resumed wait cannot carry it.
    }
  }
  return parked;
}

function formatEta(seconds: number): string {
  if (seconds < 60) return `${Math.ceil(seconds)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${Math.ceil(seconds % 60)}s`;
  return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
}
