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
