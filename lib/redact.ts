/**
 * Secrets never show: every error text that comes from a server or a client
 * library goes through `redact` before it reaches a message, a status or the log.
 *
 * A server may echo a token in another form than it was sent: URL-encoded,
 * upper- or lower-cased, base64 (inside a Basic auth header, at any byte
 * offset), JSON-escaped, or cut short ("sk-abc123..."). Each form is removed,
 * case-insensitively; a run of at least MIN_PREFIX characters that starts the
 * secret counts as the secret cut short.
 */

const MASK = '***';
/** Shortest start of a secret that is still treated as the secret. */
const MIN_PREFIX = 6;

/** The forms a secret may take in an echoed text, longest first. */
function formsOf(secret: string): string[] {
  const forms = new Set<string>([secret]);
  const add = (form: string | null): void => {
    if (form && form.length >= Math.min(MIN_PREFIX, secret.length)) forms.add(form);
  };
  add(safe(() => encodeURIComponent(secret)));
  add(safe(() => encodeURI(secret)));
  add(safe(() => JSON.stringify(secret).slice(1, -1)));
  add(safe(() => escape(secret)));
  const bytes = Buffer.from(secret, 'utf8');
  // base64 at byte offset 0, 1 and 2 inside a longer value ("user:secret"): keep
  // only the characters that depend on the secret's bytes alone.
  for (let offset = 0; offset < 3; offset++) {
    const padded = Buffer.concat([Buffer.alloc(offset), bytes]);
    for (const encoding of ['base64', 'base64url'] as const) {
      const text = padded.toString(encoding).replace(/=+$/, '');
      const skipStart = offset === 0 ? 0 : Math.ceil((offset * 8) / 6);
      const tailBits = (padded.length * 8) % 6;
      const core = text.slice(skipStart, tailBits === 0 ? text.length : text.length - 1);
      add(core.length >= 4 ? core : null);
    }
  }
  add(bytes.toString('hex'));
  return [...forms].sort((a, b) => b.length - a.length);
}

function safe(f: () => string): string | null {
  try {
    return f();
  } catch {
    return null;
  }
}

/** Remove every given secret (empty and missing ones are ignored) from `text`, in every form above. */
export function redact(text: string, secrets: ReadonlyArray<string | null | undefined>): string {
  let out = String(text);
  for (const secret of secrets) {
    if (typeof secret !== 'string' || secret.length === 0) continue;
    const forms = formsOf(secret);
    // Whole forms first: a prefix run must not cut a longer form in two.
    for (const form of forms) out = replaceAllInsensitive(out, form);
    for (const form of forms) if (form.length > MIN_PREFIX) out = replacePrefixRuns(out, form);
  }
  return out;
}

/** An error of the same kind with its message (and its cause's) redacted. */
export function redactError<E>(err: E, secrets: ReadonlyArray<string | null | undefined>): E {
  if (!(err instanceof Error)) return (typeof err === 'string' ? redact(err, secrets) : err) as E;
  const message = redact(err.message, secrets);
  if (message !== err.message) {
    try {
      err.message = message;
    } catch {
      // a frozen error: fall through with a plain one
      return new Error(message) as E;
    }
  }
  if (typeof err.stack === 'string') err.stack = redact(err.stack, secrets);
  const cause = (err as { cause?: unknown }).cause;
  if (cause !== undefined && cause !== err) {
    (err as { cause?: unknown }).cause = cause instanceof Error || typeof cause === 'string' ? redactError(cause, secrets) : undefined;
  }
  return err;
}

function replaceAllInsensitive(text: string, form: string): string {
  const lower = text.toLowerCase();
  const needle = form.toLowerCase();
  // toLowerCase can change lengths for a few characters; then fall back to exact matching.
  if (lower.length !== text.length || needle.length !== form.length) return text.split(form).join(MASK);
  let out = '';
  let from = 0;
  for (let at = lower.indexOf(needle); at !== -1; at = lower.indexOf(needle, from)) {
    out += text.slice(from, at) + MASK;
    from = at + needle.length;
  }
  return from === 0 ? text : out + text.slice(from);
}

/** Runs of MIN_PREFIX or more characters that start `form` (the secret cut short). */
function replacePrefixRuns(text: string, form: string): string {
  const lower = text.toLowerCase();
  const needle = form.toLowerCase();
  if (lower.length !== text.length || needle.length !== form.length) return text;
  const head = needle.slice(0, MIN_PREFIX);
  let out = '';
  let from = 0;
  for (let at = lower.indexOf(head); at !== -1; at = lower.indexOf(head, Math.max(from, at + 1))) {
    if (at < from) continue;
    let length = MIN_PREFIX;
    while (length < needle.length && at + length < lower.length && lower[at + length] === needle[length]) length += 1;
    out += text.slice(from, at) + MASK;
    from = at + length;
  }
  return from === 0 ? text : out + text.slice(from);
}

/**
 * A secret is used in a header or a connection string: line breaks and other
 * control characters would break it (and end up in a library's error text).
 * Returns null when usable, else a sentence naming the field, never the value.
 */
export function secretProblem(field: string, secret: string | undefined | null): string | null {
  if (secret === undefined || secret === null || secret === '') return null;
  if (/[\u0000-\u001f\u007f]/.test(secret)) {
    return `The ${field} credential contains a line break or another control character, which cannot be sent to the server. Paste it again without the line break (check for a trailing newline) in the vector-store configuration, and deploy.`;
  }
  if (secret !== secret.trim()) {
    return `The ${field} credential starts or ends with a space. Remove the space in the vector-store configuration, and deploy.`;
  }
  return null;
}
