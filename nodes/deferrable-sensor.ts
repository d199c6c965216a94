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
 * Closing the node (redeploy, disabling its flow or itself, shutdown) only
 * detaches it: its waits stay dormant on disk. Only deleting the node (decided
 * once the new flows have started, see shared/runtime) or `msg.reset` cancels.
 */
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { isPlainObject, parseSensorConfig, type SensorConfig } from '../lib/schemas';
import { VectorStoreError, messageOf } from '../lib/errors';
import { newWaitId } from '../lib/ids';
import { runtimeSettingsOrDefaults } from '../lib/settings';
import {
  createTriggerSpec,
  checkOnce,
  watchedCollection,
  type FailurePayload,
  type ProgressPayload,
  type SuccessPayload,
  type TriggerEvent,
} from '../lib/trigger';
import type { CancelNote, Triggerer, WaitOwner, WaitRecord } from '../lib/triggerer';
import { runLocally, type LocalWait } from '../lib/local-wait';
import { QuickChecks } from '../lib/quick-checks';
import type { CollectionRef } from '../lib/types';
import { NodeStatus, failureStatus, fits, shortDuration, withShortStatus, type FailureStep } from './shared/status';
import { sharedStatus, waitsElsewhere, type WaitsElsewhere } from './shared/holder-status';
import type { SharedWorkStore } from '../lib/job-stores/shared-work';
import { labelledParser, migrateConfig } from '../lib/config-versions';
import { catalogTexts } from './shared/texts';
import { resolveStore } from './shared/store';
import { copyJson, expectedCountOf, parkable, toError, watchedCollectionOf } from './shared/messages';
import { collectionLabel, isExisting, parseExistingCollection } from '../lib/collection-ref';
import { localWaitsFor, triggererFor, dropWaitsOfDeletedNodes, triggererStartError } from './shared/runtime';
import { TypedInputs, type TypedField } from './shared/typed-inputs';

/** Sensor properties that may come from msg, flow, global or env, read per message. */
const TYPED_INPUTS: readonly TypedField[] = [
  { property: 'collection', literal: 'str', labelKey: 'deferrable-sensor.label.collection', overriddenBy: 'collection' },
  { property: 'expectedCount', literal: 'num', labelKey: 'deferrable-sensor.label.expectedCount' },
  { property: 'timeout', literal: 'num', labelKey: 'deferrable-sensor.label.timeout' },
];

type SensorMessage = NodeMessageInFlow & {
  collection?: unknown;
  expectedCount?: unknown;
  reset?: unknown;
  waitId?: string;
  redelivered?: boolean;
};
type Done = (err?: Error) => void;

/**
 * A wait started by this node instance: the original message and its done(). Not its
 * send(): Node-RED's is `node.send` wrapped, and one closure less per wait counts at 100,000.
 */
interface LiveWait {
  msg: SensorMessage;
  done: Done;
  local?: LocalWait;
}

/**
 * A node's live waits by id, counting those run in the node (Deferrable off): the
 * pending count is read on every message and every final, so it is kept, not scanned.
 */
class LiveWaits extends Map<string, LiveWait> {
  local = 0;

  /** Mark a wait as run in the node (once, right after it is added). */
  runsLocally(entry: LiveWait, local: LocalWait): void {
    entry.local = local;
    this.local += 1;
  }

  override delete(waitId: string): boolean {
    if (this.get(waitId)?.local) this.local -= 1;
    return super.delete(waitId);
  }

  override clear(): void {
    this.local = 0;
    super.clear();
  }
}

/** How often the status may be redrawn while waits report progress. */
const STATUS_REFRESH_MS = 500;
/** Shared waits: how often the status reads which instances hold this node's waits (a cached, shared query). */
const HOLDERS_REFRESH_MS = 3_000;

export = function register(RED: NodeAPI): void {
  dropWaitsOfDeletedNodes(RED);

  const text = catalogTexts(RED);
  /** One per runtime: every sensor's quick checks, shared per store and collection. */
  const quickChecks = new QuickChecks();
  const settings = runtimeSettingsOrDefaults((RED.settings as unknown as Record<string, unknown>).vectorPipeline, (m) =>
    RED.log.warn(`deferrable-sensor: ${m}`),
  );

  function DeferrableSensorNode(this: Node, def: NodeDef & Record<string, unknown>): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const status = new NodeStatus(node);
    const storeId = def.store as string | undefined;

    let config: SensorConfig | null = null;
    let configError: Error | null = null;
    let configStatus = '';
    let typed: TypedInputs<SensorConfig> | null = null;
    // Config errors name the dialog's labels, at deploy and per message.
    const parse = labelledParser('deferrable-sensor', parseSensorConfig);
    try {
      // An older saved shape becomes today's first; then the typed inputs blank what is read per message.
      typed = new TypedInputs<SensorConfig>(RED, node, migrateConfig('deferrable-sensor', def), TYPED_INPUTS);
      config = parse(typed.deployDef);
    } catch (err) {
      configError = toError(err);
      configStatus = failureStatus(err, 'config');
      status.fail(configStatus);
      node.error(messageOf(err));
    }

    const live = new LiveWaits();
    let triggerer: Triggerer | null = null;
    let closed = false;
    /** Messages past the quick check, not yet counted by the triggerer: part of the pending-waits cap. */
    let deferring = 0;
    /** The newest wait's latest progress, for the status. */
    let newest: { waitId: string; progress: ProgressPayload | null } | null = null;
    /** The store failed the last status call of some wait (cleared by the next progress). */
    let retrying = false;
    let statusTimer: NodeJS.Timeout | null = null;
    /** Shared waits: what other instances hold of this node's (null in file mode, or before the first read). */
    let elsewhere: WaitsElsewhere | null = null;
    let holdersTimer: NodeJS.Timeout | null = null;
    /** The status names waits held elsewhere: cleared once there are none anywhere (it would go stale). */
    let showingElsewhere = false;
    /** Shows the status the newest final message set (shared mode redraws it once nothing is pending anywhere). */
    let showLastFinal: (() => void) | null = null;
    /**
     * A burst of messages or of finals redraws the status once per STATUS_REFRESH_MS, not once
     * each (10,000 finals were 10,000 status events for the editor): when the last "checking"
     * and the last final were drawn, and a final not drawn yet (the status timer draws it).
     */
    let checkingDrawnAt = -Infinity;
    let finalDrawnAt = -Infinity;
    let finalToDraw = false;
    /** Waits already warned about a message that could not be copied (once per wait). */
    const copyWarned = new Set<string>();
    /** This runtime's in-node waits, for the Vector waits sidebar. */
    const localWaits = localWaitsFor(RED);
    /** Collections whose local (in-node) waits are in an outage: logged once per outage. */
    const localOutages = new Set<string>();

    // Attach to the runtime's triggerer: this resumes this node's persisted waits.
    const attached: Promise<Triggerer | null> = triggererFor(RED).then(
      (t) => {
        if (closed) return null;
        triggerer = t;
        const owner = ownerOfWaits();
        t.attach(node.id, owner);
        const resumed = t.pending(node.id);
        if (!owner.backend) status.fail(storeStatus);
        else if (resumed > 0) status.waiting(text('deferrable-sensor.status.resuming', { waits: resumed }));
        if (t.sharedWork) readHolders(t.sharedWork);
        return t;
      },
      (err) => {
        status.fail('waits file unreadable');
        node.error(`Cannot start the pending waits store: ${messageOf(err)}`);
        return null;
      },
    );

    /** Why the node's store cannot be used, in a few words (set by ownerOfWaits). */
    let storeStatus = 'no vector store';

    /**
     * What the triggerer polls for this node's waits. Without a usable store
     * (its config node deleted or invalid) the waits stay, and end at their
     * deadline saying why: never dormant for ever.
     */
    function ownerOfWaits(): WaitOwner {
      const maxConsecutiveErrors = config?.maxErrors ?? 0;
      try {
        const store = resolveStore(RED, storeId);
        return { backend: store.backend, storeKey: store.storeKey, maxConsecutiveErrors, onEvent, onCancelled };
      } catch (err) {
        storeStatus = failureStatus(err, 'store');
        const unavailable = storeId
          ? `its vector-store configuration (${storeId}) is missing or invalid: ${messageOf(err).replace(/\.$/, '')}`
          : `the sensor has no vector-store configuration: ${messageOf(err).replace(/\.$/, '')}`;
        return { backend: null, unavailable, storeKey: storeId ?? '', maxConsecutiveErrors, onEvent, onCancelled };
      }
    }

    /** Waits cancelled from the Vector waits sidebar: end them as msg.reset does (no output, done()). */
    function onCancelled(records: WaitRecord[], note: CancelNote): void {
      for (const record of records) {
        const waitId = record.spec.waitId;
        live.get(waitId)?.done();
        live.delete(waitId);
        if (newest?.waitId === waitId) newest = null;
      }
      const pending = pendingCount();
      if (pending === 0) status.ok(note.statusText(0));
      else status.waiting(note.statusText(pending));
    }

    node.on('input', (msg: SensorMessage, _send: unknown, done: Done) => {
      void handle(msg, done);
    });

    async function handle(msg: SensorMessage, done: Done): Promise<void> {
      if (msg.reset !== undefined && msg.reset !== null && msg.reset !== false) {
        await reset(msg, done);
        return;
      }
      const startedAt = Date.now();
      const arrival = quickChecks.arrive();
      let collection: string | null = null;
      let waitId: string | null = null;
      let counted = false;
      let step: FailureStep = 'config';
      try {
        if (configError || !config || !typed) throw configError;
        // Collection, expected count and timeout may come from msg/flow/global/env: this message's values.
        const msgConfig = await typed.configFor(msg, config, parse);
        step = 'store';
        const store = resolveStore(RED, storeId);
        step = 'collection';
        const watched = watchedCollectionOf(msg, msgConfig, store.backend.name);
        collection = collectionLabel(watched);
        const expectedCount = msgConfig.expectedCount > 0 ? msgConfig.expectedCount : expectedCountOf(msg);
        step = 'operation';
        waitId = newWaitId();
        msg.waitId = waitId;
        if (Date.now() - checkingDrawnAt >= STATUS_REFRESH_MS) {
          checkingDrawnAt = Date.now();
          status.busy(text('deferrable-sensor.status.checking', { collection }));
        }

        const spec = createTriggerSpec({
          waitId,
          collection,
          ...(isExisting(watched) ? { source: watched } : {}),
          expectedCount,
          pollIntervalMs: config.pollInterval * 1000,
          maxPollIntervalMs: config.maxPollInterval * 1000,
          timeoutMs: msgConfig.timeout * 1000,
          now: startedAt,
        });

        // 1. Validate (an unknown collection will never become ready), then
        // 2. quick check: already ready (or already failed) ends here. A store
        // that is down for now does not fail the message: the wait is deferred
        // and the triggerer retries until its deadline.
        try {
          // Both calls shared with the messages arriving meanwhile on the same collection (never an answer older than this message).
          if (!(await quickChecks.exists(store.backend, store.storeKey, watched, arrival))) {
            throw new VectorStoreError(
              'NOT_FOUND',
              `Collection "${collection}" does not exist in the ${store.backend.name} store, so there is nothing to wait for. Check the collection name, or ingest documents into it first.`,
            );
          }
          if (closed) throw stoppedError();
          const status = await quickChecks.status(store.backend, store.storeKey, watched, arrival, expectedCount > 0 ? { expectedCount } : undefined);
          const first = checkOnce(spec, status, Date.now());
          if (first) {
            finish({ msg, done }, first, watched);
            return;
          }
        } catch (err) {
          if (!(err instanceof VectorStoreError) || !err.transient) throw err;
        }

        // 3. Defer. The quick check was the wait's first poll.
        if (closed) throw stoppedError();
        const limit = settings.maxPendingWaitsPerSensor;
        if (pendingCount() + deferring >= limit) {
          throw new VectorStoreError(
            'LIMIT',
            `This sensor already has ${pendingCount() + deferring} pending waits, its limit (vectorPipeline.maxPendingWaitsPerSensor in settings.js, or VECTOR_PIPELINE_MAX_PENDING_WAITS): the wait for collection "${collection}" was not started. Let some waits end, send msg.reset, or raise the limit.`,
          );
        }
        spec.polls = 1;
        const record: WaitRecord = { ownerId: node.id, spec, message: parkableFields(msg, waitId) };
        const entry: LiveWait = { msg, done };
        // Every output replaces the incoming payload (an ingest's ids): not held while the wait lasts.
        msg.payload = undefined;
        live.set(waitId, entry);
        markNewest(waitId);
        if (!config.deferrable) {
          live.runsLocally(entry, runLocally(spec, store.backend, (event) => onEvent(record, event), { maxConsecutiveErrors: config.maxErrors }));
          // Listed (and cancellable) in the Vector waits sidebar like the triggerer's waits.
          localWaits.add(record, (note) => {
            entry.local?.cancel();
            onCancelled([record], note);
          });
          scheduleStatus();
          return;
        }
        deferring += 1;
        counted = true;
        const t = await attached;
        if (closed) throw stoppedError();
        if (!t) {
          const startError = triggererStartError(RED);
          throw startError ? deferError(startError) : stoppedError();
        }
        // The triggerer counts the wait as pending from this call on (before it is on disk).
        const deferred = t.defer(record);
        deferring -= 1;
        counted = false;
        // Resolves once the wait is on disk: durable before its first progress message.
        await deferred.catch((err: unknown) => {
          throw deferError(err);
        });
        scheduleStatus();
      } catch (err) {
        if (counted) deferring -= 1;
        if (waitId) live.delete(waitId); // e.g. the wait could not be written to disk
        const payload: FailurePayload = {
          status: 'error',
          ...(err instanceof VectorStoreError ? { code: err.code } : {}),
          collection: collection ?? '',
          message: messageOf(err),
          elapsedMs: Date.now() - startedAt,
          polls: 0,
          lastProgress: null,
        };
        msg.payload = payload;
        status.fail(step === 'config' ? configStatus : failureStatus(err, step));
        done(toError(err));
      }
    }

    function stoppedError(): Error {
      return withShortStatus(
        new Error('The sensor was stopped (a redeploy or a shutdown) before the wait could be started. Send the message again.'),
        'stopped, send again',
      );
    }

    function deferError(err: unknown): Error {
      return withShortStatus(new Error(`The wait could not be saved, so it was not started: ${messageOf(err)}`), 'wait not saved');
    }

    /** Triggerer (or local poller) events for one of this node's waits. */
    function onEvent(wait: WaitRecord, event: TriggerEvent): void {
      const waitId = wait.spec.waitId;
      switch (event.type) {
        case 'progress': {
          if (!newest || newest.waitId === waitId) newest = { waitId, progress: event.payload };
          retrying = false;
          // The store answers again: a later outage of a local wait is logged again.
          if (live.get(waitId)?.local) {
            localOutages.delete(wait.spec.collection);
            localWaits.progress(waitId, event.payload);
          }
          sendProgress(wait, event.payload);
          scheduleStatus();
          break;
        }
        case 'warning':
          // The triggerer logs an outage once per collection; a local wait logs it here, once.
          retrying = true;
          if (live.get(waitId)?.local) localWaits.progress(waitId, event.payload, event.message);
          if (live.get(waitId)?.local && !localOutages.has(wait.spec.collection)) {
            localOutages.add(wait.spec.collection);
            node.warn(event.message);
          }
          // Output 2 says why there is no news: the last progress, the retry reason as its detail.
          sendProgress(wait, event.payload);
          scheduleStatus();
          break;
        case 'final': {
          const entry = live.get(waitId);
          live.delete(waitId);
          if (entry?.local) {
            localOutages.delete(wait.spec.collection);
            localWaits.remove(waitId);
          }
          if (entry && !event.redelivered) {
            finish(entry, event.payload, watchedCollection(wait.spec));
          } else {
            // Resumed after a redeploy or restart: rebuild the parked message.
            const msg = copyOf(wait, 'final');
            msg.waitId = waitId;
            if (event.redelivered) msg.redelivered = true;
            finish({ msg, done: (err) => err && node.error(err.message, msg) }, event.payload, watchedCollection(wait.spec));
          }
          copyWarned.delete(waitId);
          break;
        }
      }
    }

    /** Output 2 wired to nothing: its messages would go nowhere, so none is built (a copy per wait per poll). */
    const progressUnwired = Array.isArray(def.wires) && (def.wires as unknown[][])[1]?.length === 0;

    function sendProgress(wait: WaitRecord, payload: ProgressPayload): void {
      if (progressUnwired) return;
      const progressMsg = copyOf(wait, 'progress');
      progressMsg._msgid = RED.util.generateId();
      progressMsg.payload = payload;
      progressMsg.waitId = wait.spec.waitId;
      node.send([null, progressMsg]);
    }

    /**
     * A copy of a wait's parked message. Never lost to a value that cannot be
     * copied (e.g. nested thousands of levels deep): such fields are copied
     * through JSON, else left out of progress messages (the final message, the
     * wait's last, takes them as they are), and the reason is logged once.
     */
    function copyOf(wait: WaitRecord, purpose: 'progress' | 'final'): SensorMessage {
      try {
        // The parked message is JSON data (it went through JSON to be saved): a plain copy is enough, and 3x cheaper.
        return copyJson(wait.message) as SensorMessage;
      } catch {
        // Nested deeper than the stack allows: try Node-RED's copy, field by field below.
      }
      try {
        return RED.util.cloneMessage(wait.message as NodeMessageInFlow) as SensorMessage;
      } catch (err) {
        const copy: Record<string, unknown> = {};
        const problems: string[] = [];
        for (const [key, value] of Object.entries(wait.message)) {
          try {
            copy[key] = (RED.util.cloneMessage({ value } as unknown as NodeMessageInFlow) as unknown as { value: unknown }).value;
          } catch {
            try {
              copy[key] = JSON.parse(JSON.stringify(value));
            } catch {
              problems.push(key);
              if (purpose === 'final') copy[key] = value;
              else delete copy[key];
            }
          }
        }
        const waitId = wait.spec.waitId;
        if (!copyWarned.has(waitId)) {
          copyWarned.add(waitId);
          const fields = problems.length > 0 ? problems.map((k) => `msg.${k}`).join(', ') : 'some fields';
          node.warn(
            `The message of wait ${waitId} (collection "${wait.spec.collection}") could not be copied (${messageOf(err)}): ` +
              `${fields} ${purpose === 'final' ? 'are passed on as they are' : 'are left out of its progress messages'}.`,
          );
        }
        return copy as SensorMessage;
      }
    }

    /** `watched` goes on in msg.collection, so a health check or query after the sensor reads the same collection. */
    function finish(entry: Pick<LiveWait, 'msg' | 'done'>, payload: SuccessPayload | FailurePayload, watched: CollectionRef): void {
      entry.msg.payload = payload;
      entry.msg.collection = watched;
      showingElsewhere = false;
      if (payload.status === 'success') {
        const said = entry.msg.redelivered
          ? text('deferrable-sensor.status.redelivered', { collection: payload.collection })
          : text('deferrable-sensor.status.ready', { collection: payload.collection, docs: payload.indexedCount });
        showLastFinal = () => status.ok(said);
        if (Date.now() - finalDrawnAt >= STATUS_REFRESH_MS) {
          finalDrawnAt = Date.now();
          showLastFinal();
        } else {
          finalToDraw = true;
          scheduleStatus();
        }
        node.send([entry.msg, null]);
        entry.done();
      } else {
        const said = failureStatus(payload);
        showLastFinal = () => status.fail(said);
        finalToDraw = false;
        showLastFinal();
        entry.done(Object.assign(new Error(payload.message), payload.code ? { code: payload.code } : {}));
      }
      if (pendingCount() > 0 || hasWaitsElsewhere()) scheduleStatus();
    }

    async function reset(msg: SensorMessage, done: Done): Promise<void> {
      const given = msg.collection;
      let only: string | null = null;
      if (isPlainObject(given)) {
        // Another tool's collection: its waits carry its label.
        try {
          only = collectionLabel(parseExistingCollection(given, 'msg.collection'));
        } catch (err) {
          const message = `${messageOf(err)} Nothing was cancelled.`;
          status.fail(failureStatus(err, 'collection'));
          done(toError(new VectorStoreError('INVALID_INPUT', message)));
          return;
        }
      } else if (given !== undefined && given !== null && given !== '') {
        if (typeof given !== 'string') {
          const err = new VectorStoreError(
            'INVALID_INPUT',
            `msg.collection must be a collection name (a string), or another tool's collection (an object such as {"name": "items"}), to reset the waits of one collection, not ${Array.isArray(given) ? 'an array' : typeof given}: nothing was cancelled. Leave msg.collection out to cancel all of this sensor's waits.`,
          );
          status.fail(failureStatus(err, 'collection'));
          done(toError(err));
          return;
        }
        only = given;
      }
      const matches = (collection: string) => only === null || collection === only;
      const t = await attached;
      const cancelled = new Set<string>();
      for (const record of t?.cancel((w) => w.ownerId === node.id && matches(w.spec.collection)) ?? []) {
        cancelled.add(record.spec.waitId);
      }
      for (const [waitId, entry] of live) {
        if (entry.local && matches(entry.local.collection)) {
          entry.local.cancel();
          localWaits.remove(waitId);
          cancelled.add(waitId);
        }
      }
      for (const waitId of cancelled) {
        live.get(waitId)?.done();
        live.delete(waitId);
      }
      if (newest && cancelled.has(newest.waitId)) newest = null;
      const where = only === null ? '' : ` on collection "${only}"`;
      node.log(`msg.reset cancelled ${cancelled.size} pending wait${cancelled.size === 1 ? '' : 's'}${where}.`);
      drawStatus(cancelled.size);
      done();
    }

    function pendingCount(): number {
      return (triggerer?.pending(node.id) ?? 0) + live.local;
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

    /** `cancelled`: a msg.reset just cancelled that many waits; the status says so. */
    function drawStatus(cancelled?: number): void {
      if (closed) return;
      const pending = pendingCount();
      if (cancelled !== undefined) {
        if (pending === 0) status.ok(text('deferrable-sensor.status.reset', { cancelled }));
        else status.waiting(text('deferrable-sensor.status.resetSome', { pending, cancelled }));
        return;
      }
      const here = hereTexts(pending);
      if (elsewhere) {
        const shared = sharedStatus(text, pending, here.texts, elsewhere);
        if (shared === null) {
          // Nothing pending anywhere: what the last wait ended with, as in file mode (not a blank).
          if (showingElsewhere || finalToDraw) {
            if (showLastFinal) showLastFinal();
            else status.clear();
          }
          showingElsewhere = false;
          finalToDraw = false;
          return;
        }
        showingElsewhere = hasWaitsElsewhere();
        if (retrying && pending > 0 && !showingElsewhere) status.warn(shared);
        else status.waiting(shared);
        return;
      }
      if (pending === 0) {
        // Keep the last final status (ready / failed), drawn now if a burst of finals held it back.
        if (finalToDraw && showLastFinal) showLastFinal();
        finalToDraw = false;
        return;
      }
      finalToDraw = false; // the pending count says more
      // The store's own words say more than an estimate ("waiting for old snapshots"): cut to fit, not replaced.
      const shown = here.cut ? here.texts[0] : (here.texts.find(fits) ?? here.texts[0]);
      if (retrying) status.warn(shown);
      else status.waiting(shown);
    }

    /**
     * What the status says of the waits held here, most detailed first; the
     * shorter ones are for when room runs out (thousands of waits leave no room
     * for the estimate: the count and the percentage say more).
     */
    function hereTexts(pending: number): { texts: string[]; cut: boolean } {
      const plain = text('deferrable-sensor.status.waitingPlain', { pending });
      if (retrying) return { texts: [text('deferrable-sensor.status.retrying', { pending }), plain], cut: false };
      const progress = newest?.progress;
      if (!progress || progress.progress === null) return { texts: [plain], cut: false };
      const percent = Math.floor(progress.progress * 100);
      const noEta = text('deferrable-sensor.status.waitingNoEta', { pending, percent });
      if (progress.phase) return { texts: [text('deferrable-sensor.status.waitingPhase', { pending, percent, phase: progress.phase }), noEta, plain], cut: true };
      if (progress.etaSeconds === null) return { texts: [noEta, plain], cut: false };
      const eta = shortDuration(Math.ceil(progress.etaSeconds) * 1000);
      return { texts: [text('deferrable-sensor.status.waiting', { pending, percent, eta }), noEta, plain], cut: false };
    }

    function hasWaitsElsewhere(): boolean {
      return elsewhere !== null && (elsewhere.holders.length > 0 || elsewhere.unheld > 0);
    }

    /**
     * Shared waits: which instances hold this node's waits, every few seconds,
     * redrawn when that changed. A failed read keeps what was known (the shared
     * store's heartbeat logs an outage of the database once).
     */
    function readHolders(shared: SharedWorkStore): void {
      if (closed) return;
      shared
        .holderCounts([node.id])
        .then(
          (counts) => {
            const seen = waitsElsewhere(counts, shared.instanceId);
            const changed = JSON.stringify(seen) !== JSON.stringify(elsewhere);
            elsewhere = seen;
            if (changed) drawStatus();
          },
          () => undefined,
        )
        .catch((err: unknown) => node.warn(`Could not show which instances hold this node's waits: ${messageOf(err)}`))
        .finally(() => {
          if (!closed) holdersTimer = setTimeout(() => readHolders(shared), HOLDERS_REFRESH_MS);
        });
    }

    /** Fields of the message that cannot be saved with the wait are named once, in the log. */
    function parkableFields(msg: SensorMessage, waitId: string): Record<string, unknown> {
      // Every message of the wait gets the sensor's own payload: the incoming one (an ingest's ids) is never needed again.
      const { payload: _replaced, ...rest } = msg;
      const { parked, dropped } = parkable(rest);
      if (dropped.length > 0) {
        node.warn(
          `Wait ${waitId}: ${dropped.map((d) => `msg.${d.key} (${d.reason})`).join(', ')} cannot be saved with the wait; if it resumes after a redeploy or a restart, its messages come without ${dropped.length === 1 ? 'it' : 'them'}.`,
        );
      }
      return parked;
    }

    node.on('close', (_removed: boolean, done: () => void) => {
      closed = true;
      if (statusTimer) clearTimeout(statusTimer);
      statusTimer = null;
      if (holdersTimer) clearTimeout(holdersTimer);
      holdersTimer = null;
      // Messages in flight are done here (like the delay node's); a wait that
      // resumes later sends its final message afresh.
      for (const [waitId, entry] of live) {
        if (entry.local) {
          entry.local.cancel();
          localWaits.remove(waitId); // nothing of it outlives the node: it was never on disk
        }
        entry.done();
      }
      live.clear();
      // Detach only: the waits stay on disk, dormant. A redeploy, re-enabling a
      // disabled flow or node, or a restart resumes them; deleting the node
      // cancels them once the new flows have started (dropWaitsOfDeletedNodes).
      triggerer?.detach(node.id);
      done();
    });
  }

  RED.nodes.registerType('deferrable-sensor', DeferrableSensorNode as never);
};
