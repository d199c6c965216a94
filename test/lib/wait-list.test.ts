import should from 'should';
import { VectorStoreError } from '../../lib/errors';
import type { Timers } from '../../lib/scheduler';
import { createTriggerSpec } from '../../lib/trigger';
import { Triggerer, type CancelNote, type WaitOwner, type WaitRecord } from '../../lib/triggerer';
import type { Backend, CollectionStatus } from '../../lib/types';
import { WaitList, type OwnerInfo, type WaitFeed } from '../../lib/wait-list';

const T0 = 1_700_000_000_000;

async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** Timers that fire only when the test moves time forward (shared by the triggerer and the wait list). */
class ManualClock implements Timers {
  time = T0;
  private nextId = 1;
  private readonly pending = new Map<number, { at: number; callback: () => void }>();
  readonly now = (): number => this.time;

  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.pending.set(id, { at: this.time + ms, callback });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }

  async advance(ms: number): Promise<void> {
    const target = this.time + ms;
    await settle();
    for (;;) {
      let next: [number, { at: number; callback: () => void }] | null = null;
      for (const entry of this.pending) if (entry[1].at <= target && (!next || entry[1].at < next[1].at)) next = entry;
      if (!next) break;
      this.pending.delete(next[0]);
      this.time = Math.max(this.time, next[1].at);
      next[1].callback();
      await settle();
    }
    this.time = target;
    await settle();
  }
}

/** A backend double with only `status` (all the triggerer asks for), answering what the test set. */
function scriptedBackend() {
  const answers = new Map<string, CollectionStatus | Error>();
  const backend = {
    name: 'memory',
    async status(collection: string): Promise<CollectionStatus> {
      const answer = answers.get(collection) ?? { state: 'indexing', documentCount: 100, indexedCount: 0, progress: null, etaSeconds: null };
      if (answer instanceof Error) throw answer;
      return answer;
    },
  } as unknown as Backend;
  return { backend, set: (collection: string, answer: CollectionStatus | Error) => answers.set(collection, answer) };
}

function record(waitId: string, ownerId: string, collection: string, now = T0): WaitRecord {
  const spec = createTriggerSpec({ waitId, collection, expectedCount: 100, pollIntervalMs: 1000, maxPollIntervalMs: 1000, timeoutMs: 3_600_000, now });
  return { ownerId, spec, message: { payload: waitId } };
}

/** Two sensors on store s1 ("Store one"), one on s2. */
const owners: Record<string, OwnerInfo> = {
  'sensor-a': { storeId: 's1', storeName: 'Store one', nodeName: 'wait A', flowId: 'tab1' },
  'sensor-b': { storeId: 's1', storeName: 'Store one', nodeName: 'wait B', flowId: 'tab1' },
  'sensor-c': { storeId: 's2', storeName: 'Store two', nodeName: 'wait C', flowId: 'tab2' },
};
const describeOwner = (id: string): OwnerInfo => owners[id] ?? { storeId: '', storeName: '', nodeName: id, flowId: null };

describe('WaitList (the Vector waits sidebar model, on a real Triggerer without disk)', () => {
  let clock: ManualClock;
  let triggerer: Triggerer;
  let list: WaitList;
  let feed: WaitFeed[];
  /** When each feed message was sent. */
  let sentAt: number[];
  const store = scriptedBackend();

  function owner(storeKey: string, cancelled: Array<{ waits: WaitRecord[]; note: CancelNote }> = []): WaitOwner {
    return { backend: store.backend, storeKey, onEvent: () => undefined, onCancelled: (waits, note) => cancelled.push({ waits, note }) };
  }

  beforeEach(() => {
    clock = new ManualClock();
    triggerer = new Triggerer({ now: clock.now, timers: clock, random: () => 0.5 });
    feed = [];
    sentAt = [];
    const publish = (m: WaitFeed) => {
      feed.push(m);
      sentAt.push(clock.now());
    };
    list = new WaitList({ describeOwner, publish, now: clock.now, timers: clock, intervalMs: 1000 });
    list.bind(triggerer);
    list.groups(); // an editor read it: from here on the list follows every wait
  });

  afterEach(async () => {
    list.close();
    await triggerer.close();
  });

  it('keeps nothing per wait, and sends nothing, until an editor first reads it; that read has every wait', async () => {
    const sent: WaitFeed[] = [];
    const unread = new WaitList({ describeOwner, publish: (m) => sent.push(m), now: clock.now, timers: clock, intervalMs: 1000 });
    unread.bind(triggerer);
    try {
      triggerer.attach('sensor-a', owner('s1'));
      for (let i = 0; i < 50; i++) await triggerer.defer(record(`u${i}`, 'sensor-a', 'docs'));
      await clock.advance(3000);
      should(sent).have.length(0);
      should((unread as unknown as { entries: Map<string, unknown> }).entries.size).equal(0);
      should((unread as unknown as { touched: Set<string> }).touched.size).equal(0);
      // The editor opens: every wait is there at once, and changes are fed from now on.
      should(unread.groups()).match({ total: 50, groups: [{ collection: 'docs', count: 50, running: 50 }] });
      await triggerer.defer(record('u50', 'sensor-a', 'docs'));
      await clock.advance(1500);
      should(sent[sent.length - 1]).match({ total: 51, groups: [{ collection: 'docs', count: 51 }] });
    } finally {
      unread.close();
    }
  });

  it('groups every pending wait by store and collection, with counts, states and progress', async () => {
    store.set('docs', { state: 'indexing', documentCount: 100, indexedCount: 40, progress: null, etaSeconds: 30 });
    triggerer.attach('sensor-a', owner('s1'));
    // sensor-c is not attached (its flow is disabled): its wait is dormant.
    for (const r of [record('a1', 'sensor-a', 'docs'), record('a2', 'sensor-a', 'docs'), record('b1', 'sensor-b', 'docs'), record('a3', 'sensor-a', 'faq'), record('c1', 'sensor-c', 'docs')]) {
      await triggerer.defer(r);
    }
    await clock.advance(1500);

    const { total, groups } = list.groups();
    should(total).equal(5);
    should(groups.map((g) => [g.store.name, g.collection, g.count])).eql([
      ['Store one', 'docs', 3],
      ['Store one', 'faq', 1],
      ['Store two', 'docs', 1],
    ]);
    const docs = groups[0];
    should(docs).match({ running: 2, dormant: 1, retrying: 0, indexedCount: 80, expectedCount: 300, etaSeconds: 30 }); // b1: sensor-b not attached
    should(docs.progress).be.approximately(0.4, 1e-9); // 40 of 100, for the two that polled
    should(groups[2]).match({ running: 0, dormant: 1, progress: null });
  });

  it('pages the waits of one group, with what a sidebar row shows', async () => {
    store.set('docs', { state: 'indexing', documentCount: 100, indexedCount: 25, progress: 0.25, etaSeconds: 12, phase: 'optimizing', detail: '75 rows not yet indexed' });
    triggerer.attach('sensor-a', owner('s1'));
    for (let i = 0; i < 5; i++) await triggerer.defer(record(`w${i}`, 'sensor-a', 'docs'));
    await clock.advance(2500);

    const page = list.page('s1', 'docs', 2, 2);
    should(page.total).equal(5);
    should(page.offset).equal(2);
    should(page.waits.map((w) => w.waitId)).eql(['w2', 'w3']);
    should(page.waits[0]).match({
      nodeId: 'sensor-a',
      nodeName: 'wait A',
      flowId: 'tab1',
      store: { id: 's1', name: 'Store one' },
      collection: 'docs',
      state: 'running',
      durable: true,
      progress: 0.25,
      indexedCount: 25,
      expectedCount: 100,
      phase: 'optimizing',
      detail: '75 rows not yet indexed',
      etaSeconds: 12,
      startedAt: T0,
      elapsedMs: 2500,
      lastWarning: null,
    });
    should(page.waits[0].polls).be.aboveOrEqual(2);
    should(list.page('s1', 'nothing').waits).eql([]);
  });

  it('shows the last warning of a wait whose store fails, and counts it as retrying', async () => {
    triggerer.attach('sensor-a', owner('s1'));
    await triggerer.defer(record('w1', 'sensor-a', 'flaky'));
    store.set('flaky', new VectorStoreError('UNAVAILABLE', 'connect ECONNREFUSED 127.0.0.1:5432'));
    await clock.advance(1500);
    const [wait] = list.page('s1', 'flaky').waits;
    should(wait.lastWarning).match({ current: true });
    should(wait.lastWarning!.message).containEql('ECONNREFUSED');
    should(list.group('s1', 'flaky')).match({ retrying: 1 });

    store.set('flaky', { state: 'indexing', documentCount: 100, indexedCount: 10, progress: null, etaSeconds: null });
    await clock.advance(5000);
    should(list.page('s1', 'flaky').waits[0].lastWarning).match({ current: false });
    should(list.group('s1', 'flaky')).match({ retrying: 0 });
  });

  it('feeds at most one message per second, group summaries only, however many waits poll', async () => {
    triggerer.attach('sensor-a', owner('s1'));
    triggerer.attach('sensor-c', owner('s2'));
    const deferred: Array<Promise<void>> = [];
    for (let i = 0; i < 10_000; i++) deferred.push(triggerer.defer(record(`w${i}`, i % 2 ? 'sensor-a' : 'sensor-c', `c${i % 4}`)));
    await Promise.all(deferred);
    sentAt.length = 0;
    feed.length = 0;
    let indexed = 0;
    for (let second = 0; second < 10; second++) {
      indexed += 5;
      for (let c = 0; c < 4; c++) store.set(`c${c}`, { state: 'indexing', documentCount: 100, indexedCount: indexed, progress: null, etaSeconds: null });
      await clock.advance(1000);
    }
    // 10,000 waits polled every second for 10 s (100,000 changes): about ten messages.
    should(sentAt.length).be.within(5, 11);
    for (let i = 1; i < sentAt.length; i++) should(sentAt[i] - sentAt[i - 1]).be.aboveOrEqual(1000);
    for (const message of feed) {
      should(message.groups.length).be.belowOrEqual(4);
      should(JSON.stringify(message).length).be.below(4000);
    }
    should(feed[feed.length - 1].total).equal(10_000);
  });

  it('prepares a message about 10,000 changed waits in slices: other work runs before it is sent', async () => {
    let due: (() => void) | null = null;
    const handTimers: Timers = { setTimeout: (callback) => ((due = callback), 1), clearTimeout: () => undefined };
    const sent: WaitFeed[] = [];
    const sliced = new WaitList({ describeOwner, publish: (m) => sent.push(m), now: clock.now, timers: handTimers });
    sliced.bind(triggerer);
    sliced.groups();
    try {
      const deferred: Array<Promise<void>> = [];
      for (let i = 0; i < 10_000; i++) deferred.push(triggerer.defer(record(`w${i}`, 'sensor-c', 'docs')));
      await Promise.all(deferred);
      should(due).be.a.Function();
      due!();
      should(sent).have.length(0); // not in the timer's own turn
      await new Promise((resolve) => setImmediate(resolve));
      should(sent).have.length(0); // nor in the next one: 10,000 touches take several slices
      await settle(20);
      should(sent).have.length(1);
      should(sent[0]).match({ total: 10_000, groups: [{ collection: 'docs', count: 10_000, dormant: 10_000 }] });
      // A client reads a page at a time: at most 500 waits per request.
      const page = sliced.page('s2', 'docs', 9_900, 10_000);
      should(page).match({ total: 10_000, offset: 9_900 });
      should(page.waits).have.length(100);
      should(sliced.page('s2', 'docs', 0, 10_000).waits).have.length(500);
    } finally {
      sliced.close();
    }
  });

  it('sends nothing while nothing changes, and numbers its messages', async () => {
    // sensor-c is not attached: its waits do not poll, nothing changes after they arrive.
    await triggerer.defer(record('c1', 'sensor-c', 'docs'));
    await triggerer.defer(record('c2', 'sensor-c', 'docs'));
    await clock.advance(1000);
    should(feed).have.length(1);
    should(feed[0]).match({ v: 1, total: 2, removed: [] });
    should(feed[0].groups).have.length(1);
    should(feed[0].groups[0]).match({ collection: 'docs', count: 2, dormant: 2 });
    await clock.advance(10_000);
    should(feed).have.length(1);
    should(list.groups().v).equal(1);
  });

  it('cancelAndNotify removes one wait or a whole group; the owner is told, the feed drops the group', async () => {
    const cancelled: Array<{ waits: WaitRecord[]; note: CancelNote }> = [];
    triggerer.attach('sensor-a', owner('s1', cancelled));
    for (const id of ['a1', 'a2', 'a3']) await triggerer.defer(record(id, 'sensor-a', 'docs'));
    await triggerer.defer(record('c1', 'sensor-c', 'other'));
    await clock.advance(1500);
    const note = { statusText: () => 'cancelled from sidebar', by: 'admin' };

    should(triggerer.cancelAndNotify((w) => w.spec.waitId === 'a2', note).map((r) => r.spec.waitId)).eql(['a2']);
    should(cancelled).have.length(1);
    should(cancelled[0].note).equal(note);
    should(list.group('s1', 'docs')).match({ count: 2 });

    const ids = list.waitIdsOf('s1', 'docs');
    should([...ids].sort()).eql(['a1', 'a3']);
    triggerer.cancelAndNotify((w) => ids.has(w.spec.waitId), note);
    should(cancelled.map((c) => c.waits.map((w) => w.spec.waitId))).eql([['a2'], ['a1', 'a3']]);
    should(triggerer.pending('sensor-a')).equal(0);
    // The dormant wait of sensor-c is cancelled too, with no owner to tell.
    should(triggerer.cancelAndNotify((w) => w.spec.waitId === 'c1', note)).have.length(1);

    feed.length = 0;
    await clock.advance(1500);
    should(feed).have.length(1);
    should(feed[0].total).equal(0);
    should(feed[0].removed.sort()).eql(['s1/docs', 's2/other']);
    should(list.groups().groups).eql([]);
  });

  it('forgets the waits of a triggerer that closes', async () => {
    await triggerer.defer(record('c1', 'sensor-c', 'docs'));
    await clock.advance(1000);
    should(list.groups().total).equal(1);
    await triggerer.close();
    await clock.advance(1000);
    should(list.groups().total).equal(0);
    should(feed[feed.length - 1].removed).eql(['s2/docs']);
  });
});
