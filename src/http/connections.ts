// Connection accounting for the HTTP listeners: a cap per listener (`max_connections`) and one per
// process (below its open-file limit), so that connections which never send a request cannot
// take every slot — or every file descriptor — and leave a new client unanswered.
//
// Each open connection is in one of three states:
// - silent: connected, no complete request yet (a new client, or a client holding a slot idle);
// - busy: one or more requests in flight (their handler is running or their response is being sent);
// - idle: kept alive between requests.
// When a cap is reached, a new connection makes room by closing the connection that has been
// silent longest, else the one idle longest: neither loses a request. Only when every connection
// is busy is the new one refused, with a 503 and a closed connection. Node's `headersTimeout`
// closes silent connections and `keepAliveTimeout` idle ones on their own; the caps make room
// before those timeouts run out.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Errors } from '../errors.js';
import { CLIENT_ERROR_LINGER_MS } from './client-error.js';
import { readFileLimit } from '../util/fd-limit.js';
import type { Logger } from '../util/log.js';

/** How often at most the limits of one listener are reported in the log. */
const REPORT_INTERVAL_MS = 60_000;
/** How long a refused connection may take to read its 503 before it is closed. */
const REFUSED_LINGER_MS = 1_000;
/** Refused connections reading their 503 at once; beyond this, a refused connection is just closed. */
const MAX_LINGERING_REFUSALS = 64;

/**
 * File descriptors kept free for everything that is not an incoming connection: database files
 * and connections, Redis, replication HTTP to other processes, log files, Node's own.
 */
function reservedDescriptors(softLimit: number): number {
  return Math.max(128, Math.floor(softLimit / 8));
}

/** The most incoming connections all listeners of this process may hold; undefined if unknown. */
export function processConnectionCeiling(): number | undefined {
  const limit = readFileLimit();
  if (!limit || !Number.isFinite(limit.soft)) return undefined;
  return Math.max(limit.soft - reservedDescriptors(limit.soft), Math.floor(limit.soft / 2));
}

/** Counts of limit events, logged at most once a minute per listener. */
class LimitReport {
  private counts = { silentClosed: 0, idleClosed: 0, refused: 0, headerTimeouts: 0 };
  private lastReport = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  private reason = '';

  constructor(
    private readonly log: Logger,
    private readonly label: () => string,
  ) {}

  record(kind: keyof LimitReport['counts'], reason?: string): void {
    this.counts[kind] += 1;
    if (reason !== undefined) this.reason = reason;
    const wait = this.lastReport + REPORT_INTERVAL_MS - Date.now();
    if (wait <= 0) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), wait).unref();
  }

  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const { silentClosed, idleClosed, refused, headerTimeouts } = this.counts;
    if (silentClosed + idleClosed + refused + headerTimeouts === 0) return;
    const parts: string[] = [];
    if (silentClosed > 0) parts.push(`closed ${silentClosed} connection(s) that had sent no request`);
    if (idleClosed > 0) parts.push(`closed ${idleClosed} idle keep-alive connection(s)`);
    if (refused > 0) parts.push(`refused ${refused} new connection(s) with 503 (every connection was busy)`);
    const capped = silentClosed + idleClosed + refused > 0 ? `${this.reason}: ` : '';
    if (headerTimeouts > 0) parts.push(`${headerTimeouts} connection(s) sent no complete request headers within header_timeout`);
    const since = Number.isFinite(this.lastReport) ? ` in the last ${Math.round((Date.now() - this.lastReport) / 1000)} s` : '';
    this.log.warn({ listener: this.label(), ...this.counts }, `connection limits on ${this.label()}${since}: ${capped}${parts.join('; ')}`);
    this.counts = { silentClosed: 0, idleClosed: 0, refused: 0, headerTimeouts: 0 };
    this.lastReport = Date.now();
  }
}

/** Every listener's guard in this process, for the process-wide cap. */
const allGuards = new Set<ConnectionGuard>();

export class ConnectionGuard {
  /** Connected, no complete request yet; in order of connection. */
  private readonly silent = new Map<Socket, number>();
  /** Kept alive between requests; in order of when they became idle. */
  private readonly idle = new Map<Socket, number>();
  /** Requests in flight per busy connection. */
  private readonly busy = new Map<Socket, number>();
  private readonly refused = new Set<Socket>();
  private readonly report: LimitReport;
  /** Where the listener listens, for log lines (set once it is bound). */
  label = 'a listener';
  /**
   * Whether a refused connection is answered with a plain-text HTTP 503 before it is closed; a TLS
   * listener's client would read that as a broken handshake, so there it is simply closed.
   */
  answersRefusals = true;

  constructor(
    readonly maxConnections: number,
    /** The cap of all listeners of this process together; undefined when unknown. */
    private readonly processCeiling: number | undefined,
    log: Logger,
  ) {
    this.report = new LimitReport(log, () => this.label);
    allGuards.add(this);
  }

  get size(): number {
    return this.silent.size + this.idle.size + this.busy.size;
  }

  /**
   * Takes a new connection in, making room if a cap is reached. False when it was refused (it is
   * answered 503 and closed here; the HTTP server must not see it).
   */
  admit(socket: Socket): boolean {
    if (this.size >= this.maxConnections) {
      if (!this.makeRoom([this], `${this.label} reached max_connections (${this.maxConnections})`)) return this.refuse(socket);
    } else if (this.processCeiling !== undefined && processConnectionCount() >= this.processCeiling) {
      const reason = `the process reached its connection ceiling (${this.processCeiling}, below its open-file limit)`;
      if (!this.makeRoom([...allGuards], reason)) return this.refuse(socket);
    }
    this.silent.set(socket, Date.now());
    socket.once('close', () => this.forget(socket));
    return true;
  }

  /**
   * A request arrived on `socket` (its headers are complete). On a TLS listener the request's
   * socket is the TLS socket over the admitted TCP one, which the caller passes instead.
   */
  requestStarted(req: IncomingMessage, res: ServerResponse, socket: Socket = req.socket): void {
    if (!this.silent.delete(socket) && !this.idle.delete(socket) && !this.busy.has(socket)) return; // not ours (closed)
    this.busy.set(socket, (this.busy.get(socket) ?? 0) + 1);
    res.once('close', () => this.requestEnded(socket));
  }

  /** A connection that failed HTTP parsing (bad request, header timeout). */
  clientError(err: NodeJS.ErrnoException, socket: Socket): void {
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT' && !this.busy.has(socket)) this.report.record('headerTimeouts');
    // The refusal handler (client-error.ts) answers and closes within its own linger bound; this
    // is the backstop should a peer never close its side, so it must outlast that linger.
    setTimeout(() => socket.destroy(), CLIENT_ERROR_LINGER_MS + REFUSED_LINGER_MS).unref();
  }

  /** Closes refused connections still lingering and stops reporting (the listener is closing). */
  close(): void {
    for (const socket of this.refused) socket.destroy();
    this.report.flush();
    allGuards.delete(this);
  }

  private requestEnded(socket: Socket): void {
    const inFlight = this.busy.get(socket);
    if (inFlight === undefined) return; // closed meanwhile
    if (inFlight > 1) {
      this.busy.set(socket, inFlight - 1);
      return;
    }
    this.busy.delete(socket);
    if (socket.destroyed) return;
    this.idle.set(socket, Date.now());
  }

  private forget(socket: Socket): void {
    this.silent.delete(socket);
    this.idle.delete(socket);
    this.busy.delete(socket);
  }

  /** Closes the longest-silent, else the longest-idle connection among `guards`' connections. */
  private makeRoom(guards: ConnectionGuard[], reason: string): boolean {
    for (const kind of ['silent', 'idle'] as const) {
      let victim: { guard: ConnectionGuard; socket: Socket; since: number } | undefined;
      for (const guard of guards) {
        const oldest = guard[kind].entries().next();
        if (!oldest.done && (victim === undefined || oldest.value[1] < victim.since)) {
          victim = { guard, socket: oldest.value[0], since: oldest.value[1] };
        }
      }
      if (victim) {
        victim.guard.forget(victim.socket);
        victim.socket.destroy();
        victim.guard.report.record(kind === 'silent' ? 'silentClosed' : 'idleClosed', reason);
        return true;
      }
    }
    this.report.record('refused', reason);
    return false;
  }

  private refuse(socket: Socket): false {
    if (!this.answersRefusals || this.refused.size >= MAX_LINGERING_REFUSALS) {
      socket.destroy();
      return false;
    }
    const error = Errors.serverBusy();
    const body = JSON.stringify(error.toJSON());
    this.refused.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => this.refused.delete(socket));
    const headers = {
      'Content-Type': 'application/json',
      'Content-Length': String(Buffer.byteLength(body)),
      ...error.headers,
      Connection: 'close',
    };
    const head = Object.entries(headers)
      .map(([name, value]) => `${name}: ${value}\r\n`)
      .join('');
    socket.end(`HTTP/1.1 ${error.status} Service Unavailable\r\n${head}\r\n${body}`);
    // Reads and drops what the client sends, so the close is not a reset that hides the answer.
    socket.resume();
    setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref();
    return false;
  }
}

function processConnectionCount(): number {
  let count = 0;
  for (const guard of allGuards) count += guard.size;
  return count;
}
