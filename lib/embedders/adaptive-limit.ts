/**
 * How many requests an embedder may have in flight at once, adapted to what
 * the service accepts, the way TCP adapts its window (AIMD): a rate-limit
 * answer halves the limit (never below 1); a run of successes as long as the
 * limit grows it by one, up to the configured maximum. Just below the level
 * that met the last rate limit, the run must be PROBE_SLOWDOWN times longer
 * before that level is tried again: the limit stays where the service is known
 * to cope instead of sawing between half of it and one above it. Back at that
 * level, it grows at the usual pace again.
 *
 * One per embedder, shared by all its calls: a service limits its client, not
 * one call of it. Requests wait for a slot in the order they asked; a retry
 * goes ahead of new requests, so a batch that met a rate limit is not starved.
 *
 * Several requests sent together often meet the same rate limit together: a
 * rate limit halves the limit only when its request was sent after the last
 * decrease, so one burst of 429s halves once, not once per request.
 */

/** How many times longer the run of successes is before the level of the last rate limit is tried again. */
export const PROBE_SLOWDOWN = 8;

/** What a request ended with, for the limit. */
export type RequestOutcome = 'success' | 'rateLimited' | 'other';

/** One slot in flight; given back once with `release`. */
export interface Permit {
  /** The decrease count when the request was sent. */
  readonly epoch: number;
  released: boolean;
}

interface Waiter {
  grant(): void;
}

export class AdaptiveLimit {
  private current: number;
  private inFlight = 0;
  private successesInARow = 0;
  private decreases = 0;
  /** The limit when the last rate limit came; Infinity when none, or once the limit is back there. */
  private failedAt = Infinity;
  private readonly waiting: Waiter[] = [];

  constructor(readonly max: number) {
    this.current = max;
  }

  /** Requests allowed in flight at once, now. */
  get limit(): number {
    return this.current;
  }

  /** Requests in flight now. */
  get active(): number {
    return this.inFlight;
  }

  /**
   * Resolves with a slot once fewer than `limit` requests are in flight;
   * rejects with the signal's reason when it aborts first. `ahead`: before
   * the requests already waiting (a retry).
   */
  acquire(signal: AbortSignal, ahead = false): Promise<Permit> {
    if (signal.aborted) return Promise.reject(signal.reason);
    if (this.inFlight < this.current && (ahead || this.waiting.length === 0)) return Promise.resolve(this.take());
    return new Promise<Permit>((resolve, reject) => {
      const waiter: Waiter = {
        grant: () => {
          signal.removeEventListener('abort', onAbort);
          resolve(this.take());
        },
      };
      const onAbort = () => {
        const at = this.waiting.indexOf(waiter);
        if (at !== -1) this.waiting.splice(at, 1);
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      if (ahead) this.waiting.unshift(waiter);
      else this.waiting.push(waiter);
    });
  }

  /** Gives the slot back and adapts the limit to how the request ended. A second release is ignored. */
  release(permit: Permit, outcome: RequestOutcome): void {
    if (permit.released) return;
    permit.released = true;
    this.inFlight -= 1;
    if (outcome === 'success') {
      this.successesInARow += 1;
      const run = this.current + 1 === this.failedAt ? this.current * PROBE_SLOWDOWN : this.current;
      if (this.successesInARow >= run && this.current < this.max) {
        this.current += 1;
        this.successesInARow = 0;
        if (this.current >= this.failedAt) this.failedAt = Infinity;
      }
    } else if (outcome === 'rateLimited') {
      this.successesInARow = 0;
      if (permit.epoch === this.decreases) {
        this.failedAt = this.current;
        this.current = Math.max(1, Math.floor(this.current / 2));
        this.decreases += 1;
      }
    }
    while (this.inFlight < this.current && this.waiting.length > 0) this.waiting.shift()!.grant();
  }

  private take(): Permit {
    this.inFlight += 1;
    return { epoch: this.decreases, released: false };
  }
}
