/**
 * Postgres with pgvector for the tests, in this process: PGlite (Postgres compiled
 * to WebAssembly) with the vector extension, served over the Postgres wire
 * protocol by PGLiteSocketServer on 127.0.0.1 and a free port, so the ordinary
 * `pg` client talks to it as to any server.
 *
 * PGlite is a single Postgres session: the socket server multiplexes connections
 * onto it (queries from different connections run one at a time), and
 * pg_stat_progress_create_index never shows a build. It checks no password.
 *
 * Also here: a stand-in server that rejects every login, since PGlite cannot.
 */
import net from 'node:net';

export interface PgliteServer {
  /** postgres://postgres@127.0.0.1:<port>/postgres (no password: PGlite checks none). */
  url: string;
  port: number;
  /** Run SQL directly on the database, past the socket server (e.g. to break things on purpose). */
  exec(sqlText: string): Promise<void>;
  /** Connections the socket server holds open right now. */
  activeConnections(): number;
  stop(): Promise<void>;
}

/** Start PGlite with pgvector behind a socket server; `stop()` closes both. */
export async function startPgliteServer(options: { maxConnections?: number } = {}): Promise<PgliteServer> {
  // Loaded here: they are ES-module packages with CommonJS builds, only needed by these tests.
  const { PGlite } = await import('@electric-sql/pglite');
  const { vector } = await import('@electric-sql/pglite-pgvector');
  const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');

  const db = await PGlite.create({ extensions: { vector } });
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: options.maxConnections ?? 64 });
  try {
    await server.start();
  } catch (err) {
    await db.close();
    throw err;
  }
  const port = Number(server.getServerConn().split(':').pop());
  let stopped = false;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    exec: async (sqlText) => {
      await db.exec(sqlText);
    },
    activeConnections: () => server.getStats().activeConnections,
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.stop();
      await db.close();
    },
  };
}

/** A port on 127.0.0.1 that nothing listens on (it was free a moment ago). */
export { freePort as unusedPort } from './ports';

export interface RejectingServer {
  url: string;
  /** Passwords the clients sent (to check they were sent, and never shown elsewhere). */
  passwordsSeen: string[];
  stop(): Promise<void>;
}

/**
 * A TEST DOUBLE of a Postgres server that rejects every login, as a real one does
 * for a wrong password: it answers the startup message with "send your password"
 * (AuthenticationCleartextPassword), reads the password message, then sends an
 * ErrorResponse with SQLSTATE 28P01 "password authentication failed" and hangs up.
 */
export async function startPasswordRejectingServer(): Promise<RejectingServer> {
  const passwordsSeen: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffer = Buffer.alloc(0);
    let started = false;
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        if (!started) {
          // Startup packets have no type byte: int32 length, int32 code.
          if (buffer.length < 8) return;
          const length = buffer.readInt32BE(0);
          if (buffer.length < length) return;
          const code = buffer.readInt32BE(4);
          buffer = buffer.subarray(length);
          if (code === 80877103) {
            socket.write('N'); // SSLRequest: no TLS here
            continue;
          }
          started = true;
          socket.write(authenticationCleartextPassword());
          continue;
        }
        if (buffer.length < 5) return;
        const type = String.fromCharCode(buffer[0]);
        const length = buffer.readInt32BE(1);
        if (buffer.length < 1 + length) return;
        const body = buffer.subarray(5, 1 + length);
        buffer = buffer.subarray(1 + length);
        if (type === 'p') {
          passwordsSeen.push(body.toString('utf8').replace(/\0$/, ''));
          socket.end(errorResponse('28P01', 'password authentication failed for user "postgres"'));
          return;
        }
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    passwordsSeen,
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function message(type: string, body: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.write(type, 0, 'latin1');
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

function authenticationCleartextPassword(): Buffer {
  const body = Buffer.alloc(4);
  body.writeInt32BE(3, 0);
  return message('R', body);
}

function errorResponse(sqlState: string, text: string): Buffer {
  const fields = [
    ['S', 'FATAL'],
    ['V', 'FATAL'],
    ['C', sqlState],
    ['M', text],
  ];
  const body = Buffer.concat([...fields.map(([k, v]) => Buffer.from(`${k}${v}\0`, 'utf8')), Buffer.from([0])]);
  return message('E', body);
}
