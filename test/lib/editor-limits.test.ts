/**
 * The editor validates with limits generated from lib/schemas.ts (resources/limits.js,
 * written by scripts/build.js). These tests prove the committed file is what the
 * schemas give, and that the editor helper's checks (resources/editor.js, run here in
 * a VM context) accept exactly the values the runtime's parsers accept.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { runInNewContext } from 'node:vm';
import should from 'should';
import * as schemas from '../../lib/schemas';
import * as collectionName from '../../lib/backends/collection-name';
import * as configVersions from '../../lib/config-versions';

/* eslint-disable @typescript-eslint/no-require-imports */
const { editorLimits, limitsScript } = require('../../scripts/editor-limits');
/* eslint-enable @typescript-eslint/no-require-imports */

const root = path.resolve(__dirname, '..', '..');
type Rule = { integer?: boolean; min?: number; above?: number; max?: number };
type Limits = Record<string, Record<string, Rule>> & { collectionName: { pattern: string; maxLength: number } };

/** resources/limits.js and editor.js as the browser runs them: window is the only global they use. */
function loadEditorHelper(): { limits: Limits; VP: { meetsRule(v: unknown, rule: Rule): boolean; isCollectionName(v: string): boolean } } {
  const window: Record<string, unknown> = {};
  for (const file of ['limits.js', 'editor.js']) {
    runInNewContext(readFileSync(path.join(root, 'resources', file), 'utf8'), { window }, { filename: file });
  }
  // Objects of another VM context: plain copies compare with eql.
  return { limits: JSON.parse(JSON.stringify(window.VectorPipelineLimits)) as Limits, VP: window.VectorPipelineEditor as never };
}

const PARSERS: Record<string, (def: unknown) => unknown> = {
  'vector-store': schemas.parseStoreConfig,
  'vector-ingest': schemas.parseIngestConfig,
  'deferrable-sensor': schemas.parseSensorConfig,
  'index-health': schemas.parseHealthConfig,
  'sample-query': schemas.parseQueryConfig,
};

/** Does the runtime accept this value of the property (saved as the editor saves it, a string)? */
function runtimeAccepts(type: string, property: string, value: number): boolean {
  // The sensor's back-off limit must also be at least the poll interval: make that one tiny.
  const base = type === 'deferrable-sensor' && property === 'maxPollInterval' ? { pollInterval: '0.000001' } : {};
  try {
    PARSERS[type]({ ...base, [property]: String(value) });
    return true;
  } catch {
    return false;
  }
}

/** Values around every bound of a rule, and a few that are not whole. */
function probes(rule: Rule): number[] {
  const values = new Set([-1, 0, 0.5, 1, 1.5, 2, 100, 1e9]);
  for (const bound of [rule.min, rule.above, rule.max]) {
    if (bound === undefined) continue;
    for (const delta of [-1, -0.5, -0.001, 0, 0.001, 0.5, 1]) values.add(bound + delta);
  }
  return [...values];
}

describe('editor limits generated from lib/schemas.ts', function () {
  it('resources/limits.js is what the schemas give (run `npm run build` after changing a schema)', function () {
    const expected = limitsScript(editorLimits(schemas, collectionName, configVersions));
    should(readFileSync(path.join(root, 'resources', 'limits.js'), 'utf8')).equal(expected);
  });

  it('new nodes are saved with the current config version', function () {
    const { limits } = loadEditorHelper();
    should(limits.configVersion).equal(configVersions.CONFIG_VERSION);
  });

  it('lists every numeric property the dialogs validate, with the schema numbers', function () {
    const { limits } = loadEditorHelper();
    should(limits['vector-ingest'].batchSize).eql({ integer: true, min: 1, max: 10000 });
    should(limits['sample-query'].topK).eql({ integer: true, min: 1, max: 1000 });
    should(limits['deferrable-sensor'].timeout).eql({ above: 0, max: 31_536_000 });
    should(Object.keys(limits['deferrable-sensor']).sort()).eql(['expectedCount', 'maxErrors', 'maxPollInterval', 'pollInterval', 'timeout']);
    should(Object.keys(limits['vector-store']).sort()).eql(['dimensions', 'embedBatchSize', 'embedConcurrency', 'indexingDelay', 'indexingRate']);
    should(Object.keys(limits['index-health']).sort()).eql(['dimensions', 'expectedCount']);
  });

  it("the editor's number check accepts exactly what the runtime's parser accepts", function () {
    const { limits, VP } = loadEditorHelper();
    let checked = 0;
    for (const type of Object.keys(PARSERS)) {
      for (const [property, rule] of Object.entries(limits[type])) {
        for (const value of probes(rule)) {
          const runtime = runtimeAccepts(type, property, value);
          should(VP.meetsRule(String(value), rule)).equal(runtime, `${type}.${property} = ${value}: the runtime ${runtime ? 'accepts' : 'rejects'} it`);
          checked += 1;
        }
      }
    }
    should(checked).be.above(100);
  });

  it("the editor's collection-name rule is the runtime's", function () {
    const { VP } = loadEditorHelper();
    const names = ['docs', 'a', 'A-1_b', '0start', '_start', '-start', 'has space', 'dot.name', 'ü', 'x'.repeat(63), 'x'.repeat(64), 'a/b'];
    for (const name of names) {
      let runtime = true;
      try {
        collectionName.validateCollectionName(name, 'memory');
      } catch {
        runtime = false;
      }
      should(VP.isCollectionName(name)).equal(runtime, JSON.stringify(name));
    }
  });
});
