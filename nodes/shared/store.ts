/**
 * How the nodes reach their `vector-store` config node. The config node owns the
 * backend and the embedder (one client or pool per config node, like MQTT's
 * broker node); user nodes only borrow them.
 */
import type { Node, NodeAPI } from 'node-red';
import type { Store } from '../../lib/operations';
import { VectorStoreError } from '../../lib/errors';

export interface VectorStoreConfigNode extends Node {
  /** The backend and embedder; throws a clear error when the configuration is invalid. */
  getStore(): Store;
}

export interface ResolvedStore extends Store {
  /** The config node id: what identifies this store across redeploys and restarts. */
  storeKey: string;
}

export function resolveStore(RED: NodeAPI, storeId: string | undefined): ResolvedStore {
  const configNode = storeId ? (RED.nodes.getNode(storeId) as VectorStoreConfigNode | null) : null;
  if (!configNode || typeof configNode.getStore !== 'function') {
    throw new VectorStoreError(
      'INVALID_INPUT',
      'No vector store is configured: open the node, choose a "vector-store" configuration in the Store field, and deploy.',
    );
  }
  return { ...configNode.getStore(), storeKey: configNode.id };
}

/** Work user nodes still finish with a store while the flows stop, by config node id. */
const finishingWork = new Map<string, Set<Promise<unknown>>>();

/**
 * Keep the store of config node `storeKey` open until `work` settled: Node-RED
 * stops a flow's nodes and its config nodes at once, and a gathering ingest
 * writes its last batch while it closes. Call it from the node's close handler.
 */
export function finishBeforeStoreCloses(storeKey: string, work: Promise<unknown>): void {
  let pending = finishingWork.get(storeKey);
  if (!pending) finishingWork.set(storeKey, (pending = new Set()));
  const tracked = pending;
  tracked.add(work);
  const forget = () => {
    tracked.delete(work);
    if (tracked.size === 0 && finishingWork.get(storeKey) === tracked) finishingWork.delete(storeKey);
  };
  work.then(forget, forget);
}

/**
 * Settles once the work user nodes are finishing with this store settled (see
 * finishBeforeStoreCloses). It looks after a turn of the event loop: Node-RED
 * calls the close handlers of all stopping nodes in one pass, and the config
 * node's may come before its users' (in a flow whose nodes have no position, all
 * are config nodes, in the order saved).
 */
export async function storeWorkFinished(storeKey: string): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
  await Promise.allSettled([...(finishingWork.get(storeKey) ?? [])]);
}
