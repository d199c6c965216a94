// Placeholder while the chroma backend is written (issue 3): replaced whole.
import type { Backend } from '../types';
import { VectorStoreError } from '../errors';

export interface ChromaBackendOptions {
  url: string; tenant?: string; database?: string; apiKey?: string;
}

const notYet = (): never => {
  throw new VectorStoreError('INVALID_INPUT', 'The chroma backend is not available yet.');
};

export class ChromaBackend implements Backend {
  readonly name = 'chroma';
  constructor(readonly options: ChromaBackendOptions) {}
  ensureCollection = notYet;
  collectionExists = notYet;
  upsert = notYet;
  status = notYet;
  stats = notYet;
  query = notYet;
  close = async (): Promise<void> => undefined;
}
