/**
 * Fault matrix: the real Postgres (PGlite with pgvector, several connections) and the
 * real Chroma server, each behind the fault-injecting proxy, in a real Node-RED
 * runtime. For each fault (drop, latency, refuse for a while, blackhole, restart
 * mid-wait) several sensor waits on one collection must end exactly once, within
 * their timeout plus one scheduler slice, with the right status: "success" when the
 * outage is shorter than the timeout and the store becomes ready, "timeout" saying
 * the store did not answer for a blackhole. index-health and sample-query are not
 * hung past the store timeout either.
 *
 * Runtime setting under test: vectorPipeline.storeTimeout (seconds), also given as
 * VECTOR_PIPELINE_STORE_TIMEOUT, bounds each store call.
 */
import should from 'should';
import { FaultProxy } from '../support/fault-proxy';
import { startPgliteServer } from '../support/pglite-server';
import { startChromaServer } from '../support/chroma-server';
import { collectTimed, helper, load, logLines, recordProcessFaults, sleep, unload, until, type FlowNode, type Msg } from './runtime';
import { writeFigures } from './figures';

const SENSOR_TIMEOUT_S = 6;
const STORE_TIMEOUT_S = 2;
/** One scheduler slice plus the loop's own slack: how late an end may be, loosely. */
const SLACK_MS = 3000;
const WAITS = 5;
const FIRST_DOCS = 3;
const EXPECTED = 6;

type Fault = 'drop' | 'latency' | 'refuse' | 'blackhole' | 'restart';
const FAULTS: Fault[] = ['drop', 'latency', 'refuse', 'blackhole', 'restart'];

interface Backend {
  name: 'pgvector' | 'chroma';
  /** The real server's host:port and how to point a store at an address. */
  start(): Promise<{ port: number; store(port: number): Record<string, unknown>; stop(): Promise<void> }>;
}

const BACKENDS: Backend[] = [
  {
    name: 'pgvector',
    async start() {
      const server = await startPgliteServer({ maxConnections: 16 });
      return { port: server.port, store: (port) => ({ backend: 'pgvector', url: `postgres://postgres@127.0.0.1:${port}/postgres` }), stop: () => server.stop() };
    },
  },
  {
    name: 'chroma',
    async start() {
      const server = await startChromaServer();
      return { port: server.port, store: (port) => ({ backend: 'chroma', url: `http://127.0.0.1:${port}` }), stop: () => server.stop() };
    },
  },
];

function flow(proxied: Record<string, unknown>, direct: Record<string, unknown>, collection: string): FlowNode[] {
  const store = (id: string, fields: Record<string, unknown>) => ({ id, type: 'vector-store', name: `${id} store`, embedder: 'hash', dimensions: 16, ...fields });
  return [
    store('proxied', proxied),
    store('direct', direct),
    { id: 'ingest', type: 'vector-ingest', store: 'proxied', collection, batchSize: 100, wires: [['ingested']] },
    { id: 'ingest-direct', type: 'vector-ingest', store: 'direct', collection, batchSize: 100, wires: [['ingested']] },
    { id: 'ingested', type: 'helper' },
    {
      id: 'sensor',
      type: 'deferrable-sensor',
      store: 'proxied',
      collection,
      expectedCount: 0,
      pollInterval: 0.2,
      maxPollInterval: 0.5,
      timeout: SENSOR_TIMEOUT_S,
      deferrable: true,
      wires: [['ready'], ['progress']],
    },
    { id: 'health', type: 'index-health', store: 'proxied', collection, expectedCount: 0, countMode: 'atLeast', dimensions: 0, wires: [['healthy']] },
    { id: 'query', type: 'sample-query', store: 'proxied', collection, query: 'documents', topK: 2, failOnEmpty: false, wires: [['answers']] },
    { id: 'ready', type: 'helper' },
    { id: 'progress', type: 'helper' },
    { id: 'healthy', type: 'helper' },
    { id: 'answers', type: 'helper' },
    { id: 'catch-all', type: 'catch', scope: null, uncaught: false, wires: [['errors']] },
    { id: 'errors', type: 'helper' },
  ];
}

const docs = (from: number, n: number) => Array.from({ length: n }, (_, i) => `Fault matrix document ${from + i}: harbours, tides and ships.`);

interface CaseFigures {
  backend: string;
  fault: Fault;
  expected: 'success' | 'timeout';
  waits: number;
  finals: number;
  duplicates: number;
  statuses: Record<string, number>;
  /** Longest wait, from the message to its final (ms). */
  maxElapsedMs: number | null;
  /** timeout: how late after the deadline the last final came; success: after the store was ready again. */
  maxLatenessMs: number | null;
  /** Warning lines naming the collection during the fault (the target: one per collection per outage). */
  warnings: number;
  /** blackhole: how long index-health and sample-query took to end (ms), null if they never did. */
  healthMs?: number | null;
  queryMs?: number | null;
  ok: boolean;
}

describe('reliability: fault matrix through a TCP proxy (real Postgres and Chroma, real Node-RED runtime)', function () {
  this.timeout(60_000);
  const figures: CaseFigures[] = [];
  const previousEnv = process.env.VECTOR_PIPELINE_STORE_TIMEOUT;
  const processFaults = recordProcessFaults();

  before(() => {
    process.env.VECTOR_PIPELINE_STORE_TIMEOUT = String(STORE_TIMEOUT_S);
  });
  after(async () => {
    if (previousEnv === undefined) delete process.env.VECTOR_PIPELINE_STORE_TIMEOUT;
    else process.env.VECTOR_PIPELINE_STORE_TIMEOUT = previousEnv;
    processFaults.stop();
    await writeFigures('fault-matrix', {
      sensorTimeoutS: SENSOR_TIMEOUT_S,
      storeTimeoutS: STORE_TIMEOUT_S,
      slackMs: SLACK_MS,
      cases: figures,
      processFaults: processFaults.faults.length,
    });
  });

  for (const backend of BACKENDS) {
    describe(backend.name, () => {
      let server: Awaited<ReturnType<Backend['start']>>;
      before(async () => {
        server = await backend.start();
      });
      after(async () => {
        await server?.stop();
      });

      for (const fault of FAULTS) {
        const expected = fault === 'blackhole' ? 'timeout' : 'success';
        it(`${fault}: ${WAITS} waits end once each, "${expected}", within timeout + ${SLACK_MS / 1000} s`, async () => {
          const collection = `fm_${backend.name}_${fault}`;
          const proxy = await FaultProxy.start({ port: server.port });
          const row: CaseFigures = {
            backend: backend.name,
            fault,
            expected,
            waits: WAITS,
            finals: 0,
            duplicates: 0,
            statuses: {},
            maxElapsedMs: null,
            maxLatenessMs: null,
            warnings: 0,
            ok: false,
          };
          figures.push(row);
          try {
            await load(flow(server.store(proxy.port), server.store(server.port), collection), { vectorPipeline: { storeTimeout: STORE_TIMEOUT_S } });
            const ingested = collectTimed('ingested');
            const ready = collectTimed('ready');
            const progress = collectTimed('progress');
            const errors = collectTimed('errors');
            const healthy = collectTimed('healthy');
            const answers = collectTimed('answers');

            helper.getNode('ingest').receive({ payload: docs(0, FIRST_DOCS) });
            should(await until(() => ingested.length === 1, 15_000)).be.true('the first ingest through the proxy ended');

            // WAITS messages, each waiting for more documents than are there yet.
            const startedAt = new Map<string, number>();
            for (let i = 0; i < WAITS; i++) {
              helper.getNode('sensor').receive({ expectedCount: EXPECTED, ticket: `${fault}-${i}` });
            }
            const sentAt = Date.now();
            should(await until(() => new Set(progress.map((p) => p.msg.ticket)).size === WAITS, 10_000)).be.true('every wait was deferred');
            for (const p of progress) if (!startedAt.has(p.msg.ticket)) startedAt.set(p.msg.ticket, sentAt);
            const logFrom = logLines().length;

            // The fault, and the store becoming ready behind it (written past the proxy).
            const addRest = async () => {
              helper.getNode('ingest-direct').receive({ payload: docs(FIRST_DOCS, EXPECTED - FIRST_DOCS) });
              await until(() => ingested.length === 2, 15_000);
            };
            let readyAgainAt = 0;
            let healthSentAt = 0;
            if (fault === 'drop') {
              await proxy.setMode('drop');
              await addRest();
              await sleep(1500);
              await proxy.setMode('pass');
            } else if (fault === 'latency') {
              await proxy.setMode('latency', { latencyMs: 300 });
              await addRest();
            } else if (fault === 'refuse') {
              await proxy.setMode('refuse');
              await addRest();
              await sleep(2000);
              await proxy.setMode('pass');
            } else if (fault === 'restart') {
              await addRest();
              await proxy.restart(500);
            } else {
              await proxy.setMode('blackhole');
              await sleep(300);
              healthSentAt = Date.now();
              helper.getNode('health').receive({});
              helper.getNode('query').receive({ payload: 'ships' });
            }
            readyAgainAt = Date.now();

            const finalsOf = () => [...ready, ...errors.filter((e) => e.msg.ticket !== undefined && e.msg.payload?.status !== undefined && String(e.msg.ticket).startsWith(fault))];
            const lastDeadline = sentAt + SENSOR_TIMEOUT_S * 1000;
            await until(() => new Set(finalsOf().map((f) => f.msg.ticket)).size === WAITS, lastDeadline + SLACK_MS + 2000 - Date.now());
            if (fault === 'blackhole') {
              await until(() => healthy.length + answers.length + errors.filter((e) => e.msg.ticket === undefined).length >= 2, healthSentAt + STORE_TIMEOUT_S * 1000 + SLACK_MS - Date.now());
            }
            await sleep(500); // room for a duplicate to show up

            const finals = finalsOf();
            const byTicket = new Map<string, Array<{ msg: Msg; at: number }>>();
            for (const f of finals) byTicket.set(f.msg.ticket, [...(byTicket.get(f.msg.ticket) ?? []), f]);
            row.finals = byTicket.size;
            row.duplicates = finals.length - byTicket.size;
            for (const f of finals) {
              const status = f.msg.payload?.status ?? 'unknown';
              row.statuses[status] = (row.statuses[status] ?? 0) + 1;
            }
            const elapsed = finals.map((f) => f.at - (startedAt.get(f.msg.ticket) ?? sentAt));
            row.maxElapsedMs = elapsed.length ? Math.max(...elapsed) : null;
            row.maxLatenessMs = finals.length
              ? Math.max(...finals.map((f) => f.at - (expected === 'timeout' ? lastDeadline : readyAgainAt)))
              : null;
            row.warnings = logLines()
              .slice(logFrom)
              .filter((line) => line.startsWith('warn ') && line.includes(collection)).length;

            if (fault === 'blackhole') {
              const otherEnds = errors.filter((e) => e.msg.ticket === undefined);
              const healthEnd = [...healthy, ...otherEnds.filter((e) => e.msg.payload?.healthy !== undefined || e.msg.error?.source?.id === 'health')][0];
              const queryEnd = [...answers, ...otherEnds.filter((e) => e.msg.error?.source?.id === 'query')][0];
              row.healthMs = healthEnd ? healthEnd.at - healthSentAt : null;
              row.queryMs = queryEnd ? queryEnd.at - healthSentAt : null;
            }

            // Exactly once, on time, with the right status.
            should(row.duplicates).equal(0, `${row.duplicates} wait(s) ended more than once`);
            should(row.finals).equal(WAITS, `${WAITS - row.finals} of ${WAITS} waits never ended (statuses: ${JSON.stringify(row.statuses)})`);
            should(row.statuses).eql({ [expected]: WAITS });
            should(row.maxElapsedMs!).be.below(SENSOR_TIMEOUT_S * 1000 + SLACK_MS);
            if (expected === 'timeout') {
              for (const f of finals) should(f.msg.payload.message).match(/did not answer|not respond|no answer/i);
              should(row.healthMs !== null).be.true('index-health ended while the store was blackholed');
              should(row.queryMs !== null).be.true('sample-query ended while the store was blackholed');
              should(row.healthMs!).be.below(STORE_TIMEOUT_S * 1000 + SLACK_MS);
              should(row.queryMs!).be.below(STORE_TIMEOUT_S * 1000 + SLACK_MS);
            }
            // Transient errors: one warning per collection per outage, not one per wait and poll.
            should(row.warnings).be.belowOrEqual(2, `${row.warnings} warning lines about ${collection}`);
            row.ok = true;
          } finally {
            await proxy.stop();
            await unload();
          }
        });
      }
    });
  }

  describe('afterwards', () => {
    it('no unhandled rejection or uncaught exception during the matrix', () => {
      should(processFaults.faults).eql([]);
    });
  });
});
