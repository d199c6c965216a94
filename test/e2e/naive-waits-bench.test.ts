// The naive-waits benchmark (bench/naive-waits.ts) at a tiny size: its flows run as
// described in real node-red processes (every wait of every variant ends once, the
// function node polls the store, the delay loop goes through index-health), its probe
// answers, and the sensor's waits survive the kill -9. Figures are not judged here
// (that is the benchmark's job): only that they are there.
import should from 'should';
import { run, type NaiveWaitsResult } from '../../bench/naive-waits';

describe('e2e: the naive-waits benchmark at a tiny size', function () {
  this.timeout(240_000);
  const waits = 60;
  let result: NaiveWaitsResult;

  before(async () => {
    result = await run({ waits, collections: 3, repetitions: 1, readyFromS: 2, readySpanS: 1, killRestart: true });
  });

  it('ends every wait of every variant once, with nothing on the error path', () => {
    should(result.runs.map((r) => r.variant).sort()).eql(['delay', 'function', 'sensor']);
    for (const r of result.runs) {
      should({ variant: r.variant, finals: r.finals, repeated: r.repeatedFinals, errors: r.errors }).eql({ variant: r.variant, finals: waits, repeated: 0, errors: 0 });
    }
    for (const s of result.summary) should(s.allEndedOnce).be.true();
  });

  it('counts the store calls each variant makes, net of the ingest', () => {
    const of = (variant: string) => result.runs.find((r) => r.variant === variant)!;
    // The ingest alone checks each collection once per message, and reads no status.
    should(result.controls[0].storeCalls.status).equal(0);
    should(result.controls[0].storeCalls.collectionExists).equal(waits);
    // The collections are still indexing at the first check: every wait polls at least twice.
    should(of('function').storeCalls.status).be.aboveOrEqual(2 * waits);
    should(of('function').storeCalls.collectionExists).equal(0);
    // index-health reads stats and queries on each turn of the loop.
    should(of('delay').storeCalls.statsAndQuery).equal(2 * of('delay').storeCalls.status);
    should(of('sensor').storeCalls.status).be.above(0);
  });

  it('reads CPU, memory and event-loop delay from inside each process', () => {
    for (const r of result.runs) {
      for (const value of [r.cpuMs, r.heapPerWaitBytes, r.rssGrowthBytes, r.loopDelay.p99Ms, r.burstLoopDelay.p99Ms]) should(Number.isFinite(value)).be.true();
      should(r.runMs).be.aboveOrEqual(r.burstMs);
    }
  });

  it('finds every pending wait of the sensor again after kill -9, and ends each once', () => {
    should(result.killRestart).not.be.null();
    const k = result.killRestart!;
    should({ pendingAtKill: k.pendingAtKill, finals: k.finals, repeated: k.repeatedFinals, errors: k.errors }).eql({ pendingAtKill: waits, finals: waits, repeated: 0, errors: 0 });
    should(k.resumeMs).be.a.Number();
  });
});
