// Property-based: hostile values thrown at every parser of node configurations
// and message inputs. Whatever comes in, the parser returns, or throws a
// VectorStoreError whose message is the package's own sentence naming the field:
// never another error, never zod's wording.
import should from 'should';
import fc from 'fast-check';
import { z } from 'zod';
import { VectorStoreError } from '../../lib/errors';
import {
  parseHealthConfig,
  parseIngestConfig,
  parseIngestPayload,
  parseOrThrow,
  parseQueryConfig,
  parseQueryInput,
  parseSensorConfig,
  parseSimulate,
  parseStoreConfig,
  resolveCollection,
} from '../../lib/schemas';
import { collectionOf, expectedCountOf } from '../../nodes/shared/messages';
import { ingestDocuments } from '../../lib/operations';
import { MemoryBackend } from '../../lib/backends/memory';
import { HashEmbedder } from '../../lib/embedders/hash';

/** Phrases of zod's default messages (and of JavaScript's own errors) that must never reach a user. */
const FOREIGN_WORDING = /\bexpected\b|Invalid input|Too big|Too small|\breceived\b|Invalid option|Unrecognized key|Maximum call stack|Cannot read prop|is not a function|Do not know how to serialize/i;

/** Values a flow (or a hostile one) can put in a message or a saved config. */
function hostileSpecials(): unknown[] {
  const circular: Record<string, unknown> = { a: 1 };
  circular.self = circular;
  let deep: Record<string, unknown> = {};
  for (let i = 0; i < 20_000; i++) deep = { next: deep };
  return [
    undefined, null, NaN, Infinity, -Infinity, -0, 1e300, -1e300, 2 ** 53, 1e-300, 10n, -(2n ** 70n), '', ' ', '\u0000', 'NaN', '1e300',
    '0x10', 'x'.repeat(100_000), Symbol('s'), () => 1, new Date(), new Date(NaN), new Map([[1, 2]]), new Set([1]), /re/g,
    new Float32Array([1, NaN]), new Uint8Array(3), Buffer.from('abc'), new ArrayBuffer(4), new DataView(new ArrayBuffer(4)),
    Object.create(null), Object.assign(Object.create(null), { text: 'x' }), [], [[]], [null], [undefined], new Array(3),
    circular, deep, new Error('boom'), new (class Thing {})(), new String('boxed'), new Number(3),
    { __proto__: { text: 'inherited' } }, JSON.parse('{"__proto__": {"x": 1}, "text": "t"}'), { toJSON: () => { throw new Error('no'); } },
    { text: 'x', topK: 1e300 }, { text: 'x', topK: NaN }, { vector: [1e39] }, { vector: [10n] }, { text: 'x', metadata: new Date() },
    { text: 'x', filter: new Map() }, { id: 1e300, text: 'x' }, { id: 2 ** 53, text: 'x' }, { fail: 10n }, { fail: '' },
  ];
}

const hostile: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...hostileSpecials()) },
  {
    weight: 5,
    arbitrary: fc.anything({
      withBigInt: true,
      withBoxedValues: true,
      withDate: true,
      withMap: true,
      withSet: true,
      withNullPrototype: true,
      withObjectString: true,
      withSparseArray: true,
      withTypedArray: true,
      withUnicodeString: true,
      maxDepth: 3,
    }),
  },
);

/** Either a result, or our error: an INVALID_INPUT sentence naming `field`, in our words. */
function ownErrorOnly(run: () => unknown, field: RegExp | string): void {
  let thrown: unknown;
  try {
    run();
    return;
  } catch (err) {
    thrown = err;
  }
  if (!(thrown instanceof VectorStoreError)) {
    throw new Error(`threw ${(thrown as Error)?.constructor?.name}: ${(thrown as Error)?.message ?? String(thrown)}`);
  }
  should(thrown.code).equal('INVALID_INPUT');
  should(thrown.message).not.match(FOREIGN_WORDING);
  if (typeof field === 'string') should(thrown.message).containEql(field);
  else should(thrown.message).match(field);
}

const CONFIG_PARSERS: Array<[string, (def: unknown) => unknown, string[]]> = [
  ['vector-store', parseStoreConfig, ['backend', 'embedder', 'dimensions', 'embedUrl', 'embedModel', 'indexingRate', 'indexingDelay', 'persist', 'url', 'path', 'tenant', 'database', 'ssl']],
  ['vector-ingest', parseIngestConfig, ['collection', 'batchSize', 'createCollection', 'buildIndex']],
  ['deferrable-sensor', parseSensorConfig, ['collection', 'expectedCount', 'pollInterval', 'maxPollInterval', 'timeout', 'deferrable']],
  ['index-health', parseHealthConfig, ['collection', 'expectedCount', 'countMode', 'dimensions']],
  ['sample-query', parseQueryConfig, ['collection', 'query', 'topK', 'failOnEmpty']],
];

describe('hostile input (fast-check): our own sentences, naming the field', function () {
  this.timeout(120_000);
  const runs = { numRuns: 300 };

  for (const [node, parse, fields] of CONFIG_PARSERS) {
    it(`${node} config: any value in any field`, () => {
      fc.assert(
        fc.property(fc.constantFrom(...fields), hostile, (field, value) => {
          // The openai embedder's fields are checked when it is chosen (with the others valid).
          const openai = node === 'vector-store' && field.startsWith('embed') ? { embedder: 'openai', embedUrl: 'http://127.0.0.1/v1', embedModel: 'm' } : {};
          ownErrorOnly(() => parse({ id: 'n1', type: node, ...openai, [field]: value }), field);
        }),
        runs,
      );
    });
  }

  it('config objects that are not objects at all', () => {
    fc.assert(fc.property(hostile, (def) => {
      for (const [, parse] of CONFIG_PARSERS) ownErrorOnly(() => parse(def), /./);
    }), runs);
  });

  it('ingest msg.payload: as a whole, as a document, and in each field of a document', () => {
    fc.assert(
      fc.property(hostile, (value) => {
        ownErrorOnly(() => parseIngestPayload(value), 'msg.payload');
        ownErrorOnly(() => parseIngestPayload([value]), 'msg.payload[0]');
        ownErrorOnly(() => parseIngestPayload(['fine', value]), 'msg.payload[1]');
        ownErrorOnly(() => parseIngestPayload([{ id: value, text: 'x' }]), 'msg.payload[0]');
        ownErrorOnly(() => parseIngestPayload([{ text: value }]), 'msg.payload[0]');
        ownErrorOnly(() => parseIngestPayload([{ vector: value }]), 'msg.payload[0]');
        ownErrorOnly(() => parseIngestPayload([{ vector: [0.5, value] }]), 'msg.payload[0].vector');
        ownErrorOnly(() => parseIngestPayload([{ text: 'x', metadata: value }]), 'msg.payload[0]');
      }),
      runs,
    );
  });

  it('sample-query msg.payload: as a whole and in each field of a query', () => {
    fc.assert(
      fc.property(hostile, (value) => {
        ownErrorOnly(() => parseQueryInput(value, '', 3), 'msg.payload');
        ownErrorOnly(() => parseQueryInput(value, 'default query', 3), 'msg.payload');
        ownErrorOnly(() => parseQueryInput([value], '', 3), 'msg.payload[0]');
        ownErrorOnly(() => parseQueryInput({ text: 'x', topK: value }, '', 3), 'msg.payload.topK');
        ownErrorOnly(() => parseQueryInput({ vector: [1], filter: value }, '', 3), 'msg.payload.filter');
        ownErrorOnly(() => parseQueryInput({ text: value }, '', 3), 'msg.payload');
      }),
      runs,
    );
  });

  it('msg.simulate, msg.collection and msg.expectedCount', () => {
    fc.assert(
      fc.property(hostile, (value) => {
        ownErrorOnly(() => parseSimulate(value), 'msg.simulate');
        ownErrorOnly(() => resolveCollection(value, ''), /msg\.collection|collection/);
        ownErrorOnly(() => collectionOf({ collection: value }, '', 'memory'), /collection/);
        ownErrorOnly(() => expectedCountOf({ expectedCount: value }), 'msg.expectedCount');
      }),
      runs,
    );
  });

  it('every kind of zod issue, from schemas that set no message, becomes our sentence naming the field', () => {
    const cases: Array<[string, z.ZodType, unknown]> = [
      ['invalid_type', z.string(), 1],
      ['invalid_type (bigint)', z.bigint(), 'x'],
      ['too_big', z.number().int(), 1e300],
      ['too_big (array)', z.array(z.number()).max(1), [1, 2]],
      ['too_small', z.string().min(3), 'x'],
      ['invalid_format', z.email(), 'not an address'],
      ['not_multiple_of', z.number().multipleOf(2), 3],
      ['unrecognized_keys', z.strictObject({}), { extra: 1 }],
      ['invalid_union', z.union([z.string(), z.number()]), true],
      ['invalid_key', z.record(z.enum(['a']), z.number()), { b: 1 }],
      ['invalid_element', z.map(z.string(), z.number()), new Map([['k', 'v']])],
      ['invalid_value', z.literal('a'), 'b'],
      ['custom', z.custom(() => false), 1],
    ];
    for (const [code, schema, value] of cases) {
      const err = (() => {
        try {
          parseOrThrow(z.object({ field: schema }), { field: value }, 'saved');
        } catch (e) {
          return e as VectorStoreError;
        }
        throw new Error(`${code}: accepted`);
      })();
      should(err).be.instanceOf(VectorStoreError);
      should(err.message).startWith('saved.field', code);
      should(err.message).not.match(FOREIGN_WORDING, code);
    }
  });

  it('a Proxy that throws on every access, anywhere', () => {
    const no = () => {
      throw new Error('proxy says no');
    };
    const proxy = new Proxy({}, { get: no, ownKeys: no, getPrototypeOf: no, has: no, getOwnPropertyDescriptor: no });
    const getter = Object.defineProperty({}, 'text', { enumerable: true, get: no });
    for (const [, parse] of CONFIG_PARSERS) ownErrorOnly(() => parse(Object.defineProperty({}, 'collection', { enumerable: true, get: no })), /./);
    ownErrorOnly(() => parseIngestPayload([getter]), 'msg.payload');
    ownErrorOnly(() => parseQueryInput(getter, '', 3), 'msg.payload');
    for (const [node, parse, fields] of CONFIG_PARSERS) {
      ownErrorOnly(() => parse(proxy), /./);
      for (const field of fields) ownErrorOnly(() => parse({ type: node, [field]: proxy }), field);
    }
    for (const payload of [proxy, [proxy], [{ text: 'x', metadata: proxy }], [{ vector: proxy }], [{ id: proxy, text: 'x' }]]) {
      ownErrorOnly(() => parseIngestPayload(payload), 'msg.payload');
    }
    for (const payload of [proxy, [proxy], { text: 'x', filter: proxy }, { text: 'x', topK: proxy }]) {
      ownErrorOnly(() => parseQueryInput(payload, '', 3), 'msg.payload');
    }
    ownErrorOnly(() => parseSimulate(proxy), 'msg.simulate');
    ownErrorOnly(() => resolveCollection(proxy, ''), 'msg.collection');
    ownErrorOnly(() => expectedCountOf({ expectedCount: proxy }), 'msg.expectedCount');
  });

  it('describes values by what they are: NaN, Infinity, BigInt, Date, Map', () => {
    const cases: Array<[unknown, RegExp]> = [
      [NaN, /\(got NaN\)/],
      [Infinity, /\(got Infinity\)/],
      [10n, /\(got a BigInt \(10n\)\)/],
      [new Date(0), /\(got a Date\)/],
      [new Map(), /\(got a Map\)/],
    ];
    for (const [value, described] of cases) {
      try {
        parseIngestPayload([{ text: 'x', metadata: value }]);
      } catch (err) {
        should((err as Error).message).match(described);
        continue;
      }
      throw new Error(`accepted ${String(value)} as metadata`);
    }
    for (const value of [NaN, 1e300, 2 ** 53, 10n, Infinity]) {
      should(() => expectedCountOf({ expectedCount: value })).throw(VectorStoreError);
    }
    should(() => expectedCountOf({ expectedCount: NaN })).throw(/\(got NaN\)/);
    should(() => parseSensorConfig({ expectedCount: 1e300 })).throw(/^expectedCount must be an integer of at least 0 \(got 1e\+300\)$/);
    // Two rules of one field failing at once are said once.
    should(() => parseQueryInput({ text: 'x', topK: 1e300 }, '', 3)).throw(/^msg\.payload\.topK must be an integer between 1 and 1000 \(got 1e\+300\)$/);
    should(() => parseIngestPayload([{ vector: [1, 10n] }])).throw(/msg\.payload\[0\]\.vector\[1\] must be a finite number \(got a BigInt \(10n\)\)/);
  });

  it('ingest on the memory store: any payload writes everything or nothing, and never crashes', async () => {
    const backend = new MemoryBackend({ dataDir: null, indexingRate: 10_000, indexingDelay: 0 });
    const store = { backend, embedder: new HashEmbedder(16) };
    let n = 0;
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(fc.oneof(hostile, fc.record({ text: fc.string({ minLength: 1 }), metadata: hostile }), fc.record({ vector: fc.array(fc.double(), { minLength: 16, maxLength: 16 }) })), { minLength: 1, maxLength: 4 }), async (payload) => {
          const collection = `hostile${++n}`;
          try {
            const items = parseIngestPayload(payload);
            await ingestDocuments(store, items, { collection, batchSize: 1, createCollection: true, buildIndex: false });
          } catch (err) {
            if (!(err instanceof VectorStoreError)) throw err;
            should(err.message).not.match(FOREIGN_WORDING);
            should(await backend.collectionExists(collection)).be.false();
          }
        }),
        { numRuns: 200 },
      );
    } finally {
      await backend.close();
    }
  });
});
