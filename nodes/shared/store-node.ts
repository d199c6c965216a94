/**
 * The shape shared by the ingest, health and query nodes: parse the node's
 * configuration once, then for each message resolve the store and collection,
 * run one engine operation, and report through the status and `done`.
 * A node only supplies what differs: its config parser and its operation.
 */
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { messageOf } from '../../lib/errors';
import { NodeStatus, clip, failureStatus, type FailureStep } from './status';
import { catalogTexts, type Texts } from './texts';
import { resolveStore, type ResolvedStore } from './store';
import { collectionOf, errorPayload, toError, watchedCollectionOf } from './messages';
import { collectionLabel } from '../../lib/collection-ref';
import type { FieldLabels, WatchConfig } from '../../lib/schemas';
import { labelledParser, migrateConfig } from '../../lib/config-versions';
import { TypedInputs, type TypedField } from './typed-inputs';
import type { CollectionRef } from '../../lib/types';

export type StoreMessage = NodeMessageInFlow & { collection?: unknown } & Record<string, unknown>;

/**
 * What an operation ended with; `msg.payload` is already set either way. A
 * failure's `reason` is the sentence of msg.error.message, its `status` the
 * short text the node shows (see shared/status).
 */
export type Outcome =
  | { ok: true; statusText: string; empty?: boolean }
  | { ok: false; reason: string; status: string }
  /** The operation keeps `send` and `done`: the message completes later (a background job). */
  | { ok: true; later: true };

export interface OperationContext<C> {
  RED: NodeAPI;
  /** Catalog texts for the status (cached templates: no i18next per message). */
  text: Texts;
  config: C;
  store: ResolvedStore;
  /** A string for a package collection; an ExistingCollection only for nodes that watch (see `watches`). */
  collection: CollectionRef;
  /** The collection's name, or another tool's collection's label: for statuses and messages. */
  label: string;
  msg: StoreMessage;
  status: NodeStatus;
  /** For an operation that completes the message later (`later` outcome). */
  send: (msg: NodeMessageInFlow) => void;
  done: (err?: Error) => void;
  /** What `StoreNodeOptions.perNode` made for this node instance. */
  perNode: unknown;
}

/** State a node instance keeps beyond one message (its background jobs), closed with the node. */
export interface PerNodeState {
  /** Node-RED's close callback waits for a returned promise (the gathering ingest's last writes). */
  close(): void | Promise<void>;
  /** Sees each message first; true: it handled the message (e.g. msg.reset), the operation does not run. */
  intercept?(msg: StoreMessage, done: (err?: Error) => void): Promise<boolean>;
}

export interface StoreNodeOptions {
  /**
   * On failure, leave msg.payload as it came (the error is in msg.error of the
   * message Catch nodes get) instead of the structured error payload: a failed
   * ingest keeps its documents, so a flow can retry or store them elsewhere.
   */
  keepPayloadOnError?: boolean;
  /**
   * The node reads a collection and may watch one another tool made (its config
   * has the WatchConfig fields); else only package collections (ingest writes).
   */
  watches?: boolean;
  /** Properties that may come from msg, flow, global or env (typed inputs), read per message. */
  typedInputs?: readonly TypedField[];
  /** Made once per node instance (given to each operation as `perNode`), closed with it. */
  perNode?: (node: Node, def: NodeDef & Record<string, unknown>, status: NodeStatus, text: Texts) => PerNodeState;
}

export function registerStoreNode<C extends { collection: string } & Partial<WatchConfig>>(
  RED: NodeAPI,
  type: string,
  /** Parses the config (migrated to the current version first), naming fields by the labels given. */
  parseConfig: (def: unknown, labels?: FieldLabels) => C,
  operation: (ctx: OperationContext<C>) => Promise<Outcome>,
  options: StoreNodeOptions = {},
): void {
  const text = catalogTexts(RED);

  function StoreNode(this: Node, def: NodeDef & Record<string, unknown>): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const status = new NodeStatus(node);
    const storeId = def.store as string | undefined;

    let config: C | null = null;
    let configError: Error | null = null;
    let configStatus = '';
    let typed: TypedInputs<C> | null = null;
    // Config errors name the dialog's labels ("Batch size"), at deploy and per message.
    const parse = labelledParser(type, parseConfig);
    try {
      // An older saved shape becomes today's first (lib/config-versions.ts); then the typed
      // inputs blank what is read per message, and the rest is parsed once.
      typed = new TypedInputs<C>(RED, node, migrateConfig(type, def), options.typedInputs ?? []);
      config = parse(typed.deployDef);
    } catch (err) {
      configError = toError(err);
      configStatus = failureStatus(err, 'config');
      status.fail(configStatus);
      node.error(messageOf(err));
    }

    const perNode = options.perNode?.(node, def, status, text) ?? null;
    if (perNode) {
      node.on('close', (_removed: boolean, closed: () => void) => {
        let closing: void | Promise<void>;
        try {
          closing = perNode.close();
        } catch (err) {
          closing = Promise.reject(err);
        }
        Promise.resolve(closing)
          .catch((err) => node.warn(`Closing the node failed: ${messageOf(err)}`))
          .finally(closed);
      });
    }

    node.on('input', (msg: StoreMessage, send: (msg: NodeMessageInFlow) => void, done: (err?: Error) => void) => {
      void handle(msg, send, done);
    });

    async function handle(msg: StoreMessage, send: (msg: NodeMessageInFlow) => void, done: (err?: Error) => void): Promise<void> {
      let label: string | null = null;
      let step: FailureStep = 'config';
      try {
        if (perNode?.intercept && (await perNode.intercept(msg, done))) return;
        if (configError || !config || !typed) throw configError;
        // Properties read from msg/flow/global/env: this message's values.
        const msgConfig = await typed.configFor(msg, config, parse);
        step = 'store';
        const store = resolveStore(RED, storeId);
        step = 'collection';
        const collection: CollectionRef =
          options.watches && msgConfig.origin
            ? watchedCollectionOf(msg, msgConfig as C & WatchConfig, store.backend.name)
            : collectionOf(msg, msgConfig.collection, store.backend.name);
        label = collectionLabel(collection);
        step = 'operation';
        const outcome = await operation({ RED, text, config: msgConfig, store, collection, label, msg, status, send, done, perNode });
        if ('later' in outcome) return;
        msg.collection = collection;
        if (!outcome.ok) {
          status.fail(clip(outcome.status));
          done(new Error(outcome.reason));
          return;
        }
        if (outcome.empty) status.warn(outcome.statusText);
        else status.ok(outcome.statusText);
        send(msg);
        done();
      } catch (err) {
        // Node-RED clones the message for Catch nodes: a payload it cannot clone
        // (nested thousands of levels deep) would lose the error, so it goes.
        if (!options.keepPayloadOnError || !cloneable(RED, msg.payload)) msg.payload = errorPayload(label, err);
        status.fail(step === 'config' ? configStatus : failureStatus(err, step));
        done(toError(err));
      }
    }
  }

  RED.nodes.registerType(type, StoreNode as never);
}

/** Can Node-RED clone this value (as it does to hand a message to a Catch node)? */
function cloneable(RED: NodeAPI, value: unknown): boolean {
  try {
    RED.util.cloneMessage({ payload: value } as never);
    return true;
  } catch {
    return false;
  }
}
