/**
 * Saved node configurations across versions of this package: the one place
 * where an old shape becomes today's, before any node parses its config.
 *
 * Every node's saved config carries its version in the property
 * `configVersion` (the editor's defaults set it for new nodes; not `v`: the
 * Node-RED editor reserves one-letter property names and drops them from
 * defaults). A config without it is version 0:
 * the shape saved before versions existed (main until 2026-12). When a property
 * is renamed, moved or given a new meaning, CONFIG_VERSION goes up by one and a
 * migration from the previous version is added below: flows saved by any older
 * version then keep deploying. Migrations never change the saved flow; they
 * run on a copy each time a node starts, and the next deploy from the editor
 * saves the current shape.
 */
import { CONFIG_FIELD_LABELS, InvalidFieldsError, type FieldLabels } from './schemas';

/** The property of a saved node config that holds its version. */
export const VERSION_PROPERTY = 'configVersion';

/** The version of the config shape this package writes and parses. */
export const CONFIG_VERSION = 1;

/** The saved properties of a node, as Node-RED hands them over. */
export type SavedConfig = Record<string, unknown>;

/**
 * One step: a config of version `from` to the shape of version `from + 1`. It
 * must keep a property of the new shape that is already there: an old node
 * edited in a newer editor may hold both the old and the new property.
 */
export interface ConfigMigration {
  from: number;
  /** What changed, for the reader of this file. */
  why: string;
  migrate(config: SavedConfig): SavedConfig;
}

/**
 * The migrations of each node type, oldest first. 0 -> 1 only adds the version:
 * the shape did not change.
 */
export const CONFIG_MIGRATIONS: Readonly<Record<string, readonly ConfigMigration[]>> = {};

export interface MigrateOptions {
  /** Default: CONFIG_MIGRATIONS[type] (tests pass made-up ones). */
  migrations?: readonly ConfigMigration[];
  /** Default: CONFIG_VERSION. */
  current?: number;
}

/**
 * `config` in the current shape (a copy with its version set), whatever version saved it.
 * A config saved by a newer version of the package is refused: its meaning is
 * unknown here, and guessing could wait on the wrong collection.
 */
export function migrateConfig(type: string, config: SavedConfig, options: MigrateOptions = {}): SavedConfig {
  const migrations = options.migrations ?? CONFIG_MIGRATIONS[type] ?? [];
  const current = options.current ?? CONFIG_VERSION;
  const saved = savedVersion(config[VERSION_PROPERTY]);
  if (saved > current) {
    throw new InvalidFieldsError(
      `This ${type} node was saved by a newer version of @deferrable/node-red-vector-pipeline (config version ${saved}; this one reads up to ${current}): update the package in the Node-RED user directory to the version that saved the flow, or a newer one.`,
      ['newer version'],
    );
  }
  let migrated: SavedConfig = { ...config };
  for (let version = saved; version < current; version++) {
    const step = migrations.find((m) => m.from === version);
    if (step) migrated = step.migrate(migrated);
  }
  migrated[VERSION_PROPERTY] = current;
  return migrated;
}

/**
 * Migrate, then parse with the dialog labels of the node type (config errors
 * name "Batch size", not "batchSize").
 */
export function readNodeConfig<T>(type: string, config: unknown, parse: (config: unknown, labels?: FieldLabels) => T): T {
  const saved = typeof config === 'object' && config !== null ? (config as SavedConfig) : {};
  return labelledParser(type, parse)(migrateConfig(type, saved));
}

/** `parse` naming the fields by the dialog labels of the node type: for configs already migrated (typed inputs parse per message). */
export function labelledParser<T>(type: string, parse: (config: unknown, labels?: FieldLabels) => T): (config: unknown) => T {
  const labels = CONFIG_FIELD_LABELS[type];
  return (config) => parse(config, labels);
}

/** The saved version: absent means 0; a whole number 0 or more (the editor may save it as a string). */
function savedVersion(value: unknown): number {
  if (value === undefined || value === null || value === '') return 0;
  const n = typeof value === 'string' ? Number(value.trim()) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
    throw new InvalidFieldsError(
      `The saved config version (${VERSION_PROPERTY}) must be a whole number, 0 or more, but is ${JSON.stringify(value)}: export the node, remove "${VERSION_PROPERTY}", and import it again.`,
      ['version'],
    );
  }
  return n;
}
