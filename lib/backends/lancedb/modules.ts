/**
 * Loading `@lancedb/lancedb` (an optional peer dependency) and the `apache-arrow`
 * it is built on, at first use, with a NOT_INSTALLED error that tells the user
 * the exact command when they are missing.
 *
 * Arrow is resolved from LanceDB's own directory, so the schema classes we build
 * are the very ones LanceDB checks against (a second copy of apache-arrow
 * elsewhere in node_modules would not be recognised).
 */
import * as path from 'node:path';
import type * as LanceDb from '@lancedb/lancedb';
import type * as Arrow from 'apache-arrow';
import { VectorStoreError, messageOf } from '../../errors';

export interface LanceDbModules {
  lancedb: typeof LanceDb;
  arrow: typeof Arrow;
}

/** Returns the modules, or throws (like `require`) when they cannot be loaded. */
export type LanceDbLoader = () => LanceDbModules;

export const INSTALL_COMMAND = 'npm install @lancedb/lancedb@0.31';

export const NOT_INSTALLED_MESSAGE =
  `The LanceDB backend needs the @lancedb/lancedb package: run "${INSTALL_COMMAND}" in your Node-RED user ` +
  'directory (~/.node-red) and restart Node-RED.';

let loaded: LanceDbModules | null = null;

/** The real modules, from node_modules. Only a successful load is cached. */
export const requireLanceDb: LanceDbLoader = () => {
  if (loaded) return loaded;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const lancedb = require('@lancedb/lancedb') as typeof LanceDb;
  const lancedbDir = path.dirname(require.resolve('@lancedb/lancedb'));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const arrow = require(require.resolve('apache-arrow', { paths: [lancedbDir] })) as typeof Arrow;
  loaded = { lancedb, arrow };
  return loaded;
};

function isModuleNotFound(err: unknown, name: string): boolean {
  const e = err as NodeJS.ErrnoException;
  return e?.code === 'MODULE_NOT_FOUND' && messageOf(err).includes(`'${name}'`);
}

/** Run the loader, turning any failure into a NOT_INSTALLED error a person can act on. */
export function loadLanceDb(loader: LanceDbLoader): LanceDbModules {
  try {
    return loader();
  } catch (err) {
    if (isModuleNotFound(err, '@lancedb/lancedb')) {
      throw new VectorStoreError('NOT_INSTALLED', NOT_INSTALLED_MESSAGE, { cause: err });
    }
    if (isModuleNotFound(err, 'apache-arrow')) {
      throw new VectorStoreError(
        'NOT_INSTALLED',
        'The LanceDB backend needs the apache-arrow package that @lancedb/lancedb is built on: run ' +
          `"${INSTALL_COMMAND} apache-arrow@18.1" in your Node-RED user directory (~/.node-red) and restart Node-RED.`,
        { cause: err },
      );
    }
    // Typically the native part is missing or built for another platform.
    throw new VectorStoreError(
      'NOT_INSTALLED',
      `The LanceDB backend could not load the @lancedb/lancedb package (${messageOf(err)}). It runs on Linux, macOS ` +
        `and Windows (x64 or arm64) with Node.js 18 or later: reinstall it with "${INSTALL_COMMAND}" in your Node-RED ` +
        'user directory (~/.node-red) and restart Node-RED.',
      { cause: err },
    );
  }
}
