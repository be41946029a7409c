// Requests that Node's HTTP server refuses never reach a route: an unknown method, a request line
// or headers over the size limit (16 KiB), malformed framing, a request that took too long to
// arrive, a CONNECT. Node would answer them with a bare status line or close the connection
// silently; the client gets a JSON Matrix error instead, like every other answer. The connection
// is then closed (its framing can no longer be trusted), but only after what the client is still
// sending has been read for a while, so that the close does not reset the connection before the
// client has read the answer.

import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { Errors, type MatrixError } from '../errors.js';
import { CORS_HEADERS } from './dispatch.js';

interface ParserError extends Error {
  code?: string;
  /** The bytes the parser had when it gave up (Node sets it for parse errors). */
  rawPacket?: Buffer;
}

/** How long a refused connection is read from (and the data thrown away) before it is closed. */
export const CLIENT_ERROR_LINGER_MS = 5_000;

/**
 * Makes `server` answer what it refuses with Matrix errors (see above). It also serves HTTP/1.1
 * requests without a `Host` header, which Node would refuse with an empty 400: Synapse serves them,
 * and nothing here depends on the header.
 */
export function answerRefusedRequests(server: Server): void {
  server.on('clientError', (err: Error, socket: Duplex) => answerClientError(err, socket));
  // Without a listener Node closes a CONNECT's connection without a word.
  server.on('connect', (_req: IncomingMessage, socket: Duplex) =>
    writeErrorAndClose(socket, Errors.unrecognized(405, 'Unrecognized request method')),
  );
  // The `requireHostHeader` option, which Node reads from the server for each request.
  (server as Server & { requireHostHeader: boolean }).requireHostHeader = false;
}

/** The answer to a request the parser refused, or undefined when there is nobody to answer. */
export function clientErrorAnswer(err: ParserError): MatrixError | undefined {
  switch (err.code) {
    case 'HPE_INVALID_METHOD':
      // As the dispatcher answers a method that no route of the path has.
      return Errors.unrecognized(405, 'Unrecognized request method');
    case 'HPE_HEADER_OVERFLOW':
      return requestLineTooLong(err.rawPacket)
        ? Errors.tooLarge('Request URI too long', 414)
        : Errors.tooLarge('Request headers too large', 431);
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return Errors.tooLarge('Chunk extensions too large');
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return Errors.requestTimeout();
    case 'ECONNRESET':
    case 'EPIPE':
    case 'ETIMEDOUT':
      return undefined; // the connection is gone
    default:
      return Errors.malformedRequest();
  }
}

/** Longer request lines are answered 414 rather than 431 (nginx's limit for one line). */
const MAX_REQUEST_LINE_BYTES = 8192;

/**
 * Whether the header overflow is the request line's doing. Node counts the request line with the
 * headers and hands over only the chunk being parsed: when that chunk starts the request, the
 * request line is what comes before its first CRLF (or all of it).
 */
function requestLineTooLong(packet: Buffer | undefined): boolean {
  if (packet === undefined || !/^[A-Za-z]+ /.test(packet.subarray(0, 32).toString('latin1'))) return false;
  const end = packet.indexOf('\r\n');
  return end < 0 || end > MAX_REQUEST_LINE_BYTES;
}

const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  413: 'Payload Too Large',
  414: 'URI Too Long',
  431: 'Request Header Fields Too Large',
};

/** Connections already answered: the parser reports each later chunk as another error. */
const answered = new WeakSet<Duplex>();

/**
 * The server's `clientError` handler: writes the Matrix error, reads and drops what still arrives
 * for at most `lingerMs`, then closes. A connection where nothing can be written (it is gone, or
 * a response has already started) is closed at once.
 */
export function answerClientError(err: Error, socket: Duplex, lingerMs = CLIENT_ERROR_LINGER_MS): void {
  if (answered.has(socket)) return;
  const answer = clientErrorAnswer(err);
  const started = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage?.headersSent === true;
  if (answer === undefined || started || !socket.writable) {
    socket.destroy();
    return;
  }
  writeErrorAndClose(socket, answer, (err as ParserError).code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 0 : lingerMs);
}

/**
 * Writes `answer` as a whole HTTP response and closes the connection: at once when `lingerMs` is
 * 0 (the client is not sending anything more), else once the client closes its side or after
 * `lingerMs`, reading and dropping what it still sends meanwhile.
 */
function writeErrorAndClose(socket: Duplex, answer: MatrixError, lingerMs = CLIENT_ERROR_LINGER_MS): void {
  answered.add(socket);
  const body = JSON.stringify(answer.toJSON());
  const headers = {
    ...CORS_HEADERS,
    'Content-Type': 'application/json',
    'Content-Length': String(Buffer.byteLength(body)),
    'Cache-Control': 'no-cache, no-store, must-revalidate',
    Connection: 'close',
  };
  const head = Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  socket.end(`HTTP/1.1 ${answer.status} ${STATUS_TEXT[answer.status] ?? 'Error'}\r\n${head}\r\n${body}`);
  if (lingerMs === 0) {
    socket.once('finish', () => socket.destroy());
    return;
  }
  socket.resume();
  const timer = setTimeout(() => socket.destroy(), lingerMs);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}
