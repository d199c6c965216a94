/**
 * The HTTP side of the Chroma backend: one JSON request to Chroma's v2 API with
 * the global `fetch`, a per-request timeout, the token headers, and the mapping
 * of every failure onto a `VectorStoreError`.
 *
 * No retries here: a transient error (connection refused, 429, 5xx) surfaces as
 * UNAVAILABLE, no answer within the request timeout (the runtime setting
 * storeTimeout) as TIMEOUT, and the caller (the triggerer, or the user re-sending
 * a message) decides when to try again.
 *
 * The token goes only into headers, never into a message: server messages and
 * fetch's own errors are quoted in errors, so any echo of the token, in any form
 * (URL-encoded, other case, base64, cut short), is redacted from them first.
 */
import { AGAIN, VectorStoreError, type ErrorCode } from '../../errors';
import { redact, redactError } from '../../redact';

export interface ChromaHttpOptions {
  /** Base URL of the server, without a trailing slash (e.g. http://127.0.0.1:8000). */
  baseUrl: string;
  apiKey?: string;
  timeoutMs: number;
}

/** An answer from the server, whatever its status. `json` is null when the body is not JSON. */
export interface ChromaResponse {
  status: number;
  json: unknown;
  text: string;
}

/** Chroma's error body: {"error": "NotFoundError", "message": "..."}. */
export function chromaErrorName(response: ChromaResponse): string | null {
  const json = response.json as { error?: unknown } | null;
  return json && typeof json === 'object' && typeof json.error === 'string' ? json.error : null;
}

const SERVER_MESSAGE_MAX = 300;
const UNKNOWN_WRITE =
  ' The write may or may not have completed; sending the same documents again is safe (documents are replaced by id).';

export class ChromaHttp {
  private readonly inFlight = new Set<AbortController>();
  private closed = false;

  constructor(private readonly options: ChromaHttpOptions) {}

  get baseUrl(): string {
    return this.options.baseUrl;
  }

  /**
   * Send one request. Resolves with the answer for any HTTP status; rejects with
   * UNAVAILABLE when there is no answer (refused, reset, closed), TIMEOUT when the
   * answer (headers and body) did not arrive within the request timeout.
   * `what` completes "while trying to ...", for messages.
   */
  async send(method: 'GET' | 'POST' | 'PUT', path: string, body: unknown, what: string): Promise<ChromaResponse> {
    if (this.closed) throw closedError();
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.options.timeoutMs);
    this.inFlight.add(controller);
    try {
      const response = await fetch(this.options.baseUrl + path, {
        method,
        headers: this.headers(body !== undefined),
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: controller.signal,
      });
      const text = await response.text();
      return { status: response.status, json: parseJson(text), text };
    } catch (err) {
      if (this.closed) throw closedError();
      if (timedOut) {
        throw new VectorStoreError(
          'TIMEOUT',
          `The Chroma server at ${this.options.baseUrl} did not answer within ${seconds(this.options.timeoutMs)} ` +
            `while trying to ${what}.${path.endsWith('/upsert') ? UNKNOWN_WRITE : ''} ` +
            `It may be overloaded or unreachable; ${AGAIN} If it is only slow, raise ` +
            'vectorPipeline.storeTimeout (seconds) in settings.js or the environment variable VECTOR_PIPELINE_STORE_TIMEOUT.',
          { transient: true },
        );
      }
      const secrets = [this.options.apiKey];
      throw new VectorStoreError(
        'UNAVAILABLE',
        `Cannot reach the Chroma server at ${this.options.baseUrl} (${redact(networkReason(err), secrets)}) while trying to ${what}. ` +
          'Check that it is running (e.g. `npx chroma run --path ./chroma-data --port 8000`) and that the URL in the ' +
          'vector-store configuration is right; retry later.',
        { cause: redactError(err, secrets) },
      );
    } finally {
      clearTimeout(timer);
      this.inFlight.delete(controller);
    }
  }

  /**
   * Send, and turn any non-2xx answer into an error. Use `send` when a status
   * (such as 404) is an answer rather than a failure.
   */
  async call(method: 'GET' | 'POST' | 'PUT', path: string, body: unknown, what: string): Promise<unknown> {
    const response = await this.send(method, path, body, what);
    if (response.status >= 200 && response.status < 300) return response.json;
    throw this.failure(response, what);
  }

  /** The error for a non-2xx answer (404 gets a generic message: callers that know better say more). */
  failure(response: ChromaResponse, what: string): VectorStoreError {
    const { status } = response;
    const server = this.serverMessage(response);
    const quoted = server ? `: ${server}` : '';
    const where = `The Chroma server at ${this.options.baseUrl}`;
    const make = (code: ErrorCode, message: string) => new VectorStoreError(code, message);
    if (status === 401 || status === 403) {
      return make(
        'AUTH',
        `${where} rejected the credentials (HTTP ${status}) while trying to ${what}. ` +
          'Check the API key (token) credential of the vector-store configuration node, and that the token may use this tenant and database.',
      );
    }
    if (status === 429) {
      return make('UNAVAILABLE', `${where} is rate-limiting requests (HTTP 429) while trying to ${what}${quoted}. Retry later.`);
    }
    if (status >= 500) {
      return make(
        'UNAVAILABLE',
        `${where} failed with HTTP ${status} while trying to ${what}${quoted}. It may be starting or overloaded; retry later.`,
      );
    }
    if (/dimension/i.test(server)) {
      return make('DIMENSION_MISMATCH', `${where} refused to ${what}: ${server}. Use the same embedder and dimensions as when the collection was created, or another collection.`);
    }
    if (/(database|tenant).*(does not exist|not found)/i.test(server)) {
      return make('NOT_FOUND', `${where} could not ${what}: ${server}. Create it on the server, or fix the tenant and database in the vector-store configuration.`);
    }
    if (status === 404) {
      return make('NOT_FOUND', `${where} could not ${what}: not found (HTTP 404)${quoted}.`);
    }
    if (status === 413) {
      return make('INVALID_INPUT', `${where} refused to ${what}: the request is too large (HTTP 413). Use a smaller batch size on vector-ingest.`);
    }
    if (status >= 400) {
      return make('INVALID_INPUT', `${where} refused to ${what} (HTTP ${status})${quoted}.`);
    }
    return make('INTERNAL', `${where} answered HTTP ${status} while trying to ${what}, which this backend does not expect${quoted}.`);
  }

  /** The server's own message, shortened, with the token removed should the server echo it. */
  serverMessage(response: ChromaResponse): string {
    const json = response.json as { message?: unknown; error?: unknown } | null;
    let message =
      json && typeof json === 'object' && typeof json.message === 'string'
        ? json.message
        : response.text.trim().replace(/\s+/g, ' ');
    // Redacted before shortening, so that a cut cannot leave a piece too short to recognise.
    message = redact(message, [this.options.apiKey]);
    return message.length > SERVER_MESSAGE_MAX ? `${message.slice(0, SERVER_MESSAGE_MAX)}...` : message;
  }

  /** Abort every request in flight; later calls fail with UNAVAILABLE. Idempotent. */
  close(): void {
    this.closed = true;
    for (const controller of this.inFlight) controller.abort();
    this.inFlight.clear();
  }

  private headers(hasBody: boolean): Record<string, string> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (hasBody) headers['Content-Type'] = 'application/json';
    const token = this.options.apiKey;
    if (token) {
      // Chroma accepts either header, depending on how its auth is configured: send both.
      headers['x-chroma-token'] = token;
      headers.Authorization = `Bearer ${token}`;
    }
    return headers;
  }
}

function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}

function parseJson(text: string): unknown {
  if (text.length === 0) return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}

function closedError(): VectorStoreError {
  return new VectorStoreError(
    'UNAVAILABLE',
    'The chroma backend was closed (its vector-store configuration node stopped or was redeployed). Retry with the new one.',
  );
}

/** A short reason from fetch's error ("fetch failed", with the socket error as cause). */
function networkReason(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
  const code = typeof cause?.code === 'string' ? cause.code : null;
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return 'the connection was closed';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'the host name does not resolve';
    case 'ETIMEDOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'the connection timed out';
    default:
      if (code) return code;
      if (cause && typeof cause.message === 'string') return cause.message;
      return err instanceof Error ? err.message : String(err);
  }
}
