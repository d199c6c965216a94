/**
 * The waits sensors run in place (`deferrable: false`, lib/local-wait.ts): not the
 * triggerer's, and never on disk, but pending waits of the runtime all the same.
 * They are kept here so the Vector waits sidebar lists and cancels them with the
 * triggerer's (`MergedWaitSource`). One per runtime, like the triggerer.
 */
import type { ProgressPayload } from './trigger';
import type { CancelNote, WaitInfo, WaitRecord, WaitWatcher } from './triggerer';
import type { WaitSource } from './wait-list';

interface LocalEntry {
  record: WaitRecord;
  warning: { message: string; at: number; current: boolean } | null;
  /** Ends the wait in its node, as the sidebar's cancel does for the triggerer's (no final message). */
  cancel(note: CancelNote): void;
}

export class LocalWaits implements WaitSource {
  private readonly waits = new Map<string, LocalEntry>();
  private readonly watchers = new Set<WaitWatcher>();

  constructor(private readonly now: () => number = Date.now) {}

  /** A wait its node started polling; `record` is the node's copy, kept up to date by `progress`. */
  add(record: WaitRecord, cancel: (note: CancelNote) => void): void {
    this.waits.set(record.spec.waitId, { record, warning: null, cancel });
    this.touch(record);
  }

  /** Its latest progress (and, with `warning`, that it retries a failing store). */
  progress(waitId: string, payload: ProgressPayload, warning?: string): void {
    const entry = this.waits.get(waitId);
    if (!entry) return;
    entry.record = { ...entry.record, spec: { ...entry.record.spec, lastProgress: payload, polls: payload.polls } };
    if (warning !== undefined) entry.warning = { message: warning, at: this.now(), current: true };
    else if (entry.warning) entry.warning = { ...entry.warning, current: false };
    this.touch(entry.record);
  }

  /** It ended, or was cancelled in its node (msg.reset, close). */
  remove(waitId: string): void {
    const entry = this.waits.get(waitId);
    if (!entry) return;
    this.waits.delete(waitId);
    this.touch(entry.record);
  }

  /** Cancel the matching waits in their nodes; returns them (as the triggerer's cancelAndNotify does). */
  cancelAndNotify(predicate: (wait: WaitRecord) => boolean, note: CancelNote): WaitRecord[] {
    const matched = [...this.waits.values()].filter((entry) => predicate(entry.record));
    for (const entry of matched) {
      this.remove(entry.record.spec.waitId);
      entry.cancel(note);
    }
    return matched.map((entry) => entry.record);
  }

  inspect(waitId: string): WaitInfo | null {
    const entry = this.waits.get(waitId);
    return entry ? { record: entry.record, state: 'running', durable: false, warning: entry.warning } : null;
  }

  *allRecords(): IterableIterator<Readonly<WaitRecord>> {
    for (const entry of this.waits.values()) yield entry.record;
  }

  watch(watcher: WaitWatcher): () => void {
    this.watchers.add(watcher);
    return () => {
      this.watchers.delete(watcher);
    };
  }

  private touch(record: WaitRecord): void {
    for (const watcher of this.watchers) watcher.touched(record);
  }
}

/** Several wait sources read as one (the triggerer's waits and the in-node ones): wait ids never collide. */
export class MergedWaitSource implements WaitSource {
  constructor(private readonly sources: readonly WaitSource[]) {}

  inspect(waitId: string): WaitInfo | null {
    for (const source of this.sources) {
      const info = source.inspect(waitId);
      if (info) return info;
    }
    return null;
  }

  *allRecords(): IterableIterator<Readonly<WaitRecord>> {
    for (const source of this.sources) yield* source.allRecords();
  }

  watch(watcher: WaitWatcher): () => void {
    // The wait list forgets everything when one source closes (the triggerer): the others are re-read on the next bind.
    const stops = this.sources.map((source) => source.watch(watcher));
    return () => {
      for (const stop of stops) stop();
    };
  }
}
