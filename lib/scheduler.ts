/**
 * One timer for any number of wake-ups.
 *
 * The triggerer may hold 100,000 sleeping waits; a timer each would be 100,000
 * timers. Instead, wake-up times go into a min-heap and one timer is armed for
 * the earliest. When it fires, the due tasks are woken in slices of
 * `sliceSize` with a `setImmediate` between slices, so a crowd of due waits
 * never blocks the event loop for long. Work that is ready without a delay
 * (e.g. many waits whose shared status call has answered) goes through the
 * same slices, queued by `wakeSoon`.
 *
 * Cancelling is lazy (the entry is marked and skipped when it surfaces); the heap
 * is rebuilt when cancelled entries outnumber live ones. The heap keeps its keys
 * (wake-up time, then order of scheduling) in typed arrays beside the entries:
 * sifting through 100,000 entries compares numbers in contiguous memory instead
 * of visiting an object per comparison (measured: the heap's cost halved).
 */

/** Timer functions, injectable so tests can drive time by hand. */
export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Something to wake at its time. An object rather than a closure: no allocation per wait. */
export interface Wakeable {
  wake(): void;
}

export interface ScheduledTask {
  readonly at: number;
  cancel(): void;
}

export interface SchedulerOptions {
  now?: () => number;
  timers?: Timers;
  /** Tasks woken per event-loop turn. */
  sliceSize?: number;
  /** A task's `wake` threw (a bug): report it, keep going. */
  onError?: (err: unknown) => void;
}

/** Longest delay setTimeout accepts (about 24.8 days); later wake-ups re-arm when it fires. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

const INITIAL_HEAP_CAPACITY = 1024;

/** Placeholder for a queue slot already worked off (releases the target). */
const DONE: Wakeable = { wake: () => undefined };

/**
 * What the heap holds: something to wake and the ticket of its entry, the entry's
 * sequence number while it is scheduled (-1 when not): an entry whose ticket is no
 * longer its own was cancelled or replaced, and is skipped. A wait's run is its own
 * slot (`scheduleSlot`), so a sleeping wait costs no object of the scheduler's.
 */
export interface SchedulerSlot extends Wakeable {
  ticket: number;
}

/** A task scheduled through `schedule`: a slot of its own. */
class Entry implements ScheduledTask, SchedulerSlot {
  ticket = -1;
  constructor(
    readonly at: number,
    private readonly target: Wakeable,
    private readonly owner: Scheduler,
  ) {}

  wake(): void {
    this.target.wake();
  }

  cancel(): void {
    this.owner.cancelSlot(this);
  }
}

export class Scheduler {
  /** Timer firings that woke at least one task. */
  ticks = 0;
  /** Tasks woken so far. */
  woken = 0;
  private readonly now: () => number;
  private readonly timers: Timers;
  private readonly sliceSize: number;
  private readonly onError: (err: unknown) => void;
  /** The min-heap: entry i has key (heapAt[i], heapSeq[i]); `heapSize` entries are in use. */
  private heap: SchedulerSlot[] = [];
  private heapAt = new Float64Array(INITIAL_HEAP_CAPACITY);
  private heapSeq = new Float64Array(INITIAL_HEAP_CAPACITY);
  private live = 0;
  private seq = 0;
  private timer: unknown = null;
  private timerAt = Infinity;
  private immediate: NodeJS.Immediate | null = null;
  /** Tasks to wake as soon as possible, worked off in slices; `queueHead` is the next one. */
  private queue: Wakeable[] = [];
  private queueHead = 0;
  /** Slices are being worked off; the timer is re-armed when nothing is left to do now. */
  private draining = false;
  private closed = false;

  constructor(options: SchedulerOptions = {}) {
    this.now = options.now ?? Date.now;
    this.timers = options.timers ?? { setTimeout: (cb, ms) => setTimeout(cb, ms), clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout) };
    this.sliceSize = Math.max(1, options.sliceSize ?? 1000);
    this.onError = options.onError ?? (() => undefined);
  }

  /** Tasks waiting to be woken. */
  get size(): number {
    return this.live;
  }

  /** Wake `target` at epoch ms `at` (at once if already past). */
  schedule(at: number, target: Wakeable): ScheduledTask {
    const entry = new Entry(at, target, this);
    this.scheduleSlot(at, entry);
    return entry;
  }

  /** Wake `slot` at epoch ms `at`, in place of any time it was scheduled for. */
  scheduleSlot(at: number, slot: SchedulerSlot): void {
    if (this.closed) throw new Error('The scheduler is closed.');
    this.cancelSlot(slot);
    const seq = this.seq++;
    slot.ticket = seq;
    this.push(slot, at, seq);
    this.live += 1;
    // While draining, due entries are picked up by the slices; the timer waits.
    if (!this.draining && at < this.timerAt) this.arm();
  }

  /** Do not wake `slot` at the time it was scheduled for (nothing if it was not). */
  cancelSlot(slot: SchedulerSlot): void {
    if (slot.ticket < 0) return;
    slot.ticket = -1;
    this.live -= 1;
    if (this.heap.length > 2 * this.live + 1000) this.rebuild();
    // The timer may now point at a cancelled entry: harmless, it re-arms on firing.
  }

  /** Wake `target` as soon as possible, in turn with other ready tasks (never synchronously). */
  wakeSoon(target: Wakeable): void {
    if (this.closed) return;
    this.queue.push(target);
    this.startDraining();
  }

  /** Drop every task and release the timer. Pending tasks are never woken. */
  close(): void {
    this.closed = true;
    this.disarm();
    if (this.immediate) clearImmediate(this.immediate);
    this.immediate = null;
    for (const slot of this.heap) slot.ticket = -1;
    this.heap = [];
    this.heapAt = new Float64Array(INITIAL_HEAP_CAPACITY);
    this.heapSeq = new Float64Array(INITIAL_HEAP_CAPACITY);
    this.live = 0;
    this.queue = [];
    this.queueHead = 0;
  }

  private arm(): void {
    if (this.closed) return;
    this.dropCancelledTop();
    if (this.heap.length === 0) {
      this.disarm();
      return;
    }
    const nextAt = this.heapAt[0];
    if (this.timer !== null && nextAt === this.timerAt) return;
    this.disarm();
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, nextAt - this.now()));
    this.timerAt = nextAt;
    this.timer = this.timers.setTimeout(() => this.fire(), delay);
  }

  private disarm(): void {
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = Infinity;
  }

  private fire(): void {
    this.timer = null;
    this.timerAt = Infinity;
    this.dropCancelledTop();
    if (this.hasDue(this.now())) {
      this.ticks += 1;
      this.startDraining();
    } else {
      this.arm(); // fired a little early, or only cancelled entries were due
    }
  }

  private startDraining(): void {
    if (this.draining) return;
    this.draining = true;
    this.disarm();
    this.immediate = setImmediate(() => this.drainSlice());
  }

  /** Wake up to `sliceSize` tasks: ready ones first, then due ones from the heap. */
  private drainSlice(): void {
    this.immediate = null;
    if (this.closed) return;
    let budget = this.sliceSize;
    while (budget > 0 && this.queueHead < this.queue.length) {
      const target = this.queue[this.queueHead];
      this.queue[this.queueHead++] = DONE;
      budget -= 1;
      this.wakeOne(target);
    }
    if (this.queueHead === this.queue.length) {
      this.queue = [];
      this.queueHead = 0;
    } else if (this.queueHead > 4096 && this.queueHead * 2 > this.queue.length) {
      // Drop the part already done, so the array does not grow without end.
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
    const now = this.now();
    while (budget > 0 && this.hasDue(now)) {
      const seq = this.heapSeq[0];
      const slot = this.popMin();
      if (slot.ticket !== seq) continue;
      slot.ticket = -1; // spent: a later cancel is a no-op
      this.live -= 1;
      budget -= 1;
      this.wakeOne(slot);
    }
    if (this.queueHead < this.queue.length || this.hasDue(now)) {
      this.immediate = setImmediate(() => this.drainSlice());
      return;
    }
    this.draining = false;
    this.arm();
  }

  private wakeOne(target: Wakeable): void {
    this.woken += 1;
    try {
      target.wake();
    } catch (err) {
      this.onError(err);
    }
  }

  private hasDue(now: number): boolean {
    this.dropCancelledTop();
    return this.heap.length > 0 && this.heapAt[0] <= now;
  }

  // --- binary min-heap on (at, seq) ---------------------------------------

  private dropCancelledTop(): void {
    while (this.heap.length > 0 && this.heap[0].ticket !== this.heapSeq[0]) this.popMin();
  }

  private rebuild(): void {
    const kept: Array<[SchedulerSlot, number, number]> = [];
    for (let i = 0; i < this.heap.length; i++) {
      if (this.heap[i].ticket === this.heapSeq[i]) kept.push([this.heap[i], this.heapAt[i], this.heapSeq[i]]);
    }
    this.heap = [];
    for (const [slot, at, seq] of kept) this.push(slot, at, seq);
  }

  private push(slot: SchedulerSlot, at: number, seq: number): void {
    const index = this.heap.length;
    if (index === this.heapAt.length) this.grow();
    this.heap.push(slot);
    this.siftUp(index, slot, at, seq);
  }

  private popMin(): SchedulerSlot {
    const heap = this.heap;
    const top = heap[0];
    const lastIndex = heap.length - 1;
    const lastAt = this.heapAt[lastIndex];
    const lastSeq = this.heapSeq[lastIndex];
    const last = heap.pop() as SchedulerSlot;
    if (heap.length > 0) this.siftDown(0, last, lastAt, lastSeq);
    return top;
  }

  private grow(): void {
    const at = new Float64Array(this.heapAt.length * 2);
    const seq = new Float64Array(this.heapSeq.length * 2);
    at.set(this.heapAt);
    seq.set(this.heapSeq);
    this.heapAt = at;
    this.heapSeq = seq;
  }

  /** Place `slot` (key at, seq) at `index` or above it, moving larger parents down. */
  private siftUp(index: number, slot: SchedulerSlot, at: number, seq: number): void {
    const { heap, heapAt, heapSeq } = this;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      const parentAt = heapAt[parent];
      if (at > parentAt || (at === parentAt && seq > heapSeq[parent])) break;
      heap[index] = heap[parent];
      heapAt[index] = parentAt;
      heapSeq[index] = heapSeq[parent];
      index = parent;
    }
    this.place(index, slot, at, seq);
  }

  /** Place `slot` (key at, seq) at `index` or below it, moving smaller children up. */
  private siftDown(index: number, slot: SchedulerSlot, at: number, seq: number): void {
    const { heap, heapAt, heapSeq } = this;
    const length = heap.length;
    while (true) {
      const left = 2 * index + 1;
      if (left >= length) break;
      const right = left + 1;
      const child = right < length && before(heapAt[right], heapSeq[right], heapAt[left], heapSeq[left]) ? right : left;
      if (!before(heapAt[child], heapSeq[child], at, seq)) break;
      heap[index] = heap[child];
      heapAt[index] = heapAt[child];
      heapSeq[index] = heapSeq[child];
      index = child;
    }
    this.place(index, slot, at, seq);
  }

  private place(index: number, slot: SchedulerSlot, at: number, seq: number): void {
    this.heap[index] = slot;
    this.heapAt[index] = at;
    this.heapSeq[index] = seq;
  }
}

function before(atA: number, seqA: number, atB: number, seqB: number): boolean {
  return atA < atB || (atA === atB && seqA < seqB);
}
