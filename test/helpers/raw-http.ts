// HTTP over a bare socket, for requests that HTTP client libraries refuse to send (unknown
// methods, request lines over the limit, a Content-Length the body does not have) and for clients
// that send a whole body before reading the answer.

import { connect, type Socket } from 'node:net';

export interface RawTarget {
  /** `http://host:port`... */
  baseUrl?: string;
  /** ...or a UNIX socket. */
  socketPath?: string;
}

export interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  text: string;
  json: any;
}

export interface RawExchangeOptions {
  /** Body bytes to send after `head`, in 64 KiB chunks (a Content-Length is the caller's job). */
  bodyBytes?: number;
  /**
   * Send everything before reading anything, as simple clients do: the answer is only looked at
   * once the last byte is written. Default: read while sending.
   */
  readAfterSending?: boolean;
  /** Give up after this long (default 30 s). */
  timeoutMs?: number;
}

function open(target: RawTarget): Socket {
  if (target.socketPath !== undefined) return connect(target.socketPath);
  const url = new URL(target.baseUrl!);
  return connect(Number(url.port), url.hostname);
}

/** Sends `head` (and `bodyBytes` of spaces) and resolves with the first complete response. */
export function rawExchange(target: RawTarget, head: string | Buffer, options: RawExchangeOptions = {}): Promise<RawAnswer> {
  const socket = open(target);
  return new Promise<RawAnswer>((resolve, reject) => {
    let received = Buffer.alloc(0);
    let settled = false;
    const finish = (err: Error | undefined, answer?: RawAnswer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(answer!);
    };
    const timer = setTimeout(
      () =>
        finish(
          new Error(
            `no complete answer within ${options.timeoutMs ?? 30_000} ms; got ${JSON.stringify(received.toString('latin1').slice(0, 300))}`,
          ),
        ),
      options.timeoutMs ?? 30_000,
    );
    const tryParse = () => {
      const answer = parseResponse(received);
      if (answer) finish(undefined, answer);
    };
    const startReading = () => {
      socket.on('data', (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        tryParse();
      });
      socket.on('end', () =>
        finish(
          parseResponse(received)
            ? undefined
            : new Error(`connection closed after ${JSON.stringify(received.toString('latin1').slice(0, 300))}`),
          parseResponse(received),
        ),
      );
    };
    socket.on('error', (err) =>
      finish(
        new Error(
          `${(err as NodeJS.ErrnoException).code ?? err.message} ` +
            `after receiving ${JSON.stringify(received.toString('latin1').slice(0, 300))}`,
        ),
      ),
    );
    if (!options.readAfterSending) startReading();
    socket.write(head);
    const total = options.bodyBytes ?? 0;
    const chunk = Buffer.alloc(65536, 0x20);
    let sent = 0;
    const pump = () => {
      while (sent < total) {
        const piece = total - sent >= chunk.length ? chunk : chunk.subarray(0, total - sent);
        sent += piece.length;
        if (!socket.write(piece)) {
          socket.once('drain', pump);
          return;
        }
      }
      if (options.readAfterSending) startReading();
    };
    pump();
  });
}

/** The first complete response in `bytes` (with a Content-Length body), or undefined. */
function parseResponse(bytes: Buffer): RawAnswer | undefined {
  const end = bytes.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const lines = bytes.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1] ?? NaN);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const length = Number(headers['content-length'] ?? 0);
  if (bytes.length < end + 4 + length) return undefined;
  const text = bytes.subarray(end + 4, end + 4 + length).toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status, headers, text, json };
}
