/**
 * Runtime settings of the package: Node-RED's `settings.js` key `vectorPipeline`,
 * overridden by environment variables (for containers). Nothing here comes from a
 * flow: a flow cannot raise a limit or point the job store elsewhere.
 *
 *   vectorPipeline: {
 *     storeTimeout: 10,            // seconds any one store call may take
 *     maxPendingWaitsPerSensor: 10000,
 *   }
 *
 * Environment: VECTOR_PIPELINE_STORE_TIMEOUT (seconds),
 * VECTOR_PIPELINE_MAX_PENDING_WAITS.
 */
import { VectorStoreError } from './errors';

export interface RuntimeSettings {
  /** Longest time one store call (status, write, query...) may take before it fails as a timeout. */
  storeTimeoutMs: number;
  /** Most pending waits one sensor node holds; more are rejected with a clear error. */
  maxPendingWaitsPerSensor: number;
}

export const DEFAULT_SETTINGS: Readonly<RuntimeSettings> = Object.freeze({
  storeTimeoutMs: 10_000,
  maxPendingWaitsPerSensor: 10_000,
});

type Env = Record<string, string | undefined>;

/**
 * Read the settings; throws INVALID_INPUT naming the setting and the fix when a
 * value is not usable (the caller logs it and keeps the defaults).
 */
export function readRuntimeSettings(fromSettingsJs: unknown, env: Env = process.env): RuntimeSettings {
  const section = isObject(fromSettingsJs) ? fromSettingsJs : {};
  const storeTimeout = pick(env.VECTOR_PIPELINE_STORE_TIMEOUT, section.storeTimeout, 'storeTimeout', 'VECTOR_PIPELINE_STORE_TIMEOUT');
  const maxPending = pick(env.VECTOR_PIPELINE_MAX_PENDING_WAITS, section.maxPendingWaitsPerSensor, 'maxPendingWaitsPerSensor', 'VECTOR_PIPELINE_MAX_PENDING_WAITS');
  return {
    storeTimeoutMs: storeTimeout === undefined ? DEFAULT_SETTINGS.storeTimeoutMs : positive(storeTimeout, 'seconds', 0.001, 3600) * 1000,
    maxPendingWaitsPerSensor:
      maxPending === undefined ? DEFAULT_SETTINGS.maxPendingWaitsPerSensor : Math.floor(positive(maxPending, 'waits', 1, 10_000_000)),
  };
}

/** The settings, or the defaults plus a warning when they are not usable: a bad setting never stops Node-RED. */
/** Problems already warned about: every node type reads the settings, the log says it once. */
const warned = new Set<string>();

export function runtimeSettingsOrDefaults(fromSettingsJs: unknown, warn: (message: string) => void, env: Env = process.env): RuntimeSettings {
  try {
    return readRuntimeSettings(fromSettingsJs, env);
  } catch (err) {
    const message = `${(err as Error).message} Using the defaults meanwhile.`;
    if (!warned.has(message)) {
      warned.add(message);
      warn(message);
    }
    return { ...DEFAULT_SETTINGS };
  }
}

function pick(envValue: string | undefined, value: unknown, name: string, envName: string): { value: unknown; label: string } | undefined {
  if (envValue !== undefined && envValue.trim() !== '') return { value: Number(envValue), label: `The environment variable ${envName}` };
  if (value === undefined || value === null) return undefined;
  return { value, label: `The setting vectorPipeline.${name} in settings.js` };
}

function positive(entry: { value: unknown; label: string }, unit: string, min: number, max: number): number {
  const n = entry.value;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < min || n > max) {
    throw new VectorStoreError('INVALID_INPUT', `${entry.label} must be a number of ${unit} between ${min} and ${max}.`);
  }
  return n;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
