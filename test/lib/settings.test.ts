import 'should';
import { DEFAULT_SETTINGS, readRuntimeSettings, runtimeSettingsOrDefaults } from '../../lib/settings';

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
