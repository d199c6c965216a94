/**
 * The embedding stub (./embedding-stub.ts) as a process of its own, for
 * benchmarks and end-to-end tests:
 *
 *   node --import tsx test/support/embedding-stub-cli.ts '{"latencyMs": 20, "maxInFlight": 4, "retryAfterSeconds": 0.05}'
 *
 * Options are the one JSON argument (EmbeddingStubOptions without functions).
 * Prints one JSON line, {"url": ".../v1", "stats": ".../stats"}, once it
 * listens; serves until SIGTERM or SIGINT. `GET /stats` gives its counts (with
 * each text's count in `textsSeen`, and `duplicates`); `POST /options` with
 * JSON changes options while it runs.
 */
import { startEmbeddingStub, type EmbeddingStubOptions } from './embedding-stub';

function readOptions(argument: string | undefined): EmbeddingStubOptions {
  if (argument === undefined || argument.trim() === '') return {};
  try {
    const options = JSON.parse(argument) as unknown;
    if (options === null || typeof options !== 'object' || Array.isArray(options)) throw new Error('not an object');
    return options as EmbeddingStubOptions;
  } catch (err) {
    process.stderr.write(`embedding-stub: the argument must be a JSON object of options (${(err as Error).message})\n`);
    process.exit(2);
  }
}

async function main(): Promise<void> {
  const stub = await startEmbeddingStub(readOptions(process.argv[2]));
  process.stdout.write(JSON.stringify({ url: stub.url, stats: stub.statsUrl }) + '\n');
  const stop = () => {
    void stub.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`embedding-stub: ${(err as Error).message}\n`);
  process.exit(1);
});
