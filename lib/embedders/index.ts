/**
 * Builds the embedder a `vector-store` config node asks for.
 */
import type { Embedder } from '../types';
import type { StoreConfig } from '../schemas';
import { HashEmbedder } from './hash';
import { OpenAIEmbedder } from './openai';

export { HashEmbedder } from './hash';
export { OpenAIEmbedder, type OpenAIEmbedderOptions, type OpenAIEmbedderStats } from './openai';

export interface EmbedderCredentials {
  /** The `embedApiKey` credential; empty means no key. */
  embedApiKey?: string;
}

export function createEmbedder(config: StoreConfig, credentials: EmbedderCredentials = {}): Embedder {
  switch (config.embedder) {
    case 'hash':
      return new HashEmbedder(config.dimensions);
    case 'openai':
      return new OpenAIEmbedder({
        baseUrl: config.embedUrl,
        model: config.embedModel,
        apiKey: credentials.embedApiKey || undefined,
        batchSize: config.embedBatchSize,
        concurrency: config.embedConcurrency,
      });
  }
}
