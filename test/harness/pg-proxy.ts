// A byte-for-byte relay in front of a real PostgreSQL's UNIX socket, for tests of a connection
// that breaks under a client: `cut()` closes every relayed connection on both sides at once, as a
// network failure or a crashed proxy would, while the server itself keeps running (and keeps
// whatever its backends were doing). Clients reach it as they reach the server: `host: proxy.dir`.

import { rmSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.js';

export interface PostgresProxy {
  /** The socket directory to give clients as `host`. */
  dir: string;
  /** Closes every connection relayed now; new ones are relayed as before. */
  cut(): void;
  close(): Promise<void>;
}

/** PostgreSQL's socket file name in its socket directory (the default port). */
const SOCKET_NAME = '.s.PGSQL.5432';

export async function startPostgresProxy(serverSocketDir: string): Promise<PostgresProxy> {
  const dir = tempDir('myelin-pg-proxy-');
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };
  const server = createServer((client) => {
    const upstream = createConnection(join(serverSocketDir, SOCKET_NAME));
    track(client);
    track(upstream);
    const closeBoth = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', closeBoth);
    upstream.on('error', closeBoth);
    client.on('close', closeBoth);
    upstream.on('close', closeBoth);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  const path = join(dir, SOCKET_NAME);
  rmSync(path, { force: true });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    dir,
    cut() {
      for (const socket of sockets) socket.destroy();
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
