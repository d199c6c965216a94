/**
 * The "Vector waits" plugin: the runtime half of the editor's sidebar tab
 * (vector-waits.html). It serves every pending wait of the runtime's triggerer,
 * grouped by store and collection (lib/wait-list.ts), through admin endpoints
 * guarded by Node-RED's permissions, and pushes what changed over the editor's
 * comms channel at most once a second.
 *
 *   GET  /vector-pipeline/waits                          vector-waits.read   the groups
 *   GET  /vector-pipeline/waits?store=&collection=       vector-waits.read   one page of a group's waits
 *        &offset=&limit=
 *   POST /vector-pipeline/waits/cancel {waitId}          vector-waits.write  cancel one wait
 *   POST /vector-pipeline/waits/cancel {store, collection}                   cancel all of a group
 *
 * Comms topic `vector-pipeline/waits`: WaitFeed messages (lib/wait-list.ts).
 *
 * A cancel ends a wait as msg.reset does: no final message, the sensor's
 * message completes (done()), the wait leaves the disk, and the sensor's status
 * says so. The log names who cancelled.
 */
import type { NodeAPI } from 'node-red';
import type { Request, RequestHandler, Response } from 'express';
import { WaitList, DEFAULT_PAGE_SIZE, type OwnerInfo, type WaitFeed } from '../../lib/wait-list';
import type { Triggerer, WaitRecord } from '../../lib/triggerer';
import { messageOf } from '../../lib/errors';
import { localWaitsFor, triggererFor } from '../shared/runtime';
import { MergedWaitSource } from '../../lib/local-waits';
import english from './locales/en-US/vector-waits.json';

const FEED_TOPIC = 'vector-pipeline/waits';
const ROUTE = '/vector-pipeline/waits';

/** A node of the deployed configuration, as the wait list needs it. */
interface NodeDef {
  id: string;
  type: string;
  z?: string;
  name?: string;
  store?: string;
  collection?: unknown;
  backend?: string;
}

/** One per runtime (per event bus): the wait list outlives the API object the test helper rebuilds per load. */
interface PluginState {
  RED: NodeAPI;
  list: WaitList;
  /** Every node of the deployed flows (disabled ones too), by id: names and stores of the sensors. */
  defs: Map<string, NodeDef>;
  /** What the list reads: the triggerer's waits and the ones sensors run in their node, for that triggerer. */
  source: { triggerer: Triggerer; merged: MergedWaitSource } | null;
}

const states = new WeakMap<object, PluginState>();

export = function register(RED: NodeAPI): void {
  RED.plugins.registerPlugin('vector-waits', { type: 'vector-pipeline-sidebar' } as never);
  const state = stateFor(RED);
  serve(RED, state);
};

function stateFor(RED: NodeAPI): PluginState {
  const events = RED.events as unknown as NodeJS.EventEmitter;
  const known = states.get(events);
  if (known) {
    known.RED = RED;
    return known;
  }
  const defs = new Map<string, NodeDef>();
  const state: PluginState = {
    RED,
    defs,
    source: null,
    list: new WaitList({
      describeOwner: (ownerId) => describeOwner(state, ownerId),
      publish: (feed: WaitFeed) => state.RED.comms.publish(FEED_TOPIC, feed as never, false),
    }),
  };
  states.set(events, state);
  // After every deploy or start: names and stores may have changed, and the
  // triggerer may be a new one (its waits file is read at the first start).
  events.on('flows:started', () => {
    readDefs(state);
    state.list.refreshOwners();
    bind(state).catch((err) => state.RED.log.warn(`vector-waits: ${messageOf(err)}`));
  });
  return state;
}

function readDefs(state: PluginState): void {
  state.defs.clear();
  state.RED.nodes.eachNode((n: object) => {
    const def = n as NodeDef;
    state.defs.set(def.id, def);
  });
}

async function bind(state: PluginState): Promise<Triggerer> {
  const triggerer = await triggererFor(state.RED);
  if (state.source?.triggerer !== triggerer) {
    state.source = { triggerer, merged: new MergedWaitSource([triggerer, localWaitsFor(state.RED)]) };
  }
  state.list.bind(state.source.merged);
  return triggerer;
}

/**
 * A text of the plugin's catalog. Where Node-RED has no catalog (the test
 * helper's RED._ returns the key), the English catalog is used directly.
 */
function text(state: PluginState, key: string, values: Record<string, string | number> = {}): string {
  const full = `vector-waits.${key}`;
  const translated = state.RED._(full, values);
  if (translated !== full) return translated;
  let template: unknown = english['vector-waits'];
  for (const part of key.split('.')) template = (template as Record<string, unknown> | undefined)?.[part];
  return typeof template === 'string' ? template.replace(/__(\w+)__/g, (whole, name: string) => (name in values ? String(values[name]) : whole)) : full;
}

function describeOwner(state: PluginState, ownerId: string): OwnerInfo {
  const def = state.defs.get(ownerId);
  if (!def) return { storeId: '', storeName: text(state, 'noStore'), nodeName: ownerId, flowId: null };
  const storeId = typeof def.store === 'string' ? def.store : '';
  const store = storeId ? state.defs.get(storeId) : undefined;
  const storeName = store ? store.name || text(state, 'storeOf', { backend: store.backend || 'memory' }) : storeId || text(state, 'noStore');
  const collection = typeof def.collection === 'string' && def.collection ? def.collection : null;
  const nodeName = def.name || (collection ? text(state, 'waitFor', { collection }) : text(state, 'sensor'));
  return { storeId, storeName, nodeName, flowId: def.z ?? null };
}

/** The endpoints, on this API object's admin app (the test helper makes a new one per load). */
function serve(RED: NodeAPI, state: PluginState): void {
  const read = RED.auth.needsPermission('vector-waits.read') as RequestHandler;
  const write = forbiddenWithout(RED, state, 'vector-waits.write');
  const app = RED.httpAdmin;

  app.get(ROUTE, read, (req: Request, res: Response) => {
    handle(state, res, async () => {
      await bind(state);
      const { store, collection } = req.query;
      if (typeof store === 'string' && typeof collection === 'string') {
        const offset = Number(req.query.offset ?? 0);
        const limit = Number(req.query.limit ?? DEFAULT_PAGE_SIZE);
        const page = state.list.page(store, collection, Number.isFinite(offset) ? offset : 0, Number.isFinite(limit) ? limit : DEFAULT_PAGE_SIZE);
        return { status: 200, body: page };
      }
      return { status: 200, body: state.list.groups() };
    });
  });

  app.post(`${ROUTE}/cancel`, read, write, (req: Request, res: Response) => {
    handle(state, res, async () => {
      const body = (req.body ?? {}) as Record<string, unknown>;
      const triggerer = await bind(state);
      const by = userOf(req);
      const note = {
        statusText: (pending: number) => (pending === 0 ? text(state, 'status.cancelled') : text(state, 'status.cancelledSome', { pending })),
        by,
      };
      let what: string;
      let matches: (wait: WaitRecord) => boolean;
      if (typeof body.waitId === 'string' && body.waitId) {
        const waitId = body.waitId;
        what = text(state, 'log.oneWait', { waitId });
        matches = (wait) => wait.spec.waitId === waitId;
      } else if (typeof body.store === 'string' && typeof body.collection === 'string' && body.collection) {
        const { store, collection } = body as { store: string; collection: string };
        what = text(state, 'log.group', { collection, store: describeStore(state, store) });
        matches = (wait) => wait.spec.collection === collection && describeOwner(state, wait.ownerId).storeId === store;
      } else {
        return { status: 400, body: { error: 'bad_request', message: text(state, 'errors.badCancel') } };
      }
      // The triggerer's waits, and those sensors with "deferrable" off run in their node.
      const removed = [...triggerer.cancelAndNotify(matches, note), ...localWaitsFor(state.RED).cancelAndNotify(matches, note)];
      if (removed.length === 0) return { status: 404, body: { error: 'not_found', message: text(state, 'errors.nothingToCancel', { what }) } };
      const nodes = [...new Set(removed.map((w) => describeOwner(state, w.ownerId).nodeName))].slice(0, 5).join('", "');
      state.RED.log.info(
        text(state, 'log.cancelled', { who: by ?? text(state, 'log.someone'), count: removed.length, what, nodes }),
      );
      return { status: 200, body: { cancelled: removed.length, waitIds: removed.slice(0, 1000).map((w) => w.spec.waitId) } };
    });
  });
}

function describeStore(state: PluginState, storeId: string): string {
  const store = state.defs.get(storeId);
  return store?.name || storeId || text(state, 'noStore');
}

/** The admin user's name, when Node-RED authenticated one. */
function userOf(req: Request): string | null {
  const user = (req as Request & { user?: { username?: unknown } }).user;
  return user && typeof user.username === 'string' && user.username ? user.username : null;
}

/**
 * Node-RED's own permission check, answering 403 (with a sentence) instead of
 * its 401 when a signed-in user lacks the permission: the request was
 * authenticated by the read check before it, so a refusal here is "not
 * allowed", not "not signed in".
 */
function forbiddenWithout(RED: NodeAPI, state: PluginState, permission: string): RequestHandler {
  const check = RED.auth.needsPermission(permission) as RequestHandler;
  return (req, res, next) => {
    const forbid = () =>
      res.status(403).json({ error: 'forbidden', message: text(state, 'errors.forbidden', { permission }) });
    const guarded = Object.create(res) as Response;
    guarded.status = ((code: number) => (code === 401 ? { end: forbid, json: forbid, send: forbid } : res.status(code))) as never;
    check(req, guarded, next);
  };
}

function handle(state: PluginState, res: Response, work: () => Promise<{ status: number; body: unknown }>): void {
  work().then(
    (answer) => res.status(answer.status).json(answer.body),
    (err: unknown) => {
      state.RED.log.warn(`vector-waits: ${messageOf(err)}`);
      res.status(503).json({ error: 'unavailable', message: text(state, 'errors.unavailable', { reason: messageOf(err) }) });
    },
  );
}
