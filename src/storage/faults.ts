// Which database errors pass and which do not: the one place that tells them apart, for both
// backends. A passing fault (the server restarting, a lost connection, a lock held too long, a full
// disk) is retried where that is safe and otherwise reaches the client as a retriable 503; anything
// else (a bad statement, a violated constraint, a bug) is permanent and stays as it was thrown.

import { DatabaseUnavailableError, type DatabaseFaultKind } from './database.js';
import type { Logger } from '../util/log.js';

/** Socket errors of a connection to the database server (TCP, or a UNIX socket that is gone). */
const UNREACHABLE_SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ENOENT', // the server's UNIX socket file is gone: the server is stopped
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ENOTCONN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENETDOWN',
  'EAI_AGAIN',
]);

/** node-postgres's own errors for a connection that failed or ended under it. */
const UNREACHABLE_DRIVER_MESSAGES = [
  /^Connection terminated/, // "… unexpectedly", "… due to connection timeout"
  /is not queryable$/, // "Client has encountered a connection error and is not queryable"
];

/** node-pg-pool's error when no pooled connection came free in time: busy, not unreachable. */
const POOL_EXHAUSTED = /^timeout exceeded when trying to connect/;

/**
 * PostgreSQL SQLSTATEs (appendix A of its manual) that pass: class 08 (connection exception),
 * 57P01–57P03 (the server is shutting down, crashed, or is starting up), class 53 (insufficient
 * resources: disk full, out of memory, too many connections), 58030 (I/O error), and the two
 * races a transaction may simply be run again after: 40001 (serialization failure) and 40P01
 * (deadlock detected).
 */
function postgresFault(sqlState: string): DatabaseFaultKind | undefined {
  if (sqlState.startsWith('08') || sqlState === '57P01' || sqlState === '57P02' || sqlState === '57P03') return 'unreachable';
  if (sqlState.startsWith('53') || sqlState === '58030') return 'resources';
  if (sqlState === '40001' || sqlState === '40P01') return 'conflict';
  return undefined;
}

/**
 * SQLite result codes (https://sqlite.org/rescode.html) that pass: the database is locked by
 * another connection (BUSY, LOCKED, with their extended codes), or the disk is full, unreadable or
 * out of memory (FULL, IOERR_*, NOMEM, CANTOPEN, PROTOCOL). CORRUPT, CONSTRAINT, ERROR and the rest
 * are permanent.
 */
function sqliteFault(code: string): DatabaseFaultKind | undefined {
  const primary = code.split('_').slice(0, 2).join('_'); // SQLITE_IOERR_WRITE → SQLITE_IOERR
  if (primary === 'SQLITE_BUSY' || primary === 'SQLITE_LOCKED') return 'busy';
  if (['SQLITE_FULL', 'SQLITE_IOERR', 'SQLITE_NOMEM', 'SQLITE_CANTOPEN', 'SQLITE_PROTOCOL'].includes(primary)) return 'resources';
  return undefined;
}

/** The kind of passing fault `err` is, or undefined when it is permanent. */
export function databaseFaultOf(err: unknown): DatabaseFaultKind | undefined {
  if (err instanceof DatabaseUnavailableError) return err.kind;
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (code.startsWith('SQLITE_')) return sqliteFault(code);
    if (/^[0-9A-Z]{5}$/.test(code)) {
      const kind = postgresFault(code);
      if (kind) return kind;
    }
    if (UNREACHABLE_SOCKET_CODES.has(code)) return 'unreachable';
  }
  const message = (err as { message?: unknown }).message;
  if (typeof message === 'string') {
    if (UNREACHABLE_DRIVER_MESSAGES.some((pattern) => pattern.test(message))) return 'unreachable';
    if (POOL_EXHAUSTED.test(message)) return 'busy';
  }
  // An error wrapped by a driver or by us: the cause decides.
  const cause = (err as { cause?: unknown }).cause;
  return cause !== undefined && cause !== err ? databaseFaultOf(cause) : undefined;
}

export function isTransientDatabaseError(err: unknown): boolean {
  return databaseFaultOf(err) !== undefined;
}

const DESCRIPTIONS: Record<DatabaseFaultKind, string> = {
  unreachable: 'database unreachable',
  busy: 'database busy (locked by another connection, or no free connection)',
  resources: 'database out of resources',
  conflict: 'transaction conflict',
};

/** `err` as a `DatabaseUnavailableError` when it is a passing fault; otherwise unchanged. */
export function asUnavailable(err: unknown, committed: 'no' | 'unknown' = 'no'): unknown {
  if (err instanceof DatabaseUnavailableError && err.committed === committed) return err;
  const kind = databaseFaultOf(err);
  if (!kind) return err;
  const cause = err instanceof DatabaseUnavailableError ? err.cause : err;
  return new DatabaseUnavailableError(kind, `${DESCRIPTIONS[kind]}: ${messageOf(cause)}`, { cause, committed });
}

export function messageOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  return typeof code === 'string' && !message.includes(code) ? `${message} (${code})` : message;
}

/**
 * Says in the log when the database stops answering and when it is back, once each, however many
 * operations fail in between: "database unreachable; retrying" … "database connection restored".
 */
export class DatabaseHealth {
  private failingSince: number | undefined;
  private failingKind: DatabaseFaultKind | undefined;

  constructor(
    private readonly log: Logger | undefined,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether the last operation failed on a passing fault (and none succeeded since). */
  get failing(): boolean {
    return this.failingSince !== undefined;
  }

  failed(kind: DatabaseFaultKind, err: unknown): void {
    // A lost race is no news about the database.
    if (kind === 'conflict' || this.failingSince !== undefined) return;
    this.failingSince = this.now();
    this.failingKind = kind;
    const detail = messageOf(err instanceof DatabaseUnavailableError ? (err.cause ?? err) : err);
    if (kind === 'unreachable') this.log?.warn({ err: detail }, 'database unreachable; retrying');
    else this.log?.warn({ err: detail, kind }, `${DESCRIPTIONS[kind]}; answering 503 until it passes`);
  }

  succeeded(): void {
    if (this.failingSince === undefined) return;
    const downMs = this.now() - this.failingSince;
    const kind = this.failingKind;
    this.failingSince = undefined;
    this.failingKind = undefined;
    this.log?.info({ downMs }, kind === 'unreachable' ? 'database connection restored' : 'database serves again');
  }
}
