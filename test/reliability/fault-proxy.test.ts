/**
 * The fault-injecting proxy itself, in front of a real TCP echo server on loopback:
 * each mode does what the fault-matrix tests rely on, and stop() leaves no socket.
 */
import should from 'should';
import net from 'node:net';
import { FaultProxy } from '../support/fault-proxy';

interface Echo {
  port: number;
  sockets: Set<net.Socket>;
  close(): Promise<void>;
}

async function startEcho(): Promise<Echo> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.address() as net.AddressInfo).port,
    sockets,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Connect, send `text`, resolve with what comes back within `waitMs` (or how the connection ended). */
function roundTrip(port: number, text: string, waitMs = 1000, holdOpen = false): Promise<{ answer: string; ended: string | null; ms: number }> {
  return new Promise((resolve) => {
    const started = Date.now();
    let answer = '';
    let ended: string | null = null;
    const socket = net.connect(port, '127.0.0.1');
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ answer, ended, ms: Date.now() - started });
    };
    const timer = setTimeout(finish, waitMs);
    socket.on('connect', () => socket.write(text));
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('utf8');
      if (!holdOpen && answer.length >= text.length) finish();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      ended = err.code ?? err.message;
    });
    socket.on('close', () => {
      ended = ended ?? 'closed';
      finish();
    });
  });
}

describe('reliability: the fault-injecting TCP proxy', function () {
  this.timeout(10_000);
  let echo: Echo;
  let proxy: FaultProxy;

  beforeEach(async () => {
    echo = await startEcho();
    proxy = await FaultProxy.start({ port: echo.port });
  });
  afterEach(async () => {
    await proxy.stop();
    await echo.close();
  });

  it('pass forwards both ways', async () => {
    const result = await roundTrip(proxy.port, 'hello');
    should(result.answer).equal('hello');
  });

  it('latency holds every chunk for the given time', async () => {
    await proxy.setMode('latency', { latencyMs: 150 });
    const result = await roundTrip(proxy.port, 'slow');
    should(result.answer).equal('slow');
    should(result.ms).be.aboveOrEqual(290); // once each way
  });

  it('drop destroys open connections and each new one', async () => {
    const open = roundTrip(proxy.port, 'x'.repeat(10), 2000, true);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await proxy.setMode('drop');
    should((await open).ended).not.be.null();
    const next = await roundTrip(proxy.port, 'again');
    should(next.answer).equal('');
    should(next.ended).not.be.null();
    await proxy.setMode('pass');
    should((await roundTrip(proxy.port, 'back')).answer).equal('back');
  });

  it('refuse stops listening until the mode changes, on the same port', async () => {
    const port = proxy.port;
    await proxy.setMode('refuse');
    should((await roundTrip(port, 'no')).ended).equal('ECONNREFUSED');
    await proxy.setMode('pass');
    should(proxy.port).equal(port);
    should((await roundTrip(port, 'yes')).answer).equal('yes');
  });

  it('blackhole accepts and reads but never answers nor closes; healing delivers what was held', async () => {
    await proxy.setMode('blackhole');
    const silent = await roundTrip(proxy.port, 'void', 500);
    should(silent).match({ answer: '', ended: null });
    const healed = roundTrip(proxy.port, 'later', 2000);
    await new Promise((resolve) => setTimeout(resolve, 200));
    await proxy.setMode('pass');
    should((await healed).answer).equal('later');
  });

  it('restart closes every connection and listens again on the same port', async () => {
    const port = proxy.port;
    const open = roundTrip(port, 'x'.repeat(10), 2000, true);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await proxy.restart(200);
    should((await open).ended).not.be.null();
    should(proxy.port).equal(port);
    should((await roundTrip(port, 'again')).answer).equal('again');
  });

  it('stop closes every socket it made (client and upstream)', async () => {
    const open = roundTrip(proxy.port, 'x'.repeat(10), 3000, true);
    await new Promise((resolve) => setTimeout(resolve, 100));
    should(proxy.connections()).equal(1);
    await proxy.stop();
    should(proxy.connections()).equal(0);
    should((await open).ended).not.be.null();
    await new Promise((resolve) => setTimeout(resolve, 50));
    should(echo.sockets.size).equal(0);
  });
});
