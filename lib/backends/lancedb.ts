// Placeholder while the lancedb backend is written (issue 3): replaced whole.
import type { Backend } from '../types';
import { VectorStoreError } from '../errors';

export interface LanceDbBackendOptions {
  path: string;
}

const notYet = (): never => {
  throw new VectorStoreError('INVALID_INPUT', 'The lancedb backend is not available yet.');
};

export class LanceDbBackend implements Backend {
  readonly name = 'lancedb';
  constructor(readonly options: LanceDbBackendOptions) {}
  ensureCollection = notYet;
  collectionExists = notYet;
  upsert = notYet;
  status = notYet;
  stats = notYet;
  query = notYet;
  close = async (): Promise<void> => undefined;
}
