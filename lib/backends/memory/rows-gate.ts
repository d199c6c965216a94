/**
 * Keeps a collection's rows still while searches read them: a search yields to
 * the event loop between slices, and a write or delete applied meanwhile could
 * move a row the search has not reached yet into one it has passed (a delete
 * moves the last row into the hole), or change the ids its rows map to.
 *
 * Searches share the rows; a change waits until no search is in flight. A
 * search that arrives while a change waits queues behind it, so a steady stream
 * of searches cannot hold writes back for longer than the searches in flight.
 * Queued work starts in arrival order. With nothing in flight, both start at
 * once (a change is then applied before `change` returns).
 */
interface Waiting {
  isChange: boolean;
  /** Starts the work, synchronously. */
  start: () => void;
}

export class RowsGate {
  private searching = 0;
  private readonly waiting: Waiting[] = [];

  /** Run a search: it may await; the rows stay as they are until it settles. */
  search<T>(scan: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const start = () => {
        this.searching += 1;
        const settled = () => {
          this.searching -= 1;
          this.startWaiting();
        };
        // A scan that throws synchronously rejects like one that rejects.
        Promise.resolve()
          .then(scan)
          .then(resolve, reject)
          .finally(settled);
      };
      if (this.waiting.length === 0) start();
      else this.waiting.push({ isChange: false, start });
    });
  }

  /** Apply a change of the rows (synchronous), once no search is in flight. */
  change<T>(apply: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const start = () => {
        try {
          resolve(apply());
        } catch (err) {
          reject(err);
        }
      };
      if (this.searching === 0 && this.waiting.length === 0) start();
      else this.waiting.push({ isChange: true, start });
    });
  }

  private startWaiting(): void {
    while (this.waiting.length > 0) {
      const next = this.waiting[0];
      if (next.isChange && this.searching > 0) return;
      this.waiting.shift();
      next.start();
    }
  }
}
