/**
 * A minimal OpenAI-compatible `POST /v1/embeddings` stub (a stub: no embedding
 * service runs here): 4-dimensional vectors from the text, answered after
 * `latencyMs`, every text counted (to check that a resumed job embeds nothing twice).
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

/** An OpenAI-compatible /embeddings stub: 4-dimensional vectors, `latencyMs` per request, texts counted. */
export async function slowEmbeddings(latencyMs: number): Promise<{ url: string; texts: Map<string, number>; close(): Promise<void> }> {
  const texts = new Map<string, number>();
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const input = (JSON.parse(body) as { input: string[] }).input;
      setTimeout(() => {
        for (const t of input) texts.set(t, (texts.get(t) ?? 0) + 1);
        const data = input.map((t, index) => ({ index, embedding: [1, t.length % 7, (t.charCodeAt(t.length - 1) % 5) + 1, 0.5] }));
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ data }));
      }, latencyMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    texts,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

