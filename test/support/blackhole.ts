/**
 * Stores that do not answer, for timeout tests, on 127.0.0.1:
 *
 * - `startBlackholeServer()`: accepts every TCP connection and never sends a byte
 *   (a firewall that drops replies, a frozen server, a full accept queue behind a
 *   load balancer).
 * - `startBlackholeProxy(port)`: forwards to a real server until `blackhole(true)`,
 *   then stops forwarding in both directions (connections stay open, nothing
 *   arrives); `blackhole(false)` forwards new connections again.
 */
import net from 'node:net';

export interface Blackhole {
  port: number;
  /** Connections accepted so far. */
  accepted(): number;
  stop(): Promise<void>;
}

export interface BlackholeProxy extends Blackhole {
  blackhole(on: boolean): void;
}

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return (server.address() as net.AddressInfo).port;
}

function closer(server: net.Server, sockets: Set<net.Socket>): () => Promise<void> {
  let stopped: Promise<void> | null = null;
  return () => {
    if (!stopped) {
      stopped = new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      });
    }
    return stopped;
  };
}

export async function startBlackholeServer(): Promise<Blackhole> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    socket.on('data', () => undefined); // read and drop: never answer
  });
  const port = await listen(server);
  return { port, accepted: () => accepted, stop: closer(server, sockets) };
}

export async function startBlackholeProxy(targetPort: number): Promise<BlackholeProxy> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  let holed = false;
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  };
  const server = net.createServer((client) => {
    accepted += 1;
    track(client);
    if (holed) {
      client.on('data', () => undefined);
      return;
    }
    const upstream = net.connect(targetPort, '127.0.0.1');
    track(upstream);
    // Forward unless the hole is open; bytes that arrive meanwhile are dropped.
    client.on('data', (chunk) => {
      if (!holed) upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!holed) client.write(chunk);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  const port = await listen(server);
  return {
    port,
    accepted: () => accepted,
    blackhole: (on) => {
      holed = on;
    },
    stop: closer(server, sockets),
  };
}
