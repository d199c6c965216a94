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
 *   GET  /vector-pipeline/waits/holders                  vector-waits.read   shared waits: which instance holds how many, per group
 *   POST /vector-pipeline/waits/cancel {waitId}          vector-waits.write  cancel one wait (409 when another instance holds it)
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
import { WaitList, DEFAULT_PAGE_SIZE, groupKey, type OwnerInfo, type WaitFeed } from '../../lib/wait-list';
import { shortHolder } from '../../lib/job-stores/holder-counts';
import type { SharedWorkStore } from '../../lib/job-stores/shared-work';
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

  app.get(`${ROUTE}/holders`, read, (req: Request, res: Response) => {
    handle(state, res, async () => {
      const triggerer = await bind(state);
      try {
        return { status: 200, body: await holders(state, triggerer.sharedWork) };
      } catch (err) {
        // Asked every 5 s by each open sidebar: not logged (the shared store logs an outage once).
        return { status: 503, body: { error: 'unavailable', message: text(state, 'errors.unavailable', { reason: messageOf(err) }) } };
      }
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
      if (removed.length === 0) {
        const elsewhere =
          typeof body.waitId === 'string' && body.waitId
            ? await waitHeldElsewhere(state, triggerer.sharedWork, body.waitId)
            : await groupHeldElsewhere(state, triggerer.sharedWork, groupKey(body.store as string, body.collection as string), what);
        if (elsewhere) return { status: 409, body: elsewhere };
        return { status: 404, body: { error: 'not_found', message: text(state, 'errors.nothingToCancel', { what }) } };
      }
      const nodes = [...new Set(removed.map((w) => describeOwner(state, w.ownerId).nodeName))].slice(0, 5).join('", "');
      state.RED.log.info(
        text(state, 'log.cancelled', { who: by ?? text(state, 'log.someone'), count: removed.length, what, nodes }),
      );
      return { status: 200, body: { cancelled: removed.length, waitIds: removed.slice(0, 1000).map((w) => w.spec.waitId) } };
    });
  });
}

/** One group's waits by holder, as GET /vector-pipeline/waits/holders answers. */
interface HolderGroup {
  key: string;
  store: { id: string; name: string };
  collection: string;
  /** This instance first, then the others by count; waits nobody holds last (`instance` null). */
  holders: Array<{ instance: string | null; name: string | null; here: boolean; count: number }>;
}

/**
 * Which instance holds how many waits of each group (store and collection), for
 * every deployed sensor: from the shared store's cached counts (one query every
 * few seconds, whoever asks). File mode: `{shared: false}`.
 */
async function holders(
  state: PluginState,
  shared: SharedWorkStore | null,
): Promise<{ shared: boolean; instance: { id: string; name: string } | null; groups: HolderGroup[] }> {
  if (!shared) return { shared: false, instance: null, groups: [] };
  const sensors = [...state.defs.values()].filter((def) => def.type === 'deferrable-sensor').map((def) => def.id);
  const counts = await shared.holderCounts(sensors);
  const here = shared.instanceId;
  const names = [here, ...new Set(counts.map((row) => row.holder))];
  const groups = new Map<string, HolderGroup>();
  for (const row of counts) {
    const owner = describeOwner(state, row.ownerId);
    const key = groupKey(owner.storeId, row.collection);
    let group = groups.get(key);
    if (!group) {
      group = { key, store: { id: owner.storeId, name: owner.storeName }, collection: row.collection, holders: [] };
      groups.set(key, group);
    }
    const entry = group.holders.find((h) => h.instance === row.holder);
    if (entry) entry.count += row.count;
    else group.holders.push({ instance: row.holder, name: row.holder === null ? null : shortHolder(row.holder, names), here: row.holder === here, count: row.count });
  }
  const rank = (h: HolderGroup['holders'][number]) => (h.here ? 0 : h.instance === null ? 2 : 1);
  for (const group of groups.values()) group.holders.sort((a, b) => rank(a) - rank(b) || b.count - a.count || String(a.name).localeCompare(String(b.name)));
  const sorted = [...groups.values()].sort((a, b) => a.store.name.localeCompare(b.store.name) || a.collection.localeCompare(b.collection));
  return { shared: true, instance: { id: here, name: shortHolder(here, names) }, groups: sorted };
}

/** A wait this instance does not run but another live instance holds: the 409 answer naming it, else null. */
async function waitHeldElsewhere(state: PluginState, shared: SharedWorkStore | null, waitId: string): Promise<Record<string, string> | null> {
  if (!shared) return null;
  const holder = await shared.holderOf(waitId);
  if (holder === null || holder === shared.instanceId) return null;
  return { error: 'held_elsewhere', holder, message: text(state, 'errors.heldElsewhere', { waitId, holder }) };
}

/** A group none of whose waits is here, but other live instances hold some: the 409 answer naming them, else null. */
async function groupHeldElsewhere(state: PluginState, shared: SharedWorkStore | null, key: string, what: string): Promise<Record<string, unknown> | null> {
  if (!shared) return null;
  const group = (await holders(state, shared)).groups.find((g) => g.key === key);
  const others = group?.holders.filter((h) => h.instance !== null && !h.here) ?? [];
  if (others.length === 0) return null;
  const named = others.map((h) => `${h.instance}: ${h.count}`).join(', ');
  return { error: 'held_elsewhere', holders: others.map((h) => h.instance), message: text(state, 'errors.groupHeldElsewhere', { what, holders: named }) };
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
