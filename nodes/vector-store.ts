/**
 * `vector-store` config node: owns one backend (client, pool or embedded store)
 * and one embedder for every node that uses it, and releases them on close.
 * Secrets (`password`, `apiKey`, `embedApiKey`) are Node-RED credentials: stored
 * encrypted apart from the flow, never logged, never put in a message; one that
 * cannot be sent (a line break) is a configuration error naming the field.
 * Every store call times out after the runtime setting `vectorPipeline.storeTimeout`.
 */
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { checkBackendSecrets, createBackend } from '../lib/backends';
import { forgetVolatileCollections } from '../lib/backends/memory';
import { createEmbedder } from '../lib/embedders';
import { InvalidFieldsError, parseStoreConfig, type StoreConfig } from '../lib/schemas';
import type { Store } from '../lib/operations';
import { VectorStoreError, messageOf } from '../lib/errors';
import { readJobStoreSettings, runtimeSettingsOrDefaults } from '../lib/settings';
import { storeWorkFinished, type VectorStoreConfigNode } from './shared/store';
import { readNodeConfig } from '../lib/config-versions';
import { withDetail, withShortStatus } from './shared/status';

interface StoreCredentials {
  password?: string;
  apiKey?: string;
  embedApiKey?: string;
}

export = function register(RED: NodeAPI): void {
  // Read once: settings.js and the environment do not change while Node-RED runs.
  const settings = runtimeSettingsOrDefaults((RED.settings as { vectorPipeline?: unknown }).vectorPipeline, (message) =>
    RED.log.warn(message),
  );
  const shared = sharesWork(RED);
  /** Memory stores already warned about (once per config node while Node-RED runs). */
  const warnedLocal = new Set<string>();

  function VectorStoreNode(this: VectorStoreConfigNode, def: NodeDef & Record<string, unknown>): void {
    RED.nodes.createNode(this, def);
    const node = this as VectorStoreConfigNode & Node<StoreCredentials>;

    let config: StoreConfig | null = null;
    let configError: Error | null = null;
    try {
      config = readNodeConfig('vector-store', def, parseStoreConfig);
      // Before any use: a credential that cannot be sent is reported now, once, not per message.
      checkBackendSecrets(config.backend, storeCredentials(node.credentials));
    } catch (err) {
      // A configuration error: permanent (the sensor must not retry it), until the user fixes and deploys.
      configError = new VectorStoreError('INVALID_INPUT', `Invalid vector-store configuration "${def.name || node.id}": ${messageOf(err)}`, {
        transient: false,
      });
      // The nodes using this store show the field at fault: "bad store config: Dimensions".
      const field = err instanceof InvalidFieldsError ? err.fields[0] : undefined;
      withShortStatus(configError, field ? withDetail('bad store config', field) : 'bad store config');
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
          credentials: storeCredentials(credentials),
          callTimeoutMs: settings.storeTimeoutMs,
          log: { warn: (message: string) => RED.log.warn(`vector-store: ${message}`) },
        });
        const embedder = createEmbedder(config, { embedApiKey: credentials.embedApiKey });
        store = { backend, embedder };
        if (shared && config.backend === 'memory' && !warnedLocal.has(node.id)) {
          warnedLocal.add(node.id);
          // Another instance that takes over a wait or a job of this store would see only its own documents.
          RED.log.warn(
            `vector-store "${def.name || node.id}" uses the embedded memory store, which each Node-RED instance keeps its own, ` +
              `while waits and ingest jobs are shared through PostgreSQL: a wait or job taken over by another instance sees that instance's documents only. ` +
              `Use a store every instance reaches (pgvector, Chroma or a LanceDB directory they share).`,
          );
        }
      }
      return store;
    };

    node.on('close', (removed: boolean, done: () => void) => {
      const closing = store;
      store = null;
      // In-process collections outlive a redeploy, but not the config node's deletion.
      if (removed) forgetVolatileCollections(node.id);
      if (!closing) return done();
      // A gathering ingest may still be writing its last batch with this store.
      storeWorkFinished(node.id)
        .then(() => Promise.all([closing.backend.close(), closing.embedder.close?.()]))
        .catch((err) => node.warn(`Closing the vector store failed: ${messageOf(err)}`))
        .finally(done);
    });
  }

  /** Whether settings.js shares waits and ingest jobs through PostgreSQL (a bad setting is reported by the runtime). */
  function sharesWork(api: NodeAPI): boolean {
    try {
      return readJobStoreSettings((api.settings as { vectorPipeline?: unknown }).vectorPipeline).type === 'postgres';
    } catch {
      return false;
    }
  }

  function storeCredentials(credentials: StoreCredentials | undefined): { password?: string; apiKey?: string } {
    return { password: credentials?.password, apiKey: credentials?.apiKey };
  }

  RED.nodes.registerType('vector-store', VectorStoreNode as never, {
    credentials: {
      password: { type: 'password' },
      apiKey: { type: 'password' },
      embedApiKey: { type: 'password' },
    },
  });
};
