import should from 'should';
import { runInNewContext } from 'node:vm';
import { z } from 'zod';
import {
  collectionSchema,
  describeValue,
  parseDeletePayload,
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
  storeConfigSchema,
} from '../../lib/schemas';
import { newWaitId, stableId } from '../../lib/ids';
import { VectorStoreError } from '../../lib/errors';

/** The INVALID_INPUT message `fn` throws. */
function invalid(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    should(err).be.instanceOf(VectorStoreError);
    should((err as VectorStoreError).code).equal('INVALID_INPUT');
    should((err as VectorStoreError).transient).be.false();
    return (err as VectorStoreError).message;
  }
  throw new Error('expected an INVALID_INPUT error');
}

/** What the Node-RED editor saves for a node: extra fields, strings for numbers. */
const nodeDef = (props: Record<string, unknown>) => ({ id: 'n1', type: 't', z: 'f1', name: '', wires: [[]], ...props });

describe('schemas', () => {
  describe('storeConfigSchema', () => {
    it('applies every default to an empty config', () => {
      should(parseStoreConfig(nodeDef({}))).eql({
        backend: 'memory',
        embedder: 'hash',
        dimensions: 384,
        embedUrl: '',
        embedModel: '',
        embedBatchSize: 64,
        embedConcurrency: 4,
        indexingRate: 200,
        indexingDelay: 1,
        persist: true,
        memoryIndex: 'exact',
        url: '',
        path: '',
        tenant: '',
        database: '',
        ssl: false,
      });
    });

    it('treats empty strings and null as unset', () => {
      const config = parseStoreConfig(
        nodeDef({ backend: '', embedder: '', dimensions: '', indexingRate: ' ', persist: '', ssl: null, url: null }),
      );
      should(config).containEql({ backend: 'memory', embedder: 'hash', dimensions: 384, indexingRate: 200 });
      should(config).containEql({ persist: true, ssl: false, url: '' });
    });

    it('coerces numbers and booleans saved as strings', () => {
      const config = parseStoreConfig(
        nodeDef({ dimensions: '128', indexingRate: '2.5', indexingDelay: '0', persist: 'false', ssl: 'true' }),
      );
      should(config).containEql({ dimensions: 128, indexingRate: 2.5, indexingDelay: 0, persist: false, ssl: true });
      should(parseStoreConfig({ persist: false, ssl: true })).containEql({ persist: false, ssl: true });
    });

    it('accepts every backend and trims connection fields', () => {
      for (const backend of ['memory', 'lancedb', 'pgvector', 'chroma']) {
        should(parseStoreConfig({ backend }).backend).equal(backend);
      }
      const config = parseStoreConfig({
        backend: 'pgvector',
        url: ' postgres://app@db:5432/vectors ',
        path: '/data',
        tenant: 't',
        database: 'd',
      });
      should(config).containEql({ url: 'postgres://app@db:5432/vectors', path: '/data', tenant: 't', database: 'd' });
    });

    it('takes the memory store\'s search: exact or hnsw', () => {
      should(parseStoreConfig({ memoryIndex: 'hnsw' }).memoryIndex).equal('hnsw');
      should(parseStoreConfig({ memoryIndex: '' }).memoryIndex).equal('exact');
    });

    it('names the field, the rule and the value received', () => {
      should(invalid(() => parseStoreConfig({ backend: 'mongo' }))).equal(
        'backend must be one of "memory", "lancedb", "pgvector", "chroma" (got "mongo")',
      );
      should(invalid(() => parseStoreConfig({ embedder: 'bert' }))).equal(
        'embedder must be one of "hash", "openai" (got "bert")',
      );
      should(invalid(() => parseStoreConfig({ dimensions: 'abc' }))).equal(
        'dimensions must be an integer between 1 and 8192 (got "abc")',
      );
      should(invalid(() => parseStoreConfig({ dimensions: 0 }))).match(/^dimensions .* \(got 0\)$/);
      should(invalid(() => parseStoreConfig({ dimensions: 8193 }))).match(/\(got 8193\)$/);
      should(invalid(() => parseStoreConfig({ dimensions: '12.5' }))).match(/\(got "12.5"\)$/);
      should(invalid(() => parseStoreConfig({ indexingRate: 0 }))).equal(
        'indexingRate must be a number greater than 0 (got 0)',
      );
      should(invalid(() => parseStoreConfig({ indexingDelay: '-1' }))).equal(
        'indexingDelay must be a number of at least 0 (got "-1")',
      );
      should(invalid(() => parseStoreConfig({ persist: 'yes' }))).equal('persist must be true or false (got "yes")');
      should(invalid(() => parseStoreConfig({ memoryIndex: 'ivf' }))).equal('memoryIndex must be one of "exact", "hnsw" (got "ivf")');
      should(invalid(() => parseStoreConfig({ ssl: 1 }))).equal('ssl must be true or false (got 1)');
      should(invalid(() => parseStoreConfig({ url: 42 }))).equal('url must be a string (got 42)');
    });

    it('rejects NaN and Infinity, as numbers or as strings', () => {
      should(invalid(() => parseStoreConfig({ dimensions: NaN }))).match(/\(got NaN\)$/);
      should(invalid(() => parseStoreConfig({ indexingRate: Infinity }))).match(/\(got Infinity\)$/);
      should(invalid(() => parseStoreConfig({ indexingRate: 'Infinity' }))).match(/\(got "Infinity"\)$/);
      should(invalid(() => parseStoreConfig({ indexingDelay: 'NaN' }))).match(/\(got "NaN"\)$/);
    });

    it('lists at most three problems', () => {
      const message = invalid(() =>
        parseStoreConfig({ backend: 'x', embedder: 'y', dimensions: 'z', indexingRate: -1, persist: 'w' }),
      );
      should(message.split('; ').length).equal(4);
      should(message).endWith('; and 2 more problems');
    });

    it('requires embedUrl and embedModel for the openai embedder', () => {
      should(invalid(() => parseStoreConfig({ embedder: 'openai', embedModel: 'm' }))).equal(
        'embedUrl is required when embedder is "openai": set the base URL of an OpenAI-compatible API, e.g. https://api.openai.com/v1',
      );
      should(invalid(() => parseStoreConfig({ embedder: 'openai', embedUrl: 'http://localhost:11434/v1' }))).match(
        /^embedModel is required when embedder is "openai"/,
      );
      should(invalid(() => parseStoreConfig({ embedder: 'openai', embedUrl: 'localhost:11434', embedModel: 'm' }))).equal(
        'embedUrl must be an http(s) URL such as https://api.openai.com/v1 (got "localhost:11434")',
      );
      should(invalid(() => parseStoreConfig({ embedder: 'openai', embedUrl: 'ftp://x/v1', embedModel: 'm' }))).match(
        /^embedUrl must be an http\(s\) URL/,
      );
      const withPassword = invalid(() =>
        parseStoreConfig({ embedder: 'openai', embedUrl: 'https://me:hunter2@api.example.com/v1', embedModel: 'm' }),
      );
      should(withPassword).match(/must not contain a user name or password/);
      should(withPassword).not.containEql('hunter2');

      const config = parseStoreConfig({
        embedder: 'openai',
        embedUrl: ' https://api.openai.com/v1 ',
        embedModel: 'text-embedding-3-small',
      });
      should(config).containEql({ embedUrl: 'https://api.openai.com/v1', embedModel: 'text-embedding-3-small' });
      // The hash embedder ignores them.
      should(parseStoreConfig({ embedder: 'hash', embedUrl: 'not a url' }).embedUrl).equal('not a url');
    });

    it('works through parseOrThrow with a label for the whole value', () => {
      should(invalid(() => parseOrThrow(storeConfigSchema, 'nope', ''))).match(/^the value must be an object/);
      should(invalid(() => parseOrThrow(storeConfigSchema, { backend: 1 }, 'config'))).match(/^config\.backend /);
    });
  });

  describe('ingestConfigSchema', () => {
    // The chunking defaults (its own checks: test/lib/chunking.test.ts).
    const CHUNKING_OFF = { chunking: 'off', chunkSize: 1000, chunkOverlap: 200, chunkUnit: 'characters' };

    it('applies defaults', () => {
      should(parseIngestConfig(nodeDef({}))).eql({
        collection: '',
        operation: 'upsert',
        batchSize: 100,
        createCollection: true,
        buildIndex: true,
        gatherMs: 0,
        background: 'auto',
        ...CHUNKING_OFF,
      });
    });

    it('coerces and validates', () => {
      should(
        parseIngestConfig({ collection: ' docs ', batchSize: '250', createCollection: 'false', buildIndex: false }),
      ).eql({ collection: 'docs', operation: 'upsert', batchSize: 250, createCollection: false, buildIndex: false, gatherMs: 0, background: 'auto', ...CHUNKING_OFF });
      should(parseIngestConfig({ gatherMs: '500' }).gatherMs).equal(500);
      should(invalid(() => parseIngestConfig({ gatherMs: 60001 }))).equal('gatherMs must be an integer between 0 and 60000 (got 60001)');
      should(parseIngestConfig({ operation: 'delete' }).operation).equal('delete');
      should(invalid(() => parseIngestConfig({ operation: 'remove' }))).equal('operation must be one of "upsert", "delete" (got "remove")');
      should(invalid(() => parseIngestConfig({ batchSize: 'abc' }))).equal(
        'batchSize must be an integer between 1 and 10000 (got "abc")',
      );
      should(invalid(() => parseIngestConfig({ batchSize: 0 }))).match(/\(got 0\)$/);
      should(invalid(() => parseIngestConfig({ batchSize: 10001 }))).match(/\(got 10001\)$/);
      should(invalid(() => parseIngestConfig({ batchSize: 1.5 }))).match(/\(got 1.5\)$/);
      should(invalid(() => parseIngestConfig({ createCollection: 'no' }))).equal(
        'createCollection must be true or false (got "no")',
      );
      should(invalid(() => parseIngestConfig({ collection: {} }))).equal('collection must be a string (got an object)');
    });
  });

  /** The WatchConfig of a node that watches a collection of this package (the default). */
  const NO_WATCH = { origin: 'package', preset: '', tableSchema: '', vectorColumn: '', indexName: '', databasePath: '' };

  describe('watch fields (sensor, health, query)', () => {
    it('read another tool\'s collection from the node; refuse an unknown origin or layout by name', () => {
      should(parseSensorConfig({ collection: 'langchain_pg_embedding', origin: 'other', preset: 'langchain', tableSchema: ' rag ' })).match({
        origin: 'other',
        preset: 'langchain',
        tableSchema: 'rag',
        vectorColumn: '',
        indexName: '',
      });
      should(invalid(() => parseHealthConfig({ origin: 'elsewhere' }))).equal('origin must be one of "package", "other" (got "elsewhere")');
      should(invalid(() => parseQueryConfig({ preset: 'haystack' }))).equal('preset must be one of "", "langchain", "llamaindex" (got "haystack")');
    });
  });

  describe('sensorConfigSchema', () => {
    it('applies defaults', () => {
      should(parseSensorConfig(nodeDef({}))).eql({
        collection: '',
        ...NO_WATCH,
        expectedCount: 0,
        pollInterval: 5,
        maxPollInterval: 60,
        timeout: 3600,
        deferrable: true,
        maxErrors: 0,
      });
    });

    it('coerces strings and accepts fractional seconds', () => {
      should(
        parseSensorConfig({
          collection: 'docs',
          expectedCount: '500',
          pollInterval: '0.5',
          maxPollInterval: '30',
          timeout: '90',
          deferrable: 'false',
        }),
      ).eql({ collection: 'docs', ...NO_WATCH, expectedCount: 500, pollInterval: 0.5, maxPollInterval: 30, timeout: 90, deferrable: false, maxErrors: 0 });
    });

    it('raises an unset maxPollInterval to a long pollInterval, but rejects a set one below it', () => {
      should(parseSensorConfig({ pollInterval: '120' }).maxPollInterval).equal(120);
      should(parseSensorConfig({ pollInterval: '120', maxPollInterval: '' }).maxPollInterval).equal(120);
      should(parseSensorConfig({ pollInterval: 10, maxPollInterval: 10 }).maxPollInterval).equal(10);
      should(invalid(() => parseSensorConfig({ pollInterval: '10', maxPollInterval: '5' }))).equal(
        'maxPollInterval must be at least pollInterval (10 s) (got "5")',
      );
    });

    it('rejects bad numbers', () => {
      should(invalid(() => parseSensorConfig({ expectedCount: -1 }))).equal(
        'expectedCount must be an integer of at least 0 (got -1)',
      );
      should(invalid(() => parseSensorConfig({ expectedCount: '2.5' }))).match(/^expectedCount .*\(got "2.5"\)$/);
      should(invalid(() => parseSensorConfig({ pollInterval: 0 }))).equal(
        'pollInterval must be a number greater than 0 (got 0)',
      );
      should(invalid(() => parseSensorConfig({ maxPollInterval: -5 }))).match(/^maxPollInterval .*\(got -5\)$/);
      should(invalid(() => parseSensorConfig({ timeout: 'Infinity' }))).equal(
        'timeout must be a number greater than 0 (got "Infinity")',
      );
      should(invalid(() => parseSensorConfig({ deferrable: 'sometimes' }))).match(/^deferrable must be true or false/);
    });
  });

  describe('healthConfigSchema', () => {
    it('applies defaults and coerces', () => {
      should(parseHealthConfig(nodeDef({}))).eql({ collection: '', ...NO_WATCH, expectedCount: 0, countMode: 'atLeast', dimensions: 0 });
      should(parseHealthConfig({ expectedCount: '10', countMode: 'exact', dimensions: '384' })).eql({
        collection: '',
        ...NO_WATCH,
        expectedCount: 10,
        countMode: 'exact',
        dimensions: 384,
      });
    });

    it('rejects bad values', () => {
      should(invalid(() => parseHealthConfig({ countMode: 'most' }))).equal(
        'countMode must be one of "atLeast", "exact" (got "most")',
      );
      should(invalid(() => parseHealthConfig({ dimensions: -1 }))).match(/^dimensions must be an integer of at least 0/);
      should(invalid(() => parseHealthConfig({ expectedCount: 'many' }))).match(/\(got "many"\)$/);
    });
  });

  describe('queryConfigSchema', () => {
    it('applies defaults, keeps the query text as typed', () => {
      should(parseQueryConfig(nodeDef({}))).eql({ collection: '', ...NO_WATCH, query: '', topK: 3, failOnEmpty: true });
      should(parseQueryConfig({ query: ' sensor ', topK: '10', failOnEmpty: 'false' })).eql({
        collection: '',
        ...NO_WATCH,
        query: ' sensor ',
        topK: 10,
        failOnEmpty: false,
      });
    });

    it('rejects bad values', () => {
      should(invalid(() => parseQueryConfig({ topK: '0' }))).equal('topK must be an integer between 1 and 1000 (got "0")');
      should(invalid(() => parseQueryConfig({ topK: 1001 }))).match(/\(got 1001\)$/);
      should(invalid(() => parseQueryConfig({ query: 5 }))).equal('query must be a string (got 5)');
    });
  });

  describe('collectionSchema and resolveCollection', () => {
    it('accepts a non-empty name, trimmed', () => {
      should(parseOrThrow(collectionSchema, ' docs ', 'msg.collection')).equal('docs');
      should(invalid(() => parseOrThrow(collectionSchema, '', 'msg.collection'))).equal(
        'msg.collection must be a collection name (a non-empty string) (got "")',
      );
      should(invalid(() => parseOrThrow(collectionSchema, 7, 'msg.collection'))).match(/\(got 7\)$/);
    });

    it('prefers msg.collection, falls back to the property, fails with neither', () => {
      should(resolveCollection('from-msg', 'from-node')).equal('from-msg');
      should(resolveCollection(undefined, 'from-node')).equal('from-node');
      should(resolveCollection('', ' from-node ')).equal('from-node');
      should(invalid(() => resolveCollection(undefined, ''))).match(/set the node's collection property or send msg\.collection/);
      should(invalid(() => resolveCollection(['x'], 'from-node'))).match(/^msg\.collection must be/);
    });
  });

  describe('parseIngestPayload', () => {
    it('accepts documents built in another realm (a Node-RED function node runs in its own VM context)', () => {
      const payload = runInNewContext('[{ text: "from a function node", metadata: { source: "fn", tags: ["a"] } }]');
      const items = parseIngestPayload(payload);
      should(items[0]).match({ text: 'from a function node', metadata: { source: 'fn' } });
    });

    it('takes a string as one document', () => {
      should(parseIngestPayload('hello world')).eql([{ text: 'hello world' }]);
    });

    it('takes an array of strings and objects', () => {
      const items = parseIngestPayload([
        'plain text',
        { id: 'a', text: 'with id', metadata: { source: 'x', n: 1 } },
        { id: 'b', vector: [0.1, 0.2, 0.3] },
        { text: 'both', vector: [1, 2, 3] },
      ]);
      should(items).eql([
        { text: 'plain text' },
        { id: 'a', text: 'with id', metadata: { source: 'x', n: 1 } },
        { id: 'b', vector: [0.1, 0.2, 0.3] },
        { text: 'both', vector: [1, 2, 3] },
      ]);
    });

    it('takes a single object, turns integer ids into strings, treats null fields as absent', () => {
      should(parseIngestPayload({ id: 7, text: 'x', metadata: null, vector: null })).eql([{ id: '7', text: 'x' }]);
      should(parseIngestPayload([{ id: 0, vector: [1] }])).eql([{ id: '0', vector: [1] }]);
    });

    it('accepts typed-array vectors as plain arrays, and vectors without id or text', () => {
      should(parseIngestPayload([{ vector: new Float32Array([1, 2]) }])).eql([{ vector: [1, 2] }]);
    });

    it('keeps duplicate ids (the later write wins)', () => {
      should(parseIngestPayload([{ id: 'a', text: '1' }, { id: 'a', text: '2' }]).length).equal(2);
    });

    it('rejects missing, empty and wrongly typed payloads', () => {
      should(invalid(() => parseIngestPayload(undefined))).match(/^msg\.payload is missing: send a text, or an array/);
      should(invalid(() => parseIngestPayload(null))).match(/^msg\.payload is missing/);
      should(invalid(() => parseIngestPayload(''))).equal(
        'msg.payload must not be an empty string: send the text to ingest',
      );
      should(invalid(() => parseIngestPayload('  \n'))).match(/must not be an empty string/);
      should(invalid(() => parseIngestPayload([]))).equal(
        'msg.payload must not be an empty array: send at least one document',
      );
      should(invalid(() => parseIngestPayload(42))).equal(
        'msg.payload must be a text, or an array of texts or {id?, text?, vector?, metadata?} objects (got 42)',
      );
      should(invalid(() => parseIngestPayload(Buffer.from('x')))).match(/\(got a Buffer\)$/);
    });

    it('names the exact element of a bad vector', () => {
      const payload = [{ text: 'a' }, { text: 'b' }, { text: 'c' }, { vector: [1, 2, NaN] }];
      should(invalid(() => parseIngestPayload(payload))).equal('msg.payload[3].vector[2] must be a finite number (got NaN)');
      should(invalid(() => parseIngestPayload([{ vector: [Infinity] }]))).equal(
        'msg.payload[0].vector[0] must be a finite number (got Infinity)',
      );
      should(invalid(() => parseIngestPayload([{ vector: [1, '2'] }]))).equal(
        'msg.payload[0].vector[1] must be a finite number (got "2")',
      );
      should(invalid(() => parseIngestPayload([{ vector: [] }]))).equal('msg.payload[0].vector must not be an empty array');
      should(invalid(() => parseIngestPayload([{ vector: 'x' }]))).equal(
        'msg.payload[0].vector must be an array of numbers (got "x")',
      );
      should(invalid(() => parseIngestPayload({ vector: [null] }))).equal(
        'msg.payload.vector[0] must be a finite number (got null)',
      );
    });

    it('explains bad documents, fields and values', () => {
      should(invalid(() => parseIngestPayload([{}]))).equal('msg.payload[0] needs a text or a vector');
      should(invalid(() => parseIngestPayload([{ id: 'x', metadata: {} }]))).equal('msg.payload[0] needs a text or a vector');
      should(invalid(() => parseIngestPayload(['ok', '']))).equal('msg.payload[1] must not be an empty string (got "")');
      should(invalid(() => parseIngestPayload([5]))).equal(
        'msg.payload[0] must be a text or an object {id?, text?, vector?, metadata?} (got 5)',
      );
      should(invalid(() => parseIngestPayload([null]))).match(/^msg\.payload\[0\] must be a text or an object .* \(got null\)$/);
      should(invalid(() => parseIngestPayload([{ text: 'x', meta: {} }]))).equal(
        'msg.payload[0] has unknown field "meta": a document has only id, text, vector and metadata (put other fields inside metadata)',
      );
      should(invalid(() => parseIngestPayload([{ text: 3 }]))).equal('msg.payload[0].text must be a string (got 3)');
      should(invalid(() => parseIngestPayload([{ text: '   ' }]))).equal('msg.payload[0].text must not be empty (got "   ")');
      should(invalid(() => parseIngestPayload([{ id: '', text: 'x' }]))).equal(
        'msg.payload[0].id must be a non-empty string or an integer (got "")',
      );
      should(invalid(() => parseIngestPayload([{ id: 1.5, text: 'x' }]))).match(/id must be .* \(got 1.5\)$/);
      should(invalid(() => parseIngestPayload([{ text: 'x', metadata: [1] }]))).equal(
        'msg.payload[0].metadata must be an object (got an array of 1 item)',
      );
      should(invalid(() => parseIngestPayload([{ text: 'x', metadata: new Date(0) }]))).match(/metadata must be an object/);
    });

    it('reports the first three problems and counts the rest', () => {
      const message = invalid(() => parseIngestPayload([1, 2, 3, 4, 5]));
      should(message).startWith('msg.payload[0] must be');
      should(message).containEql('; msg.payload[2] must be');
      should(message).endWith('; and 2 more problems');
    });
  });

  describe('parseSimulate', () => {
    it('accepts absence and {fail}', () => {
      should(parseSimulate(undefined)).be.undefined();
      should(parseSimulate({ fail: 'disk full' })).eql({ fail: 'disk full' });
    });

    it('rejects anything else', () => {
      should(invalid(() => parseSimulate({ fail: '' }))).equal(
        'msg.simulate.fail must be a non-empty string (got ""): the reason indexing should fail',
      );
      should(invalid(() => parseSimulate({ fail: 3 }))).match(/^msg\.simulate\.fail must be a non-empty string \(got 3\)/);
      should(invalid(() => parseSimulate({}))).match(/^msg\.simulate\.fail must be a non-empty string:/);
      should(invalid(() => parseSimulate({ fail: 'x', delay: 1 }))).equal(
        'msg.simulate must be {fail: "reason"} and nothing else',
      );
      should(invalid(() => parseSimulate('fail'))).equal(
        'msg.simulate must be an object {fail: "reason"} (memory backend only) (got "fail")',
      );
      should(invalid(() => parseSimulate(null))).match(/\(got null\)$/);
      should(invalid(() => parseSimulate(true))).match(/\(got true\)$/);
    });
  });

  describe('parseQueryInput', () => {
    it('takes a string', () => {
      should(parseQueryInput('what does the sensor wait for', '', 3)).eql({
        queries: [{ text: 'what does the sensor wait for', topK: 3 }],
        batch: false,
      });
    });

    it('takes an array as a batch, of strings or query objects', () => {
      should(parseQueryInput(['a', { vector: [1, 2], topK: '5', filter: { lang: 'en' } }], '', 4)).eql({
        queries: [
          { text: 'a', topK: 4 },
          { vector: [1, 2], topK: 5, filter: { lang: 'en' } },
        ],
        batch: true,
      });
    });

    it('takes an object with text or vector, topK and filter', () => {
      should(parseQueryInput({ text: 'x', topK: 10, filter: { a: 1 } }, 'ignored', 3)).eql({
        queries: [{ text: 'x', topK: 10, filter: { a: 1 } }],
        batch: false,
      });
      should(parseQueryInput({ vector: new Float32Array([0.5]) }, '', 3).queries[0]).eql({ vector: [0.5], topK: 3 });
    });

    it('uses the node query when the payload is not a query', () => {
      const fallback = { queries: [{ text: 'default q', topK: 7 }], batch: false };
      for (const payload of [undefined, null, '', '  ', 1712345678, true, { collection: 'docs', healthy: true }]) {
        should(parseQueryInput(payload, 'default q', 7)).eql(fallback);
      }
    });

    it('fails when neither the payload nor the node gives a query', () => {
      should(invalid(() => parseQueryInput(undefined, '', 3))).equal(
        "msg.payload must be a query text, an array of them, or an object {text | vector, topK?, filter?}; or set the node's query property",
      );
      should(invalid(() => parseQueryInput(1712345678, '  ', 3))).match(/\(got 1712345678\); or set the node's query/);
      should(invalid(() => parseQueryInput({ healthy: true }, '', 3))).match(/\(got an object without text or vector\)/);
    });

    it('explains bad queries with their path', () => {
      should(invalid(() => parseQueryInput([], 'default', 3))).equal(
        'msg.payload must not be an empty array: send at least one query',
      );
      should(invalid(() => parseQueryInput([0.1, 0.2], '', 3))).startWith(
        'msg.payload[0] must be a query text or an object {text | vector, topK?, filter?} (got 0.1): to query by vector, send {vector: [...]}',
      );
      should(invalid(() => parseQueryInput(['ok', ''], '', 3))).equal('msg.payload[1] must not be an empty string (got "")');
      should(invalid(() => parseQueryInput({ text: 'x', vector: [1] }, '', 3))).equal(
        'msg.payload must have a text or a vector, not both',
      );
      should(invalid(() => parseQueryInput({ text: 'x', topK: 5000 }, '', 3))).equal(
        'msg.payload.topK must be an integer between 1 and 1000 (got 5000)',
      );
      should(invalid(() => parseQueryInput({ text: 'x', topK: 'all' }, '', 3))).match(/topK .*\(got "all"\)$/);
      should(invalid(() => parseQueryInput({ text: 'x', filter: 'a' }, '', 3))).equal(
        'msg.payload.filter must be an object (got "a")',
      );
      should(invalid(() => parseQueryInput([{ vector: [1, NaN] }], '', 3))).equal(
        'msg.payload[0].vector[1] must be a finite number (got NaN)',
      );
      should(invalid(() => parseQueryInput({ text: 'x', k: 3 }, '', 3))).equal(
        'msg.payload has unknown field "k": a query has only text, vector, topK and filter',
      );
    });
  });

  describe('parseOrThrow', () => {
    it('formats nested and odd paths in Node-RED terms, and falls back to its own wording', () => {
      const schema = z.object({ a: z.array(z.object({ 'odd key': z.number() })) });
      should(invalid(() => parseOrThrow(schema, { a: [{ 'odd key': 'x' }] }, 'msg.payload'))).equal(
        'msg.payload.a[0]["odd key"] must be a number (got "x")',
      );
      should(invalid(() => parseOrThrow(z.strictObject({}), { b: 1, c: 2 }, 'msg.options'))).equal(
        'msg.options has unknown fields "b", "c"',
      );
    });

    it('describes values briefly', () => {
      should(describeValue(undefined)).equal('nothing');
      should(describeValue('x'.repeat(100))).equal(JSON.stringify('x'.repeat(37) + '...'));
      should(describeValue([])).equal('an empty array');
      should(describeValue([1, 2])).equal('an array of 2 items');
      should(describeValue(-Infinity)).equal('-Infinity');
      should(describeValue(() => 1)).equal('a function');
    });
  });
});

describe('ids', () => {
  it('stableId is a stable, prefixed SHA-256 of the exact text', () => {
    const id = stableId('hello');
    should(id).equal('doc-2cf24dba5fb0a30e26e83b2ac5b9e29e');
    should(stableId('hello')).equal(id);
    should(stableId('hello ')).not.equal(id);
    should(stableId('')).match(/^doc-[0-9a-f]{32}$/);
  });

  it('newWaitId is random and URL-safe', () => {
    const a = newWaitId();
    const b = newWaitId();
    should(a).not.equal(b);
    should(a).match(/^[A-Za-z0-9_-]+$/);
    should(encodeURIComponent(a)).equal(a);
  });

  describe('parseDeletePayload', () => {
    it('reads an id, ids, a source and sources; drops repeats', () => {
      should(parseDeletePayload('a')).eql({ ids: ['a'], sources: [] });
      should(parseDeletePayload(['a', 'b', 'a'])).eql({ ids: ['a', 'b'], sources: [] });
      should(parseDeletePayload({ ids: ['x'], source: 's', sources: ['t', 's'] })).eql({ ids: ['x'], sources: ['s', 't'] });
    });
    it('names the bad field', () => {
      should(() => parseDeletePayload({})).throw(/names no document/);
      should(() => parseDeletePayload({ sources: 'a' })).throw(/^msg\.payload\.sources must be an array of document ids/);
      should(() => parseDeletePayload([''])).throw(/^msg\.payload\[0\] must be a document id/);
      should(() => parseDeletePayload(null)).throw(/must be a document id, an array of ids/);
    });
  });
});
