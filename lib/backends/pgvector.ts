// Placeholder while the pgvector backend is written (issue 3): replaced whole.
import type { Backend } from '../types';
import { VectorStoreError } from '../errors';

export interface PgVectorBackendOptions {
  connectionString: string; password?: string; ssl?: boolean;
}

const notYet = (): never => {
  throw new VectorStoreError('INVALID_INPUT', 'The pgvector backend is not available yet.');
};

export class PgVectorBackend implements Backend {
  readonly name = 'pgvector';
  constructor(readonly options: PgVectorBackendOptions) {}
  ensureCollection = notYet;
  collectionExists = notYet;
  upsert = notYet;
  status = notYet;
  stats = notYet;
  query = notYet;
  close = async (): Promise<void> => undefined;
}
