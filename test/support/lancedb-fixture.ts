/**
 * What the LanceDB tests share: temporary directories and backends that are
 * closed and removed after each test (and test gates opened, so that a failing
 * test cannot hold close() for ever), and a poll until the status settles.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LanceDbBackend, type LanceDbBackendOptions } from '../../lib/backends/lancedb';
import type { CollectionStatus } from '../../lib/types';
import type { Gate } from './lancedb-optimize-double';

/** Call inside a `describe`: registers the clean-up after each of its tests. */
export function lancedbFixture(prefix: string) {
  const opened: LanceDbBackend[] = [];
  const tempDirs: string[] = [];
  /** Gates left closed by a failing test would hold close() forever. */
  const gates: Gate[] = [];

  afterEach(async () => {
    for (const gate of gates.splice(0)) gate.open();
    await Promise.all(opened.splice(0).map((b) => b.close()));
    await Promise.all(tempDirs.splice(0).map((dir) => fs.rm(dir, { recursive: true, force: true })));
  });

  return {
    gates,
    async tempDir(): Promise<string> {
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), `${prefix}-`));
      tempDirs.push(dir);
      return dir;
    },
    backend(options: LanceDbBackendOptions): LanceDbBackend {
      const b = new LanceDbBackend(options);
      opened.push(b);
      return b;
    },
  };
}

/** Poll status until it leaves "indexing"; returns every status seen. */
export async function untilSettled(backend: LanceDbBackend, collection: string, budgetMs = 20_000, stepMs = 20): Promise<CollectionStatus[]> {
  const seen: CollectionStatus[] = [];
  const deadline = Date.now() + budgetMs;
  for (;;) {
    const status = await backend.status(collection);
    seen.push(status);
    if (status.state !== 'indexing') return seen;
    if (Date.now() > deadline) throw new Error(`still indexing: ${JSON.stringify(status)}`);
    await new Promise((resolve) => setTimeout(resolve, stepMs));
  }
}
