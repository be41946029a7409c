// Small HTTP servers on UNIX sockets standing in for the instances of a deployment in routing
// tests: each answers every request with its own name and what it received, so a test sees where
// the router or the proxy sent a request.

import { createServer, type Server } from 'node:http';
import { rmSync } from 'node:fs';

export interface Echo {
  instance: string;
  method: string;
  url: string;
  bodyBytes: number;
  headers: Record<string, string | string[] | undefined>;
}

export interface StandIn {
  instance: string;
  path: string;
  /** Requests it answered. */
  readonly seen: Echo[];
  close(): Promise<void>;
}

/** Listens on `path`; `/health` answers OK, a URL with `big=1` gets 4 MiB, anything else an Echo. */
export function startStandIn(instance: string, path: string): Promise<StandIn> {
  const seen: Echo[] = [];
  const server: Server = createServer((req, res) => {
    let bodyBytes = 0;
    req.on('data', (chunk: Buffer) => (bodyBytes += chunk.length));
    req.on('end', () => {
      if (req.url === '/health') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('OK');
        return;
      }
      const echo: Echo = { instance, method: req.method ?? '', url: req.url ?? '', bodyBytes, headers: req.headers };
      seen.push(echo);
      if (req.url?.includes('big=1')) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-instance': instance });
        res.end(Buffer.alloc(4 * 1024 * 1024, 7));
        return;
      }
      const text = JSON.stringify(echo);
      res.writeHead(200, { 'content-type': 'application/json', 'x-instance': instance, 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
  });
  rmSync(path, { force: true });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () =>
      resolve({
        instance,
        path,
        seen,
        close: () =>
          new Promise<void>((r) => {
            server.close(() => r());
            server.closeAllConnections();
          }),
      }),
    );
  });
}
