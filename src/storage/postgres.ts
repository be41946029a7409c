// PostgreSQL through node-postgres, over TCP or a UNIX socket directory (`host: /run/postgresql`).
// Required for worker mode, where several processes share the database.
//
// The server may restart, or drop connections, at any time (`pg_ctl restart`, a failover,
// `pg_terminate_backend`). None of that may crash the process or lose a write: a connection that
// fails is thrown away and the pool opens a new one; work that is safe to repeat is retried with
// backoff for a few seconds (reads, statements that never reached the server, and whole
// transactions that did not commit); what still fails reaches the caller as a
// `DatabaseUnavailableError` (a retriable 503 for clients). A transaction whose COMMIT was in flight
// when the connection broke is neither reported failed nor run again blindly: its outcome is asked
// of the server (`txid_status`) once it answers, so a commit is never done twice.

import { createRequire } from 'node:module';
import type pg from 'pg';
import type { Logger } from '../util/log.js';
import { DatabaseError, type Database, type DatabaseFaultKind, type Queryable, type Row, type SqlValue } from './database.js';
import { asUnavailable, databaseFaultOf, DatabaseHealth, messageOf } from './faults.js';

// BIGINT comes back as a string by default; our ids, positions and timestamps fit in 2^53.
// Loaded on first use: a server on SQLite never loads the PostgreSQL driver.
let driver: typeof pg | undefined;
function loadDriver(): typeof pg {
  if (!driver) {
    driver = createRequire(import.meta.url)('pg') as typeof pg;
    driver.types.setTypeParser(driver.types.builtins.INT8, (value) => Number(value));
  }
  return driver;
}

export interface PostgresOptions {
  host?: string;
  port?: number;
  user?: string;
  password?: string;
  database?: string;
  minConnections?: number;
  maxConnections?: number;
  /** Where to say that the database became unreachable and when it is back. */
  log?: Logger;
  /**
   * How long an operation that failed on a passing fault is retried before its caller gets a
   * `DatabaseUnavailableError` (default 5 s: a server restart passes unnoticed).
   */
  retryWindowMs?: number;
  /** How long opening a connection (or waiting for a free one) may take (default 10 s). */
  connectTimeoutMs?: number;
}

const numbered = new Map<string, string>();

/** Rewrites `?` placeholders to `$1, $2, …` (our SQL never has `?` inside string literals). */
export function numberPlaceholders(sql: string): string {
  let out = numbered.get(sql);
  if (out === undefined) {
    let n = 0;
    out = sql.replace(/\?/g, () => `$${++n}`);
    numbered.set(sql, out);
  }
  return out;
}

function queryable(client: pg.PoolClient): Queryable {
  const query = (sql: string, params: readonly SqlValue[] = []) =>
    client.query({ text: numberPlaceholders(sql), values: params as unknown[] });
  return {
    async all<T = Row>(sql: string, params?: readonly SqlValue[]) {
      return (await query(sql, params)).rows as T[];
    },
    async get<T = Row>(sql: string, params?: readonly SqlValue[]) {
      return (await query(sql, params)).rows[0] as T | undefined;
    },
    async run(sql: string, params?: readonly SqlValue[]) {
      return { changes: (await query(sql, params)).rowCount ?? 0 };
    },
  };
}

/**
 * Whether a statement (or COMMIT) that failed with `err`, a passing fault of `kind`, certainly did
 * not take effect: node-postgres refused it before sending (its connection had already failed), or
 * the server answered it with an error that rolls back (a lost race, a full disk). A connection
 * that ended under it, even with the server's 57P01 "terminating connection" as its last words,
 * leaves that open: the server may have committed just before.
 */
function certainlyNotApplied(err: unknown, kind: DatabaseFaultKind): boolean {
  const message = (err as { message?: unknown } | null)?.message;
  if (typeof message === 'string' && /is not queryable$/.test(message)) return true;
  return kind !== 'unreachable' && answeredByServer(err);
}

/** The server answered with an error (a SQLSTATE), so it is reachable. */
function answeredByServer(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && typeof (err as { severity?: unknown }).severity === 'string';
}

/** A SELECT changes nothing we care about (`nextval` at most skips a value): it may run again. */
function repeatable(sql: string): boolean {
  return /^\s*SELECT\b/i.test(sql);
}

/** A failure that must reach the caller as it is, without another attempt. */
class Final extends Error {
  constructor(readonly error: unknown) {
    super('a failure that is not retried');
  }
}

interface Checkout {
  readonly client: pg.PoolClient;
  /** The connection reported an error while checked out: it must not go back to the pool. */
  broken: boolean;
  release(destroy: boolean): void;
}

const INITIAL_RETRY_DELAY_MS = 50;
const MAX_RETRY_DELAY_MS = 1_000;
/** How long `close` lets running statements finish before cutting their connections. */
const CLOSE_GRACE_MS = 5_000;

export class PostgresDatabase implements Database {
  readonly dialect = 'postgres' as const;
  readonly orderedWrites = false;
  private readonly pool: pg.Pool;
  private readonly health: DatabaseHealth;
  private readonly retryWindowMs: number;
  private readonly log: Logger | undefined;
  /** Connections checked out now (to cut them if they are still busy at close). */
  private readonly checkedOut = new Set<pg.PoolClient>();
  private readonly closing = new AbortController();

  constructor(options: PostgresOptions) {
    this.log = options.log;
    this.health = new DatabaseHealth(options.log);
    this.retryWindowMs = options.retryWindowMs ?? 5_000;
    this.pool = new (loadDriver().Pool)({
      host: options.host,
      port: options.port,
      user: options.user,
      password: options.password,
      database: options.database,
      min: options.minConnections ?? 5,
      max: options.maxConnections ?? 10,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
      // Over TCP, a server that vanished without closing the connection is noticed.
      keepAlive: true,
    });
    // An idle connection that is closed under us (server restart, pg_terminate_backend) has
    // already been dropped by the pool when this fires; the next checkout opens a new one.
    this.pool.on('error', (err) => this.log?.info({ err: messageOf(err) }, 'an idle database connection was closed; it will be replaced'));
  }

  async all<T = Row>(sql: string, params?: readonly SqlValue[]): Promise<T[]> {
    return (await this.statement(sql, params)).rows as T[];
  }

  async get<T = Row>(sql: string, params?: readonly SqlValue[]): Promise<T | undefined> {
    return (await this.statement(sql, params)).rows[0] as T | undefined;
  }

  async run(sql: string, params?: readonly SqlValue[]): Promise<{ changes: number }> {
    return { changes: (await this.statement(sql, params)).rowCount ?? 0 };
  }

  async exec(sql: string): Promise<void> {
    await this.statement(sql, undefined);
  }

  /**
   * Runs `fn` in a transaction. One that fails on a passing fault before COMMIT is run again from
   * the start (for up to the retry window). One whose connection broke during COMMIT is looked up
   * by its transaction id once the server answers: committed → its result is returned; rolled back
   * → it is run again. Every transaction gets its id at BEGIN (our transactions all write, so this
   * costs nothing; it travels in the same round trip as BEGIN).
   */
  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.retryWindowMs;
    let delay = INITIAL_RETRY_DELAY_MS;
    for (;;) {
      this.ensureOpen();
      let checkout: Checkout | undefined;
      let xid: string | undefined;
      let committing = false;
      let result: T | undefined;
      try {
        checkout = await this.checkout();
        const begun = (await checkout.client.query('BEGIN; SELECT txid_current() AS xid')) as unknown as pg.QueryResult[];
        xid = String((begun[1]!.rows[0] as { xid: number | string }).xid);
        result = await fn(queryable(checkout.client));
        committing = true;
        await checkout.client.query('COMMIT');
        checkout.release(false);
        this.health.succeeded();
        return result;
      } catch (err) {
        const kind = databaseFaultOf(err);
        if (checkout) {
          let dead = checkout.broken || kind === 'unreachable';
          if (!dead && !committing) {
            await checkout.client.query('ROLLBACK').catch(() => {
              dead = true;
            });
          }
          checkout.release(dead);
        }
        if (kind === undefined) {
          if (answeredByServer(err)) this.health.succeeded();
          throw err;
        }
        this.health.failed(kind, err);
        // A COMMIT that may have been applied is looked up; only then may the transaction run again.
        if (committing && !certainlyNotApplied(err, kind)) {
          if ((await this.commitOutcome(xid!, err)) === 'committed') return result as T;
        }
        if (this.closing.signal.aborted || Date.now() + delay > deadline) throw asUnavailable(err);
        await this.pause(kind === 'conflict' ? Math.random() * delay : delay);
        delay = Math.min(delay * 2, MAX_RETRY_DELAY_MS);
      }
    }
  }

  async close(): Promise<void> {
    if (this.closing.signal.aborted) return;
    this.closing.abort();
    const ended = this.pool.end();
    // A statement that does not finish (a server that stopped answering) must not hold the
    // process's shutdown forever: its connection is cut after a grace period.
    const timer = setTimeout(() => {
      for (const client of this.checkedOut)
        (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
    }, CLOSE_GRACE_MS);
    timer.unref();
    try {
      await ended;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * One statement outside a transaction, on a pooled connection. Retried after a passing fault
   * when it cannot have taken effect (it never reached the server, or the server refused it) or
   * when it is a SELECT; a write whose connection ended under it may have been applied, and its
   * caller learns that (`committed: 'unknown'`; a client retries such a request as it would after
   * any lost answer).
   */
  private async statement(sql: string, params: readonly SqlValue[] | undefined): Promise<pg.QueryResult> {
    const query = params === undefined ? { text: sql } : { text: numberPlaceholders(sql), values: params as unknown[] };
    const deadline = Date.now() + this.retryWindowMs;
    let delay = INITIAL_RETRY_DELAY_MS;
    for (;;) {
      this.ensureOpen();
      try {
        const checkout = await this.checkout();
        let result: pg.QueryResult;
        try {
          result = await checkout.client.query(query);
        } catch (err) {
          const kind = databaseFaultOf(err);
          checkout.release(kind === 'unreachable');
          if (kind !== undefined && !certainlyNotApplied(err, kind) && !repeatable(sql)) {
            this.health.failed(kind, err);
            throw new Final(asUnavailable(err, 'unknown'));
          }
          throw err;
        }
        checkout.release(false);
        this.health.succeeded();
        return result;
      } catch (err) {
        if (err instanceof Final) throw err.error;
        const kind = databaseFaultOf(err);
        if (kind === undefined) {
          if (answeredByServer(err)) this.health.succeeded();
          throw err;
        }
        this.health.failed(kind, err);
        if (this.closing.signal.aborted || Date.now() + delay > deadline) throw asUnavailable(err);
        await this.pause(delay);
        delay = Math.min(delay * 2, MAX_RETRY_DELAY_MS);
      }
    }
  }

  /**
   * Whether transaction `xid`, whose COMMIT was sent on a connection that then broke, committed.
   * Asked until the server answers (it may be restarting); 'in progress' means its backend is
   * still finishing it. Only closing the database stops the wait: then the outcome stays unknown.
   */
  private async commitOutcome(xid: string, lost: unknown): Promise<'committed' | 'aborted'> {
    this.log?.warn({ err: messageOf(lost), xid }, 'the database connection broke during a COMMIT; asking the server whether it committed');
    let delay = INITIAL_RETRY_DELAY_MS;
    for (;;) {
      if (this.closing.signal.aborted) throw asUnavailable(lost, 'unknown');
      let status: unknown;
      try {
        const checkout = await this.checkout();
        try {
          status = (await checkout.client.query<{ status: string | null }>('SELECT txid_status($1) AS status', [xid])).rows[0]?.status;
          checkout.release(false);
        } catch (err) {
          checkout.release(databaseFaultOf(err) === 'unreachable');
          throw err;
        }
      } catch (err) {
        if (this.closing.signal.aborted) throw asUnavailable(lost, 'unknown');
        const kind = databaseFaultOf(err);
        if (kind === undefined) throw err;
        this.health.failed(kind, err);
        await this.pause(delay);
        delay = Math.min(delay * 2, MAX_RETRY_DELAY_MS);
        continue;
      }
      this.health.succeeded();
      if (status === 'committed' || status === 'aborted') {
        this.log?.info(
          { xid, status },
          `the transaction interrupted during COMMIT was ${status === 'committed' ? 'committed' : 'rolled back'}`,
        );
        return status;
      }
      // NULL: too old for the server to remember (never within seconds): the outcome stays unknown.
      if (status !== 'in progress') throw asUnavailable(lost, 'unknown');
      await this.pause(delay);
      delay = Math.min(delay * 2, MAX_RETRY_DELAY_MS);
    }
  }

  /** A pooled connection, watched for errors while it is ours (an unwatched one would crash the process). */
  private async checkout(): Promise<Checkout> {
    this.ensureOpen();
    const client = await this.pool.connect();
    const checkout: Checkout = {
      client,
      broken: false,
      release: (destroy) => {
        client.off('error', onError);
        this.checkedOut.delete(client);
        // A broken connection is closed and dropped from the pool instead of being reused.
        client.release(destroy || checkout.broken ? true : undefined);
      },
    };
    // Fires when the server ends the connection between two statements of ours (e.g. 57P01
    // "terminating connection due to administrator command"); the next statement then fails too.
    const onError = (err: Error) => {
      checkout.broken = true;
      this.log?.debug({ err: messageOf(err) }, 'a database connection in use failed');
    };
    client.on('error', onError);
    this.checkedOut.add(client);
    return checkout;
  }

  private ensureOpen(): void {
    if (this.closing.signal.aborted) throw new DatabaseError('the database is closed');
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const signal = this.closing.signal;
      if (signal.aborted) return resolve();
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done);
    });
  }
}
