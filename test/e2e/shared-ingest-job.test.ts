// A background ingest job shared by three real `node-red` processes (the package as users
// get it: npm pack, npm install), one PostgreSQL 15 job store and one local Chroma server
// (the vector store all three reach). The instance running a 20,000-document job is killed
// with kill -9 a quarter in: another instance claims the job once its lease runs out,
// resumes it from the database spool at its first unfinished batch, and sends the job's
// one final message; no document is lost, none is embedded again beyond the batch in
// flight at the kill, and Chroma holds exactly the 20,000 documents.
//
// The embedder is an OpenAI-compatible stub in this test process (a stub: no embedding
// service runs here), counting every text it is sent by any instance.
import { promises as fsp } from 'node:fs';
import should from 'should';
import { cleanupAll, Collector, installPackedPackage, makeTempDir, startNodeRed, type FlowNode, type NodeRed } from './harness';
import { startEmbeddingStub, type EmbeddingStub } from '../support/embedding-stub';
import { startChromaServer, type ChromaServer } from '../support/chroma-server';
import { POSTGRES_MISSING, postgresBinaries, startPostgresServer, type PostgresServer } from '../support/postgres-server';

const DOCS = 20_000;
const BATCH = 100;
const LEASE_S = 2;
const TAB = 'sj-tab';
const INGEST = 'sj-ingest';

function flows(embedUrl: string, chromaUrl: string): FlowNode[] {
  return [
    { id: TAB, type: 'tab', label: 'Shared ingest job', disabled: false, info: '' },
    { id: 'sj-store', type: 'vector-store', name: 'chroma', backend: 'chroma', url: chromaUrl, embedder: 'openai', embedUrl, embedModel: 'stub', dimensions: '16' },
    { id: 'sj-inject', type: 'inject', z: TAB, props: [{ p: 'ticket', v: 'J-1', vt: 'str' }], repeat: '', once: false, topic: '', x: 100, y: 80, wires: [['sj-docs']] },
    {
      id: 'sj-docs',
      type: 'function',
      z: TAB,
      func: `msg.payload = Array.from({ length: ${DOCS} }, (_, i) => ({ id: 'doc-' + i, text: 'document ' + i + ' about harbours and tides' })); return msg;`,
      outputs: 1,
      x: 260,
      y: 80,
      wires: [[INGEST]],
    },
    { id: INGEST, type: 'vector-ingest', z: TAB, store: 'sj-store', collection: 'shared_job', batchSize: String(BATCH), createCollection: true, buildIndex: true, background: 'auto', x: 460, y: 80, wires: [[], []] },
    { id: 'sj-catch', type: 'catch', z: TAB, scope: null, uncaught: false, x: 100, y: 200, wires: [[]] },
  ];
}

async function chromaCount(chroma: ChromaServer, collection: string): Promise<number> {
  const base = `${chroma.url}/api/v2/tenants/default_tenant/databases/default_database/collections`;
  const found = (await (await fetch(`${base}/${collection}`)).json()) as { id: string };
  return (await (await fetch(`${base}/${found.id}/count`)).json()) as number;
}

describe('e2e: three node-red instances share a background ingest job through PostgreSQL 15', function () {
  this.timeout(240_000);
  let pg: PostgresServer;
  let chroma: ChromaServer;
  let stub: EmbeddingStub;

  before(async function () {
    if (!postgresBinaries()) {
      console.log(`      skipped: ${POSTGRES_MISSING}`);
      this.skip();
    }
    [pg, chroma, stub] = await Promise.all([startPostgresServer(), startChromaServer(), startEmbeddingStub({ latencyMs: 2, maxInFlight: 2, retryAfterSeconds: 0.02 })]);
  });
  after(async () => {
    await cleanupAll();
    await Promise.all([pg?.stop(), chroma?.stop(), stub?.close()]);
  });

  it('kill -9 of the instance running it a quarter in: another instance finishes it from the spool, one final, every document once in Chroma', async () => {
    const collector = await Collector.start();
    const tapped = collector.tap(flows(stub.url, chroma.url), [
      { label: 'written', from: INGEST, output: 0 },
      { label: 'progress', from: INGEST, output: 1 },
      { label: 'caught', from: 'sj-catch' },
    ]);
    // One install of the packed package, copied for each instance (each has its own user directory).
    const { userDir } = await installPackedPackage();
    const userDirs = [userDir];
    for (let i = 1; i < 3; i++) {
      const copy = await makeTempDir('nr-e2e-installed');
      await fsp.cp(userDir, copy, { recursive: true });
      userDirs.push(copy);
    }
    const defines = {
      'vectorPipeline.jobStore.type': 'postgres',
      'vectorPipeline.jobStore.url': pg.url,
      'vectorPipeline.jobStore.table': 'shared_job_test',
      'vectorPipeline.jobStore.leaseSeconds': String(LEASE_S),
      'vectorPipeline.jobStore.heartbeatSeconds': '0.5',
    };
    const instances: NodeRed[] = [];
    for (const dir of userDirs) instances.push(await startNodeRed({ userDir: dir, packageDir: null, flows: tapped, defines }));
    for (const instance of instances) await instance.log.waitForLine(/shared through PostgreSQL/, 15_000);

    await instances[0].inject('sj-inject');
    const midway = await collector.waitFor(
      (all) => all.find((m) => m.label === 'progress' && m.msg.payload.written >= DOCS / 4),
      120_000,
      'a quarter of the job written',
    );
    const jobId = midway.msg.jobId as string;
    // The instance that accepted the job runs it (its lease): kill it.
    await instances[0].kill9();
    should(collector.byLabel('written')).have.length(0);

    const final = await collector.waitFor((all) => all.find((m) => m.label === 'written'), 150_000, 'the final message of the job, from another instance');
    await new Promise((r) => setTimeout(r, 3 * LEASE_S * 1000)); // room for a duplicate
    should(collector.byLabel('written')).have.length(1);
    should(collector.byLabel('caught')).eql([]);
    should(final.msg.jobId).equal(jobId);
    should(final.msg.ticket).equal('J-1');
    should(final.msg.redelivered).not.equal(true);
    should(final.msg.payload).containEql({ collection: 'shared_job', ingested: DOCS, documents: DOCS, resumed: 1 });
    should(final.msg.payload.ids).have.length(DOCS);

    // No document lost, none embedded twice beyond the batch in flight at the kill.
    should(stub.stats.textsSeen.size).equal(DOCS);
    const twice = [...stub.stats.textsSeen.values()].filter((n) => n > 1).length;
    should(twice).be.belowOrEqual(BATCH);
    should(await chromaCount(chroma, 'shared_job')).equal(DOCS);

    // The job's progress went on after the kill, from a survivor.
    const after = collector.byLabel('progress').filter((m) => m.msg.jobId === jobId && m.msg.payload.written > midway.msg.payload.written);
    should(after.length).be.above(0);
    for (const survivor of instances.slice(1)) should(survivor.log.errors()).eql([]);
  });
});
