/**
 * A wait run in place, like a classic (non-deferrable) sensor: the same trigger,
 * with its own timer, nothing persisted. Used when a sensor has
 * `deferrable: false`. It ends with the trigger's final event, or quietly when
 * cancelled.
 */
import type { Backend } from './types';
import { messageOf } from './errors';
import { CollectionReadyTrigger, runToCompletion, timerContext, type TriggerEvent, type TriggerSpec } from './trigger';

export interface LocalWait {
  readonly collection: string;
  /** Stop polling; no further event is delivered. */
  cancel(): void;
}

export interface LocalWaitOptions {
  /** Transient errors in a row before the wait fails; 0 or absent: retried until the deadline. */
  maxConsecutiveErrors?: number;
}

export function runLocally(spec: TriggerSpec, backend: Backend, onEvent: (event: TriggerEvent) => void, options: LocalWaitOptions = {}): LocalWait {
  const abort = new AbortController();
  const ctx = timerContext({
    status: (collection) => backend.status(collection, spec.expectedCount > 0 ? { expectedCount: spec.expectedCount } : undefined),
    signal: abort.signal,
    storeName: backend.name,
    maxConsecutiveErrors: options.maxConsecutiveErrors ?? 0,
  });
  // A status call in flight when cancelled still answers: drop what follows.
  const deliver = (event: TriggerEvent) => {
    if (!abort.signal.aborted) onEvent(event);
  };
  runToCompletion(new CollectionReadyTrigger(spec), ctx, deliver).catch((err) => {
    // The trigger turns store errors into events; anything else is a bug, which
    // must still end the wait rather than become an unhandled rejection.
    deliver({
      type: 'final',
      payload: {
        status: 'error',
        collection: spec.collection,
        message: `Waiting for collection "${spec.collection}" stopped on an unexpected error: ${messageOf(err)}`,
        elapsedMs: Date.now() - spec.startedAt,
        polls: spec.polls,
        lastProgress: spec.lastProgress,
      },
    });
  });
  return { collection: spec.collection, cancel: () => abort.abort() };
}
