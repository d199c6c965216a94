/** Ports for test servers on 127.0.0.1. */
import net from 'node:net';

/**
 * A TCP port the OS says is free right now (listen on 0, read it, close). Also
 * serves as a port nothing listens on, for "store unreachable" tests.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
