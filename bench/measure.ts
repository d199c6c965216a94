/**
 * Small measuring tools shared by the benchmarks: percentiles, event-loop delay,
 * memory after a full garbage collection, medians of interleaved repetitions.
 */
import { monitorEventLoopDelay, performance, type IntervalHistogram } from 'node:perf_hooks';

/** Milliseconds, rounded to a readable precision. */
export function ms(value: number, digits = 1): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** The p-th percentile (0..100) of the values, nearest rank; NaN for none. */
export function percentile(values: ArrayLike<number>, p: number): number {
  if (values.length === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export function median(values: ArrayLike<number>): number {
  return percentile(values, 50);
}

export interface LoopDelay {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** Sampling interval of the event-loop delay histogram (Node's default). */
export const LOOP_DELAY_RESOLUTION_MS = 10;

/**
 * Event-loop delay over a stretch of work (`perf_hooks.monitorEventLoopDelay`).
 * Node records the time between two samples, so an idle loop reads as the
 * sampling interval: that interval is subtracted, leaving the delay itself.
 * `pause`/`resume` leave out what the benchmark itself does, such as the forced
 * garbage collection before a memory reading.
 */
export class LoopDelayMonitor {
  private readonly histogram: IntervalHistogram = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });

  start(): this {
    this.histogram.enable();
    return this;
  }

  pause(): void {
    this.histogram.disable();
  }

  resume(): void {
    this.histogram.enable();
  }

  stop(): LoopDelay {
    this.histogram.disable();
    const toMs = (ns: number) => ms(Math.max(0, ns / 1e6 - LOOP_DELAY_RESOLUTION_MS));
    return { p50Ms: toMs(this.histogram.percentile(50)), p99Ms: toMs(this.histogram.percentile(99)), maxMs: toMs(this.histogram.max) };
  }
}

export interface MemoryReading {
  rss: number;
  heapUsed: number;
}

/** Memory after full garbage collections (needs `node --expose-gc`). */
export function memoryAfterGc(): MemoryReading {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('Run the benchmarks with `node --expose-gc` so memory can be read after a garbage collection.');
  // Twice: the first pass can leave weakly held and finalizable objects for the second.
  gc();
  gc();
  const { rss, heapUsed } = process.memoryUsage();
  return { rss, heapUsed };
}

/** Bytes per item between two readings. */
export function perItem(before: MemoryReading, after: MemoryReading, items: number): { rssBytes: number; heapBytes: number } {
  return {
    rssBytes: Math.round((after.rss - before.rss) / items),
    heapBytes: Math.round((after.heapUsed - before.heapUsed) / items),
  };
}

export const sleep = (delayMs: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, delayMs));

/** Resolve once `predicate` holds, checking every `everyMs`; reject after `timeoutMs`. */
export async function until(predicate: () => boolean, timeoutMs: number, what: string, everyMs = 20): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!predicate()) {
    if (performance.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}.`);
    await sleep(everyMs);
  }
}

/**
 * Time two ways of doing the same work in pairs, back to back, alternating which
 * goes first (A B, B A, A B, ...), so that the machine's changing load hits both
 * sides of a pair alike. `ratio` is the median of the pairs' ratios a / b, which
 * stays steady on a busy machine where single timings do not; `aMs` and `bMs` are
 * the medians of each side. `untimed.before`/`after` run around each timed run,
 * outside the clock (a fresh store for each, say).
 */
export async function compareInterleaved(
  repetitions: number,
  a: (rep: number) => Promise<void>,
  b: (rep: number) => Promise<void>,
  untimed: { before?(side: 'a' | 'b', rep: number): Promise<void>; after?(side: 'a' | 'b', rep: number): Promise<void> } = {},
): Promise<{ aMs: number; bMs: number; ratio: number; aRuns: number[]; bRuns: number[] }> {
  const aRuns: number[] = [];
  const bRuns: number[] = [];
  const timed = async (side: 'a' | 'b', rep: number) => {
    await untimed.before?.(side, rep);
    const started = performance.now();
    await (side === 'a' ? a : b)(rep);
    (side === 'a' ? aRuns : bRuns).push(performance.now() - started);
    await untimed.after?.(side, rep);
  };
  for (let rep = 0; rep < repetitions; rep++) {
    if (rep % 2 === 0) {
      await timed('a', rep);
      await timed('b', rep);
    } else {
      await timed('b', rep);
      await timed('a', rep);
    }
  }
  const ratio = median(aRuns.map((x, i) => x / bRuns[i]));
  return {
    aMs: ms(median(aRuns), 2),
    bMs: ms(median(bRuns), 2),
    ratio: Math.round(ratio * 1000) / 1000,
    aRuns: aRuns.map((x) => ms(x, 2)),
    bRuns: bRuns.map((x) => ms(x, 2)),
  };
}
