/**
 * An embedder for any OpenAI-compatible `POST {baseUrl}/embeddings` endpoint
 * (OpenAI, Azure-style proxies, Ollama, vLLM, LocalAI, text-embeddings-inference...).
 *
 * Texts are sent in batches of `batchSize`, up to `concurrency` requests at
 * once over all calls of the embedder; the vectors come back in input order.
 * A rate limit (429) or an overloaded service (503) halves the number of
 * requests allowed at once, which grows back by one after a run of successes
 * (AIMD, see ./adaptive-limit.ts). A batch that meets a rate limit, a server
 * error (5xx, 408), a network error or a timeout is retried after the
 * server's `Retry-After`, else with exponential backoff and jitter: up to
 * `maxRetries` times, 429s apart up to `maxRateLimitRetries` times (a service
 * that says "too many" is up, just busy); then the call fails with a transient
 * UNAVAILABLE error so the caller can retry later. Every retry is reported
 * through `onRetry` before its wait. A refused key (401/403) or a refused
 * request (other 4xx) fails at once: retrying would not help. A batch that
 * fails fails the whole call, and the call's other requests are aborted.
 *
 * The API key is sent as a bearer token and never appears in a message: a
 * key that cannot go in a header (a line break, a control character) is
 * refused before any request, naming the `embedApiKey` credential, and every
 * error text (the server's, the HTTP client's) is redacted of the key in every
 * form a server may echo it (see ../redact.ts).
 */
import { setMaxListeners } from 'node:events';
import { VectorStoreError, messageOf } from '../errors';
import { redact, redactError, secretProblem } from '../redact';
import type { EmbedOptions, EmbedRetry, Embedder } from '../types';
import { AdaptiveLimit, type Permit, type RequestOutcome } from './adaptive-limit';

export interface OpenAIEmbedderOptions {
  /** The API base, e.g. "https://api.openai.com/v1"; "/embeddings" is appended. */
  baseUrl: string;
  model: string;
  apiKey?: string;
  /** Texts per request (default 64). */
  batchSize?: number;
  /** Requests in flight at once, over all calls (default 4, at most 64); rate limits lower it for a while. */
  concurrency?: number;
  /** Per request, including reading the answer (default 30000). */
  timeoutMs?: number;
  /** Retries of one batch after the first attempt (default 4); 429s are counted apart. */
  maxRetries?: number;
  /** Retries of one batch after a 429 (default 10). */
  maxRateLimitRetries?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  fetch?: typeof globalThis.fetch;
  /** Waits between retries; must reject when `signal` aborts. For tests. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** What the embedder has done since it was made. */
export interface OpenAIEmbedderStats {
  /** HTTP requests sent, retries included. */
  requests: number;
  /** Requests sent again after a failure worth another try. */
  retries: number;
  /** Answers 429 or 503. */
  rateLimited: number;
  /** Requests allowed in flight at once, now (the configured concurrency, or less after rate limits). */
  concurrency: number;
}

/** The most requests one embedder sends at once. */
export const MAX_CONCURRENCY = 64;

/** What one attempt ended with, when it is worth another try. */
interface RetryableFailure {
  reason: string;
  retryAfterMs?: number;
  /** The HTTP status, when there was an answer. */
  status?: number;
}

export class OpenAIEmbedder implements Embedder {
  readonly name = 'openai';
  private learntDimensions: number | null = null;
  private closed = false;
  /** Per running `embed` call, its controller and when it has settled, so `close()` can stop them all. */
  private readonly running = new Map<AbortController, Promise<void>>();
  private readonly limit: AdaptiveLimit;
  private readonly counts = { requests: 0, retries: 0, rateLimited: 0 };
  /** Requests answered with vectors, by every call: a rate-limited batch sees the service still serves. */
  private served = 0;

  private readonly endpoint: string;
  /** The endpoint without credentials or query, safe to put in messages. */
  private readonly where: string;
  private readonly model: string;
  private readonly apiKey: string | undefined;
  /** Why the key cannot be sent (a line break...), or null; said on every embed call, never retried. */
  private readonly keyProblem: string | null;
  private readonly batchSize: number;
  private readonly timeoutMs: number;
  private readonly maxRetries: number;
  private readonly maxRateLimitRetries: number;
  private readonly minBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly fetch: typeof globalThis.fetch;
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;

  constructor(options: OpenAIEmbedderOptions) {
    const endpoint = parseBaseUrl(options.baseUrl);
    // Keep any query (e.g. an api-version) but put "/embeddings" on the path.
    endpoint.pathname = endpoint.pathname.replace(/\/+$/, '') + '/embeddings';
    this.endpoint = endpoint.href;
    this.where = safeUrl(this.endpoint);
    if (typeof options.model !== 'string' || options.model.trim() === '') {
      throw new VectorStoreError('INVALID_INPUT', 'embedModel must name the embedding model, e.g. text-embedding-3-small');
    }
    this.model = options.model.trim();
    this.apiKey = options.apiKey ? options.apiKey : undefined;
    this.keyProblem = secretProblem('embedApiKey', this.apiKey) ?? headerProblem('embedApiKey', this.apiKey);
    this.batchSize = checkedOption('batchSize', options.batchSize ?? 64, 1, true);
    this.limit = new AdaptiveLimit(checkedOption('concurrency', options.concurrency ?? 4, 1, true, MAX_CONCURRENCY));
    this.timeoutMs = checkedOption('timeoutMs', options.timeoutMs ?? 30_000, 1, false);
    this.maxRetries = checkedOption('maxRetries', options.maxRetries ?? 4, 0, true);
    this.maxRateLimitRetries = checkedOption('maxRateLimitRetries', options.maxRateLimitRetries ?? 10, 0, true);
    this.minBackoffMs = checkedOption('minBackoffMs', options.minBackoffMs ?? 500, 0, false);
    this.maxBackoffMs = checkedOption('maxBackoffMs', options.maxBackoffMs ?? 20_000, this.minBackoffMs, false);
    this.fetch = options.fetch ?? globalThis.fetch;
    this.sleep = options.sleep ?? abortableSleep;
  }

  /** null until the first answer; then every answer must have this size. */
  get dimensions(): number | null {
    return this.learntDimensions;
  }

  /** Counts since the embedder was made, and the current limit of requests at once. */
  get stats(): OpenAIEmbedderStats {
    return { ...this.counts, concurrency: this.limit.limit };
  }

  async embed(texts: string[], signal?: AbortSignal, options: EmbedOptions = {}): Promise<Float32Array[]> {
    if (this.closed) throw new VectorStoreError('INTERNAL', `the embedder for ${this.where} is closed`);
    if (this.keyProblem !== null) throw new VectorStoreError('INVALID_INPUT', this.keyProblem, { transient: false });
    if (texts.length === 0) return [];
    // One signal for this call: aborted by the caller's signal, by close(), or by a failed batch.
    const call = new AbortController();
    // Each batch in progress listens to it (its request, its wait or its turn): not a leak.
    setMaxListeners(this.limit.max + 1, call.signal);
    const forward = () => call.abort(signal?.reason);
    if (signal?.aborted) forward();
    signal?.addEventListener('abort', forward, { once: true });
    let settled!: () => void;
    this.running.set(call, new Promise<void>((resolve) => (settled = resolve)));
    try {
      return await this.embedAll(texts, call, options);
    } catch (err) {
      // The server's and the HTTP client's texts may hold the key, in any form.
      throw redactError(err, [this.apiKey]);
    } finally {
      signal?.removeEventListener('abort', forward);
      this.running.delete(call);
      settled();
    }
  }

  /** Stops running calls (they reject) and refuses new ones; resolves once none has a request left. */
  async close(): Promise<void> {
    this.closed = true;
    const settling = [...this.running];
    this.running.clear();
    for (const [call] of settling) call.abort();
    await Promise.all(settling.map(([, settled]) => settled));
  }

  /**
   * The batches of one call, up to `concurrency` at once (the shared limit
   * decides how many are really sent). Resolves only once every batch has
   * ended: the first failure aborts the others, and is thrown once they stopped.
   */
  private async embedAll(texts: string[], call: AbortController, options: EmbedOptions): Promise<Float32Array[]> {
    const vectors = new Array<Float32Array>(texts.length);
    const batches = Math.ceil(texts.length / this.batchSize);
    let next = 0;
    const failure: { error?: unknown; failed: boolean } = { failed: false };
    const worker = async (): Promise<void> => {
      while (!failure.failed && next < batches) {
        const start = next++ * this.batchSize;
        try {
          const batchVectors = await this.embedBatch(texts.slice(start, start + this.batchSize), call.signal, options);
          for (let i = 0; i < batchVectors.length; i++) vectors[start + i] = batchVectors[i];
        } catch (err) {
          // Only the first failure counts: the others are the cancellations it caused.
          if (!failure.failed) {
            failure.failed = true;
            failure.error = err;
            call.abort();
          }
          return;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.limit.max, batches) }, worker));
    if (failure.failed) throw failure.error;
    return vectors;
  }

  private async embedBatch(batch: string[], signal: AbortSignal, options: EmbedOptions): Promise<Float32Array[]> {
    let failures = 0;
    let rateLimits = 0;
    let rateLimitsInAll = 0;
    let servedBefore = this.served;
    for (let attempt = 0; ; attempt++) {
      this.throwIfCancelled(signal);
      const outcome = await this.attemptInSlot(batch, signal, attempt > 0);
      if (Array.isArray(outcome)) return outcome;
      // A 429 says the service is up but busy: its retries have their own, larger budget,
      // counted afresh while the service answers other requests meanwhile (this batch only
      // lost the race for its budget), up to ten times that budget (at least 100) in all.
      if (outcome.status === 429 && this.served !== servedBefore) rateLimits = 0;
      servedBefore = this.served;
      const giveUp =
        outcome.status === 429
          ? rateLimits++ >= this.maxRateLimitRetries || rateLimitsInAll++ >= Math.max(100, this.maxRateLimitRetries * 10)
          : failures++ >= this.maxRetries;
      if (giveUp) {
        const tries = attempt + 1;
        throw new VectorStoreError(
          'UNAVAILABLE',
          `the embedding service at ${this.where} failed ${tries} time${tries === 1 ? '' : 's'} in a row ` +
            `(last: ${outcome.reason}): check that it is running and reachable; retry later`,
        );
      }
      const delayMs = outcome.retryAfterMs ?? this.backoff(attempt);
      this.counts.retries += 1;
      this.report(options, { reason: outcome.reason, delayMs, attempt: attempt + 1, concurrency: this.limit.limit });
      try {
        await this.sleep(delayMs, signal);
      } catch (err) {
        this.throwIfCancelled(signal);
        throw err;
      }
    }
  }

  /** One attempt, once the shared limit gives a slot (a retry goes ahead of new requests); the outcome adapts the limit. */
  private async attemptInSlot(batch: string[], signal: AbortSignal, retry: boolean): Promise<Float32Array[] | RetryableFailure> {
    let permit: Permit;
    try {
      permit = await this.limit.acquire(signal, retry);
    } catch (err) {
      this.throwIfCancelled(signal);
      throw err;
    }
    let outcome: RequestOutcome = 'other';
    try {
      this.counts.requests += 1;
      const result = await this.attempt(batch, signal);
      if (Array.isArray(result)) {
        outcome = 'success';
        this.served += 1;
      }
      else if (result.status === 429 || result.status === 503) {
        outcome = 'rateLimited';
        this.counts.rateLimited += 1;
      }
      return result;
    } finally {
      this.limit.release(permit, outcome);
    }
  }

  /** Tells the caller of a retry; a listener that throws must not break the call. */
  private report(options: EmbedOptions, retry: EmbedRetry): void {
    if (!options.onRetry) return;
    try {
      options.onRetry({ ...retry, reason: redact(retry.reason, [this.apiKey]) });
    } catch {
      // The listener's problem, not the embedding's.
    }
  }

  /** One request. Returns the vectors, or a failure worth retrying; throws permanent failures. */
  private async attempt(batch: string[], signal: AbortSignal): Promise<Float32Array[] | RetryableFailure> {
    const request = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      request.abort();
    }, this.timeoutMs);
    const forward = () => request.abort();
    signal.addEventListener('abort', forward, { once: true });
    let status: number;
    let body: string;
    let retryAfter: string | null;
    try {
      const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
      if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
      const response = await this.fetch(this.endpoint, {
        method: 'POST',
        headers,
        body: JSON.stringify({ model: this.model, input: batch }),
        signal: request.signal,
      });
      status = response.status;
      retryAfter = response.headers.get('retry-after');
      body = await response.text(); // still under the timeout
    } catch (err) {
      this.throwIfCancelled(signal);
      if (timedOut) return { reason: `no answer within ${this.timeoutMs} ms` };
      if (isLocalRequestError(err)) {
        // fetch refused to build the request (a header it cannot send...): trying again gives the same.
        throw new VectorStoreError(
          'INVALID_INPUT',
          `the request to the embedding service at ${this.where} could not be built (${redact(messageOf(err), [this.apiKey])}): check embedUrl and the embedApiKey credential`,
          { transient: false },
        );
      }
      return { reason: `network error: ${networkErrorText(err).split(this.endpoint).join(this.where)}` };
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', forward);
    }

    if (status >= 200 && status < 300) return this.readVectors(body, batch.length, status);
    const serverSays = this.serverMessage(body);
    const httpStatus = `HTTP ${status}${serverSays ? `: "${serverSays}"` : ''}`;
    if (status === 429 || status === 408 || status >= 500) {
      return { reason: httpStatus, retryAfterMs: this.retryAfterMs(retryAfter), status };
    }
    if (status === 401 || status === 403) {
      // The server's text is not quoted: some echo part of the key.
      throw new VectorStoreError(
        'AUTH',
        this.apiKey
          ? `the embedding service at ${this.where} rejected the API key (HTTP ${status}): set the embedApiKey credential of the vector-store config node to a valid key`
          : `the embedding service at ${this.where} requires an API key (HTTP ${status}): set the embedApiKey credential of the vector-store config node`,
        { transient: false },
      );
    }
    const hint =
      status === 404
        ? 'check embedUrl (the API base, e.g. https://api.openai.com/v1) and embedModel'
        : 'check embedModel and the texts sent';
    throw new VectorStoreError(
      'INVALID_INPUT',
      `the embedding service at ${this.where} refused the request for model "${this.model}" (${httpStatus}): ${hint}`,
      { transient: false },
    );
  }

  /** The vectors of a 2xx answer, in input order, checked for shape and size. */
  private readVectors(body: string, expected: number, status: number): Float32Array[] {
    const malformed = (what: string) =>
      new VectorStoreError(
        'INTERNAL',
        `the embedding service at ${this.where} answered HTTP ${status} with ${what}, not an OpenAI-style embeddings response: check that embedUrl is the API base (e.g. https://api.openai.com/v1)`,
        { transient: false },
      );
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      throw malformed(body.trim() === '' ? 'an empty body' : 'a body that is not JSON');
    }
    const data = (parsed as { data?: unknown } | null)?.data;
    if (!Array.isArray(data)) throw malformed('no "data" array');
    if (data.length !== expected) throw malformed(`${data.length} embeddings for ${expected} texts`);

    const vectors = new Array<Float32Array | undefined>(expected);
    const indexed = data.every((item) => Number.isInteger((item as { index?: unknown } | null)?.index));
    for (let i = 0; i < data.length; i++) {
      const item = data[i] as { index?: number; embedding?: unknown } | null;
      const position = indexed ? (item?.index as number) : i;
      if (position < 0 || position >= expected || vectors[position] !== undefined) {
        throw malformed(`a wrong or repeated "index" (${position})`);
      }
      const embedding = item?.embedding;
      if (!Array.isArray(embedding) || embedding.length === 0) throw malformed(`no "embedding" array in data[${i}]`);
      const vector = new Float32Array(embedding.length);
      for (let k = 0; k < embedding.length; k++) {
        const x: unknown = embedding[k];
        if (typeof x !== 'number' || !Number.isFinite(x)) throw malformed(`a non-number in data[${i}].embedding[${k}]`);
        vector[k] = x;
      }
      this.checkDimensions(vector.length);
      vectors[position] = vector;
    }
    return vectors as Float32Array[];
  }

  private checkDimensions(size: number): void {
    if (this.learntDimensions === null) {
      this.learntDimensions = size;
    } else if (size !== this.learntDimensions) {
      throw new VectorStoreError(
        'DIMENSION_MISMATCH',
        `the embedding model "${this.model}" at ${this.where} returned a vector of ${size} dimensions after earlier ones of ${this.learntDimensions}: a model must always give vectors of one size; check that embedModel names one fixed model`,
        { transient: false },
      );
    }
  }

  /** Full jitter on the upper half: between base/2 and base, base = min * 2^attempt, capped. */
  private backoff(attempt: number): number {
    const base = Math.min(this.maxBackoffMs, this.minBackoffMs * 2 ** attempt);
    return base / 2 + Math.random() * (base / 2);
  }

  /** Retry-After as seconds or an HTTP date, capped at maxBackoffMs; undefined when absent or unreadable. */
  private retryAfterMs(header: string | null): number | undefined {
    if (header === null || header.trim() === '') return undefined;
    const value = header.trim();
    let ms: number;
    if (/^\d+(\.\d+)?$/.test(value)) ms = Number(value) * 1000;
    else {
      const date = Date.parse(value);
      if (Number.isNaN(date)) return undefined;
      ms = date - Date.now();
    }
    return Math.min(this.maxBackoffMs, Math.max(0, ms));
  }

  /** The error text of a failed answer (OpenAI, FastAPI and plain styles), short and without the key. */
  private serverMessage(body: string): string {
    let text = '';
    try {
      const parsed = JSON.parse(body) as Record<string, unknown> | null;
      const error = parsed?.error as { message?: unknown } | string | undefined;
      const detail = parsed?.detail as Array<{ msg?: unknown }> | string | undefined;
      if (typeof error === 'string') text = error;
      else if (typeof error?.message === 'string') text = error.message;
      else if (typeof parsed?.message === 'string') text = parsed.message;
      else if (typeof detail === 'string') text = detail;
      else if (Array.isArray(detail) && typeof detail[0]?.msg === 'string') text = detail[0].msg;
    } catch {
      if (!body.trimStart().startsWith('<')) text = body; // skip HTML error pages
    }
    text = redact(text, [this.apiKey]).replace(/\s+/g, ' ').trim();
    return text.length > 200 ? text.slice(0, 197) + '...' : text;
  }

  private throwIfCancelled(signal: AbortSignal): void {
    if (!signal.aborted) return;
    if (this.closed) throw new VectorStoreError('INTERNAL', `the embedder for ${this.where} was closed during the request`);
    throw new VectorStoreError('UNAVAILABLE', `the request to the embedding service at ${this.where} was cancelled`, {
      cause: signal.reason,
    });
  }
}

/** An HTTP header carries Latin-1 characters only (fetch refuses others); names the field, never the value. */
function headerProblem(field: string, secret: string | undefined): string | null {
  if (secret === undefined || !/[^\u0000-\u00ff]/.test(secret)) return null;
  return `The ${field} credential contains a character that cannot be sent in an HTTP header (a letter outside Latin-1, or a typographic quote or dash from a copy-paste). Paste the key again in the vector-store configuration, and deploy.`;
}

function parseBaseUrl(baseUrl: string): URL {
  let url: URL | undefined;
  try {
    url = new URL(String(baseUrl).trim());
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new VectorStoreError(
      'INVALID_INPUT',
      `embedUrl must be an http(s) URL such as https://api.openai.com/v1 (got ${JSON.stringify(safeUrl(String(baseUrl)))})`,
    );
  }
  if (url.username || url.password) {
    // fetch refuses such URLs, and a password does not belong in a plain property.
    throw new VectorStoreError(
      'INVALID_INPUT',
      `embedUrl must not contain a user name or password (${safeUrl(url.href)}): put the key in the embedApiKey credential`,
    );
  }
  url.hash = '';
  return url;
}

/** A URL without user, password, query or fragment, for messages. */
function safeUrl(value: string): string {
  try {
    const url = new URL(value);
    return url.origin + url.pathname;
  } catch {
    return value.length > 60 ? value.slice(0, 57) + '...' : value;
  }
}

function checkedOption(name: string, value: number, min: number, integer: boolean, max = Infinity): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
    const range = max === Infinity ? `of at least ${min}` : `between ${min} and ${max}`;
    throw new VectorStoreError('INVALID_INPUT', `${name} of the openai embedder must be ${integer ? 'an integer' : 'a number'} ${range} (got ${value})`);
  }
  return value;
}

/**
 * An error fetch throws before sending anything (an invalid header value, a
 * character a header cannot hold): a TypeError of its own, not undici's
 * "fetch failed", which wraps a network failure in `cause`.
 */
function isLocalRequestError(err: unknown): boolean {
  return err instanceof TypeError && err.message !== 'fetch failed' && (err as { cause?: unknown }).cause === undefined;
}

/** fetch wraps the real reason ("ECONNREFUSED") in `cause`. */
function networkErrorText(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
  if (typeof cause?.code === 'string') return cause.code;
  if (typeof cause?.message === 'string') return cause.message;
  return messageOf(err);
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
