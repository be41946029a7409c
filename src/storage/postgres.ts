// PostgreSQL through node-postgres, over TCP or a UNIX socket directory (`host: /run/postgresql`).
// Required for worker mode, where several processes share the database.

import { createRequire } from 'node:module';
import type pg from 'pg';
import type { Database, Queryable, Row, SqlValue } from './database.js';

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

function queryable(client: pg.Pool | pg.PoolClient): Queryable {
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

export class PostgresDatabase implements Database {
  readonly dialect = 'postgres' as const;
  readonly orderedWrites = false;
  private readonly pool: pg.Pool;
  private readonly direct: Queryable;

  constructor(options: PostgresOptions) {
    this.pool = new (loadDriver().Pool)({
      host: options.host,
      port: options.port,
      user: options.user,
      password: options.password,
      database: options.database,
      min: options.minConnections ?? 5,
      max: options.maxConnections ?? 10,
    });
    // An idle client that loses its connection (server restart) must not crash the process;
    // the pool replaces it on the next checkout.
    this.pool.on('error', () => undefined);
    this.direct = queryable(this.pool);
  }

  all<T = Row>(sql: string, params?: readonly SqlValue[]): Promise<T[]> {
    return this.direct.all<T>(sql, params);
  }

  get<T = Row>(sql: string, params?: readonly SqlValue[]): Promise<T | undefined> {
    return this.direct.get<T>(sql, params);
  }

  run(sql: string, params?: readonly SqlValue[]): Promise<{ changes: number }> {
    return this.direct.run(sql, params);
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const result = await fn(queryable(client));
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  async exec(sql: string): Promise<void> {
    await this.pool.query(sql);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
