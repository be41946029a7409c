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

export interface Database extends Queryable {
  readonly dialect: 'sqlite' | 'postgres';
  /**
   * Whether transactions run one after another in the order they were started (SQLite's single
   * write connection), so a transaction may rely on the ones started before it having run first.
   */
  readonly orderedWrites: boolean;
  /**
   * Runs `fn` in a transaction: committed when it resolves, rolled back when it throws. Reads made
   * through the `Database` itself while a transaction is open see only committed data.
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
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
