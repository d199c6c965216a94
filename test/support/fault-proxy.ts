/**
 * A fault-injecting TCP proxy on 127.0.0.1, in front of a real server (Postgres,
 * Chroma...), for the reliability tests. It forwards bytes both ways and can be
 * switched at run time to misbehave the way networks and servers do:
 *
 *   pass       forward everything (the default)
 *   latency    forward, but hold every chunk `latencyMs` first (order kept)
 *   drop       destroy every open connection, and each new one at once
 *   refuse     stop listening (new connections get ECONNREFUSED) and reset the open ones
 *   blackhole  accept and read, never answer, never close: bytes are held, as in a
 *              network partition, and delivered if the mode goes back to pass
 *   restart()  close every connection, stop listening, listen again on the same port
 *
 * stop() closes every socket and timer it made, so a test leaks no handle.
 */
import net from 'node:net';

export type FaultMode = 'pass' | 'latency' | 'drop' | 'refuse' | 'blackhole';

export interface FaultProxyStats {
  /** Connections accepted from clients. */
  accepted: number;
  /** Connections destroyed by the proxy (drop, refuse, restart, stop). */
  destroyed: number;
  /** Bytes client -> server and server -> client actually forwarded. */
  bytesUp: number;
  bytesDown: number;
}

/** One client connection and its upstream twin. */
interface Pair {
  client: net.Socket;
  upstream: net.Socket | null;
  /** Chunks held while blackholed, per direction, delivered on the way back to pass. */
  heldUp: Buffer[];
  heldDown: Buffer[];
  /** When the last latency-delayed chunk of each direction is due (keeps order). */
  dueUp: number;
  dueDown: number;
}

export class FaultProxy {
  readonly stats: FaultProxyStats = { accepted: 0, destroyed: 0, bytesUp: 0, bytesDown: 0 };
  private mode: FaultMode = 'pass';
  private latencyMs = 0;
  private readonly pairs = new Set<Pair>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private server: net.Server | null = null;
  private stopped = false;

  private constructor(
    private readonly target: { host: string; port: number },
    private listenPort: number,
  ) {}

  /** Start a proxy to `target` (host:port) on a free port of 127.0.0.1 (or `port`). */
  static async start(target: { host?: string; port: number }, options: { port?: number } = {}): Promise<FaultProxy> {
    const proxy = new FaultProxy({ host: target.host ?? '127.0.0.1', port: target.port }, options.port ?? 0);
    await proxy.listen();
    return proxy;
  }

  get port(): number {
    return this.listenPort;
  }

  get currentMode(): FaultMode {
    return this.mode;
  }

  /** Open connections right now. */
  connections(): number {
    return this.pairs.size;
  }

  /** Switch the fault mode; takes effect at once on open connections too. */
  async setMode(mode: FaultMode, options: { latencyMs?: number } = {}): Promise<void> {
    if (this.stopped) throw new Error('The fault proxy is stopped.');
    const previous = this.mode;
    this.mode = mode;
    if (mode === 'latency') this.latencyMs = options.latencyMs ?? 200;
    if (mode === 'drop') this.destroyAll();
    if (mode === 'refuse') {
      this.destroyAll();
      await this.unlisten();
    }
    if (previous === 'refuse' && mode !== 'refuse') await this.listen();
    if (previous === 'blackhole' && mode !== 'blackhole') {
      // The partition heals: what was held is delivered, in order.
      for (const pair of this.pairs) this.release(pair);
    }
  }

  /** Close every connection and stop listening, then listen again on the same port after `downMs`. */
  async restart(downMs = 0): Promise<void> {
    this.destroyAll();
    await this.unlisten();
    if (downMs > 0) await this.sleep(downMs);
    if (!this.stopped && this.mode !== 'refuse') await this.listen();
  }

  /** Close every socket, timer and the listener. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.destroyAll();
    await this.unlisten();
  }

  // -------------------------------------------------------------------------------------

  private listen(): Promise<void> {
    if (this.server || this.stopped) return Promise.resolve();
    const server = net.createServer((client) => this.accept(client));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.listenPort, '127.0.0.1', () => {
        server.off('error', reject);
        this.listenPort = (server.address() as net.AddressInfo).port;
        resolve();
      });
    });
  }

  private unlisten(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return Promise.resolve();
    return new Promise((resolve) => server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    this.stats.accepted += 1;
    client.on('error', () => undefined);
    if (this.mode === 'drop' || this.mode === 'refuse') {
      this.stats.destroyed += 1;
      client.destroy();
      return;
    }
    const pair: Pair = { client, upstream: null, heldUp: [], heldDown: [], dueUp: 0, dueDown: 0 };
    this.pairs.add(pair);
    client.on('close', () => this.forget(pair));
    client.on('data', (chunk: Buffer) => this.carry(pair, 'up', chunk));
    // A blackholed connection is accepted and read, but reaches nothing yet.
    if (this.mode !== 'blackhole') this.connectUpstream(pair);
  }

  private connectUpstream(pair: Pair): void {
    if (pair.upstream || pair.client.destroyed) return;
    const upstream = net.connect(this.target.port, this.target.host);
    pair.upstream = upstream;
    upstream.on('error', () => undefined);
    upstream.on('data', (chunk: Buffer) => this.carry(pair, 'down', chunk));
    upstream.on('close', () => this.forget(pair));
    for (const chunk of pair.heldUp.splice(0)) this.deliver(pair, 'up', chunk);
  }

  /** A chunk read from one side: forward it now, later, or hold it, as the mode says. */
  private carry(pair: Pair, direction: 'up' | 'down', chunk: Buffer): void {
    if (this.mode === 'blackhole' || (direction === 'up' && !pair.upstream)) {
      (direction === 'up' ? pair.heldUp : pair.heldDown).push(chunk);
      return;
    }
    if (this.mode === 'latency') {
      const now = Date.now();
      const due = Math.max(now + this.latencyMs, direction === 'up' ? pair.dueUp : pair.dueDown);
      if (direction === 'up') pair.dueUp = due;
      else pair.dueDown = due;
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.deliver(pair, direction, chunk);
      }, due - now);
      this.timers.add(timer);
      return;
    }
    this.deliver(pair, direction, chunk);
  }

  private deliver(pair: Pair, direction: 'up' | 'down', chunk: Buffer): void {
    const to = direction === 'up' ? pair.upstream : pair.client;
    if (!to || to.destroyed) return;
    to.write(chunk);
    if (direction === 'up') this.stats.bytesUp += chunk.length;
    else this.stats.bytesDown += chunk.length;
  }

  private release(pair: Pair): void {
    if (!pair.upstream) return this.connectUpstream(pair);
    for (const chunk of pair.heldUp.splice(0)) this.carry(pair, 'up', chunk);
    for (const chunk of pair.heldDown.splice(0)) this.carry(pair, 'down', chunk);
  }

  /** One side closed: close the other, so each end sees what a real peer would. */
  private forget(pair: Pair): void {
    if (!this.pairs.delete(pair)) return;
    pair.client.destroy();
    pair.upstream?.destroy();
  }

  private destroyAll(): void {
    for (const pair of [...this.pairs]) {
      this.stats.destroyed += 1;
      // A reset, as a crashed server or a dropped route gives, rather than a polite FIN.
      if (!pair.client.destroyed) pair.client.resetAndDestroy();
      pair.upstream?.destroy();
      this.pairs.delete(pair);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        resolve();
      }, ms);
      this.timers.add(timer);
    });
  }
}
