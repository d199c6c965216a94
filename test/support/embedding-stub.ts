/**
 * A stub of an OpenAI-compatible embedding service (`POST {url}/embeddings`),
 * for tests and benchmarks: deterministic vectors, a set latency, and the two
 * ways real services push back, each answered with 429 and `Retry-After`:
 * too many requests in flight at once (`maxInFlight`), and a budget of texts
 * per second (`ratePerSecond`, a token bucket holding one second of budget).
 * It counts what it saw, per text too, so a test can check that no text was
 * embedded twice. Runs in the test's process (startEmbeddingStub) or as a
 * process of its own (./embedding-stub-cli.ts), whose counts `GET /stats` gives.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface EmbeddingStubOptions {
  /** Size of every vector (default 8). */
  dimensions?: number;
  /** Before each answer, in ms (default 0); a function of the request's texts in-process only. */
  latencyMs?: number | ((input: string[]) => number);
  /** Requests above this many in flight at once get a 429 at once (default: no limit). */
  maxInFlight?: number;
  /**
   * Texts per second the stub embeds; a request over the budget gets a 429 (default: no limit).
   * The bucket holds one second of budget and starts full: over a run of T seconds, at most
   * ratePerSecond * (T + 1) texts pass (subtract the burst when measuring throughput).
   */
  ratePerSecond?: number;
  /** The Retry-After of a 429 for too many requests in flight, in seconds, may be fractional (default 1). */
  retryAfterSeconds?: number;
  /** How Retry-After is written: seconds ("0.05") or an HTTP date, whole seconds (default "seconds"). */
  retryAfterForm?: 'seconds' | 'date';
  /** The status of a rate-limit answer (default 429). */
  rateLimitStatus?: number;
  /** While true, requests wait unanswered; setting it false lets them go on. */
  hold?: boolean;
  /** A request with this text gets this status (and error message) instead of vectors. */
  fail?: { text: string; status: number; message?: string };
  /** Listen on this port (default: a free one). */
  port?: number;
}

export interface EmbeddingStubStats {
  /** Embedding requests received, rate-limited and failed ones included. */
  requests: number;
  /** Texts answered with a vector. */
  texts: number;
  /** Requests answered with a rate limit. */
  rateLimited: number;
  /** Requests open now. */
  inFlight: number;
  /** The most requests open at once. */
  maxInFlight: number;
  /** How many times each text was answered with a vector. */
  textsSeen: Map<string, number>;
}

export interface EmbeddingStub {
  /** The API base, ending in /v1: what embedUrl is set to. */
  url: string;
  /** `GET` it for the counts as JSON. */
  statsUrl: string;
  stats: EmbeddingStubStats;
  /** Changes some options; the others stay. */
  setOptions(options: Partial<EmbeddingStubOptions>): void;
  resetStats(): void;
  close(): Promise<void>;
}

/** The counts as JSON (what GET /stats answers); `duplicates`: texts answered more than once. */
export function statsJson(stats: EmbeddingStubStats): Record<string, unknown> {
  let duplicates = 0;
  for (const count of stats.textsSeen.values()) if (count > 1) duplicates += 1;
  return {
    requests: stats.requests,
    texts: stats.texts,
    rateLimited: stats.rateLimited,
    inFlight: stats.inFlight,
    maxInFlight: stats.maxInFlight,
    distinctTexts: stats.textsSeen.size,
    duplicates,
    textsSeen: Object.fromEntries(stats.textsSeen),
  };
}

/** The stub's vector of a text: values in [-1, 1) from a generator seeded by the text's hash. */
export function stubVector(text: string, dimensions = 8): number[] {
  let seed = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) seed = Math.imul(seed ^ text.charCodeAt(i), 0x01000193);
  let state = seed >>> 0 || 1;
  const vector: number[] = [];
  for (let d = 0; d < dimensions; d++) {
    // xorshift32
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    vector.push(state / 2 ** 31 - 1);
  }
  return vector;
}

export async function startEmbeddingStub(initial: EmbeddingStubOptions = {}): Promise<EmbeddingStub> {
  let options: EmbeddingStubOptions = { ...initial };
  const freshStats = (): EmbeddingStubStats => ({ requests: 0, texts: 0, rateLimited: 0, inFlight: 0, maxInFlight: 0, textsSeen: new Map() });
  const stats = freshStats();
  /** Requests waiting for `hold` to end. */
  const held = new Set<() => void>();
  const timers = new Set<NodeJS.Timeout>();
  // Token bucket of the rate budget: one second's worth, refilled continuously.
  let tokens = options.ratePerSecond ?? 0;
  let refilledAt = Date.now();

  /** Seconds until `needed` texts fit the budget, or 0 when they fit now (and are taken). */
  function overBudget(needed: number): number {
    const rate = options.ratePerSecond;
    if (rate === undefined || rate <= 0) return 0;
    const now = Date.now();
    tokens = Math.min(rate, tokens + ((now - refilledAt) / 1000) * rate);
    refilledAt = now;
    const take = Math.min(needed, rate); // a request bigger than the bucket waits for a full one
    if (tokens >= take) {
      tokens -= needed;
      return 0;
    }
    return (take - tokens) / rate;
  }

  function retryAfter(seconds: number): string {
    if (options.retryAfterForm === 'date') return new Date(Date.now() + Math.ceil(seconds) * 1000 + 999).toUTCString();
    return String(Math.ceil(seconds * 1000) / 1000);
  }

  function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    if (res.destroyed || res.writableEnded) return;
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  }

  function rateLimit(res: http.ServerResponse, seconds: number, why: string): void {
    stats.rateLimited += 1;
    send(res, options.rateLimitStatus ?? 429, { error: { message: why, type: 'rate_limit' } }, { 'retry-after': retryAfter(seconds) });
  }

  function afterLatency(input: string[], res: http.ServerResponse, then: () => void): void {
    const latency = typeof options.latencyMs === 'function' ? options.latencyMs(input) : (options.latencyMs ?? 0);
    if (latency <= 0) return then();
    const timer = setTimeout(() => {
      timers.delete(timer);
      then();
    }, latency);
    timers.add(timer);
    res.once('close', () => {
      clearTimeout(timer);
      timers.delete(timer);
    });
  }

  function embeddings(req: http.IncomingMessage, res: http.ServerResponse, raw: string): void {
    stats.requests += 1;
    let input: string[];
    try {
      const body = JSON.parse(raw) as { input?: unknown };
      input = typeof body.input === 'string' ? [body.input] : (body.input as string[]);
      if (!Array.isArray(input) || !input.every((text) => typeof text === 'string')) throw new Error('input');
    } catch {
      return send(res, 400, { error: { message: 'the body must be JSON with "input": a string or an array of strings' } });
    }
    const fail = options.fail;
    if (fail && input.includes(fail.text)) return send(res, fail.status, { error: { message: fail.message ?? `stub failure ${fail.status}` } });
    if (options.maxInFlight !== undefined && stats.inFlight > options.maxInFlight) {
      return rateLimit(res, options.retryAfterSeconds ?? 1, `too many requests at once (more than ${options.maxInFlight})`);
    }
    const wait = overBudget(input.length);
    if (wait > 0) return rateLimit(res, wait, `rate limit of ${options.ratePerSecond} texts per second reached`);

    const answer = () =>
      afterLatency(input, res, () => {
        if (res.destroyed) return;
        const dimensions = options.dimensions ?? 8;
        const data = input.map((text, index) => ({ object: 'embedding', index, embedding: stubVector(text, dimensions) }));
        stats.texts += input.length;
        for (const text of input) stats.textsSeen.set(text, (stats.textsSeen.get(text) ?? 0) + 1);
        send(res, 200, { object: 'list', model: 'stub', data, usage: { prompt_tokens: input.length, total_tokens: input.length } });
      });
    if (!options.hold) return answer();
    const release = () => {
      held.delete(release);
      answer();
    };
    held.add(release);
    res.once('close', () => held.delete(release));
  }

  const server = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && /^(\/v1)?\/stats$/.test(path)) return send(res, 200, statsJson(stats));
    if (req.method !== 'POST') return send(res, 404, { error: { message: `no ${req.method} ${path} here` } });
    const embedding = /\/embeddings$/.test(path);
    if (embedding) {
      stats.inFlight += 1;
      stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
      // Once the answer is handed to the OS ('finish'), before the client can read it; or when the client goes away.
      let open = true;
      const ended = () => {
        if (open) stats.inFlight -= 1;
        open = false;
      };
      res.once('finish', ended);
      res.once('close', ended);
    }
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (raw += chunk));
    req.on('end', () => {
      if (embedding) return embeddings(req, res, raw);
      if (/^(\/v1)?\/options$/.test(path)) {
        try {
          setOptions(JSON.parse(raw) as Partial<EmbeddingStubOptions>);
        } catch {
          return send(res, 400, { error: { message: 'the body must be JSON options' } });
        }
        return send(res, 200, { ok: true });
      }
      send(res, 404, { error: { message: `no POST ${path} here` } });
    });
  });

  function setOptions(changes: Partial<EmbeddingStubOptions>): void {
    const hadRate = options.ratePerSecond;
    options = { ...options, ...changes };
    if (options.ratePerSecond !== hadRate) {
      tokens = options.ratePerSecond ?? 0;
      refilledAt = Date.now();
    }
    if (!options.hold) for (const release of [...held]) release();
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url: `${origin}/v1`,
    statsUrl: `${origin}/stats`,
    stats,
    setOptions,
    resetStats() {
      const open = stats.inFlight;
      Object.assign(stats, freshStats(), { inFlight: open });
    },
    async close() {
      held.clear();
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
