/**
 * `vector-store` config node: owns one backend (client, pool or embedded store)
 * and one embedder for every node that uses it, and releases them on close.
 * Secrets (`password`, `apiKey`, `embedApiKey`) are Node-RED credentials: stored
 * encrypted apart from the flow, never logged, never put in a message.
 */
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { createBackend } from '../lib/backends';
import { forgetVolatileCollections } from '../lib/backends/memory';
import { createEmbedder } from '../lib/embedders';
import { parseStoreConfig, type StoreConfig } from '../lib/schemas';
import type { Store } from '../lib/operations';
import { messageOf } from '../lib/errors';
import type { VectorStoreConfigNode } from './shared/store';

interface StoreCredentials {
  password?: string;
  apiKey?: string;
  embedApiKey?: string;
}

export = function register(RED: NodeAPI): void {
  function VectorStoreNode(this: VectorStoreConfigNode, def: NodeDef & Record<string, unknown>): void {
    RED.nodes.createNode(this, def);
    const node = this as VectorStoreConfigNode & Node<StoreCredentials>;

    let config: StoreConfig | null = null;
    let configError: Error | null = null;
    try {
      config = parseStoreConfig(def);
    } catch (err) {
      configError = new Error(`Invalid vector-store configuration "${def.name || node.id}": ${messageOf(err)}`);
      node.error(configError.message);
    }

    // Created on first use, so a store nobody uses opens no connection.
    let store: Store | null = null;

    node.getStore = (): Store => {
      if (configError || !config) throw configError ?? new Error('vector-store is not configured');
      if (!store) {
        const credentials = node.credentials ?? {};
        const backend = createBackend(config, {
          userDir: RED.settings.userDir ?? null,
          storeKey: node.id,
          credentials: { password: credentials.password, apiKey: credentials.apiKey },
        });
        const embedder = createEmbedder(config, { embedApiKey: credentials.embedApiKey });
        store = { backend, embedder };
      }
      return store;
    };

    node.on('close', (removed: boolean, done: () => void) => {
      const closing = store;
      store = null;
      // In-process collections outlive a redeploy, but not the config node's deletion.
      if (removed) forgetVolatileCollections(node.id);
      if (!closing) return done();
      Promise.all([closing.backend.close(), closing.embedder.close?.()])
        .catch((err) => node.warn(`Closing the vector store failed: ${messageOf(err)}`))
        .finally(done);
    });
  }

  RED.nodes.registerType('vector-store', VectorStoreNode as never, {
    credentials: {
      password: { type: 'password' },
      apiKey: { type: 'password' },
      embedApiKey: { type: 'password' },
    },
  });
};
