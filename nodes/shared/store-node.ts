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
export type Outcome = { ok: true; statusText: string; empty?: boolean } | { ok: false; reason: string; status: string };

export interface OperationContext<C> {
  RED: NodeAPI;
  /** The node the message came to: for state an operation keeps per node (the ingest's gatherer). */
  node: Node;
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

    node.on('input', (msg: StoreMessage, send: (msg: NodeMessageInFlow) => void, done: (err?: Error) => void) => {
      void handle(msg, send, done);
    });

    async function handle(msg: StoreMessage, send: (msg: NodeMessageInFlow) => void, done: (err?: Error) => void): Promise<void> {
      let label: string | null = null;
      let step: FailureStep = 'config';
      try {
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
        const outcome = await operation({ RED, node, text, config: msgConfig, store, collection, label, msg, status });
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
