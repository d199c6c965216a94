/**
 * One way for every node to show what it is doing: blue ring while busy, blue dot
 * while waiting, green on success, red with the reason on failure.
 *
 * A status reads at a glance, like the core nodes' ("timeout", "failed: disk
 * full"): at most MAX_STATUS characters of short words. The whole sentence of a
 * failure stays in msg.error.message, msg.payload.message and the log; the
 * status only names the kind of failure, decided in one place (`failureStatus`)
 * from the error's code or the sensor's failure payload.
 */
import type { Node } from 'node-red';
import type { HealthReport } from '../../lib/operations';

/** Longest status text: the editor draws statuses side by side under the nodes. */
export const MAX_STATUS = 30;

/**
 * `text` in at most `max` characters, cut at a word boundary with "…" when it is
 * longer (mid-word only when a single word is too long).
 */
export function clip(text: string, max = MAX_STATUS): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  if (flat.length <= max) return flat;
  const room = flat.slice(0, max - 1);
  const lastSpace = room.lastIndexOf(' ');
  const cut = lastSpace >= max / 3 ? room.slice(0, lastSpace) : room;
  return cut.replace(/[\s,;:·.(-]+$/, '') + '…';
}

/**
 * "head: detail" within `max`, the detail cut at a word boundary; the head alone
 * when not even a few characters of the detail fit.
 */
export function withDetail(head: string, detail: string, max = MAX_STATUS): string {
  const shown = detail.trim();
  if (!shown) return clip(head, max);
  const whole = `${head}: ${shown}`;
  if (whole.length <= max) return whole;
  const room = max - head.length - 2;
  if (room < 6) return clip(head, max);
  const cut = clip(shown, room);
  // A stub such as "Keep…" says nothing: the head alone then.
  return cut.length < 8 ? clip(head, max) : `${head}: ${cut}`;
}

/** 5s, 2m 5s, 1h 3m: durations in statuses. */
export function shortDuration(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return seconds % 60 === 0 ? `${seconds / 60}m` : `${Math.floor(seconds / 60)}m ${seconds % 60}s`;
  const minutes = Math.floor((seconds % 3600) / 60);
  return minutes === 0 ? `${Math.floor(seconds / 3600)}h` : `${Math.floor(seconds / 3600)}h ${minutes}m`;
}

// ---------------------------------------------------------------------------
// A failure's short text

/** Where a store node's message failed: that decides what an INVALID_INPUT means. */
export type FailureStep = 'config' | 'store' | 'collection' | 'operation';

const SHORT_STATUS = Symbol('vector-pipeline.shortStatus');

/**
 * Mark an error with the status it should show, when its maker knows better
 * than its code (a vector-store configuration error names its field). The mark
 * travels with the error object through resolveStore and the engine.
 */
export function withShortStatus<E extends Error>(err: E, text: string): E {
  Object.defineProperty(err, SHORT_STATUS, { value: text, enumerable: false });
  return err;
}

/** What the status shows for a failure the engine or the node reported: an Error, or a sensor's failure payload. */
export function failureStatus(failure: unknown, step: FailureStep = 'operation'): string {
  const marked = isObject(failure) ? (failure as Record<symbol, unknown>)[SHORT_STATUS] : undefined;
  if (typeof marked === 'string') return clip(marked);
  const code = isObject(failure) && typeof failure.code === 'string' ? failure.code : undefined;
  const message = isObject(failure) && typeof failure.message === 'string' ? failure.message : String(failure ?? '');
  if (step === 'config') return configStatus(failure);
  if (isFailurePayload(failure)) {
    if (failure.status === 'timeout' && code === 'TIMEOUT') return clip(`timeout ${shortDuration(failure.elapsedMs)}`);
    const gaveUp = /after (\d+) consecutive errors/.exec(message);
    if (failure.status === 'error' && /^Gave up/.test(message) && gaveUp) return clip(`gave up after ${gaveUp[1]} errors`);
  }
  switch (code) {
    case 'TIMEOUT':
      return 'store timed out';
    case 'STORE_NOT_ANSWERING':
      return 'store not answering';
    case 'STORE_MISSING':
      return 'no vector store';
    case 'INDEX_FAILED':
      return withDetail('failed', indexFailure(message));
    case 'NOT_FOUND':
      return 'missing collection';
    case 'DIMENSION_MISMATCH':
      return 'wrong vector size';
    case 'AUTH':
      return 'auth failed';
    case 'UNAVAILABLE':
      return 'store unavailable';
    case 'NOT_INSTALLED':
      return 'package not installed';
    case 'LIMIT': {
      const waits = /already has (\d+) pending waits/.exec(message);
      return waits ? clip(`limit: ${waits[1]} ${waits[1] === '1' ? 'wait' : 'waits'}`) : 'limit reached';
    }
    case 'INVALID_INPUT':
      return inputStatus(message, step);
    default:
      if (step === 'store') return 'no vector store';
      return withDetail('error', firstClause(message));
  }
}

/** "bad config: Batch size": the dialog label of the first field at fault. */
function configStatus(failure: unknown): string {
  const fields = isObject(failure) && Array.isArray(failure.fields) ? (failure.fields as unknown[]) : [];
  const first = fields.find((f): f is string => typeof f === 'string' && f !== '');
  return first ? withDetail('bad config', first) : 'bad config';
}

/** A message's or a store's input refused: which input, in a few words. */
function inputStatus(message: string, step: FailureStep): string {
  if (step === 'store') return 'no vector store';
  if (/^No collection given/.test(message)) return 'no collection set';
  if (/^The collection name/.test(message)) return 'bad collection name';
  const field = /^(msg(?:\.[A-Za-z_$][\w$]*|\[\d+\])+)/.exec(message);
  if (field) {
    // msg.payload[3].vector[2] -> as much of the path as fits.
    const parts = field[1].match(/\.[A-Za-z_$][\w$]*|\[\d+\]|^msg/g) ?? ['msg'];
    let shown = '';
    for (const part of parts) {
      if (`bad ${shown}${part}`.length > MAX_STATUS) break;
      shown += part;
    }
    return `bad ${shown}`;
  }
  return step === 'collection' ? 'bad collection' : 'bad input';
}

/** The store's reason in "Indexing of collection "x" failed: disk full (simulated)." -> "disk full". */
function indexFailure(message: string): string {
  const at = message.indexOf(' failed: ');
  const reason = withoutAsides(at === -1 ? '' : message.slice(at + ' failed: '.length));
  return reason === 'the store gave no reason' ? 'no reason given' : reason;
}

/** The text before its first sentence or clause break, without asides in parentheses. */
function firstClause(message: string): string {
  return withoutAsides(message.split(/[.;:](?:\s|$)/)[0] ?? '');
}

function withoutAsides(text: string): string {
  return text
    .replace(/\s*\([^()]*\)/g, '')
    .replace(/[.\s]+$/, '')
    .trim();
}

/** The first failed check of an unhealthy report, in a few words: "3 docs, want ≥5", "not indexed: 3 of 5". */
export function unhealthyStatus(report: HealthReport): string {
  const failed = report.checks.find((c) => !c.ok);
  if (!failed) return 'unhealthy';
  const detail = failed.detail;
  switch (failed.name) {
    case 'exists':
      return 'missing collection';
    case 'indexed': {
      if (/^indexing failed: /.test(detail)) return withDetail('failed', withoutAsides(detail.slice('indexing failed: '.length)));
      return clip(`not indexed: ${report.indexedCount ?? 0} of ${report.documentCount ?? 0}`);
    }
    case 'count': {
      const count = /^(\d+) documents, expected (exactly|at least) (\d+)/.exec(detail);
      return count ? clip(`${count[1]} docs, want ${count[2] === 'exactly' ? '' : '≥'}${count[3]}`) : 'wrong count';
    }
    case 'dimensions': {
      const dims = /^(\d+) dimensions, expected (\d+)/.exec(detail);
      return dims ? clip(`${dims[1]} dims, want ${dims[2]}`) : 'wrong dimensions';
    }
    case 'queryable':
      return /failed/.test(detail) ? 'probe query failed' : 'probe query found nothing';
    default:
      return withDetail('unhealthy', failed.name);
  }
}

interface FailureLike {
  status: 'failed' | 'timeout' | 'error';
  code?: string;
  message: string;
  elapsedMs: number;
}

function isFailurePayload(value: unknown): value is FailureLike {
  return (
    isObject(value) &&
    (value.status === 'failed' || value.status === 'timeout' || value.status === 'error') &&
    typeof value.message === 'string' &&
    typeof value.elapsedMs === 'number'
  );
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

// ---------------------------------------------------------------------------

/**
 * The last guard on length (a store's long phase name in "3 waiting · 40% ·
 * phase"). A single word is left whole: without a message catalog (the test
 * helper's runtime) a status is its catalog key, which tests compare.
 */
function fitted(text: string): string {
  return /\s/.test(text) ? clip(text) : text;
}

/** True when a status text needs no cut (or is a catalog key, see fitted). */
export function fits(text: string): boolean {
  return fitted(text) === text;
}

export class NodeStatus {
  constructor(private readonly node: Node) {}

  busy(text: string): void {
    this.node.status({ fill: 'blue', shape: 'ring', text: fitted(text) });
  }

  waiting(text: string): void {
    this.node.status({ fill: 'blue', shape: 'dot', text: fitted(text) });
  }

  ok(text: string): void {
    this.node.status({ fill: 'green', shape: 'dot', text: fitted(text) });
  }

  warn(text: string): void {
    this.node.status({ fill: 'yellow', shape: 'ring', text: fitted(text) });
  }

  /** A failure's short text (see failureStatus), never its whole sentence. */
  fail(text: string): void {
    this.node.status({ fill: 'red', shape: 'ring', text: fitted(text) });
  }

  clear(): void {
    this.node.status({});
  }
}
