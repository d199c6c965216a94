import should from 'should';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { OpenAIEmbedder, type OpenAIEmbedderOptions } from '../../lib/embedders/openai';
import { createEmbedder } from '../../lib/embedders';
import { HashEmbedder } from '../../lib/embedders/hash';
import { parseStoreConfig } from '../../lib/schemas';
import { VectorStoreError } from '../../lib/errors';

const SECRET = 'sk-test-SECRET-0123456789';

interface SeenRequest {
  method: string;
  url: string;
  authorization: string | undefined;
  body: { model: string; input: string[] };
}

type Reply = (req: SeenRequest, res: http.ServerResponse) => void;

/** A local server speaking the OpenAI embeddings API; each test scripts its replies. */
class FakeEmbeddingServer {
  readonly seen: SeenRequest[] = [];
  /** Replies used in turn; when exhausted, `fallback` answers. */
  readonly replies: Reply[] = [];
  fallback: Reply = (req, res) => answer(res, 200, embeddingsFor(req.body.input));
  private readonly server = http.createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (raw += chunk));
    req.on('end', () => {
      const seen: SeenRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        authorization: req.headers.authorization,
        body: JSON.parse(raw),
      };
      this.seen.push(seen);
      (this.replies.shift() ?? this.fallback)(seen, res);
    });
  });

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/v1`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

function answer(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
}

/** A recognisable 4-dimensional vector per text: [length, first char code, 1, 0]. */
function vectorOf(text: string): number[] {
  return [text.length, text.charCodeAt(0) || 0, 1, 0];
}

/** An OpenAI-style answer; items deliberately listed in reverse to exercise `index`. */
function embeddingsFor(input: string[], dims = 4) {
  const data = input.map((text, index) => ({
    object: 'embedding',
    index,
    embedding: vectorOf(text).concat(new Array(Math.max(0, dims - 4)).fill(0)).slice(0, dims),
  }));
  return { object: 'list', model: 'm', data: data.reverse(), usage: { prompt_tokens: 1, total_tokens: 1 } };
}

async function rejection(promise: Promise<unknown>): Promise<VectorStoreError> {
  try {
    await promise;
  } catch (err) {
    should(err).be.instanceOf(VectorStoreError);
    return err as VectorStoreError;
  }
  throw new Error('expected a rejection');
}

describe('OpenAIEmbedder', () => {
  let server: FakeEmbeddingServer;
  let baseUrl: string;
  let sleeps: number[];

  beforeEach(async () => {
    server = new FakeEmbeddingServer();
    baseUrl = await server.start();
    sleeps = [];
  });

  afterEach(async () => {
    await server.stop();
  });

  /** An embedder whose backoff sleeps are recorded, not waited. */
  function embedder(options: Partial<OpenAIEmbedderOptions> = {}): OpenAIEmbedder {
    return new OpenAIEmbedder({
      baseUrl,
      model: 'test-embed',
      apiKey: SECRET,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
      ...options,
    });
  }

  it('embeds in batches, keeps the input order and learns the dimensions', async () => {
    const e = embedder();
    should(e.name).equal('openai');
    should(e.dimensions).be.null();
    const texts = Array.from({ length: 150 }, (_, i) => `text number ${i}`);
    const vectors = await e.embed(texts);

    // Batches run concurrently: the server may see them in any order, the vectors keep the input's.
    const requests = [...server.seen].sort((a, b) => texts.indexOf(a.body.input[0]) - texts.indexOf(b.body.input[0]));
    should(requests.map((r) => r.body.input.length)).eql([64, 64, 22]);
    should(requests.flatMap((r) => r.body.input)).eql(texts);
    should(vectors.length).equal(150);
    vectors.forEach((v, i) => {
      should(v).be.instanceOf(Float32Array);
      should(Array.from(v)).eql(vectorOf(texts[i]));
    });
    should(e.dimensions).equal(4);
  });

  it('posts {model, input} to {baseUrl}/embeddings with the bearer key', async () => {
    await embedder().embed(['hello']);
    const [req] = server.seen;
    should(req.method).equal('POST');
    should(req.url).equal('/v1/embeddings');
    should(req.authorization).equal(`Bearer ${SECRET}`);
    should(req.body).eql({ model: 'test-embed', input: ['hello'] });
  });

  it('sends no Authorization header without a key, and tolerates a trailing slash', async () => {
    await embedder({ apiKey: undefined, baseUrl: baseUrl + '/' }).embed(['hello']);
    should(server.seen[0].authorization).be.undefined();
    should(server.seen[0].url).equal('/v1/embeddings');
  });

  it('makes no request for no texts', async () => {
    should(await embedder().embed([])).eql([]);
    should(server.seen.length).equal(0);
  });

  it('waits as Retry-After says after a 429, then succeeds', async () => {
    server.replies.push((_req, res) => answer(res, 429, { error: { message: 'Rate limit reached' } }, { 'retry-after': '2' }));
    const vectors = await embedder().embed(['a', 'b']);
    should(vectors.length).equal(2);
    should(server.seen.length).equal(2);
    should(sleeps).eql([2000]);
  });

  it('caps Retry-After at maxBackoffMs and reads HTTP dates', async () => {
    const inAnHour = new Date(Date.now() + 3600_000).toUTCString();
    server.replies.push((_req, res) => answer(res, 429, {}, { 'retry-after': inAnHour }));
    server.replies.push((_req, res) => answer(res, 503, {}, { 'retry-after': '120' }));
    await embedder({ maxBackoffMs: 5000 }).embed(['a']);
    should(sleeps).eql([5000, 5000]);
  });

  it('retries 500s with growing, jittered backoff, then succeeds', async () => {
    server.replies.push((_req, res) => answer(res, 500, { error: { message: 'boom' } }));
    server.replies.push((_req, res) => answer(res, 500, 'Internal Server Error'));
    const vectors = await embedder({ minBackoffMs: 100, maxBackoffMs: 1000 }).embed(['a']);
    should(vectors.length).equal(1);
    should(server.seen.length).equal(3);
    should(sleeps.length).equal(2);
    should(sleeps[0]).be.within(50, 100);
    should(sleeps[1]).be.within(100, 200);
  });

  it('gives up after maxRetries with a transient UNAVAILABLE naming the last failure', async () => {
    server.fallback = (_req, res) => answer(res, 503, { error: { message: 'overloaded' } });
    const err = await rejection(embedder({ maxRetries: 2 }).embed(['a']));
    should(err.code).equal('UNAVAILABLE');
    should(err.transient).be.true();
    should(err.message).containEql(`${baseUrl}/embeddings`);
    should(err.message).containEql('failed 3 times');
    should(err.message).containEql('HTTP 503: "overloaded"');
    should(server.seen.length).equal(3);
  });

  it('fails at once with AUTH on 401, never showing the key', async () => {
    server.fallback = (_req, res) =>
      answer(res, 401, { error: { message: `Incorrect API key provided: ${SECRET}` } });
    const err = await rejection(embedder().embed(['a']));
    should(err.code).equal('AUTH');
    should(err.transient).be.false();
    should(err.message).containEql('rejected the API key');
    should(err.message).containEql('embedApiKey');
    should(err.message).containEql(baseUrl);
    should(err.message).not.containEql(SECRET);
    should(server.seen.length).equal(1);
  });

  it('says a key is needed on 403 when none is set', async () => {
    server.fallback = (_req, res) => answer(res, 403, {});
    const err = await rejection(embedder({ apiKey: '' }).embed(['a']));
    should(err.code).equal('AUTH');
    should(err.message).containEql('requires an API key');
  });

  it('fails at once with INVALID_INPUT on 400, quoting the server without the key', async () => {
    server.fallback = (_req, res) =>
      answer(res, 400, { error: { message: `model "test-embed" not found (key ${SECRET})`, type: 'invalid_request_error' } });
    const err = await rejection(embedder().embed(['a']));
    should(err.code).equal('INVALID_INPUT');
    should(err.transient).be.false();
    should(err.message).containEql('model "test-embed"');
    should(err.message).containEql(baseUrl);
    should(err.message).containEql('(HTTP 400: "model "test-embed" not found (key ***)")');
    should(err.message).not.containEql(SECRET);
    should(server.seen.length).equal(1);
  });

  for (const [what, key] of [
    ['a trailing line break', `${SECRET}\n`],
    ['a line break inside', `${SECRET.slice(0, 10)}\r\n${SECRET.slice(10)}`],
    ['a control character', `${SECRET}\u0007`],
    ['a character a header cannot hold', `${SECRET}\u2014x`],
  ] as const) {
    it(`refuses a key with ${what} before any request: INVALID_INPUT naming embedApiKey, never the key, not retried`, async () => {
      const err = await rejection(embedder({ apiKey: key }).embed(['a']));
      should(err.code).equal('INVALID_INPUT');
      should(err.transient).be.false();
      should(err.message).containEql('embedApiKey');
      should(err.message).not.containEql(SECRET.slice(0, 10));
      should(server.seen.length).equal(0);
      should(sleeps).be.empty();
    });
  }

  it('does not retry a request fetch refuses to build, and does not quote the key', async () => {
    // A test double for fetch: only a local TypeError before any request is made is simulated.
    let calls = 0;
    const refusing = (async () => {
      calls += 1;
      throw new TypeError(`Headers.append: "Bearer ${SECRET}" is an invalid header value.`);
    }) as unknown as typeof fetch;
    const err = await rejection(embedder({ fetch: refusing }).embed(['a']));
    should(err.code).equal('INVALID_INPUT');
    should(err.transient).be.false();
    should(err.message).not.containEql(SECRET.slice(0, 10));
    should(calls).equal(1);
    should(sleeps).be.empty();
  });

  describe('a server that echoes the key it received in another form', () => {
    const key = `${SECRET}/+=`;
    const forms: Array<[string, (token: string) => string]> = [
      ['URL-encoded', (token) => encodeURIComponent(token)],
      ['upper-cased', (token) => token.toUpperCase()],
      ['in base64 (a Basic auth header)', (token) => Buffer.from(`user:${token}`).toString('base64')],
      ['cut short', (token) => `${token.slice(0, 14)}...`],
    ];
    for (const [what, transform] of forms) {
      for (const status of [400, 503]) {
        it(`never shows it ${what} (HTTP ${status})`, async () => {
          let echoed = '';
          server.fallback = (req, res) => {
            echoed = transform((req.authorization ?? '').replace(/^Bearer /, ''));
            answer(res, status, { error: { message: `bad key ${echoed} for this model` } });
          };
          const err = await rejection(embedder({ apiKey: key, maxRetries: 1 }).embed(['a']));
          should(echoed.length).be.above(8);
          should(err.message).containEql('bad key');
          should(err.message).not.containEql(echoed);
          for (const piece of [SECRET.slice(0, 8), SECRET.slice(-8), SECRET.slice(0, 8).toUpperCase()]) should(err.message).not.containEql(piece);
          should(err.message).not.match(/c2stdGVzdC1TRUNSRVQt|dGVzdC1TRUNSRVQt/); // base64 of the key's start
        });
      }
    }
  });

  it('reads FastAPI-style 422 details and hints at the URL on 404', async () => {
    server.replies.push((_req, res) => answer(res, 422, { detail: [{ msg: 'input too long' }] }));
    server.replies.push((_req, res) => answer(res, 404, '<html>Not Found</html>'));
    const e = embedder();
    const first = await rejection(e.embed(['a']));
    should(first.code).equal('INVALID_INPUT');
    should(first.message).containEql('HTTP 422: "input too long"');
    const second = await rejection(e.embed(['a']));
    should(second.code).equal('INVALID_INPUT');
    should(second.message).containEql('HTTP 404)');
    should(second.message).containEql('check embedUrl');
    should(second.message).not.containEql('<html>');
  });

  it('times out a server that never answers', async () => {
    server.fallback = () => {
      /* never answer */
    };
    const err = await rejection(embedder({ timeoutMs: 100, maxRetries: 0 }).embed(['a']));
    should(err.code).equal('UNAVAILABLE');
    should(err.transient).be.true();
    should(err.message).containEql('no answer within 100 ms');
  });

  it('reports a closed server as UNAVAILABLE after retrying', async () => {
    await server.stop();
    const err = await rejection(embedder({ maxRetries: 1 }).embed(['a']));
    should(err.code).equal('UNAVAILABLE');
    should(err.message).containEql('network error: ECONNREFUSED');
    should(sleeps.length).equal(1);
    server = new FakeEmbeddingServer(); // afterEach stops a fresh one
    await server.start();
  });

  it('rejects an answer that is not an embeddings response', async () => {
    server.replies.push((_req, res) => answer(res, 200, 'this is not json'));
    server.replies.push((_req, res) => answer(res, 200, { data: [] }));
    server.replies.push((_req, res) => answer(res, 200, { data: [{ index: 0, embedding: [1, 'x'] }] }));
    const e = embedder();
    for (const expected of ['not JSON', '0 embeddings for 1 texts', 'data[0].embedding[1]']) {
      const err = await rejection(e.embed(['a']));
      should(err.code).equal('INTERNAL');
      should(err.message).containEql(expected);
      should(err.message).containEql('embedUrl');
    }
  });

  it('fails with DIMENSION_MISMATCH when the vector size changes', async () => {
    const e = embedder();
    await e.embed(['a']);
    server.fallback = (req, res) => answer(res, 200, embeddingsFor(req.body.input, 8));
    const err = await rejection(e.embed(['b']));
    should(err.code).equal('DIMENSION_MISMATCH');
    should(err.message).containEql('8 dimensions after earlier ones of 4');
    should(e.dimensions).equal(4);
  });

  it('stops when its signal aborts, during a request or a backoff', async () => {
    server.fallback = () => {
      /* never answer */
    };
    const controller = new AbortController();
    const pending = embedder().embed(['a'], controller.signal);
    setTimeout(() => controller.abort(), 20);
    const err = await rejection(pending);
    should(err.message).containEql('cancelled');

    server.fallback = (_req, res) => answer(res, 500, {});
    const backingOff = new AbortController();
    const slow = new OpenAIEmbedder({ baseUrl, model: 'm', minBackoffMs: 60_000, maxBackoffMs: 60_000 });
    const waiting = slow.embed(['a'], backingOff.signal);
    setTimeout(() => backingOff.abort(), 50);
    should((await rejection(waiting)).message).containEql('cancelled');
  });

  it('close() stops running calls and refuses new ones', async () => {
    server.fallback = () => {
      /* never answer */
    };
    const e = embedder();
    const pending = e.embed(['a']);
    setTimeout(() => void e.close(), 20);
    should((await rejection(pending)).message).containEql('closed');
    should((await rejection(e.embed(['a']))).message).containEql('closed');
  });

  it('validates its options', () => {
    should(() => new OpenAIEmbedder({ baseUrl: 'ftp://x', model: 'm' })).throw(/embedUrl must be an http\(s\) URL/);
    should(() => new OpenAIEmbedder({ baseUrl: 'not a url', model: 'm' })).throw(VectorStoreError);
    should(() => new OpenAIEmbedder({ baseUrl, model: ' ' })).throw(/embedModel/);
    should(() => new OpenAIEmbedder({ baseUrl, model: 'm', batchSize: 0 })).throw(/batchSize/);
  });

  it('refuses credentials in the URL without repeating them', () => {
    const withUser = baseUrl.replace('http://', 'http://user:hunter2@');
    let message = '';
    try {
      embedder({ baseUrl: withUser });
    } catch (err) {
      message = (err as Error).message;
    }
    should(message).match(/must not contain a user name or password/);
    should(message).not.containEql('hunter2');
  });

  it('keeps the query of the URL (e.g. an api-version) out of messages but in requests', async () => {
    server.fallback = (_req, res) => answer(res, 400, {});
    const err = await rejection(embedder({ baseUrl: baseUrl + '?api-version=2024&sig=abc' }).embed(['a']));
    should(server.seen[0].url).equal('/v1/embeddings?api-version=2024&sig=abc');
    should(err.message).not.containEql('sig=abc');
  });
});

describe('createEmbedder', () => {
  it('builds the hash embedder with the configured dimensions', () => {
    const e = createEmbedder(parseStoreConfig({ embedder: 'hash', dimensions: '128' }), {});
    should(e).be.instanceOf(HashEmbedder);
    should(e.dimensions).equal(128);
  });

  it('builds the openai embedder from embedUrl, embedModel and the embedApiKey credential', async () => {
    const server = new FakeEmbeddingServer();
    const baseUrl = await server.start();
    try {
      const config = parseStoreConfig({ embedder: 'openai', embedUrl: baseUrl, embedModel: 'nomic-embed-text' });
      const e = createEmbedder(config, { embedApiKey: SECRET });
      should(e).be.instanceOf(OpenAIEmbedder);
      should(e.name).equal('openai');
      await e.embed(['x']);
      should(server.seen[0].body.model).equal('nomic-embed-text');
      should(server.seen[0].authorization).equal(`Bearer ${SECRET}`);

      await createEmbedder(config, { embedApiKey: '' }).embed(['x']);
      should(server.seen[1].authorization).be.undefined();
    } finally {
      await server.stop();
    }
  });
});
