// The one interface every store is written against. SQL is shared between SQLite and PostgreSQL:
// write it with `?` placeholders (the PostgreSQL backend numbers them), store flags as INTEGER
// 0/1 and times as BIGINT milliseconds, and use only syntax both dialects accept (`ON CONFLICT`,
// `RETURNING`, `LIMIT`). Where the dialects truly differ, branch on `dialect` in the store.

export type SqlValue = string | number | bigint | null | Uint8Array;
export type Row = Record<string, unknown>;

export interface Queryable {
  /** All rows of a query. */
  all<T = Row>(sql: string, params?: readonly SqlValue[]): Promise<T[]>;
  /** The first row, or undefined. */
  get<T = Row>(sql: string, params?: readonly SqlValue[]): Promise<T | undefined>;
  /** A statement without a result set; returns the number of rows it changed. */
  run(sql: string, params?: readonly SqlValue[]): Promise<{ changes: number }>;
}

/**
 * What a handler that writes through several stores at once needs of the database: a transaction
 * to pass to the stores' methods, and no more (handlers never query the database themselves).
 */
export interface TransactionRunner {
  /**
   * Whether transactions run one after another in the order they were started (SQLite's single
   * write connection), so a transaction may rely on the ones started before it having run first.
   */
  readonly orderedWrites: boolean;
  /**
   * Runs `fn` in a transaction: committed when it resolves, rolled back when it throws. Reads made
   * through the `Database` itself while a transaction is open see only committed data.
   *
   * `fn` may run more than once: a transaction that lost its connection before it committed is run
   * again from the start (see `DatabaseUnavailableError`). It must therefore change nothing outside
   * the transaction that a second run would not set right.
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
}

export interface Database extends Queryable, TransactionRunner {
  readonly dialect: 'sqlite' | 'postgres';
  /** Runs several statements separated by `;` (schema changes); no parameters. */
  exec(sql: string): Promise<void>;
  close(): Promise<void>;
}

export class DatabaseError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DatabaseError';
  }
}

/**
 * What kind of passing fault stopped a database operation (see `faults.ts`):
 * - `unreachable`: the connection was refused, lost or reset, or the server is starting up or
 *   shutting down;
 * - `busy`: the database is locked by someone else for longer than we wait (SQLite), or no pooled
 *   connection came free in time (PostgreSQL);
 * - `resources`: the server or disk is out of space, memory or connections, or an I/O error;
 * - `conflict`: the transaction lost a race (serialization failure, deadlock) and may simply be
 *   run again.
 */
export type DatabaseFaultKind = 'unreachable' | 'busy' | 'resources' | 'conflict';

/**
 * The database cannot serve this operation now, for a reason that passes (its `kind`): the same
 * request may succeed later, so clients get a retriable answer (503 with `Retry-After`), never a
 * 500. Thrown by the backends once their own retries are exhausted; the original error is `cause`.
 *
 * `committed` is `'unknown'` only when the connection was lost while a COMMIT was in flight and its
 * outcome could not be learned before the database was closed; otherwise the operation did not
 * take effect (or, for a single statement outside a transaction that was already sent, may have:
 * `'unknown'` too).
 */
export class DatabaseUnavailableError extends DatabaseError {
  constructor(
    readonly kind: DatabaseFaultKind,
    message: string,
    options: { cause?: unknown; committed?: 'no' | 'unknown' } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'DatabaseUnavailableError';
    this.committed = options.committed ?? 'no';
  }

  readonly committed: 'no' | 'unknown';
}
