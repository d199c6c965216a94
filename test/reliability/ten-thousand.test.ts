/**
 * 10,000 messages into one sensor on a real `node-red` process (memory backend):
 * every wait ends exactly once, and the admin API keeps answering while they wait.
 * The admin API latency (GET /flows, sampled one request at a time) is reported,
 * not asserted: no timed performance assertion.
 */
import should from 'should';
import { cleanupAll, httpRequest, sleep, type NodeRed } from '../e2e/harness';
import { EventsReader, byWait, isFinal, pipelineFlows, prepareUserDir, startPipeline, startRun } from './pipeline-process';
import { percentile, round, writeFigures } from './figures';

const WAITS = 10_000;
const DOCS = 60;
const FLOW = { indexingRate: 10, indexingDelay: 1, pollS: 1, maxPollS: 2, timeoutS: 300 };

describe('reliability: 10,000 waits on one sensor of a real node-red process', function () {
  this.timeout(180_000);
  let nodeRed: NodeRed;
  after(cleanupAll);

  it('all 10,000 end exactly once; the admin API answers meanwhile (p99 reported)', async () => {
    const { userDir, eventsFile } = await prepareUserDir();
    const events = new EventsReader(eventsFile);
    nodeRed = await startPipeline(userDir, { flows: pipelineFlows(FLOW) });
    const run = 'tenk';
    const startedAt = Date.now();
    await startRun(nodeRed, { run, collections: 1, docs: DOCS, waits: WAITS, quiet: true });

    // Sample the admin API, one request at a time, until every wait has ended (or 120 s).
    const latencies: number[] = [];
    const sampledAt: number[] = [];
    let firstFinalAt: number | null = null;
    let failedRequests = 0;
    const deadline = Date.now() + 120_000;
    let ended = 0;
    let deferredAt: number | null = null;
    for (;;) {
      const t0 = process.hrtime.bigint();
      try {
        const result = await httpRequest('GET', `${nodeRed.url}/flows`, undefined, {}, 10_000);
        if (result.status !== 200) failedRequests += 1;
      } catch {
        failedRequests += 1;
      }
      latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      sampledAt.push(Date.now());
      await events.poll();
      const waits = byWait(events.events, run);
      if (deferredAt === null && waits.size >= WAITS) deferredAt = Date.now();
      ended = [...waits.values()].filter((list) => list.some(isFinal)).length;
      if (firstFinalAt === null && ended > 0) firstFinalAt = Date.now();
      if (ended >= WAITS || Date.now() > deadline) break;
      await sleep(20);
    }
    const lastFinalAt = Date.now();
    await sleep(2000); // room for duplicates
    await events.poll();

    const waits = byWait(events.events, run);
    const finalsPerWait = [...waits.values()].map((list) => list.filter(isFinal).length);
    // "While they wait": from the moment all 10,000 were deferred until the first final.
    const waiting = latencies.filter((_, i) => deferredAt !== null && sampledAt[i] > deferredAt && (firstFinalAt === null || sampledAt[i] < firstFinalAt));
    const slowest = latencies.indexOf(Math.max(...latencies));
    const figures = {
      waits: WAITS,
      seen: waits.size,
      endedOnce: finalsPerWait.filter((n) => n === 1).length,
      neverEnded: finalsPerWait.filter((n) => n === 0).length,
      endedTwiceOrMore: finalsPerWait.filter((n) => n > 1).length,
      failures: events.events.filter((e) => e.run === run && e.kind === 'failed').length,
      allDeferredAfterMs: deferredAt === null ? null : deferredAt - startedAt,
      allEndedAfterMs: lastFinalAt - startedAt,
      firstFinalAfterMs: firstFinalAt === null ? null : firstFinalAt - startedAt,
      adminApiWhileWaiting: {
        route: 'GET /flows',
        samples: waiting.length,
        p50Ms: waiting.length ? round(percentile(waiting, 50)!) : null,
        p99Ms: waiting.length ? round(percentile(waiting, 99)!) : null,
        maxMs: waiting.length ? round(Math.max(...waiting)) : null,
      },
      adminApiWholeRun: {
        route: 'GET /flows',
        samples: latencies.length,
        failedRequests,
        p50Ms: round(percentile(latencies, 50) ?? 0),
        p99Ms: round(percentile(latencies, 99) ?? 0),
        maxMs: round(Math.max(...latencies)),
        slowestAtMs: sampledAt[slowest] - startedAt,
      },
      errorsLogged: nodeRed.log.errors().length,
    };
    await writeFigures('ten-thousand', figures);
    await nodeRed.stop();

    should(figures.seen).equal(WAITS, `${WAITS - figures.seen} waits were never seen`);
    should(figures.neverEnded).equal(0);
    should(figures.endedTwiceOrMore).equal(0);
    should(figures.endedOnce).equal(WAITS);
    should(figures.failures).equal(0);
    should(failedRequests).equal(0, 'the admin API answered every request');
  });
});
