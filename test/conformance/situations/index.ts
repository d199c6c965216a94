/**
 * Every store's way of producing the failure situations: one file per store
 * beside this one. CONFORMANCE_BACKENDS=pgvector,lancedb runs only those.
 */
import type { StoreSituations } from './situation';
import { situations as chroma } from './chroma';
import { situations as lancedb } from './lancedb';
import { situations as memory } from './memory';
import { situations as pgvector } from './pgvector';

const only = (process.env.CONFORMANCE_BACKENDS ?? '')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);

export const stores: StoreSituations[] = [chroma, lancedb, memory, pgvector].filter((s) => only.length === 0 || only.includes(s.store));
