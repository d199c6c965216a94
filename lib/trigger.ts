/**
 * The trigger: a small, serializable description of one wait ("until collection
 * X is indexed"), and the loop that polls for it.
 *
 * Like Airflow's BaseTrigger, a trigger is data plus an `async *run()` that
 * yields events. Unlike Airflow's, ours resumes where it stopped: the spec
 * carries the original start time, the poll count and the last progress, so a
 * wait moved to another process (a restart, a redeploy) keeps its deadline and
 * its history.
 *
 * One poll is three steps, `beginPoll` (deadline check), the status call, then
 * `onStatus` or `onError` (which give the event and the delay before the next
 * poll). `run()` is the plain loop over these steps, used by the sensor's
 * in-node mode (`deferrable: false`, see `timerContext`) and by tests; the
 * triggerer drives the very same steps for many waits at once without keeping
 * a suspended generator per wait. The readiness rule is shared with the
 * sensor's quick check through `checkOnce`.
 */
import { z } from 'zod';
import { VectorStoreError, isTransient, messageOf } from './errors';
import { newWaitId } from './ids';
import { MAX_TIMER_MS } from './scheduler';
import { parseOrThrow } from './schemas';
import { parseExistingCollection } from './collection-ref';
import type { CollectionRef, CollectionStatus, ExistingCollection } from './types';

/**
 * Everything needed to rebuild a wait anywhere. Invariants a reader can trust:
 * - It is plain JSON (no class instances, no functions): assume it is persisted
 *   at any moment and reloaded in another process.
 * - `v` is the format version; `parseTriggerSpec` is the one place that migrates
 *   old versions or rejects unknown ones.
 * - `startedAt` and `deadline` are fixed when the wait is created and never
 *   change, so resuming never extends the timeout.
 * - `polls`, `consecutiveErrors` and `lastProgress` only move forward while the
 *   trigger runs; a resumed trigger continues from them.
 * - `waitId` is the same wherever the trigger runs: a consumer that sees two
 *   final events with the same waitId (possible across a crash) drops one.
 */
export interface TriggerSpec {
  /** Format version; a loader must migrate or reject others. */
  v: 1;
  waitId: string;
  /** The collection's name, or for `source` its label ("public.items", "langchain:docs"): what messages say. */
  collection: string;
  /** A collection made by another tool, watched where it is; absent for the package's own collections. */
  source?: ExistingCollection;
  /** Documents that must be indexed; 0: wait for the "ready" state alone. */
  expectedCount: number;
  pollIntervalMs: number;
  maxPollIntervalMs: number;
  /** Epoch ms when the wait began; never reset on resume. */
  startedAt: number;
  /** Epoch ms; startedAt + timeout. */
  deadline: number;
  /** Status calls made so far (survives resume). */
  polls: number;
  consecutiveErrors: number;
  lastProgress: ProgressPayload | null;
}

/** Output 2 of the sensor while waiting. */
export interface ProgressPayload {
  status: 'indexing';
  collection: string;
  indexedCount: number;
  expectedCount: number;
  /** 0..1, or null when neither the store nor an expected count tells. */
  progress: number | null;
  /** Seconds left: the store's own estimate, else from the smoothed rate of progress; never 0 while waiting. */
  etaSeconds: number | null;
  elapsedMs: number;
  polls: number;
  /** The store's own phase name ("building index: loading tuples", "optimizing"), or null. */
  phase: string | null;
  /** A short sentence from the store or the sensor ("20,000 rows not yet indexed", a retry reason), or null. */
  detail: string | null;
}

/** Output 1 of the sensor. */
export interface SuccessPayload {
  status: 'success';
  collection: string;
  documentCount: number;
  indexedCount: number;
  expectedCount: number;
  elapsedMs: number;
  polls: number;
  /** True when the wait went through polling, false for the sensor's quick check. */
  deferred: boolean;
}

/** `msg.payload` of a failed wait; `message` is also the error's message. */
export interface FailurePayload {
  status: 'failed' | 'timeout' | 'error';
  /**
   * Why, for flows to branch on: TIMEOUT (deadline reached), STORE_NOT_ANSWERING
   * (deadline reached while the store had not answered), STORE_MISSING (its
   * vector-store config node is gone), INDEX_FAILED, or the store error's code.
   */
  code?: string;
  collection: string;
  message: string;
  elapsedMs: number;
  polls: number;
  lastProgress: ProgressPayload | null;
}

export type FinalPayload = SuccessPayload | FailurePayload;

/**
 * What `run` yields. Any number of progress and warning events, then exactly one
 * final event, after which the generator returns. A run that is cancelled
 * (`sleep` resolved false) returns without a final event.
 */
export type TriggerEvent = ProgressEvent | WarningEvent | FinalEvent;
export interface ProgressEvent {
  type: 'progress';
  payload: ProgressPayload;
}
/** A transient error: logged, counted, and the wait goes on. */
export interface WarningEvent {
  type: 'warning';
  message: string;
  error: unknown;
  /** The last known progress, with the retry reason as `detail`: what output 2 tells while the store fails. */
  payload: ProgressPayload;
}
export interface FinalEvent {
  type: 'final';
  payload: FinalPayload;
  /**
   * Delivered again after a crash: the process died after this final was
   * recorded as being delivered, so it may have gone out once already.
   */
  redelivered?: boolean;
}

/** The outcome of one poll: its event and, unless final, the wait before the next poll. */
export type PollStep = { event: FinalEvent; delayMs: null } | { event: ProgressEvent | WarningEvent; delayMs: number };

/** What the trigger's steps need: a clock, randomness and limits (no I/O). */
export interface StepContext {
  now(): number;
  /** 0..1, for jitter. */
  random(): number;
  /**
   * Transient errors in a row before the wait fails; 0 (the default): no limit,
   * a store that keeps failing ends the wait at its deadline, like any other.
   */
  maxConsecutiveErrors: number;
  /** Backend name for messages ("memory"); "vector" when unknown. */
  storeName?: string;
  /** `deferred` of the success payload; true unless said otherwise. */
  deferred?: boolean;
}

/** What `run()` needs from whoever runs it. */
export interface TriggerContext extends StepContext {
  /** The collection's status; the caller may share one call among many waits. */
  status(collection: CollectionRef): Promise<CollectionStatus>;
  /** Resolves true after `ms`, or false when the wait is cancelled: then stop quietly. */
  sleep(ms: number): Promise<boolean>;
  /**
   * `answer`, or `atDeadline()` if the deadline (epoch ms) comes first: how a
   * status call that never answers still ends the wait on time.
   */
  untilDeadline?<T>(answer: Promise<T>, deadline: number, atDeadline: () => T): Promise<T>;
}

/** Weight of the newest rate sample in the smoothed rate behind the ETA. */
const RATE_SMOOTHING = 0.3;
/** Growth of the poll interval per poll without progress. */
const BACKOFF_FACTOR = 1.5;
/** +-10% randomness so waits started together drift apart instead of polling in bursts. */
const JITTER = 0.1;

/** The limits of a wait's poll schedule (those of its spec). */
export interface PollLimits {
  pollIntervalMs: number;
  maxPollIntervalMs: number;
}

/**
 * The wait before the next poll, deadline aside: pollInterval * 1.5^stalePolls
 * (stalePolls: polls in a row without progress, 0 after one with progress),
 * +-10% jitter (`random` in [0, 1)), kept within [pollInterval, maxPollInterval].
 * Exported so that the benchmarks' latency bounds follow the engine's schedule.
 */
export function pollDelay(stalePolls: number, limits: PollLimits, random: number): number {
  const { pollIntervalMs, maxPollIntervalMs } = limits;
  const base = Math.min(maxPollIntervalMs, pollIntervalMs * BACKOFF_FACTOR ** stalePolls);
  const jittered = base * (1 + (random * 2 - 1) * JITTER);
  return Math.min(maxPollIntervalMs, Math.max(pollIntervalMs, jittered));
}

/** The longest `pollDelay` can be after `stalePolls` (it grows with `random`: its value at the top of the range). */
export function longestPollDelay(stalePolls: number, limits: PollLimits): number {
  return pollDelay(stalePolls, limits, 1);
}

// ---------------------------------------------------------------------------
// Building and loading specs

export interface NewTriggerSpec {
  waitId?: string;
  collection: string;
  /** See TriggerSpec.source; `collection` is then its label. */
  source?: ExistingCollection;
  expectedCount?: number;
  pollIntervalMs: number;
  maxPollIntervalMs: number;
  timeoutMs: number;
  /** Epoch ms when the wait begins (its `startedAt`); default Date.now(). */
  now?: number;
  /** Status calls already made (e.g. the sensor's quick check). */
  polls?: number;
  lastProgress?: ProgressPayload | null;
}

/** Build a valid spec, or throw an INVALID_INPUT error naming the bad field. */
export function createTriggerSpec(input: NewTriggerSpec): TriggerSpec {
  const { collection, pollIntervalMs, maxPollIntervalMs, timeoutMs } = input;
  const expectedCount = input.expectedCount ?? 0;
  if (typeof collection !== 'string' || collection.length === 0) {
    throw invalid('The collection to wait for is empty: give a collection name.');
  }
  if (!Number.isSafeInteger(expectedCount) || expectedCount < 0) {
    throw invalid(`The expected count for collection "${collection}" must be a whole number of documents (0 or more), not ${String(expectedCount)}.`);
  }
  if (!(Number.isFinite(pollIntervalMs) && pollIntervalMs > 0)) {
    throw invalid(`The poll interval for collection "${collection}" must be a positive duration, not ${String(pollIntervalMs)} ms.`);
  }
  if (!(Number.isFinite(maxPollIntervalMs) && maxPollIntervalMs >= pollIntervalMs)) {
    throw invalid(
      `The maximum poll interval for collection "${collection}" (${String(maxPollIntervalMs)} ms) must be at least the poll interval (${pollIntervalMs} ms).`,
    );
  }
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
    throw invalid(`The timeout for collection "${collection}" must be a positive duration, not ${String(timeoutMs)} ms.`);
  }
  const startedAt = input.now ?? Date.now();
  if (!Number.isFinite(startedAt + timeoutMs)) {
    throw invalid(`The timeout for collection "${collection}" is too long (${String(timeoutMs)} ms); give at most a few years.`);
  }
  const source = input.source ? parseExistingCollection(input.source, `The collection to wait for ("${collection}")`) : undefined;
  // One literal, no spread: its fields stay inside the object (a spread put them in a second one, 40 bytes a wait).
  const spec: TriggerSpec = {
    v: 1,
    waitId: input.waitId ?? newWaitId(),
    collection,
    expectedCount,
    pollIntervalMs,
    maxPollIntervalMs,
    startedAt,
    deadline: startedAt + timeoutMs,
    polls: input.polls ?? 0,
    consecutiveErrors: 0,
    lastProgress: input.lastProgress ?? null,
  };
  if (source) spec.source = source;
  return spec;
}

const count = z.number().int().nonnegative();
const progressSchema = z.object({
  status: z.literal('indexing'),
  collection: z.string(),
  indexedCount: count,
  expectedCount: count,
  progress: z.number().nullable(),
  etaSeconds: z.number().nullable(),
  elapsedMs: z.number(),
  polls: count,
  // Added by a later version of the format: absent in waits saved before.
  phase: z.string().nullable().default(null),
  detail: z.string().nullable().default(null),
});
const specV1Schema = z.object({
  v: z.literal(1),
  waitId: z.string().min(1),
  collection: z.string().min(1),
  // Added by a later version of the format: absent in waits saved before, and for package collections.
  source: z
    .object({
      name: z.string().min(1),
      schema: z.string().min(1).optional(),
      column: z.string().min(1).optional(),
      index: z.string().min(1).optional(),
      path: z.string().min(1).optional(),
      preset: z.enum(['langchain', 'llamaindex']).optional(),
    })
    .optional(),
  expectedCount: count,
  pollIntervalMs: z.number().positive(),
  maxPollIntervalMs: z.number().positive(),
  startedAt: z.number(),
  deadline: z.number(),
  polls: count,
  consecutiveErrors: count,
  lastProgress: progressSchema.nullable(),
});

/**
 * Check a spec read from disk (or from another version of this package) and
 * bring it to the current format. The one place where spec versions migrate;
 * there is only version 1 so far. Throws INVALID_INPUT for anything else.
 * Returns a fresh object: the caller's value is never shared.
 */
export function parseTriggerSpec(value: unknown): TriggerSpec {
  return readSpec(value, false);
}

/**
 * `parseTriggerSpec` for a value nobody else holds, such as JSON just read from
 * disk: a valid spec with exactly the known fields is taken as it is rather than
 * copied (a restart reads every pending wait; no copy means less to collect).
 */
export function adoptTriggerSpec(value: unknown): TriggerSpec {
  return readSpec(value, true);
}

function readSpec(value: unknown, adopt: boolean): TriggerSpec {
  const version = (value as { v?: unknown } | null)?.v;
  if (version !== 1) {
    throw invalid(
      `This wait was saved in format version ${JSON.stringify(version)}, which this version of the package does not know (it reads version 1). Upgrade the package to resume it.`,
    );
  }
  // A restart reads every pending wait: valid specs take a plain check (zod costs
  // ~10x more, measured with 100,000 waits); zod explains the others.
  const checked = checkSpecV1(value as Record<string, unknown>, adopt);
  if (checked) return checked;
  try {
    return parseOrThrow(specV1Schema, value, '') as TriggerSpec;
  } catch (err) {
    // Our own sentence for the damaged field (never the schema library's wording).
    throw invalid(`This saved wait is damaged: ${messageOf(err)}`);
  }
}

/*
 * The fast path of `parseTriggerSpec`: the same rules as `specV1Schema` (zod 4
 * numbers are finite, `int` means a safe integer), written out. It returns the
 * known fields only, as zod does (a fresh object, or with `adopt` the value
 * itself when it has no other field), or null whenever it has any doubt, and
 * then zod decides.
 */
const isCount = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;
const isFiniteNumber = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
const isPositive = (x: unknown): x is number => isFiniteNumber(x) && x > 0;
const isNullableNumber = (x: unknown): x is number | null => x === null || isFiniteNumber(x);
const SPEC_FIELDS = 11;
const PROGRESS_FIELDS = 10;
const isNullableString = (x: unknown): x is string | null | undefined => x === undefined || x === null || typeof x === 'string';

function ownFieldCount(value: object): number {
  let count = 0;
  for (const key in value) if (Object.prototype.hasOwnProperty.call(value, key)) count += 1;
  return count;
}

function checkSpecV1(s: Record<string, unknown>, adopt: boolean): TriggerSpec | null {
  const { waitId, collection, expectedCount, pollIntervalMs, maxPollIntervalMs, startedAt, deadline, polls, consecutiveErrors } = s;
  if (typeof waitId !== 'string' || waitId.length === 0 || typeof collection !== 'string' || collection.length === 0) return null;
  if (!isCount(expectedCount) || !isCount(polls) || !isCount(consecutiveErrors)) return null;
  if (!isPositive(pollIntervalMs) || !isPositive(maxPollIntervalMs) || !isFiniteNumber(startedAt) || !isFiniteNumber(deadline)) return null;
  let lastProgress: ProgressPayload | null = null;
  if (s.lastProgress !== null) {
    lastProgress = checkProgress(s.lastProgress, adopt);
    if (!lastProgress) return null;
  }
  let source: ExistingCollection | undefined;
  if (s.source !== undefined) {
    source = checkSource(s.source);
    if (!source) return null;
  }
  const fields = SPEC_FIELDS + (s.source !== undefined ? 1 : 0);
  if (adopt && lastProgress === s.lastProgress && source === s.source && ownFieldCount(s) === fields) return s as unknown as TriggerSpec;
  return {
    v: 1,
    waitId,
    collection,
    ...(source ? { source } : {}),
    expectedCount,
    pollIntervalMs,
    maxPollIntervalMs,
    startedAt,
    deadline,
    polls,
    consecutiveErrors,
    lastProgress,
  };
}

/** A saved `source` that is exactly what parseExistingCollection makes (else null: zod decides). */
function checkSource(value: unknown): ExistingCollection | undefined {
  try {
    const parsed = parseExistingCollection(value, 'source');
    return ownFieldCount(parsed) === ownFieldCount(value as object) ? (value as ExistingCollection) : undefined;
  } catch {
    return undefined;
  }
}

function checkProgress(value: unknown, adopt: boolean): ProgressPayload | null {
  if (typeof value !== 'object' || value === null) return null;
  const { status, collection, indexedCount, expectedCount, progress, etaSeconds, elapsedMs, polls, phase, detail } = value as Record<string, unknown>;
  if (status !== 'indexing' || typeof collection !== 'string') return null;
  if (!isCount(indexedCount) || !isCount(expectedCount) || !isCount(polls)) return null;
  if (!isNullableNumber(progress) || !isNullableNumber(etaSeconds) || !isFiniteNumber(elapsedMs)) return null;
  if (!isNullableString(phase) || !isNullableString(detail)) return null;
  if (adopt && phase !== undefined && detail !== undefined && ownFieldCount(value) === PROGRESS_FIELDS) return value as ProgressPayload;
  return { status, collection, indexedCount, expectedCount, progress, etaSeconds, elapsedMs, polls, phase: phase ?? null, detail: detail ?? null };
}

// ---------------------------------------------------------------------------
// Readiness: one rule for the trigger and the sensor's quick check

/** Ready means the store says "ready" and, when a count is expected, that many are indexed. */
export function isReady(status: CollectionStatus, expectedCount: number): boolean {
  return status.state === 'ready' && (expectedCount === 0 || status.indexedCount >= expectedCount);
}

/**
 * The sensor's quick check, with the trigger's rules: a success payload
 * (`deferred: false`) when the collection is already ready, a "failed" payload
 * when its indexing already failed, else null (then defer). Counts as one poll.
 */
export function checkOnce(spec: TriggerSpec, status: CollectionStatus, now: number = Date.now()): FinalPayload | null {
  if (status.state === 'failed') {
    return { ...failedPayload(spec, status, now), polls: spec.polls + 1 };
  }
  if (!isReady(status, spec.expectedCount)) return null;
  return successPayload(spec, status, now, spec.polls + 1, false);
}

function failedPayload(spec: TriggerSpec, status: CollectionStatus, now: number): FailurePayload {
  const given = status.detail?.trim() || 'the store gave no reason';
  const reason = status.code && !given.includes(status.code) ? `${withoutFinalPeriod(given)} (code ${status.code})` : given;
  return {
    status: 'failed',
    code: 'INDEX_FAILED',
    collection: spec.collection,
    message: `Indexing of collection "${spec.collection}" failed: ${withoutFinalPeriod(reason)}.`,
    elapsedMs: Math.max(0, now - spec.startedAt),
    polls: spec.polls,
    lastProgress: spec.lastProgress,
  };
}

function successPayload(spec: TriggerSpec, status: CollectionStatus, now: number, polls: number, deferred: boolean): SuccessPayload {
  return {
    status: 'success',
    collection: spec.collection,
    documentCount: status.documentCount,
    indexedCount: status.indexedCount,
    expectedCount: spec.expectedCount,
    elapsedMs: Math.max(0, now - spec.startedAt),
    polls,
    deferred,
  };
}

// ---------------------------------------------------------------------------
// The trigger

export class CollectionReadyTrigger {
  /** The live spec: the poll steps advance polls, errors and lastProgress in place. */
  private readonly spec: TriggerSpec;
  /**
   * Polls in a row without progress: drives the backoff. Not persisted: a
   * resumed wait starts by watching closely.
   */
  private stalePolls = 0;
  /** The last transient error's message, while errors go on (not persisted: only for this run's messages). */
  private lastError: string | null = null;
  /** Progress (fraction) per ms, smoothed over the polls of this run: the ETA when the store gives none. */
  private rate: number | null = null;

  /**
   * `spec` must be valid: built by `createTriggerSpec` or read through
   * `parseTriggerSpec`. Only the version is checked here, so that resuming many
   * waits stays cheap.
   */
  constructor(spec: TriggerSpec) {
    if (spec?.v !== 1) parseTriggerSpec(spec); // throws the explanation
    this.spec = { ...spec };
  }

  get waitId(): string {
    return this.spec.waitId;
  }

  /**
   * The live state, for a runner that persists it as it goes (the triggerer):
   * read only, and it changes with every poll step. `serialize()` gives a copy.
   */
  get state(): Readonly<TriggerSpec> {
    return this.spec;
  }

  /** A plain copy of the current state: what to persist, and what to resume from. */
  serialize(): TriggerSpec {
    // lastProgress objects are never mutated once created, so sharing is safe.
    return { ...this.spec };
  }

  /**
   * Poll until the wait ends: progress and warning events, then one final
   * event. Returns quietly, without a final event, when `ctx.sleep` says the
   * wait was cancelled.
   */
  async *run(ctx: TriggerContext): AsyncGenerator<TriggerEvent, void, undefined> {
    while (true) {
      const timeout = this.beginPoll(ctx);
      if (timeout) {
        yield timeout;
        return;
      }
      const askedAt = ctx.now();
      const answered = askStatus(ctx, watchedCollection(this.spec)).then(
        (status): PollStep => this.onStatus(status, ctx),
        (err: unknown): PollStep => this.onError(err, ctx),
      );
      // The deadline holds even when the store never answers.
      const step = ctx.untilDeadline
        ? await ctx.untilDeadline(answered, this.spec.deadline, () => ({ event: this.storeSilent(ctx, askedAt), delayMs: null }))
        : await answered;
      yield step.event;
      if (step.delayMs === null) return;
      // A zero delay means the deadline is reached: straight to the timeout.
      if (step.delayMs > 0 && !(await ctx.sleep(step.delayMs))) return;
    }
  }

  /**
   * Call before each poll. The timeout event when the deadline has passed (so a
   * timeout fires on time, not a poll later), else null and the poll is counted.
   */
  beginPoll(ctx: StepContext): FinalEvent | null {
    if (ctx.now() >= this.spec.deadline) return { type: 'final', payload: this.timeout(ctx) };
    this.spec.polls += 1;
    return null;
  }

  /** The status answered by the poll begun last. */
  onStatus(status: CollectionStatus, ctx: StepContext): PollStep {
    const spec = this.spec;
    const now = ctx.now();
    spec.consecutiveErrors = 0;
    this.lastError = null;
    if (status.state === 'failed') {
      return { event: { type: 'final', payload: failedPayload(spec, status, now) }, delayMs: null };
    }
    if (isReady(status, spec.expectedCount)) {
      return { event: { type: 'final', payload: successPayload(spec, status, now, spec.polls, ctx.deferred ?? true) }, delayMs: null };
    }
    const progress = this.progressPayload(status, now);
    this.stalePolls = madeProgress(spec.lastProgress, progress) ? 0 : this.stalePolls + 1;
    spec.lastProgress = progress;
    return { event: { type: 'progress', payload: progress }, delayMs: this.nextDelay(ctx) };
  }

  /** The error thrown by the poll begun last: a warning (retry later) or the final error. */
  onError(err: unknown, ctx: StepContext): PollStep {
    const spec = this.spec;
    const store = storeLabel(ctx);
    const code = errorCode(err);
    if (!isTransient(err)) {
      const message = `Stopped waiting for collection "${spec.collection}" after ${formatDuration(ctx.now() - spec.startedAt)}: the ${store} store reported an error that retrying will not fix: ${sentence(messageOf(err))}`;
      return { event: { type: 'final', payload: this.failure('error', message, ctx.now(), code) }, delayMs: null };
    }
    spec.consecutiveErrors += 1;
    this.lastError = messageOf(err);
    if (ctx.maxConsecutiveErrors > 0 && spec.consecutiveErrors >= ctx.maxConsecutiveErrors) {
      const message = `Gave up on collection "${spec.collection}" after ${spec.consecutiveErrors} consecutive errors from the ${store} store (the sensor's limit): ${sentence(messageOf(err))}`;
      return { event: { type: 'final', payload: this.failure('error', message, ctx.now(), code) }, delayMs: null };
    }
    this.stalePolls += 1;
    const delayMs = this.nextDelay(ctx);
    const message = this.warningMessage(err, delayMs, ctx);
    return { event: { type: 'warning', message, error: err, payload: this.retryPayload(err, delayMs, ctx) }, delayMs };
  }

  /**
   * The wait before the next poll: `pollDelay` of the polls in a row without
   * progress, never past the deadline. A moving index is watched closely, a
   * stalled one less and less.
   */
  private nextDelay(ctx: StepContext): number {
    const delay = pollDelay(this.stalePolls, this.spec, ctx.random());
    return Math.max(0, Math.min(delay, this.spec.deadline - ctx.now()));
  }

  private warningMessage(err: unknown, delay: number, ctx: StepContext): string {
    const spec = this.spec;
    const count =
      ctx.maxConsecutiveErrors > 0
        ? `error ${spec.consecutiveErrors} of ${ctx.maxConsecutiveErrors} allowed in a row`
        : `error ${spec.consecutiveErrors} in a row; the wait goes on until its timeout in ${formatDuration(spec.deadline - ctx.now())}`;
    return `Could not get the status of collection "${spec.collection}" from the ${storeLabel(ctx)} store (${count}); retrying in ${formatDuration(delay)}: ${sentence(messageOf(err))}`;
  }

  private timeout(ctx: StepContext): FailurePayload {
    const spec = this.spec;
    const now = ctx.now();
    if (spec.consecutiveErrors > 0) {
      const n = spec.consecutiveErrors;
      const last = this.lastError ? ` (last error: ${withoutFinalPeriod(this.lastError)})` : '';
      const known = spec.lastProgress ? ` Last known: ${this.describeLastState()}.` : '';
      return this.failure(
        'timeout',
        `Timed out after ${formatDuration(now - spec.startedAt)} waiting for collection "${spec.collection}": the ${storeLabel(ctx)} store did not answer the last ${n === 1 ? 'status request' : `${n} status requests`}${last}.${known} Check that the store is reachable, or increase the timeout.`,
        now,
        'STORE_NOT_ANSWERING',
      );
    }
    return this.failure(
      'timeout',
      `Timed out after ${formatDuration(now - spec.startedAt)} waiting for collection "${spec.collection}" to be indexed: ${this.describeLastState()}. Increase the timeout or check the store.`,
      now,
      'TIMEOUT',
    );
  }

  /**
   * The deadline came while the status asked for at `askedAt` had not been
   * answered: a hung store (blackholed connection, lock) ends the wait on time.
   */
  storeSilent(ctx: StepContext, askedAt: number): FinalEvent {
    const spec = this.spec;
    const now = ctx.now();
    const progress = spec.lastProgress ? ` Last known: ${this.describeLastState()}.` : '';
    const message =
      `Timed out after ${formatDuration(now - spec.startedAt)} waiting for collection "${spec.collection}": ` +
      `the ${storeLabel(ctx)} store did not answer the status request sent ${formatDuration(now - askedAt)} before the deadline.${progress} Check that the store is reachable and not locked, or increase the timeout.`;
    return { type: 'final', payload: this.failure('timeout', message, now, 'STORE_NOT_ANSWERING') };
  }

  /**
   * The deadline came while the wait could not poll at all (its vector-store
   * config node is gone): `reason` says why, as a clause.
   */
  expired(ctx: StepContext, reason: string, code: string): FinalEvent {
    const spec = this.spec;
    const now = ctx.now();
    const message = `Timed out after ${formatDuration(now - spec.startedAt)} waiting for collection "${spec.collection}": ${withoutFinalPeriod(reason)}.`;
    return { type: 'final', payload: this.failure('timeout', message, now, code) };
  }

  private describeLastState(): string {
    const { lastProgress: last, polls, consecutiveErrors } = this.spec;
    if (!last) {
      if (consecutiveErrors > 0) return `the store did not answer (${consecutiveErrors} errors in a row)`;
      return polls === 0 ? 'it was never checked before the deadline' : 'no progress was reported';
    }
    const notes = [last.progress === null ? null : `${Math.floor(last.progress * 100)}%`, last.phase ? `phase "${last.phase}"` : null].filter(Boolean);
    const percent = notes.length > 0 ? ` (${notes.join(', ')})` : '';
    const detail = last.detail ? `; the store said: ${withoutFinalPeriod(last.detail)}` : '';
    if (last.expectedCount > 0) return `${last.indexedCount} of ${last.expectedCount} documents indexed${percent}${detail}`;
    return `${last.indexedCount} documents indexed so far${percent}${detail}`;
  }

  private failure(kind: FailurePayload['status'], message: string, now: number, code?: string): FailurePayload {
    const spec = this.spec;
    return {
      status: kind,
      ...(code ? { code } : {}),
      collection: spec.collection,
      message,
      elapsedMs: Math.max(0, now - spec.startedAt),
      polls: spec.polls,
      lastProgress: spec.lastProgress,
    };
  }

  private progressPayload(status: CollectionStatus, now: number): ProgressPayload {
    const spec = this.spec;
    const elapsedMs = Math.max(0, now - spec.startedAt);
    const progress = progressOf(status, spec.expectedCount);
    const estimated = this.estimateEta(spec.lastProgress, progress, elapsedMs);
    const eta = typeof status.etaSeconds === 'number' && Number.isFinite(status.etaSeconds) ? status.etaSeconds : estimated;
    return {
      status: 'indexing',
      collection: spec.collection,
      indexedCount: status.indexedCount,
      expectedCount: spec.expectedCount,
      progress,
      // Not ready yet: "0 s left" would be a promise the store has not kept.
      etaSeconds: eta === null ? null : Math.max(1, Math.ceil(eta)),
      elapsedMs,
      polls: spec.polls,
      phase: status.phase ?? null,
      detail: status.detail?.trim() || null,
    };
  }

  /**
   * Seconds left from the rate of progress, smoothed (exponentially, over this
   * run's polls) so that one quick or slow poll does not swing it; a stall lowers
   * the rate and so lengthens the estimate. Null when nothing is known yet.
   */
  private estimateEta(previous: ProgressPayload | null, progress: number | null, elapsedMs: number): number | null {
    if (progress === null || progress >= 1) return null;
    if (previous && previous.progress !== null && elapsedMs > previous.elapsedMs) {
      const sample = Math.max(0, (progress - previous.progress) / (elapsedMs - previous.elapsedMs));
      this.rate = this.rate === null ? sample : RATE_SMOOTHING * sample + (1 - RATE_SMOOTHING) * this.rate;
    }
    if (!this.rate || this.rate <= 0) return null;
    return (1 - progress) / this.rate / 1000;
  }

  /** Output 2 while the store fails: the last known progress, and why there is no newer one. */
  private retryPayload(err: unknown, delayMs: number, ctx: StepContext): ProgressPayload {
    const spec = this.spec;
    const last = spec.lastProgress;
    const now = ctx.now();
    return {
      status: 'indexing',
      collection: spec.collection,
      indexedCount: last?.indexedCount ?? 0,
      expectedCount: spec.expectedCount,
      progress: last?.progress ?? null,
      etaSeconds: null,
      elapsedMs: Math.max(0, now - spec.startedAt),
      polls: spec.polls,
      phase: last?.phase ?? null,
      detail: `The ${storeLabel(ctx)} store did not answer (${withoutFinalPeriod(messageOf(err))}); retrying in ${formatDuration(delayMs)}.`,
    };
  }
}

/**
 * The store's own fraction while it is indexing; indexed/expected when the store
 * gives none, or when it says "ready" but fewer than expected are indexed (more
 * documents are on their way); else null.
 */
export function progressOf(status: CollectionStatus, expectedCount: number): number | null {
  let value: number | null = null;
  if (status.progress !== null && status.state !== 'ready') value = status.progress;
  else if (expectedCount > 0) value = status.indexedCount / expectedCount;
  if (value === null || !Number.isFinite(value)) return null;
  return Math.round(Math.min(1, Math.max(0, value)) * 10000) / 10000;
}


/**
 * Did indexing move since the last poll (more documents indexed, or a higher
 * store progress)? The first poll of a new wait counts as movement; a resumed
 * wait compares with its saved last progress. What resets the backoff; exported
 * for the benchmarks, which count a wait's stalled polls from its events.
 */
export function madeProgress(previous: ProgressPayload | null, current: ProgressPayload): boolean {
  if (!previous) return true;
  if (current.indexedCount > previous.indexedCount) return true;
  return current.progress !== null && previous.progress !== null && current.progress > previous.progress;
}

/** What a wait asks the store about: the other tool's collection, or the package collection of that name. */
export function watchedCollection(spec: Pick<TriggerSpec, 'collection' | 'source'>): CollectionRef {
  return spec.source ?? spec.collection;
}

/** ctx.status as a promise, even if it throws synchronously. */
function askStatus(ctx: TriggerContext, collection: CollectionRef): Promise<CollectionStatus> {
  try {
    return ctx.status(collection);
  } catch (err) {
    return Promise.reject(err);
  }
}

// ---------------------------------------------------------------------------
// Running a trigger without the triggerer (the sensor's `deferrable: false` mode)

export interface TimerContextOptions {
  status(collection: string): Promise<CollectionStatus>;
  maxConsecutiveErrors?: number;
  storeName?: string;
  /** Aborting it ends the wait quietly (node closed, msg.reset). */
  signal?: AbortSignal;
  deferred?: boolean;
  now?: () => number;
  random?: () => number;
}

/** A context of plain timers: one setTimeout per sleep, cleared on abort. */
export function timerContext(options: TimerContextOptions): TriggerContext {
  const { signal } = options;
  return {
    now: options.now ?? Date.now,
    random: options.random ?? Math.random,
    status: options.status,
    maxConsecutiveErrors: options.maxConsecutiveErrors ?? 0,
    storeName: options.storeName,
    deferred: options.deferred ?? false,
    untilDeadline<T>(answer: Promise<T>, deadline: number, atDeadline: () => T): Promise<T> {
      const remaining = deadline - (options.now ?? Date.now)();
      // setTimeout cannot wait longer than ~24.8 days; so far out, the store call's own timeout bounds the call.
      if (remaining > MAX_TIMER_MS) return answer;
      return new Promise<T>((resolve, reject) => {
        // Cancelled: stop waiting now (the run drops whatever follows), leaving no timer behind.
        const onAbort = (): void => {
          clearTimeout(timer);
          resolve(atDeadline());
        };
        const timer = setTimeout(() => {
          signal?.removeEventListener('abort', onAbort);
          resolve(atDeadline());
        }, Math.max(0, remaining));
        signal?.addEventListener('abort', onAbort, { once: true });
        const settled = (): void => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
        };
        answer.then(
          (value) => {
            settled();
            resolve(value);
          },
          (err: unknown) => {
            settled();
            reject(err);
          },
        );
      });
    },
    sleep(ms: number): Promise<boolean> {
      if (signal?.aborted) return Promise.resolve(false);
      return new Promise<boolean>((resolve) => {
        const onAbort = (): void => {
          clearTimeout(timer);
          resolve(false);
        };
        const timer = setTimeout(() => {
          signal?.removeEventListener('abort', onAbort);
          resolve(true);
        }, ms);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    },
  };
}

/**
 * Drive a trigger to its end, handing every event to `onEvent`. Resolves with the
 * final payload, or null when the run was cancelled.
 */
export async function runToCompletion(
  trigger: CollectionReadyTrigger,
  ctx: TriggerContext,
  onEvent: (event: TriggerEvent) => void = () => undefined,
): Promise<FinalPayload | null> {
  for await (const event of trigger.run(ctx)) {
    onEvent(event);
    if (event.type === 'final') return event.payload;
  }
  return null;
}

// ---------------------------------------------------------------------------
// Words

/** "850 ms", "2.5 s", "42 s", "3 min 20 s", "2 h 5 min". */
export function formatDuration(ms: number): string {
  const value = Math.max(0, ms);
  if (value < 1000) return `${Math.round(value)} ms`;
  const seconds = value / 1000;
  if (seconds < 10) return `${Math.round(seconds * 10) / 10} s`;
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const totalSeconds = Math.round(seconds);
  if (totalSeconds < 3600) {
    const rest = totalSeconds % 60;
    return `${Math.floor(totalSeconds / 60)} min${rest ? ` ${rest} s` : ''}`;
  }
  const totalMinutes = Math.round(totalSeconds / 60);
  const rest = totalMinutes % 60;
  return `${Math.floor(totalMinutes / 60)} h${rest ? ` ${rest} min` : ''}`;
}

function errorCode(err: unknown): string | undefined {
  return err instanceof VectorStoreError ? err.code : undefined;
}

function storeLabel(ctx: StepContext): string {
  return ctx.storeName || 'vector';
}

/** End a quoted message with exactly one sentence mark. */
export function sentence(text: string): string {
  const trimmed = text.trim();
  return /[.!?]$/.test(trimmed) ? trimmed : `${trimmed}.`;
}

function withoutFinalPeriod(text: string): string {
  return text.replace(/\.+$/, '');
}

function invalid(message: string): VectorStoreError {
  return new VectorStoreError('INVALID_INPUT', message);
}
