import 'should';
import { DEFAULT_SETTINGS, readJobStoreSettings, readRuntimeSettings, runtimeSettingsOrDefaults, type PostgresJobStoreSettings } from '../../lib/settings';
import type { VectorStoreError } from '../../lib/errors';

describe('runtime settings (settings.js vectorPipeline, environment)', () => {
  it('defaults when nothing is set', () => {
    readRuntimeSettings(undefined, {}).should.eql(DEFAULT_SETTINGS);
  });
  it('reads settings.js, and the environment overrides it', () => {
    readRuntimeSettings({ storeTimeout: 3, maxPendingWaitsPerSensor: 50 }, {}).should.eql({ storeTimeoutMs: 3000, maxPendingWaitsPerSensor: 50 });
    readRuntimeSettings({ storeTimeout: 3 }, { VECTOR_PIPELINE_STORE_TIMEOUT: '0.5', VECTOR_PIPELINE_MAX_PENDING_WAITS: '7' }).should.eql({
      storeTimeoutMs: 500,
      maxPendingWaitsPerSensor: 7,
    });
  });
  it('names the bad setting, and falls back to the defaults with a warning', () => {
    (() => readRuntimeSettings({ storeTimeout: 'soon' }, {})).should.throw(/vectorPipeline\.storeTimeout/);
    (() => readRuntimeSettings({}, { VECTOR_PIPELINE_MAX_PENDING_WAITS: 'many' })).should.throw(/VECTOR_PIPELINE_MAX_PENDING_WAITS/);
    const warnings: string[] = [];
    runtimeSettingsOrDefaults({ maxPendingWaitsPerSensor: -1 }, (w) => warnings.push(w), {}).should.eql(DEFAULT_SETTINGS);
    runtimeSettingsOrDefaults({ maxPendingWaitsPerSensor: -1 }, (w) => warnings.push(w), {}).should.eql(DEFAULT_SETTINGS);
    warnings.length.should.equal(1); // once, however many node types read it
  });
});

describe('job store settings (settings.js vectorPipeline.jobStore, environment)', () => {
  const URL = 'postgres://worker@db.example:6543/jobs';

  it('is the file store when nothing is set, or when the environment says "file"', () => {
    readJobStoreSettings(undefined, {}).should.eql({ type: 'file' });
    readJobStoreSettings({ jobStore: { type: 'postgres', url: URL } }, { VECTOR_PIPELINE_JOB_STORE: 'file' }).should.eql({ type: 'file' });
  });

  it('reads a postgres store with its defaults; the URL alone is enough', () => {
    readJobStoreSettings({ jobStore: { url: URL } }, {}).should.eql({
      type: 'postgres', host: 'db.example', port: 6543, user: 'worker', database: 'jobs', where: 'db.example:6543/jobs',
      password: undefined, schema: 'public', table: 'vector_pipeline_work', leaseMs: 30_000, heartbeatMs: 10_000, capacity: 100_000,
    });
    const custom = readJobStoreSettings(
      { jobStore: { type: 'postgres', url: URL, schema: 'flows', table: 'work', leaseSeconds: 6, heartbeatSeconds: 1.5, capacity: 500.7 } },
      {},
    ) as PostgresJobStoreSettings;
    custom.should.containEql({ schema: 'flows', table: 'work', leaseMs: 6000, heartbeatMs: 1500, capacity: 500 });
    // A short lease without a heartbeat: a third of it.
    (readJobStoreSettings({ jobStore: { url: URL, leaseSeconds: 3 } }, {}) as PostgresJobStoreSettings).heartbeatMs.should.equal(1000);
  });

  it('the environment overrides the URL, and gives the password (else the setting, else PGPASSWORD)', () => {
    const fromEnv = readJobStoreSettings({ jobStore: { url: URL, password: 'from-settings' } }, {
      VECTOR_PIPELINE_JOB_STORE: 'postgresql://other@10.0.0.5/shared',
      VECTOR_PIPELINE_JOB_STORE_PASSWORD: 'from-env',
      PGPASSWORD: 'from-pg',
    }) as PostgresJobStoreSettings;
    fromEnv.should.containEql({ type: 'postgres', host: '10.0.0.5', port: 5432, user: 'other', database: 'shared', password: 'from-env' });
    (readJobStoreSettings({}, { VECTOR_PIPELINE_JOB_STORE: URL, PGPASSWORD: 'from-pg' }) as PostgresJobStoreSettings).password!.should.equal('from-pg');
    (readJobStoreSettings({ jobStore: { url: URL, password: 'from-settings' } }, { PGPASSWORD: 'from-pg' }) as PostgresJobStoreSettings).password!.should.equal(
      'from-settings',
    );
  });

  it('names the bad setting and the fix, and never repeats a password', () => {
    const fails = (jobStore: unknown, env: Record<string, string> = {}): string => {
      try {
        readJobStoreSettings({ jobStore }, env);
      } catch (err) {
        (err as VectorStoreError).code.should.equal('INVALID_INPUT');
        return (err as Error).message;
      }
      throw new Error('expected the settings to be refused');
    };
    fails('postgres://x').should.match(/vectorPipeline\.jobStore in settings\.js must be an object/);
    fails({ type: 'redis' }).should.match(/vectorPipeline\.jobStore\.type .* 'file' or 'postgres'/);
    fails({ type: 'postgres' }).should.match(/needs a connection string: set vectorPipeline\.jobStore\.url/);
    fails({ url: 'mysql://db/x' }).should.match(/vectorPipeline\.jobStore\.url in settings\.js must start with postgres:\/\//);
    const withPassword = fails({}, { VECTOR_PIPELINE_JOB_STORE: 'postgres://u:Sup3rSecret@db/x' });
    withPassword.should.match(/environment variable VECTOR_PIPELINE_JOB_STORE contains a password/).and.match(/VECTOR_PIPELINE_JOB_STORE_PASSWORD/);
    withPassword.should.not.match(/Sup3rSecret/);
    fails({ url: URL, leaseSeconds: 10, heartbeatSeconds: 10 }).should.match(/heartbeatSeconds \(10\) must be less than vectorPipeline\.jobStore\.leaseSeconds \(10\)/);
    fails({ url: URL, leaseSeconds: 'long' }).should.match(/vectorPipeline\.jobStore\.leaseSeconds .* number of seconds/);
    fails({ url: URL, capacity: 0 }).should.match(/vectorPipeline\.jobStore\.capacity .* between 1 and/);
    fails({ url: URL, table: 'Work; DROP TABLE x' }).should.match(/vectorPipeline\.jobStore\.table .* lower-case SQL name/);
    // The package derives names from the table's (`<table>_spool_headers` is the longest):
    // PostgreSQL would cut a longer one to 63 characters, and `<table>_spool` could become the table itself.
    fails({ url: URL, table: 'w'.repeat(50) }).should.match(/vectorPipeline\.jobStore\.table .* at most 49 characters/);
    readJobStoreSettings({ jobStore: { type: 'postgres', url: URL, table: 'w'.repeat(49) } }).should.containEql({ table: 'w'.repeat(49) });
    fails({ url: URL }, { VECTOR_PIPELINE_JOB_STORE_PASSWORD: 'line\n' }).should.match(/VECTOR_PIPELINE_JOB_STORE_PASSWORD contains a line break/);
  });
});
